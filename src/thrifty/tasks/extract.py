"""Answer extraction from free-form model output: tag, "Answer:" line, \\boxed{}, last number; choice letters.

Every function here is pure (text in, string or None out). The cascade tries, in order:

1. the task's own tag convention, ``<answer>…</answer>`` by default (last complete pair wins; an unclosed
   final tag, as left by a truncated generation, counts when it holds a single short line);
2. an answer line — ``Answer: …``, ``Final answer: …``, ``**Answer:** …``, ``The final answer is: …`` or a
   GSM8K-style ``#### …`` line (the last such line wins). Markdown bold, ``$…$``, backticks and a trailing
   period are stripped; ``Answer:`` alone on its line takes the block below it up to a blank line; a number
   followed by a sentence (``Answer: 42. Because …``) keeps only the number;
3. the last ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces handled);
4. "the answer is <number>" phrasing;
5. the last number in the text (optional).

Multiple choice (``extract_choice``) runs the same cascade and reads a letter from the candidate
(``B``, ``(B)``, ``B)``, ``B. text``, ``option B``), or matches the candidate against the option texts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

CHOICE_LETTERS = "ABCDEFGHIJ"

_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|[-+−]?\.\d+"
_NUM_RE = re.compile(rf"(?<![\w.])({_NUM})(?![\w])")
_ANSWER_LINE_RE = re.compile(
    r"^[ \t>*_#-]*(?:\*\*|__)?[ \t]*(?:the[ \t]+)?(?:final[ \t]+|correct[ \t]+)?answer[ \t]*(?:is)?[ \t]*"
    r"(?:\*\*|__)?[ \t]*(?:[:：][ \t]*(?:\*\*|__)?(?P<rest>.*)|(?:\*\*|__|[ \t#*])*)$",
    re.IGNORECASE | re.MULTILINE,
)
_HASH_LINE_RE = re.compile(r"^[ \t]*####[ \t]*(?P<rest>.+)$", re.MULTILINE)
_ANSWER_IS_RE = re.compile(rf"answer\s+is\s*:?\s*(?:\*\*|\$)?\s*({_NUM})(?![\w])", re.IGNORECASE)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_WRAPPERS = ("**", "__", "$$", "$", "`", "\\(", "\\)", "\\[", "\\]")


def strip_decoration(text: str, strip_period: bool = True) -> str:
    """Remove markdown/LaTeX wrappers (bold, $, backticks, code fences, \\boxed{}) and a trailing period."""
    s = text.strip()
    fence = re.fullmatch(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", s, re.DOTALL)
    if fence:
        s = fence.group(1).strip()
    for _ in range(4):
        before = s
        for w in _WRAPPERS:
            if s.startswith(w):
                s = s[len(w) :].strip()
            if s.endswith(w):
                s = s[: -len(w)].strip()
        boxed = last_boxed(s)
        if boxed is not None and s.startswith(("\\boxed", "\\fbox")) and s.endswith("}"):
            s = boxed.strip()
        if strip_period and s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if s == before:
            break
    return s


def normalize_number(text: str) -> str | None:
    """Canonical form of a plain number ("1,234.50" → "1234.5", "+7" → "7", "−3" → "-3"); None if not one."""
    s = text.strip().replace("−", "-")
    if not re.fullmatch(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+", s):
        return None
    s = s.replace(",", "").lstrip("+")
    neg = s.startswith("-")
    s = s.lstrip("-")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    s = s.lstrip("0") or "0"
    if s.startswith("."):
        s = "0" + s
    return ("-" + s) if neg and s != "0" else s


def extract_tagged(text: str, tag: str = "answer") -> str | None:
    """Content of the last ``<tag>…</tag>``; an unclosed trailing ``<tag>`` counts if a single short line."""
    pairs = re.findall(rf"<{re.escape(tag)}>\s*(.*?)\s*</{re.escape(tag)}>", text, re.DOTALL | re.IGNORECASE)
    if pairs:
        return pairs[-1].strip()
    opened = list(re.finditer(rf"<{re.escape(tag)}>", text, re.IGNORECASE))
    if opened:
        rest = text[opened[-1].end() :].strip()
        if rest and "\n" not in rest and len(rest) <= 200:
            return rest
    return None


def extract_answer_line(text: str, multiline: bool = False, strip_period: bool = True) -> str | None:
    """Content of the last "Answer: …" (or "#### …") line, cleaned; see the module docstring.

    ``multiline`` (for grid-shaped answers) also takes the lines below up to the next blank line.
    """
    best: tuple[int, str] | None = None
    for m in _ANSWER_LINE_RE.finditer(text):
        rest = (m.group("rest") or "").strip()
        block = text[m.end() :].lstrip("\n")
        if block.startswith("```"):
            close = block.find("```", 3)
            block = block[: close + 3] if close > 0 else block
        else:
            block = block.split("\n\n", 1)[0]
        if not strip_decoration(rest):
            rest = block.strip()
        elif multiline:
            rest = (rest + "\n" + block).strip()
        best = (m.start(), rest)
    for m in _HASH_LINE_RE.finditer(text):
        if best is None or m.start() > best[0]:
            best = (m.start(), m.group("rest").strip())
    if best is None:
        return None
    value = strip_decoration(best[1], strip_period)
    return (value if multiline else _cut_explanation(value)) or None


def _cut_explanation(value: str) -> str:
    """Keep only the leading number when a sentence of explanation follows it on the same line."""
    m = re.match(rf"^({_NUM})(?:\.\s+(?=[A-Z])|;\s+|\s+\(|\s+[–—]\s+)(.+)$", value)
    if m and re.search(r"[A-Za-z]{3}", m.group(2)):
        return m.group(1)
    return value


def last_boxed(text: str) -> str | None:
    """Raw content of the last \\boxed{…} (or \\fbox{…}), honouring nested braces; None if absent or unbalanced."""
    found = None
    for m in _BOX_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            found = text[m.end() : i - 1]
    return found


def extract_boxed(text: str, strip_period: bool = True) -> str | None:
    """Cleaned content of the last \\boxed{…}; None when there is none."""
    inner = last_boxed(text)
    if inner is None:
        return None
    return strip_decoration(inner, strip_period) or None


def extract_last_number(text: str) -> str | None:
    """The last number in ``text`` as written (thousands commas kept, unicode minus made ASCII)."""
    nums = _NUM_RE.findall(text)
    return nums[-1].replace("−", "-") if nums else None


def extract_answer(
    text: str,
    tag: str | None = "answer",
    numeric_fallback: bool = True,
    multiline: bool = False,
    strip_period: bool = True,
) -> str | None:
    """The answer by the full cascade (tag → answer line → boxed → "answer is N" → last number).

    ``multiline`` lets an answer line continue onto the following lines (grids); ``strip_period=False``
    keeps a final period that belongs to the answer (sentences).
    """
    if not text:
        return None
    if tag:
        tagged = extract_tagged(text, tag)
        if tagged is not None:
            inner = extract_boxed(tagged, strip_period) if last_boxed(tagged) is not None else None
            cleaned = strip_decoration(tagged, strip_period)
            if inner or cleaned:
                return inner or cleaned
    found = extract_answer_line(text, multiline, strip_period)
    if found is None:
        found = extract_boxed(text, strip_period)
    if found is not None:
        return found
    phrase = _ANSWER_IS_RE.findall(text)
    if phrase:
        return phrase[-1].replace("−", "-")
    return extract_last_number(text) if numeric_fallback else None


def _letter_of(candidate: str, letters: str) -> str | None:
    s = strip_decoration(candidate)
    s = re.sub(r"^(?:option|choice|answer)\s*:?\s*", "", s, flags=re.IGNORECASE)
    s = strip_decoration(s)
    alone = re.fullmatch(r"[(\[]?([a-jA-J])[)\]]?", s)
    if alone and alone.group(1).upper() in letters:
        return alone.group(1).upper()
    m = re.match(rf"^[(\[]?([{letters}])(?:[)\]]|(?=[\s.:,]|$))", s)
    return m.group(1) if m else None


def _norm_option(s: str) -> str:
    return " ".join(strip_decoration(s).lower().split())


def extract_choice(
    text: str,
    letters: str = CHOICE_LETTERS[:4],
    options: Sequence[str] | Mapping[str, str] | None = None,
    tag: str | None = "answer",
) -> str | None:
    """The chosen letter (upper case) from ``letters``; ``options`` (texts, in letter order) allow text answers."""
    if not text:
        return None
    if options is not None and not isinstance(options, Mapping):
        options = dict(zip(letters, options, strict=False))
    candidates: list[str] = []
    if tag:
        tagged = extract_tagged(text, tag)
        if tagged is not None:
            candidates.append(tagged)
    for rule in (extract_answer_line, extract_boxed):
        found = rule(text)
        if found is not None:
            candidates.append(found)
    for cand in candidates:
        letter = _letter_of(cand, letters)
        if letter is not None:
            return letter
        if options:
            norm = _norm_option(cand)
            hits = [k for k, v in options.items() if _norm_option(str(v)) == norm and k in letters]
            if len(hits) == 1:
                return hits[0]
    phrase = re.findall(
        rf"(?:answer|correct\s+(?:option|choice))\s+is\s*:?\s*(?:\*\*|\$)?\s*(?:option\s+)?[(\[]?([{letters}])(?![\w])",
        text,
        re.IGNORECASE,
    )
    phrase = [p for p in phrase if p.isupper()]
    if phrase:
        return phrase[-1]
    if candidates:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return _letter_of(lines[-1], letters) if lines else None
