"""What a chat model can do beyond ``chat``, declared by its class and checked by name.

Every backend states its abilities in a class attribute, ``CAPABILITIES = frozenset({STREAMS, ...})``, and callers
ask :func:`supports` (``supports(model, STREAMS)``) instead of probing methods or signatures. The protocols below
spell out what each declared name promises:

- ``streams`` (:class:`Streams`): ``chat`` takes ``on_text`` and hands the reply on piece by piece.
- ``tools`` (:class:`TakesTools`): ``chat_tools`` passes OpenAI tools through.
- ``label_probs`` (:class:`ReadsLabelProbs`): ``label_probs`` reads a distribution over labels.
- ``hidden_state`` (:class:`HiddenState`): ``hidden_state`` returns the vector at the last prompt position.
- ``token_logprobs`` (:class:`TokenLogprobs`): ``token_logprobs`` scores a given continuation token by token.
- ``counts_tokens`` (:class:`CountsTokens`): ``prompt_tokens`` says how many tokens a prompt takes.
- ``self_timed`` (:class:`SelfTimed`): every call ends within the model's own timeout (no watchdog needed).
- ``prefix_reuse`` (:class:`PrefixReuse`): a call reuses the cached prompt prefix of the previous one.
- ``label_stream`` (:class:`LabelStream`): ``label_then_chat`` reads a label from the first generated token of one
  streamed call, asks the caller whether to go on, and either closes the stream at once or streams the rest of the
  reply (:class:`LabelledReply`): predict-then-answer in one backend call.

An object that declares nothing (a stand-in written without a declaration) is read by its shape instead: it has
the method capabilities whose protocols it satisfies, never the others (a signature is not read, so it does not
stream), and ``prompt_ids`` (a token list) stands in for ``prompt_tokens``. Count prompt tokens with
:func:`count_prompt_tokens`, which serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from thrifty.core.types import Messages
    from thrifty.llm.base import Completion, GenParams, LabelProbs

STREAMS = "streams"
TOOLS = "tools"
LABEL_PROBS = "label_probs"
HIDDEN_STATE = "hidden_state"
TOKEN_LOGPROBS = "token_logprobs"
COUNTS_TOKENS = "counts_tokens"
SELF_TIMED = "self_timed"
PREFIX_REUSE = "prefix_reuse"
LABEL_STREAM = "label_stream"
ALL: frozenset[str] = frozenset(
    {STREAMS, TOOLS, LABEL_PROBS, HIDDEN_STATE, TOKEN_LOGPROBS, COUNTS_TOKENS, SELF_TIMED, PREFIX_REUSE, LABEL_STREAM})

METHODS: dict[str, str] = {
    "chat_tools": TOOLS, "label_probs": LABEL_PROBS, "hidden_state": HIDDEN_STATE,
    "token_logprobs": TOKEN_LOGPROBS, "prompt_tokens": COUNTS_TOKENS, "label_then_chat": LABEL_STREAM,
}
"""The method each method-bearing capability adds, by method name (``streams`` is a parameter of ``chat``;
``self_timed`` and ``prefix_reuse`` are behaviour, not methods)."""


@runtime_checkable
class Streams(Protocol):
    def chat(self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "",
             on_text: Callable[[str], None] | None = None) -> Completion: ...


@runtime_checkable
class TakesTools(Protocol):
    def chat_tools(self, messages: list[dict[str, Any]], params: GenParams | None = None,
                   tools: list[dict[str, Any]] | None = None, tool_choice: Any = None) -> Completion: ...


@runtime_checkable
class ReadsLabelProbs(Protocol):
    def label_probs(self, messages: Messages, labels: Sequence[str], assistant_prefix: str = "") -> LabelProbs: ...


@runtime_checkable
class HiddenState(Protocol):
    def hidden_state(self, messages: Messages, assistant_prefix: str = "") -> Any: ...


@runtime_checkable
class TokenLogprobs(Protocol):
    def token_logprobs(self, messages: Messages, text: str, assistant_prefix: str = "") -> list[float]: ...


@runtime_checkable
class CountsTokens(Protocol):
    def prompt_tokens(self, messages: Messages, assistant_prefix: str = "") -> int: ...


@dataclass
class LabelledReply:
    """What one ``label_then_chat`` call gave: the label read from its first token (``label.tokens_in`` is the
    prompt's tokens, exact once the backend reported usage), the reply after the label line (None when the caller
    stopped the stream at the label) and whether the stream was closed early."""

    label: LabelProbs
    completion: Completion | None
    stopped: bool = False


@runtime_checkable
class LabelStream(Protocol):
    def label_then_chat(self, messages: Messages, labels: Sequence[str], on_label: Callable[[LabelProbs], bool],
                        params: GenParams | None = None, assistant_prefix: str = "",
                        on_text: Callable[[str], None] | None = None) -> LabelledReply: ...


@runtime_checkable
class SelfTimed(Protocol):
    """``self_timed``: every call ends within the model's own timeout. Behaviour, not a method: only the
    declaration tells (this protocol matches any object)."""


@runtime_checkable
class PrefixReuse(Protocol):
    """``prefix_reuse``: a call reuses the prompt prefix the previous call left cached (``Completion.cached_tokens``
    counts it). Behaviour, not a method: only the declaration tells (this protocol matches any object)."""


PROTOCOLS: dict[str, type] = {
    TOOLS: TakesTools, LABEL_PROBS: ReadsLabelProbs, HIDDEN_STATE: HiddenState, TOKEN_LOGPROBS: TokenLogprobs,
    COUNTS_TOKENS: CountsTokens, LABEL_STREAM: LabelStream,
}
"""The protocol of each capability that adds a method (its shape can be checked with ``isinstance``)."""


@runtime_checkable
class _TokenIds(Protocol):
    def prompt_ids(self, messages: Messages, assistant_prefix: str = "") -> list[int]: ...


def declared(model: object) -> frozenset[str] | None:
    """The capabilities ``model`` declares in ``CAPABILITIES``, or None when it declares none."""
    caps = getattr(model, "CAPABILITIES", None)
    if caps is None:
        return None
    caps = frozenset(caps)
    unknown = caps - ALL
    if unknown:
        raise TypeError(f"{type(model).__name__} declares unknown capabilities: {sorted(unknown)}")
    return caps


def capabilities(model: object) -> frozenset[str]:
    """What ``model`` can do: its declaration, or for a stand-in that declares nothing, its shape (module notes)."""
    caps = declared(model)
    if caps is not None:
        return caps
    found = {cap for cap, protocol in PROTOCOLS.items() if isinstance(model, protocol)}
    if isinstance(model, _TokenIds):
        found.add(COUNTS_TOKENS)
    return frozenset(found)


def supports(model: object, capability: str) -> bool:
    """Whether ``model`` has ``capability`` (one of :data:`ALL`; another name is a programming error)."""
    if capability not in ALL:
        raise ValueError(f"unknown capability {capability!r}; known: {', '.join(sorted(ALL))}")
    return capability in capabilities(model)


def count_prompt_tokens(model: object, messages: Messages, assistant_prefix: str = "") -> int:
    """How many tokens ``model``'s prompt for ``messages`` + ``assistant_prefix`` takes; 0 when it cannot count."""
    if not supports(model, COUNTS_TOKENS):
        return 0
    if declared(model) is None and not isinstance(model, CountsTokens):
        return len(model.prompt_ids(messages, assistant_prefix))  # type: ignore[attr-defined]  # a stand-in
    return int(model.prompt_tokens(messages, assistant_prefix))  # type: ignore[attr-defined]


__all__ = ["ALL", "COUNTS_TOKENS", "HIDDEN_STATE", "LABEL_PROBS", "LABEL_STREAM", "METHODS", "PREFIX_REUSE",
           "PROTOCOLS", "SELF_TIMED", "STREAMS", "TOKEN_LOGPROBS", "TOOLS", "CountsTokens", "HiddenState",
           "LabelStream", "LabelledReply", "PrefixReuse", "ReadsLabelProbs", "SelfTimed", "Streams", "TakesTools",
           "TokenLogprobs", "capabilities", "count_prompt_tokens", "declared", "supports"]
