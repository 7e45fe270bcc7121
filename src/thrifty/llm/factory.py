"""Turn one model spec string into a ChatModel: fake, a bundled model name, a GGUF path, an OpenAI URL, or HF.

Spec forms (``load_model(spec, **overrides)``; overrides are keyword arguments of the backend's class):

- ``fake``                          scripted test backend that echoes the last user message
- ``NAME``                          a bundled catalog model (e.g. ``qwen2.5-coder-0.5b-instruct``), run by llama.cpp
- ``llamacpp:PATH.gguf`` or ``PATH.gguf``   a local GGUF file run by llama.cpp
- ``openai:BASE_URL#MODEL``         any OpenAI-compatible server (``BASE_URL`` starts with http:// or https://)
- ``hf:DIR`` or ``hf:DIR+ADAPTER_DIR``      a transformers model directory, optionally with a PEFT adapter

Backends are registered lazily as "module:attr", so parsing a spec never imports llama_cpp, torch or httpx.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.registry import Registry
from thrifty.llm.base import ChatModel

BACKENDS: Registry[Any] = Registry("model backend")
BACKENDS.add("fake", "thrifty.llm.fake:FakeChatModel")
BACKENDS.add("llamacpp", "thrifty.llm.llamacpp:LlamaCppModel")
BACKENDS.add("openai", "thrifty.llm.openai_compat:OpenAICompatModel")
BACKENDS.add("hf", "thrifty.llm.hf:HFChatModel")

SPEC_FORMS = (
    "fake, NAME (bundled model), llamacpp:PATH.gguf, PATH.gguf, openai:BASE_URL#MODEL, hf:DIR[+ADAPTER_DIR]"
)


@dataclass(frozen=True)
class BackendSpec:
    """A parsed spec: the backend name and the constructor arguments it implies.

    ``catalog`` is set for bundled model names; the file path is resolved only when loading.
    """

    backend: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    catalog: str | None = None


def parse_spec(spec: str) -> BackendSpec:
    """Parse ``spec`` without loading anything; a spec that fits no form raises a one-line ModelError."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise ModelError(f"empty model spec; use one of: {SPEC_FORMS}")
    if text == "fake":
        return BackendSpec("fake")
    head, sep, rest = text.partition(":")
    if sep and head == "llamacpp":
        if not rest.strip():
            raise ModelError(f"model spec {text!r} names no GGUF file; write llamacpp:PATH.gguf")
        return BackendSpec("llamacpp", {"path": rest.strip()})
    if sep and head == "openai":
        return BackendSpec("openai", _parse_openai(text, rest))
    if sep and head == "hf":
        return BackendSpec("hf", _parse_hf(text, rest))
    if text.lower().endswith(".gguf"):
        return BackendSpec("llamacpp", {"path": text})
    from thrifty.llm import catalog

    if text in catalog.CATALOG:
        return BackendSpec("llamacpp", {"model_id": text}, catalog=text)
    raise ModelError(
        f"unknown model spec {text!r}; use one of: {SPEC_FORMS} "
        f"(bundled: {', '.join(sorted(catalog.CATALOG))})"
    )


def _parse_openai(text: str, rest: str) -> dict[str, Any]:
    base_url, sep, model = rest.rpartition("#")
    if not sep or not base_url or not model.strip():
        raise ModelError(f"model spec {text!r} must look like openai:BASE_URL#MODEL")
    if not base_url.startswith(("http://", "https://")):
        raise ModelError(f"model spec {text!r}: BASE_URL must start with http:// or https://")
    return {"base_url": base_url, "model": model.strip()}


def _parse_hf(text: str, rest: str) -> dict[str, Any]:
    rest = rest.strip()
    if not rest:
        raise ModelError(f"model spec {text!r} names no model directory; write hf:DIR or hf:DIR+ADAPTER_DIR")
    if "+" in rest and not Path(rest).expanduser().exists():  # an existing path containing "+" wins
        model_dir, _, adapter = rest.partition("+")
        if not model_dir or not adapter:
            raise ModelError(f"model spec {text!r} must look like hf:DIR+ADAPTER_DIR")
        return {"model_dir": model_dir, "adapter_dir": adapter}
    return {"model_dir": rest}


