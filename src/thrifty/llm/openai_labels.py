"""Reading a grade label from an OpenAI-compatible backend: the label mass of one position's ``top_logprobs``, a
strict label parse of text, and the label read from the first token of a streamed reply (:func:`read_labelled`).

:func:`read_labelled` streams one reply that opens with a grade line (an echoed prefix perhaps, the label, a new
line) and then the reply proper. :class:`GradeLine` follows that line as pieces arrive: the label token is the
first generated token past an echoed prefix, and its ``top_logprobs`` give the distribution; when it came without
them (or with no mass on any label) the line's text is parsed instead, one-hot — uniform and unparsed when it
names no label. The caller's ``on_label`` decides at once: stop (the response is closed before another token is
read, so the backend stops generating) or go on (the reply's pieces after the grade line go to ``on_text``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.llm.base import LabelProbs, renormalise
from thrifty.llm.openai_stream import stream_deltas
from thrifty.llm.openai_transport import OpenAITransport


def norm_token(token: str) -> str:
    """A vocabulary piece as plain lowercase text: drops leading spaces and BPE/SentencePiece space marks."""
    return token.replace("Ġ", " ").replace("▁", " ").strip().lower()


def label_mass_from_top(top: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, float]:
    """Probability mass per label from one position's ``top_logprobs`` entries.

    A token counts for a label when, ignoring case and leading space, it equals the label. When a label has no
    such whole-word token among the candidates (it is split into several tokens), tokens that are a prefix of
    that label and of no other label count instead.
    """
    lower = {lab: lab.lower() for lab in labels}
    exact: dict[str, float] = dict.fromkeys(labels, 0.0)
    partial: dict[str, float] = dict.fromkeys(labels, 0.0)
    has_exact: set[str] = set()
    for item in top:
        tok, lp = norm_token(str(item.get("token", ""))), item.get("logprob")
        if not tok or lp is None:
            continue
        p = math.exp(float(lp))
        hits = [lab for lab in labels if lower[lab] == tok]
        if hits:
            exact[hits[0]] += p
            has_exact.add(hits[0])
            continue
        owners = [lab for lab in labels if lower[lab].startswith(tok)]
        if len(owners) == 1:
            partial[owners[0]] += p
    return {lab: exact[lab] if lab in has_exact else partial[lab] for lab in labels}


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The one label that ``text`` names as a whole word (case-insensitive); None if none or several do."""
    found = {lab for lab in labels if re.search(rf"(?<!\w){re.escape(lab)}(?!\w)", text, re.IGNORECASE)}
    return found.pop() if len(found) == 1 else None


