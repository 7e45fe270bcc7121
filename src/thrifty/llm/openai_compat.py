"""ChatModel backend for any OpenAI-compatible HTTP endpoint (vLLM, SGLang, Ollama, llama.cpp server, OpenAI).

Requests go through an :class:`~thrifty.llm.openai_transport.OpenAITransport` (the model's ``http``): keys are
never needed for local endpoints, and for other hosts the key is ``api_key`` or the environment variable named by
``api_key_env``, read when a request is made, never at import or construction.

``prefix_mode`` says how an ``assistant_prefix`` reaches the server:

- ``"continue_final_message"`` (default): the prefix is sent as a final assistant message with
  ``continue_final_message: true, add_generation_prompt: false`` (vLLM and SGLang); the model continues it.
- ``"instruct"``: a fallback for servers without prefill: the last user message asks the model to start its
  reply with the prefix verbatim.

Either way an echoed prefix is stripped, so ``Completion.text`` holds only the continuation.

Each attempt has a total deadline (``timeout_s``) that bounds every socket wait of its request and reply (a
backend dripping bytes is cut when the time is up), and a caller may set an outer deadline for every call in its
context with :func:`call_deadline`. An upstream 4xx that retrying cannot fix (bad request, unknown model, context
too long; not 401/403/408/429) raises :class:`UpstreamClientError` with the upstream status.

``label_probs`` reads log-probs; a reply without them falls back to text for that call only, and an explicit
"logprobs unsupported" answer switches to text for ``logprob_retry_s`` seconds; each fallback is counted in
``logprob_fallbacks``.

``label_then_chat`` is predict-then-answer in one streamed call (read by :mod:`.openai_labels`): the label from
the first generated token's ``top_logprobs``, the stream closed at once when the caller stops there, the rest of
the reply streamed on when it goes on. A call whose label token came without log-probs reads the grade line's text
instead (that call only); while the server is known to refuse log-probs, the call asks for none and reads the
text; both count in ``logprob_fallbacks``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import urlparse

import httpx

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.text import one_line
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams, LabelProbs, RetryPolicy, renormalise, validate_messages
from thrifty.llm.capabilities import LABEL_PROBS, LABEL_STREAM, SELF_TIMED, STREAMS, TOOLS, LabelledReply
from thrifty.llm.openai_labels import label_mass_from_top, parse_label, read_labelled, rough_tokens
from thrifty.llm.openai_stream import stream_chat
from thrifty.llm.openai_transport import OpenAITransport, UpstreamClientError, call_deadline, is_local_url

PREFIX_MODES = ("continue_final_message", "instruct")
GRADE_LINE_TOKENS = 2
"""Tokens ``label_then_chat`` adds to ``max_tokens`` for the grade line (the label and its newline)."""
TOP_K = 20


class OpenAICompatModel:
    """A ChatModel talking to ``{base_url}/chat/completions`` with retries, token accounting and label probs.

    ``base_url`` includes the API root (e.g. ``http://127.0.0.1:8000/v1``). ``timeout_s``/``max_retries`` build
    the RetryPolicy unless ``retry`` is given; a Retry-After header replaces the backoff, capped at
    ``retry_after_max_s``. ``extra_body`` is merged into every request body (e.g. vLLM's ``top_k``);
    ``headers`` go with every request. ``transport`` and ``sleep`` exist for tests.
    """

    CAPABILITIES: ClassVar[frozenset[str]] = frozenset({STREAMS, TOOLS, LABEL_PROBS, SELF_TIMED, LABEL_STREAM})
    retries_itself = True  # callers (batch runners) should not wrap calls in a second retry loop

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        prefix_mode: str = "continue_final_message",
        retry: RetryPolicy | None = None,
        retry_after_max_s: float = 30.0,
        model_id: str | None = None,
        logprob_retry_s: float = 300.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url or urlparse(base_url).scheme not in ("http", "https"):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if prefix_mode not in PREFIX_MODES:
            raise ConfigError(f"prefix_mode must be one of {', '.join(PREFIX_MODES)}, got {prefix_mode!r}")
        if max_retries < 0 or not 0 < timeout_s < math.inf or not 0 <= logprob_retry_s < math.inf:
            raise ConfigError("max_retries must be >= 0, timeout_s > 0 and logprob_retry_s >= 0 (finite)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = model_id or model
        self.prefix_mode = prefix_mode
        self.extra_body = dict(extra_body or {})
        self.http = OpenAITransport(  # client, key, retries and deadlines
            self.base_url, retry or RetryPolicy(timeout_s=timeout_s, retries=max_retries), api_key=api_key,
            api_key_env=api_key_env, headers=headers, retry_after_max_s=retry_after_max_s, transport=transport,
            sleep=sleep)
        self._clock = clock
        self._lock = threading.Lock()
        self.logprob_retry_s = logprob_retry_s
        self.logprob_fallbacks = 0  # label_probs calls answered by text instead of log-probs
        self._text_until = -math.inf  # the server said it has no logprobs: text until then (self._clock time)

    @property
    def retry(self) -> RetryPolicy:
        """The timeout per attempt and the backoff between attempts."""
        return self.http.retry

    def close(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        self.http.close()

    def __enter__(self) -> OpenAICompatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_models(self) -> list[str]:
        """Model ids the server offers (GET /models); a cheap health check."""
        data = self.http.request("GET", "/models")
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    # ---- request building ---------------------------------------------------------------------------------

    def _with_prefix(self, messages: Messages, prefix: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        msgs = [dict(m) for m in messages]
        if not prefix:
            return msgs
        if self.prefix_mode == "continue_final_message":
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
            return [*msgs, {"role": "assistant", "content": prefix}]
        note = f"Begin your reply with exactly this text, then continue it: {prefix}"
        return _add_instruction(msgs, note)

    def _body(self, messages: Messages, prefix: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        body["messages"] = self._with_prefix(messages, prefix, body)
        body.update({k: v for k, v in fields.items() if v is not None})
        body.update(self.extra_body)
        return body

    # ---- ChatModel --------------------------------------------------------------------------------------

    def chat(self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "",
             on_text: Callable[[str], None] | None = None) -> Completion:
        """One completion; ``text`` excludes ``assistant_prefix`` even when the server echoes it.

        With ``on_text`` the request is streamed (server-sent events) and each piece of the reply is passed on as it
        arrives; the pieces join to ``text``. Failures before the first piece are retried like any request; after
        it, they raise (the caller has already shown part of the reply). With an assistant prefix or logprobs the
        reply is fetched whole and handed to ``on_text`` in one piece."""
        validate_messages(messages)
        params = params or GenParams()
        body = self._body(
            messages, assistant_prefix, max_tokens=params.max_tokens, temperature=params.temperature,
            top_p=params.top_p, seed=params.seed, stop=list(params.stop) or None, logprobs=params.logprobs or None,
            top_logprobs=1 if params.logprobs else None,  # some servers (llama-cpp-python) need it for any logprobs
        )
        t0 = time.perf_counter()
        if on_text is not None and not assistant_prefix and not params.logprobs:
            data = stream_chat(self.http, body, on_text)
            return self._completion(data, body, "", time.perf_counter() - t0)
        data = self.http.request("POST", "/chat/completions", body)
        latency = time.perf_counter() - t0
        done = self._completion(data, body, assistant_prefix, latency)
        if on_text is not None and done.text:
            on_text(done.text)
        return done

    def chat_tools(self, messages: list[dict[str, Any]], params: GenParams | None = None,
                   tools: list[dict[str, Any]] | None = None, tool_choice: Any = None) -> Completion:
        """One completion with OpenAI tools passed through: ``messages`` may carry ``tool_calls`` and ``tool``
        turns; the reply's tool calls come back in ``extra["tool_calls"]`` (``extra["finish_reason_raw"]`` is
        then "tool_calls")."""
        if not isinstance(messages, list) or not messages:
            raise ConfigError("messages must be a non-empty list")
        params = params or GenParams()
        body = self._body(messages, "", max_tokens=params.max_tokens, temperature=params.temperature,
                          top_p=params.top_p, seed=params.seed, stop=list(params.stop) or None, tools=tools or None,
                          tool_choice=tool_choice if tools else None)
        t0 = time.perf_counter()
        data = self.http.request("POST", "/chat/completions", body)
        done = self._completion(data, body, "", time.perf_counter() - t0)
        calls = (_first_choice(data, self.base_url).get("message") or {}).get("tool_calls")
        if calls:
            done.extra["tool_calls"] = calls
        return done

    def _completion(self, data: dict[str, Any], body: dict[str, Any], prefix: str, latency: float) -> Completion:
        choice = _first_choice(data, self.base_url)
        msg = choice.get("message") or {}
        text = msg.get("content") or ""
        extra: dict[str, Any] = {}
        if prefix and text.startswith(prefix):
            text, extra["prefix_echoed"] = text[len(prefix):], True
        if msg.get("reasoning_content"):
            extra["reasoning"] = msg["reasoning_content"]
        raw_finish = str(choice.get("finish_reason") or "stop")
        if raw_finish not in ("stop", "length"):
            extra["finish_reason_raw"] = raw_finish
        usage = data.get("usage") or {}
        if "prompt_tokens" in usage and "completion_tokens" in usage:
            tokens_in, tokens_out = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
            cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        else:
            prompt_text = "".join(str(m.get("content") or "") for m in body["messages"])
            tokens_in, tokens_out, cached = rough_tokens(prompt_text), rough_tokens(text), 0
            extra["usage_estimated"] = True
        lp_items = (choice.get("logprobs") or {}).get("content") or None
        token_logprobs = [float(t["logprob"]) for t in lp_items] if body.get("logprobs") and lp_items else None
        return Completion(
            text=text, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency,
            model=str(data.get("model") or self.model_id), finish_reason="length" if raw_finish == "length" else "stop",
            token_logprobs=token_logprobs, cached_tokens=cached, extra=extra,
        )

    def label_probs(self, messages: Messages, labels: Sequence[str], assistant_prefix: str = "") -> LabelProbs:
        """Label distribution from the first token's ``top_logprobs``; constrained text when this reply has none
        or the server said it has none (see the module notes)."""
        validate_messages(messages)
        labels = _check_labels(labels)
        if self._clock() >= self._text_until:
            body = self._body(messages, assistant_prefix, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=TOP_K)
            t0 = time.perf_counter()
            try:
                data = self.http.request("POST", "/chat/completions", body)
            except ModelError as exc:
                if not self._logprobs_refused(exc):
                    raise
                data = None
            latency = time.perf_counter() - t0
            if data is not None:
                done = self._completion(data, body, assistant_prefix, latency)
                items = (_first_choice(data, self.base_url).get("logprobs") or {}).get("content") or []
                top = items[0].get("top_logprobs") if items and isinstance(items[0], dict) else None
                if top:
                    probs, mass = renormalise(label_mass_from_top(top, labels))
                    return LabelProbs(probs, done.tokens_in, latency, mass, "logprobs", mass > 0, done.tokens_out)
        with self._lock:
            self.logprob_fallbacks += 1
        return self._label_by_text(messages, labels, assistant_prefix)

    def _logprobs_refused(self, exc: Exception) -> bool:
        """Whether ``exc`` says the server cannot return log-probs; if so, label reads ask for text for
        ``logprob_retry_s`` seconds (shared by :meth:`label_probs` and :meth:`label_then_chat`)."""
        if "logprob" not in str(exc).lower():
            return False
        with self._lock:
            self._text_until = self._clock() + self.logprob_retry_s
        return True

    def label_then_chat(self, messages: Messages, labels: Sequence[str], on_label: Callable[[LabelProbs], bool],
                        params: GenParams | None = None, assistant_prefix: str = "",
                        on_text: Callable[[str], None] | None = None) -> LabelledReply:
        """One streamed call whose reply opens with a label line (``assistant_prefix`` + label + newline), then the
        reply proper. ``on_label`` gets the label distribution as soon as the label token arrives and says whether
        to go on: False closes the stream at once (the backend stops: the call cost its prefill and about one
        token); True streams the rest to ``on_text``, the label line stripped. ``max_tokens`` gets
        :data:`GRADE_LINE_TOKENS` more for the label line. Usage is the server's (``tokens_out`` of the completion
        leaves out the label's token); the completion's ``cached_tokens`` counts its whole prompt, which the label
        read evaluated (the server's own prefix-cache hits are in ``extra["backend_cached_tokens"]``). A reply
        without log-probs, or an explicit "logprobs unsupported" error, falls back to the label line's text (see
        the module notes)."""
        validate_messages(messages)
        labels, params = _check_labels(labels), params or GenParams()
        with_logprobs = self._clock() >= self._text_until
        try:
            return self._labelled(messages, labels, on_label, params, assistant_prefix, on_text, with_logprobs)
        except UpstreamClientError as exc:  # refused before any reply was read
            if not with_logprobs or not self._logprobs_refused(exc):
                raise
        return self._labelled(messages, labels, on_label, params, assistant_prefix, on_text, False)

    def _labelled(self, messages: Messages, labels: list[str], on_label: Callable[[LabelProbs], bool],
                  params: GenParams, prefix: str, on_text: Callable[[str], None] | None,
                  with_logprobs: bool) -> LabelledReply:
        body = self._body(messages, prefix, max_tokens=params.max_tokens + GRADE_LINE_TOKENS,
                          temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                          stop=list(params.stop) or None, logprobs=True if with_logprobs else None,
                          top_logprobs=TOP_K if with_logprobs else None)
        estimate = rough_tokens("".join(str(m.get("content") or "") for m in body["messages"]))
        read = read_labelled(self.http, body, prefix, labels, on_label, on_text, estimate)
        label = read.label
        if label.method == "text":
            with self._lock:
                self.logprob_fallbacks += 1
        if not read.go:
            return LabelledReply(label, None, stopped=bool(read.data.get("stopped")))
        done = self._completion(read.data, body, "", read.latency_s)
        reply = read.line.text[read.line.start or 0:]
        done.extra.update(backend_cached_tokens=done.cached_tokens, grade_line=read.line.line)
        if done.extra.get("usage_estimated"):
            done.tokens_out = rough_tokens(reply)
        else:
            label.tokens_in = done.tokens_in
            done.tokens_out = max(0, done.tokens_out - label.tokens_out)
        done.text, done.latency_s = reply, max(0.0, read.latency_s - label.latency_s)
        done.tokens_in = done.cached_tokens = label.tokens_in
        return LabelledReply(label, done)

    def _label_by_text(self, messages: Messages, labels: list[str], prefix: str) -> LabelProbs:
        """Ask for exactly one label, parse it strictly, retry once, else uniform with ``parsed=False``."""
        choices = ", ".join(labels)
        notes = (
            f"Reply with exactly one word, one of: {choices}.",
            f"Your reply must be a single word and nothing else. Allowed words: {choices}.",
        )
        budget = max(4, max(rough_tokens(lab) for lab in labels) + 4)
        tokens_in = tokens_out = 0
        t0 = time.perf_counter()
        for note in notes:
            done = self.chat(_add_instruction(messages, note), GenParams(max_tokens=budget), prefix)
            tokens_in, tokens_out = tokens_in + done.tokens_in, tokens_out + done.tokens_out
            label = parse_label(done.text, labels)
            if label is not None:
                probs = {lab: float(lab == label) for lab in labels}
                return LabelProbs(probs, tokens_in, time.perf_counter() - t0, 1.0, "text", True, tokens_out)
        probs = {lab: 1.0 / len(labels) for lab in labels}
        return LabelProbs(probs, tokens_in, time.perf_counter() - t0, 1.0, "text", False, tokens_out)


def _add_instruction(messages: Messages, note: str) -> list[dict[str, Any]]:
    """Copy ``messages`` with ``note`` appended to the last user message (or as a new user message)."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1].get("role") == "user":
        msgs[-1]["content"] = f"{msgs[-1].get('content') or ''}\n\n{note}"
    else:
        msgs.append({"role": "user", "content": note})
    return msgs


def _check_labels(labels: Sequence[str]) -> list[str]:
    out = [str(x) for x in labels]
    if not out or any(not x.strip() for x in out) or len({x.lower() for x in out}) != len(out):
        raise ConfigError(f"labels must be non-empty, distinct (ignoring case) strings, got {out!r}")
    return out


def _first_choice(data: dict[str, Any], base_url: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"{base_url}: response has no choices: {one_line(str(data), 160)}")
    return choices[0]


__all__ = ["PREFIX_MODES", "OpenAICompatModel", "UpstreamClientError", "call_deadline", "is_local_url",
           "label_mass_from_top", "parse_label"]