def load_model(spec: str, llamacpp: dict[str, Any] | None = None, **overrides: Any) -> ChatModel:
    """Build the ChatModel named by ``spec``; ``overrides`` are passed to the backend's constructor
    (e.g. ``n_ctx=2048`` for llama.cpp, ``timeout_s=30`` for OpenAI). ``llamacpp`` holds options applied only
    when the spec resolves to the llama.cpp backend (e.g. ``{"n_threads": 1}``), so callers taking any spec
    need not parse it themselves. Unknown options raise ConfigError."""
    parsed = parse_spec(spec)
    kwargs = dict(parsed.kwargs)
    if parsed.catalog is not None:
        from thrifty.llm import catalog

        kwargs["path"] = catalog.path(parsed.catalog)
    if parsed.backend == "llamacpp":
        kwargs.update(llamacpp or {})
    kwargs.update(overrides)
    cls = BACKENDS.get(parsed.backend)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model spec {spec!r}: bad options for backend {parsed.backend!r}: {exc}") from exc
    return cls(**kwargs)


def threaded_loader(n_threads: int) -> Callable[[str], ChatModel]:
    """A loader ``spec -> ChatModel`` that runs llama.cpp models on ``n_threads`` threads (other backends as is)."""

    def load(spec: str) -> ChatModel:
        return load_model(spec, llamacpp={"n_threads": n_threads})

    return load


class LazyChatModel:
    """A ChatModel that loads ``spec`` on its first call: a run whose answers are all stored never loads it.

    ``model_id`` is the spec string itself, so whatever keys records by model id stays the same whether the
    model was loaded or not. ``loader`` replaces :func:`load_model` (tests inject scripted models this way);
    ``overrides`` go to the loader.
    """

    def __init__(self, spec: str, loader: Any = None, **overrides: Any) -> None:
        if loader is None:
            parse_spec(spec)  # fail fast on a malformed spec, without loading anything
        self.model_id = spec
        self._loader = loader or load_model
        self._overrides = overrides
        self._model: ChatModel | None = None
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the underlying model has been built."""
        return self._model is not None

    def load(self) -> ChatModel:
        """Build the underlying model now (once, even when several threads ask at the same time)."""
        return self._get()

    def _get(self) -> ChatModel:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._loader(self.model_id, **self._overrides)
        return self._model

    def chat(self, messages, params=None, assistant_prefix: str = "", on_text=None):
        if on_text is None:  # backends without streaming take the plain call
            return self._get().chat(messages, params, assistant_prefix=assistant_prefix)
        return self._get().chat(messages, params, assistant_prefix=assistant_prefix, on_text=on_text)

    @property
    def streams(self) -> bool:
        """Whether the backend's ``chat`` takes ``on_text`` (streams its reply as it is generated)."""
        return "on_text" in inspect.signature(self._get().chat).parameters

    def label_probs(self, messages, labels, assistant_prefix: str = ""):
        return self._get().label_probs(messages, labels, assistant_prefix=assistant_prefix)

    @property
    def supports_tools(self) -> bool:
        """Whether the backend takes OpenAI tools (``chat_tools``); loads the model to find out."""
        return hasattr(self._get(), "chat_tools")

    def chat_tools(self, messages, params=None, tools=None, tool_choice=None):
        model = self._get()
        if not hasattr(model, "chat_tools"):
            raise ConfigError(f"model {self.model_id!r} does not take tools")
        return model.chat_tools(messages, params, tools, tool_choice)

    @property
    def retries_itself(self) -> bool:
        return bool(getattr(self._get(), "retries_itself", False))

    @property
    def enforces_timeout(self) -> bool:
        return bool(getattr(self._get(), "enforces_timeout", False))

    def hidden_state(self, messages, assistant_prefix: str = "", **kw):
        """The loaded model's hidden state at the last prompt position (backends that have one)."""
        model = self._get()
        if not hasattr(model, "hidden_state"):
            raise ConfigError(f"model {self.model_id!r} cannot return hidden states")
        return model.hidden_state(messages, assistant_prefix=assistant_prefix, **kw)

    def prompt_tokens(self, messages, assistant_prefix: str = "") -> int:
        """How many tokens the loaded model's prompt for ``messages`` + ``assistant_prefix`` takes (0: unknown)."""
        model = self._get()
        if hasattr(model, "prompt_ids"):
            return len(model.prompt_ids(messages, assistant_prefix))
        if hasattr(model, "tokenize") and hasattr(model, "render"):
            return len(model.tokenize(model.render(messages, assistant_prefix)))
        return 0

    def token_logprobs(self, messages, text: str, assistant_prefix: str = ""):
        """The loaded model's log-probs of ``text``'s tokens continuing the prompt (backends that have them)."""
        model = self._get()
        if not hasattr(model, "token_logprobs"):
            raise ConfigError(f"model {self.model_id!r} cannot score token log-probs")
        return model.token_logprobs(messages, text, assistant_prefix=assistant_prefix)
