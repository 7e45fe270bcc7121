"""One-line text for error messages: whitespace collapsed, length capped."""

from __future__ import annotations


def one_line(text: object, limit: int | None = 300) -> str:
    """``text`` on one line: runs of whitespace become single spaces, and past ``limit`` characters it is cut to
    end in "..." (``None``: never cut). An exception gives its message, or its type name when the message is empty.
    """
    raw = str(text)
    if isinstance(text, BaseException) and not raw.strip():
        raw = type(text).__name__
    flat = " ".join(raw.split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: max(limit - 3, 0)] + "..."
