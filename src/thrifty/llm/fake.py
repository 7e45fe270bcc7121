"""A scripted, deterministic ChatModel for unit tests: rule-based replies, label distributions and failures.

Nothing here loads a model. Replies come from rules matched against the last user message, label
distributions from scripted raw masses, and failures (TransientError for the first k calls, or a sleep long
enough to trip a timeout) are scripted so retry and timeout paths can be tested. Tokens are whitespace-separated
words. Every call is recorded in ``calls`` for assertions.

A scripted variant (a subclass) declares what it adds without restating ``CAPABILITIES``: defining ``chat_tools``
declares "tools", setting ``enforces_timeout = True`` declares "self_timed". A variant whose ``chat`` drops
``on_text`` must set ``CAPABILITIES`` itself if it is to be asked to stream.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from thrifty.core.errors import ConfigError, TransientError
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams, LabelProbs, renormalise, validate_messages
from thrifty.llm.capabilities import COUNTS_TOKENS, LABEL_PROBS, PREFIX_REUSE, SELF_TIMED, STREAMS, TOOLS

Matcher = str | Callable[[str], bool]
"""A rule's condition: a substring of the last user message, or a predicate on it."""

Reply = str | Callable[[str], str]
"""A rule's reply: fixed text, or a function of the last user message."""


@dataclass
class FakeCall:
    """One recorded call: ``kind`` is "chat" or "label_probs"; ``result`` is None when the call raised."""

    kind: str
    messages: Messages
    assistant_prefix: str
    params: GenParams | None = None
    labels: tuple[str, ...] = ()
    result: Completion | LabelProbs | None = None
    error: BaseException | None = None


