"""Task specs → Task objects: ``load_task("gym:chain_sum?min_terms=2")``, ``load_mix([...])``.

A spec is ``KIND[:ARG][?key=value&key=value]``. Option values are parsed as int, float, bool (true/false) or
left as text. Kinds are held in a :class:`~thrifty.core.registry.Registry` so others can add their own with
``TASK_KINDS.add(name, builder)`` where ``builder(arg: str, options: dict) -> Task``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.registry import Registry
from thrifty.tasks.base import Task, check_split

Builder = Callable[[str, dict[str, Any]], Task]
TASK_KINDS: Registry[Builder] = Registry("task kind")

FORMS: dict[str, str] = {
    "gym": "gym:NAME[?key=value&...]  reasoning-gym generator NAME with config overrides",
    "humaneval": "humaneval[?timeout_s=10&mem_mb=1024&sandbox=auto]  HumanEval, code run in an OS sandbox "
    "(sandbox=auto|bwrap|unshare|none; none also needs THRIFTY_ALLOW_UNSANDBOXED=1)",
    "gsm8k": "gsm8k:PATH[?split=test]  GSM8K JSONL (question, answer ending '#### N')",
    "math": "math:PATH[?split=test]  MATH JSONL (problem, solution with \\boxed{}, level, type)",
    "mmlu": "mmlu:PATH[?split=test]  MMLU CSV without header (question,A,B,C,D,answer) or a folder of them",
    "mmlu_pro": "mmlu_pro:PATH[?split=test]  MMLU-Pro JSONL/Parquet (question, options, answer, category)",
    "medqa": "medqa:PATH[?split=test]  MedQA-style JSONL (question, options {letter: text}, answer_idx)",
    "qa": "qa:PATH[?question=COL&answer=COL&split=test]  generic question/answer JSONL/CSV/Parquet",
    "ledger": "ledger:STORE[?router=NAME]  conversations a routing server recorded (no reference: use an LLM judge)",
}


def forms_help() -> str:
    """One line listing the valid spec forms (used in error messages)."""
    return "; ".join(f.split("  ")[0] for f in FORMS.values())


def parse_value(text: str) -> Any:
    """ "3" → 3, "0.5" → 0.5, "true"/"false" → bool, anything else stays text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Split ``KIND[:ARG][?k=v&...]`` into (kind, arg, options); malformed options raise ConfigError."""
    head, _, query = spec.strip().partition("?")
    kind, _, arg = head.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"task spec {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = parse_value(value.strip())
    return kind.strip().lower(), arg.strip(), options


def _allowed(kind: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "(none)"
        raise ConfigError(
            f"{kind}: unknown option(s) {', '.join(unknown)}; valid: {valid}; forms: {forms_help()}"
        )


def _need_arg(kind: str, arg: str, what: str) -> None:
    if not arg:
        raise ConfigError(f"{kind}: missing {what}; use {FORMS[kind].split('  ')[0]}")


def _gym(arg: str, options: dict[str, Any]) -> Task:
    from thrifty.tasks.gym import GymTask

    _need_arg("gym", arg, "generator name")
    return GymTask(arg, options)


def _humaneval(arg: str, options: dict[str, Any]) -> Task:
    from thrifty.tasks.humaneval import HumanEvalTask

    if arg:
        raise ConfigError(
            f"humaneval takes no argument, got {arg!r}; use {FORMS['humaneval'].split('  ')[0]}"
        )
    _allowed("humaneval", options, ("timeout_s", "mem_mb", "sandbox"))
    if "sandbox" in options:
        options["sandbox"] = str(options["sandbox"])
    for key, value in options.items():
        if key != "sandbox" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"humaneval: option {key} must be a number, got {value!r}")
    return HumanEvalTask(**options)


def _file_kind(kind: str, loader_name: str, extra: tuple[str, ...] = ()) -> Builder:
    def build(arg: str, options: dict[str, Any]) -> Task:
        from thrifty.tasks import files

        _need_arg(kind, arg, "PATH")
        _allowed(kind, options, ("split", *extra))
        if "split" in options:
            check_split(options["split"])
        kwargs = {k: str(v) for k, v in options.items() if k != "split"}
        task = getattr(files, loader_name)(arg, only=options.get("split"), **kwargs)
        task.name = f"{kind}:{arg}" + (
            "?" + "&".join(f"{k}={v}" for k, v in sorted(options.items())) if options else ""
        )
        return task

    return build


def _ledger(arg: str, options: dict[str, Any]) -> Task:
    from thrifty.tasks.ledger import LedgerTask

    _need_arg("ledger", arg, "STORE")
    _allowed("ledger", options, ("router",))
    return LedgerTask(arg, str(options["router"]) if "router" in options else None)


TASK_KINDS.add("gym", _gym)
TASK_KINDS.add("humaneval", _humaneval)
TASK_KINDS.add("gsm8k", _file_kind("gsm8k", "load_gsm8k"))
TASK_KINDS.add("math", _file_kind("math", "load_math"))
TASK_KINDS.add("mmlu", _file_kind("mmlu", "load_mmlu"))
TASK_KINDS.add("mmlu_pro", _file_kind("mmlu_pro", "load_mmlu_pro"))
TASK_KINDS.add("medqa", _file_kind("medqa", "load_medqa"))
TASK_KINDS.add("qa", _file_kind("qa", "load_qa", ("question", "answer")))
TASK_KINDS.add("ledger", _ledger)


def load_task(spec: str) -> Task:
    """The Task a spec names; an unknown kind or bad option raises a one-line ConfigError listing the forms."""
    if not spec or not spec.strip():
        raise ConfigError(f"empty task spec; valid forms: {forms_help()}")
    kind, arg, options = parse_spec(spec)
    if kind not in TASK_KINDS:
        raise ConfigError(f"unknown task kind {kind!r} in {spec!r}; valid forms: {forms_help()}")
    return TASK_KINDS.get(kind)(arg, options)


def load_mix(specs: list[str]) -> list[Task]:
    """Tasks for several specs; the same task twice is an error (it would double its weight silently)."""
    tasks = [load_task(s) for s in specs]
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"task(s) listed twice: {', '.join(dupes)}")
    return tasks
