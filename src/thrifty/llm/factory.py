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

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.registry import Registry
from thrifty.llm.base import ChatModel
from thrifty.llm.capabilities import METHODS, capabilities, count_prompt_tokens, declared

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


@dataclass(frozen=True)
class SpecLoader:
    """A loader ``spec -> ChatModel`` that builds by :func:`load_model`, with llama.cpp options applied to llama.cpp
    specs only. A model it builds is of its spec's backend class, so what it can do is known before it is built."""

    llamacpp: dict[str, Any] = field(default_factory=dict)

    def __call__(self, spec: str, **overrides: Any) -> ChatModel:
        return load_model(spec, llamacpp=self.llamacpp, **overrides)


def threaded_loader(n_threads: int) -> Callable[[str], ChatModel]:
    """A loader ``spec -> ChatModel`` that runs llama.cpp models on ``n_threads`` threads (other backends as is)."""
    return SpecLoader({"n_threads": n_threads})


def backend_class(spec: str) -> type:
    """The backend class ``spec`` loads as (imports its module, loads no model)."""
    return BACKENDS.get(parse_spec(spec).backend)


class LazyChatModel:
    """A ChatModel that loads ``spec`` on its first call: a run whose answers are all stored never loads it.

    ``model_id`` is the spec string itself, so whatever keys records by model id stays the same whether the
    model was loaded or not. ``loader`` replaces :func:`load_model` (tests inject scripted models this way);
    ``overrides`` go to the loader.

    ``CAPABILITIES`` are those of the spec's backend class, known without loading when the model is built from its
    spec (no ``loader``, :func:`load_model` or a :class:`SpecLoader`); with another loader, asking for them loads
    the model. The methods of declared capabilities (``chat_tools``, ``hidden_state``, ``token_logprobs``,
    ``prompt_tokens``) are the loaded model's; undeclared ones do not exist here either.
    """

    def __init__(self, spec: str, loader: Any = None, **overrides: Any) -> None:
        if loader is None:
            parse_spec(spec)  # fail fast on a malformed spec, without loading anything
        self.model_id = spec
        self._loader = loader or load_model
        self._by_spec = loader is None or loader is load_model or isinstance(loader, SpecLoader)
        self._overrides = overrides
        self._model: ChatModel | None = None
        self._caps: frozenset[str] | None = None
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

    @property
    def CAPABILITIES(self) -> frozenset[str]:  # the name every backend declares
        """What the backend can do (see the class notes)."""
        if self._caps is None:
            self._caps = declared(backend_class(self.model_id)) if self._by_spec else None
            if self._caps is None:
                self._caps = capabilities(self._get())
        return self._caps

    def chat(self, messages, params=None, assistant_prefix: str = "", on_text=None):
        if on_text is None:  # backends without streaming take the plain call
            return self._get().chat(messages, params, assistant_prefix=assistant_prefix)
        return self._get().chat(messages, params, assistant_prefix=assistant_prefix, on_text=on_text)

    def label_probs(self, messages, labels, assistant_prefix: str = ""):
        return self._get().label_probs(messages, labels, assistant_prefix=assistant_prefix)

    @property
    def retries_itself(self) -> bool:
        return bool(getattr(self._get(), "retries_itself", False))

    def __getattr__(self, name: str) -> Any:
        """The method of a declared capability, forwarded to the model (loaded when it is called, not here)."""
        capability = METHODS.get(name)
        if capability is None or capability not in self.CAPABILITIES:
            raise AttributeError(f"{type(self).__name__} for {self.__dict__.get('model_id')!r} has no {name!r}")
        return functools.partial(self._forward, name)

    def _forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        model = self._get()
        if name == "prompt_tokens":  # counted as count_prompt_tokens counts, so a stand-in's prompt_ids serve too
            return count_prompt_tokens(model, *args, **kwargs)
        return getattr(model, name)(*args, **kwargs)