@dataclass
class FakeChatModel:
    """Scripted ChatModel.

    - ``rules``: ``(matcher, reply)`` pairs tried in order on the last user message; the first match wins.
    - ``default``: reply when no rule matches; ``None`` echoes the last user message.
    - ``label_rules`` / ``label_default``: ``(matcher, {label: raw_mass})`` pairs and a fallback mapping for
      :meth:`label_probs`. Masses of labels asked for are renormalised; their sum is reported as ``mass``.
      Labels missing from the mapping get 0; no mapping at all gives mass 1 spread uniformly.
    - ``fail_first``: the first k calls (chat or label_probs) raise ``failure`` (a TransientError by default).
    - ``delay_s`` / ``delay_calls``: sleep this long inside each of the first ``delay_calls`` calls
      (``None`` = every call), so a caller's timeout can fire.
    - ``logprob``: the log-prob reported for every generated token when ``params.logprobs`` is set.

    Token accounting: ``tokens_in`` counts words of "role: content" lines plus the assistant prefix;
    ``cached_tokens`` is the longest common word prefix with the previous call's prompt (like a KV cache).
    """

    CAPABILITIES: ClassVar[frozenset[str]] = frozenset({STREAMS, LABEL_PROBS, COUNTS_TOKENS, PREFIX_REUSE})
    enforces_timeout: ClassVar[bool] = False  # a variant may claim to end its own calls (see the module notes)

    rules: Sequence[tuple[Matcher, Reply]] = ()
    default: str | None = None
    label_rules: Sequence[tuple[Matcher, dict[str, float]]] = ()
    label_default: dict[str, float] | None = None
    fail_first: int = 0
    failure: type[BaseException] | BaseException = TransientError
    delay_s: float = 0.0
    delay_calls: int | None = None
    logprob: float = -0.25
    model_id: str = "fake"
    calls: list[FakeCall] = field(default_factory=list, init=False, repr=False)
    in_flight: int = field(default=0, init=False, repr=False)
    max_in_flight: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.fail_first < 0:
            raise ConfigError(f"fail_first must be >= 0, got {self.fail_first}")
        if self.delay_s < 0:
            raise ConfigError(f"delay_s must be >= 0, got {self.delay_s}")
        self._lock = threading.Lock()
        self._n_started = 0
        self._cache: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "CAPABILITIES" in vars(cls):
            return
        caps = set(cls.CAPABILITIES)
        if any("chat_tools" in vars(k) for k in cls.__mro__):
            caps.add(TOOLS)
        if cls.enforces_timeout:
            caps.add(SELF_TIMED)
        else:
            caps.discard(SELF_TIMED)
        cls.CAPABILITIES = frozenset(caps)

    # ---- the ChatModel protocol -------------------------------------------------------------------

    def chat(
        self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "",
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Reply by rule (text excludes ``assistant_prefix``), cut at stop strings and ``max_tokens`` words;
        ``on_text`` receives the reply word by word (pieces that join to ``text``)."""
        params = params or GenParams()
        record = FakeCall("chat", copy.deepcopy(messages), assistant_prefix, params=params)
        done = self._run(record, lambda: self._chat(messages, params, assistant_prefix))
        if on_text is not None:
            for piece in re.findall(r"\s*\S+|\s+$", done.text):
                on_text(piece)
        return done

    def label_probs(
        self, messages: Messages, labels: Sequence[str], assistant_prefix: str = ""
    ) -> LabelProbs:
        """Scripted distribution over ``labels`` (renormalised; raw sum reported as ``mass``)."""
        record = FakeCall("label_probs", copy.deepcopy(messages), assistant_prefix, labels=tuple(labels))
        return self._run(record, lambda: self._label_probs(messages, tuple(labels), assistant_prefix))

    def prompt_tokens(self, messages: Messages, assistant_prefix: str = "") -> int:
        """The ``tokens_in`` a call on this prompt reports (its words); not recorded as a call."""
        validate_messages(messages)
        return len(self._prompt_words(messages, assistant_prefix))

    # ---- helpers ------------------------------------------------------------------------------------

    @property
    def n_calls(self) -> int:
        """Number of calls started so far (including failed ones)."""
        return self._n_started

    def reply_for(self, messages: Messages) -> str:
        """The full scripted reply for ``messages`` (before stop strings and max_tokens)."""
        text = last_user_text(messages)
        for matcher, reply in self.rules:
            if _matches(matcher, text):
                return reply(text) if callable(reply) else reply
        return text if self.default is None else self.default

    def _run(self, record: FakeCall, body: Callable[[], Any]) -> Any:
        with self._lock:
            index = self._n_started
            self._n_started += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append(record)
        try:
            if self.delay_s > 0 and (self.delay_calls is None or index < self.delay_calls):
                time.sleep(self.delay_s)
            if index < self.fail_first:
                exc = self.failure
                raise (
                    exc
                    if isinstance(exc, BaseException)
                    else exc(f"scripted failure {index + 1}/{self.fail_first}")
                )
            validate_messages(record.messages)
            record.result = body()
            return record.result
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            with self._lock:
                self.in_flight -= 1

    def _prompt_words(self, messages: Messages, assistant_prefix: str) -> list[str]:
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return " ".join([*lines, "assistant:", assistant_prefix]).split()

    def _prefill(self, words: list[str]) -> int:
        with self._lock:
            cached = 0
            for a, b in zip(self._cache, words, strict=False):
                if a != b:
                    break
                cached += 1
            self._cache = list(words)
        return cached

    def _chat(self, messages: Messages, params: GenParams, assistant_prefix: str) -> Completion:
        t0 = time.perf_counter()
        words_in = self._prompt_words(messages, assistant_prefix)
        cached = self._prefill(words_in)
        text = self.reply_for(messages)
        finish = "stop"
        cut = min((i for i in (text.find(s) for s in params.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        words = text.split()
        if len(words) > params.max_tokens:
            words = words[: params.max_tokens]
            text = " ".join(words)
            finish = "length"
        logprobs = [self.logprob] * len(words) if params.logprobs else None
        return Completion(
            text=text,
            tokens_in=len(words_in),
            tokens_out=len(words),
            latency_s=time.perf_counter() - t0,
            model=self.model_id,
            finish_reason=finish,
            token_logprobs=logprobs,
            cached_tokens=cached,
        )

    def _label_probs(self, messages: Messages, labels: tuple[str, ...], assistant_prefix: str) -> LabelProbs:
        t0 = time.perf_counter()
        if not labels or len(set(labels)) != len(labels):
            raise ConfigError(f"labels must be non-empty and distinct, got {list(labels)}")
        words_in = self._prompt_words(messages, assistant_prefix)
        self._prefill(words_in)
        text = last_user_text(messages)
        table = next(
            (dist for matcher, dist in self.label_rules if _matches(matcher, text)), self.label_default
        )
        if table is None:
            probs, mass = {lab: 1.0 / len(labels) for lab in labels}, 1.0
        else:
            probs, mass = renormalise({lab: float(table.get(lab, 0.0)) for lab in labels})
        return LabelProbs(probs=probs, tokens_in=len(words_in), latency_s=time.perf_counter() - t0, mass=mass)


def last_user_text(messages: Messages) -> str:
    """Content of the last user message ("" when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def _matches(matcher: Matcher, text: str) -> bool:
    return matcher(text) if callable(matcher) else matcher in text