def rough_tokens(text: str) -> int:
    """A crude token count (about four characters per token) for servers that report no usage."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def grade_line_end(text: str, prefix: str, labels: Sequence[str], final: bool = False) -> int | None:
    """Where the reply proper begins in ``text``, a reply that should open with a grade line (``label`` then a
    new line, perhaps after an echoed ``prefix``); None while more text is needed to tell (``final``: it is all).

    After the label the line ends at its newline; a reply that goes straight on after the label (no newline)
    begins at its first non-blank character; a reply that opens with no label has no grade line (0)."""
    i = len(text) - len(text.lstrip())
    if prefix and text.startswith(prefix, i):
        i += len(prefix)
        i += len(text[i:]) - len(text[i:].lstrip(" \t"))
    elif prefix and prefix.startswith(text[i:]) and not final:
        return None
    head = text[i:].lower()
    for label in labels:
        low = label.lower()
        if head.startswith(low) and not head[len(low):len(low) + 1].isalnum():
            after = text[i + len(low):]
            line, newline, _ = after.partition("\n")
            if line.strip(_LINE_TAIL):  # the reply goes straight on after the label
                return len(text) - len(after.lstrip(" \t"))
            if newline:
                return i + len(low) + len(line) + 1
            return len(text) if final else None
        if low.startswith(head) and not final:
            return None  # the label is still arriving
    return 0


_LINE_TAIL = " \t.,;:!*)"
"""What may follow the label on its line and still belong to the grade line."""


class GradeLine:
    """The grade line at the start of a streamed predict-then-answer reply, read piece by piece (:meth:`feed`).

    ``top`` is the ``top_logprobs`` of the label token — the first generated token past an echoed ``prefix`` —
    once it arrived with log-probs (``[]`` when that token came without them: read the line's text instead);
    ``start`` is where the reply proper begins in ``text`` (see :func:`grade_line_end`), once known; :meth:`take`
    returns the reply's text not yet taken."""

    def __init__(self, prefix: str, labels: Sequence[str]) -> None:
        self.prefix, self.labels = prefix.strip(), list(labels)
        self.reset()

    def reset(self) -> None:
        """Forget what was read (a retried request starts its reply afresh)."""
        self.text = ""
        self.top: list[dict[str, Any]] | None = None
        self.start: int | None = None
        self._taken = 0

    def _past_prefix(self, text: str) -> bool:
        s = text.lstrip()
        if self.prefix and s.startswith(self.prefix):
            return bool(s[len(self.prefix):].strip())
        return bool(s) and not (self.prefix and self.prefix.startswith(s))

    def feed(self, piece: str, items: list[dict[str, Any]] | None) -> None:
        """One streamed delta: its text and its tokens' log-prob entries (None when it came without them)."""
        if self.top is None:
            if items:
                seen = self.text
                for item in items:
                    seen += str(item.get("token") or "") if isinstance(item, dict) else ""
                    if self._past_prefix(seen):
                        self.top = list(item.get("top_logprobs") or [])
                        break
            elif self._past_prefix(self.text + piece):
                self.top = []
        self.text += piece
        if self.start is None:
            self.start = grade_line_end(self.text, self.prefix, self.labels)

    def finish(self) -> None:
        """The stream ended: whatever is still undecided is decided on the text there is."""
        if self.top is None:
            self.top = []
        if self.start is None:
            self.start = grade_line_end(self.text, self.prefix, self.labels, final=True)

    @property
    def line(self) -> str:
        """The grade line's text (up to where the reply begins; all of it while that is not known)."""
        return self.text if self.start is None else self.text[:self.start]

    def take(self) -> str:
        """The reply's text that arrived since the last call ('' while its start is not known)."""
        if self.start is None:
            return ""
        begin = max(self._taken, self.start)
        self._taken = len(self.text)
        return self.text[begin:]


@dataclass
class LabelledRead:
    """What :func:`read_labelled` saw: the folded reply body, the label read (None only when the stream gave no
    label at all), whether the caller let it go on, the grade line, and the call's wall time."""

    data: dict[str, Any]
    label: LabelProbs
    go: bool
    line: GradeLine
    latency_s: float


def label_from_line(line: GradeLine, labels: Sequence[str], final: bool, latency: float,
                    tokens_in: int) -> LabelProbs | None:
    """The label distribution from ``line`` once it can be told (None before; ``final``: the stream ended): the
    label token's log-probs, else the grade line's text, one-hot (uniform and unparsed when it names none)."""
    if line.top is None and not final:
        return None
    if line.top:
        probs, mass = renormalise(label_mass_from_top(line.top, labels))
        if mass > 0:
            return LabelProbs(probs, tokens_in, latency, mass, "logprobs", True, 1)
    if line.start is None and not final:
        return None
    found = parse_label(line.line, labels)
    probs = {lab: float(lab == found) if found else 1.0 / len(labels) for lab in labels}
    return LabelProbs(probs, tokens_in, latency, 1.0, "text", found is not None, rough_tokens(line.line))


def read_labelled(http: OpenAITransport, body: dict[str, Any], prefix: str, labels: Sequence[str],
                  on_label: Callable[[LabelProbs], bool], on_text: Callable[[str], None] | None,
                  tokens_in: int = 0) -> LabelledRead:
    """Stream ``body``; hand the label read to ``on_label`` as soon as it can be told, then stop or stream the
    reply on (see the module notes). ``tokens_in`` is the prompt's estimated size, until the server says.
    Failures before the label are retried (each attempt reads afresh); after it they raise."""
    line = GradeLine(prefix, labels)
    t0 = time.perf_counter()
    state: dict[str, Any] = {"label": None, "go": None}

    def decide(final: bool) -> bool:
        if state["go"] is None:
            read = label_from_line(line, labels, final, time.perf_counter() - t0, tokens_in)
            if read is None:
                return True
            state["label"], state["go"] = read, bool(on_label(read))
        if state["go"] and on_text is not None and (piece := line.take()):
            on_text(piece)
        return state["go"]

    def on_delta(piece: str, items: list[dict[str, Any]] | None) -> bool:
        line.feed(piece, items)
        return decide(False)

    data = stream_deltas(http, body, on_delta, committed=lambda: state["go"] is not None, restart=line.reset)
    if state["go"] is None:
        line.finish()
        decide(True)
    return LabelledRead(data, state["label"], bool(state["go"]), line, time.perf_counter() - t0)


__all__ = ["GradeLine", "LabelledRead", "grade_line_end", "label_from_line", "label_mass_from_top", "norm_token",
           "parse_label", "read_labelled", "rough_tokens"]
