"""Progress: plain periodic lines off a terminal, silence when disabled, counts always kept."""

from __future__ import annotations

import io

from thrifty.core.progress import Progress


def test_plain_lines_when_not_a_tty():
    buf = io.StringIO()
    with Progress(3, "collect m", stream=buf, every_s=0.0) as bar:
        for _ in range(3):
            bar.advance(note="5 tok")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("collect m: 1/3") and lines[0].endswith("— 5 tok")
    assert lines[-1].startswith("collect m: 3/3")
    assert bar.done == 3


def test_disabled_prints_nothing_but_counts(monkeypatch):
    monkeypatch.setenv("THRIFTY_PROGRESS", "0")
    buf = io.StringIO()
    with Progress(2, "x", stream=buf, every_s=0.0) as bar:
        bar.advance(2)
    assert buf.getvalue() == "" and bar.done == 2


def test_rate_limited_lines():
    buf = io.StringIO()
    with Progress(100, "y", stream=buf, every_s=3600.0) as bar:
        for _ in range(100):
            bar.advance()
    assert len(buf.getvalue().splitlines()) == 1  # only the final line
