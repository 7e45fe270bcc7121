"""Scripted judges for the judge tests: read only what is inside the announced fences, grade by a fixed rule.

The reader here is written independently of ``thrifty.judge.prompts``: it takes the nonce from the first line of
the user message and collects the lines between exact ``⟦BEGIN ANSWER i NONCE⟧`` / ``⟦END ANSWER i NONCE⟧`` lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from thrifty.llm.fake import FakeChatModel

OPEN, CLOSE = "\u27e6", "\u27e7"


@dataclass
class Fenced:
    nonce: str
    query: str | None
    reference: str | None
    answers: list[str]
    fence_lines: int  # lines that are exactly a fence line with the nonce


def read_fences(prompt: str) -> Fenced:
    """Parse a judge user message; raises AssertionError when the structure is not what the judge announced."""
    lines = prompt.split("\n")
    m = re.fullmatch(r"Fence code: ([0-9a-f]{16})", lines[0])
    assert m, f"no fence code on the first line: {lines[0]!r}"
    nonce = m.group(1)
    sections: dict[str, list[str]] = {}
    current: str | None = None
    fence_lines = 0
    for line in lines[1:]:
        opened = re.fullmatch(f"{OPEN}BEGIN (QUERY|REFERENCE|ANSWER \\d+) {nonce}{CLOSE}", line)
        closed = re.fullmatch(f"{OPEN}END (QUERY|REFERENCE|ANSWER \\d+) {nonce}{CLOSE}", line)
        if opened:
            assert current is None, f"fence {opened.group(1)} opened inside {current}"
            current = opened.group(1)
            assert current not in sections, f"fence {current} opened twice"
            sections[current] = []
            fence_lines += 1
        elif closed:
            assert closed.group(1) == current, f"fence {closed.group(1)} closed while {current} was open"
            current = None
            fence_lines += 1
        elif current is not None:
            sections[current].append(line)
        else:
            assert nonce not in line, f"nonce outside a fence line: {line!r}"
    assert current is None, f"fence {current} never closed"
    answers = []
    while f"ANSWER {len(answers) + 1}" in sections:
        answers.append("\n".join(sections[f"ANSWER {len(answers) + 1}"]))
    assert len(answers) + ("QUERY" in sections) + ("REFERENCE" in sections) == len(sections), sorted(sections)
    ref = sections.get("REFERENCE")
    return Fenced(nonce, "\n".join(sections.get("QUERY", [])) or None,
                  None if ref is None else "\n".join(ref), answers, fence_lines)


def reply(nonce: str, labels: list[str]) -> str:
    grades = [{"answer": i, "rationale": f"scripted {lab}", "label": lab} for i, lab in enumerate(labels, 1)]
    return json.dumps({"nonce": nonce, "grades": grades})


def scripted_judge(rule: Callable[[str], str], **kw) -> FakeChatModel:
    """A FakeChatModel grading each fenced answer by ``rule(answer_text) -> label``."""

    def respond(prompt: str) -> str:
        f = read_fences(prompt)
        return reply(f.nonce, [rule(a) for a in f.answers])

    return FakeChatModel(default="", rules=[(lambda text: text.startswith("Fence code: "), respond)], **kw)


def contains_number(number: str) -> Callable[[str], str]:
    """Rule: great when ``number`` appears as a whole number in the answer, else bad."""
    pattern = re.compile(rf"(?<![\d.]){re.escape(number)}(?![\d])")
    return lambda text: "great" if pattern.search(text) else "bad"


def keyword_rule(text: str) -> str:
    """Rule: the label named by a GREAT/OK/BAD marker word in the answer."""
    for word, label in (("GREAT", "great"), ("OK", "ok"), ("BAD", "bad")):
        if re.search(rf"\b{word}\b", text):
            return label
    return "bad"
