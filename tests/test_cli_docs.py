"""docs/cli.md is generated from the parser: regenerating it gives the committed file, and it names every verb."""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from pathlib import Path

from thrifty.cli import docgen

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
REGENERATE = ("docs/cli.md is out of date with the CLI (a flag or help text changed?). Regenerate it with "
              "`python -m thrifty.cli.docgen` (or `make docs`) and commit the result; hand-written notes live in "
              "src/thrifty/cli/docgen.py.")


def test_committed_reference_is_current():
    committed, generated = DOC.read_text(encoding="utf-8"), docgen.render()
    diff = "".join(list(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True),
                                             "docs/cli.md (committed)", "docs/cli.md (generated)"))[:60])
    assert not diff, f"{REGENERATE}\n{diff}"


def _has_heading(headings: list[str], path: tuple[str, ...]) -> bool:
    """A room is a section ``## room — its help``; a verb at any depth is a subsection ``### room verb ...``."""
    if len(path) == 1:
        return any(h == f"## {path[0]}" or h.startswith(f"## {path[0]} — ") for h in headings)
    return f"### {' '.join(path)}" in headings


def test_every_room_and_verb_has_its_heading():
    headings = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    paths = list(docgen.commands())
    assert any(len(p) == 3 for p in paths), "sub-verbs (e.g. `route probe fit`) are walked too"
    missing = [" ".join(p) for p in paths if not _has_heading(headings, p)]
    assert not missing, f"not in docs/cli.md: {missing}. {REGENERATE}"


def test_output_does_not_depend_on_terminal_or_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = docgen.render()
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.chdir(tmp_path)
    assert docgen.render() == narrow


def test_machine_paths_are_written_symbolically(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser(prog="thrifty")
    rooms = p.add_subparsers(dest="room")
    verb = rooms.add_parser("x", help="room x").add_subparsers(dest="verb").add_parser("y", help="verb y")
    verb.add_argument("--cache", default=str(Path.home() / ".cache" / "t"), help="cache folder")
    verb.add_argument("--out", default=str(tmp_path / "out"), help="default %(default)s | piped")
    text = docgen.render(p)
    assert "`~/.cache/t`" in text and "`./out`" in text and "default ./out \\| piped" in text
    assert str(tmp_path) not in text and str(Path.home()) not in text


def test_check_exits_1_with_one_line_when_stale(tmp_path, capsys):
    doc = tmp_path / "cli.md"
    assert docgen.main(["--check", "--out", str(doc)]) == 1  # missing
    assert docgen.main(["--out", str(doc)]) == 0
    assert docgen.main(["--check", "--out", str(doc)]) == 0
    doc.write_text(doc.read_text(encoding="utf-8") + "drift\n", encoding="utf-8")
    capsys.readouterr()
    assert docgen.main(["--check", "--out", str(doc)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "python -m thrifty.cli.docgen" in err


def test_generating_imports_nothing_heavy():
    code = ("import sys\nfrom thrifty.cli import docgen\ndocgen.render()\n"
            "print([m for m in ('torch', 'transformers', 'llama_cpp', 'peft', 'trl') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
