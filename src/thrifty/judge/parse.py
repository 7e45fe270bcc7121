"""Strict parsing of a judge's reply: one JSON object of a documented schema, or a GradeParseError saying why.

The schema (version :data:`SCHEMA_VERSION`)::

    {"nonce": "<the fence code of the request>",
     "grades": [{"answer": 1, "rationale": "<one or two sentences>", "label": "great" | "ok" | "bad"}, ...]}

Accepted: the object alone, or the object alone inside one ```json (or bare ```) fence, surrounded by nothing but
whitespace. With ``allow_prose=True`` text around the object is tolerated as long as the reply holds exactly one
top-level JSON object. Everything else fails: no object or several, invalid JSON, duplicate keys, unknown or
missing keys, a wrong or missing nonce (when one is expected), an answer id that is not an integer in 1..n, a
missing or repeated answer id, or a label outside great/ok/bad (matched after trimming and lower-casing). There
is no default label: the caller retries once and then records ``unparsed``. All functions here are pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from thrifty.judge.base import LABELS

SCHEMA_VERSION = 1
"""Version of the reply schema; part of every rubric hash, so changing the format invalidates cached grades."""

ITEM_KEYS = frozenset({"answer", "rationale", "label"})

_FENCED = re.compile(r"\A```[ \t]*(?:json|JSON)?[ \t]*\r?\n(?P<body>.*?)\r?\n?[ \t]*```\Z", re.DOTALL)


class GradeParseError(ValueError):
    """A judge reply that does not follow the schema; ``reason`` is a short sentence fit for a retry message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def schema_text(n: int, nonce: str | None) -> str:
    """The reply format as told to the judge, for ``n`` answers (and the nonce to echo, when set)."""
    items = ", ".join(f'{{"answer": {i}, "rationale": "...", "label": "..."}}' for i in range(1, min(n, 2) + 1))
    if n > 2:
        items += ", ..."
    head = f'"nonce": "{nonce}", ' if nonce else ""
    ids = "1" if n == 1 else f"1 to {n}"
    return (
        f'{{{head}"grades": [{items}]}}\n'
        f"Give exactly one entry for each answer number {ids}; each entry has exactly the keys \"answer\" "
        f"(the answer number), \"rationale\" (one or two sentences) and \"label\" (one of "
        f"{', '.join(json.dumps(x) for x in LABELS)})."
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise GradeParseError(f'the key "{key}" appears twice in one object')
        seen[key] = value
    return seen


def _loads(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise GradeParseError("there is extra text after the JSON object; reply with one object only") from None
        raise GradeParseError(f"the reply is not valid JSON ({exc.msg} at character {exc.pos})") from None


def extract_object(text: str, allow_prose: bool = False) -> Any:
    """The single JSON value of a reply (see the module rules), or GradeParseError."""
    if not isinstance(text, str) or not text.strip():
        raise GradeParseError("the reply is empty")
    s = text.strip()
    if not allow_prose:
        if s.startswith("```"):
            m = _FENCED.match(s)
            if m is None or "```" in m.group("body"):
                raise GradeParseError("the reply must be one JSON object, optionally in a single ```json block")
            s = m.group("body").strip()
        if not s.startswith("{"):
            raise GradeParseError("the reply must start with the JSON object, with no text before it")
        return _loads(s)
    objects = _top_level_objects(s)
    if len(objects) != 1:
        raise GradeParseError(f"the reply must hold exactly one JSON object, found {len(objects)}")
    return objects[0]


def _top_level_objects(s: str) -> list[Any]:
    """Every JSON object that decodes at a top-level '{' of ``s`` (nested ones are skipped)."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
    found, i = [], s.find("{")
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(s, i)
        except json.JSONDecodeError:
            i = s.find("{", i + 1)
            continue
        found.append(obj)
        i = s.find("{", end)
    return found


def _answer_id(item: dict[str, Any], n: int) -> int:
    aid = item["answer"]
    if isinstance(aid, bool) or not isinstance(aid, int):
        raise GradeParseError(f'"answer" must be an integer answer number, got {json.dumps(aid)}')
    if not 1 <= aid <= n:
        raise GradeParseError(f"answer number {aid} is out of range; the answers are numbered 1 to {n}")
    return aid


def _label(item: dict[str, Any], aid: int) -> str:
    label = item["label"]
    norm = label.strip().lower() if isinstance(label, str) else None
    if norm not in LABELS:
        raise GradeParseError(
            f"answer {aid} has label {json.dumps(label)}; the label must be one of {', '.join(LABELS)}"
        )
    return norm


def validate_grades(obj: Any, n: int, nonce: str | None = None) -> dict[int, tuple[str, str]]:
    """Check a decoded reply against the schema for ``n`` answers; returns {answer number: (label, rationale)}."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not isinstance(obj, dict):
        raise GradeParseError("the reply must be a JSON object with a \"grades\" list")
    allowed = {"grades", "nonce"} if nonce else {"grades"}
    extra = sorted(set(obj) - allowed)
    if extra:
        raise GradeParseError(f"unexpected key(s) {', '.join(map(json.dumps, extra))} in the reply object")
    if nonce and obj.get("nonce") != nonce:
        got = json.dumps(obj["nonce"]) if "nonce" in obj else "nothing"
        raise GradeParseError(f'"nonce" must be "{nonce}" (the fence code of this request), got {got}')
    grades = obj.get("grades")
    if not isinstance(grades, list) or not grades:
        raise GradeParseError('"grades" must be a non-empty list')
    out: dict[int, tuple[str, str]] = {}
    for item in grades:
        if not isinstance(item, dict):
            raise GradeParseError('every entry of "grades" must be an object')
        keys = set(item)
        if keys != ITEM_KEYS:
            missing, unknown = sorted(ITEM_KEYS - keys), sorted(keys - ITEM_KEYS)
            parts = ([f"missing {', '.join(map(json.dumps, missing))}"] if missing else []) + (
                [f"unexpected {', '.join(map(json.dumps, unknown))}"] if unknown else []
            )
            raise GradeParseError(f"a grade entry has the wrong keys ({'; '.join(parts)})")
        aid = _answer_id(item, n)
        if aid in out:
            raise GradeParseError(f"answer {aid} is graded more than once")
        rationale = item["rationale"]
        if not isinstance(rationale, str):
            raise GradeParseError(f'the "rationale" of answer {aid} must be a string')
        out[aid] = (_label(item, aid), rationale.strip())
    missing_ids = [i for i in range(1, n + 1) if i not in out]
    if missing_ids:
        raise GradeParseError(f"no grade for answer(s) {', '.join(map(str, missing_ids))}")
    return out


def parse_grades(
    text: str, n: int, nonce: str | None = None, allow_prose: bool = False
) -> dict[int, tuple[str, str]]:
    """Parse a judge reply grading ``n`` answers: {answer number: (label, rationale)} or GradeParseError."""
    return validate_grades(extract_object(text, allow_prose), n, nonce)
