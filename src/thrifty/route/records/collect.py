"""Collection: every model answers every example of a task mix; generations and verifier scores go to the store.

Resumable: each generation and score is committed as it finishes, keyed by what produced it, so a re-run (or a run
resumed after a kill) only computes what is missing — and does not even load a model whose answers are all stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError
from thrifty.core.progress import Progress
from thrifty.core.store import RunStore, record_key
from thrifty.core.types import to_jsonable
from thrifty.llm.base import GenParams, RetryPolicy, chat_batch
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.tasks.base import Example, Task

COLLECT_VERSION = 1  # bump when the prompt layout or record format changes


@dataclass
class CollectConfig(ReadsStore):
    """What to collect: models × task mix × split, and how to generate."""

    models: list[str] = field(default_factory=lambda: ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
    tasks: list[str] = record_field("tasks", ["gym:basic_arithmetic", "gym:chain_sum"])
    split: str = record_field("split", "test")
    n_per_task: int = record_field("n_per_task", 8)
    seed: int = record_field("seed", 0)
    max_tokens: int = 384
    temperature: float = 0.0
    concurrency: int = 1
    n_threads: int = record_field("n_threads", 1)
    # llama.cpp: reuse the KV cache of a shared prompt prefix between calls. Off by default here: CPU kernels are
    # not batch-invariant, so with reuse an answer can depend on the previous call; off, every stored generation
    # is a pure function of (model, params, messages), whatever order a resumed run visits them in.
    prefix_cache: bool = False
    timeout_s: float = 600.0
    retries: int = 1
    run_dir: str = record_field("run_dir", "runs/collect")
    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    # Grading: a judge name from thrifty.judge.JUDGES ("" = none; "verifier" grades with the task's own scorer,
    # "rubric"/"rubric_isolated"/"reference"/"mischievous" need judge_model, a model spec).
    judge: str = record_field("judge", "verifier")
    judge_model: str = ""

    def __post_init__(self) -> None:
        check_records(self)
        if not self.models:
            raise ValueError("models must name at least one model")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        from thrifty.judge import JUDGES

        if self.judge and self.judge not in JUDGES:
            raise ValueError(f"unknown judge {self.judge!r}; choose one of {', '.join(JUDGES.names())} or ''")
        if self.judge and self.judge != "verifier" and not self.judge_model:
            raise ValueError(f"judge {self.judge!r} needs judge_model (a model spec)")

    def gen_params(self) -> GenParams:
        return GenParams(max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed)


@dataclass
class CollectResult:
    """Per (model, task): n, mean score, accuracy; plus how many records were new vs reused."""

    table: dict[str, dict[str, dict[str, float]]]
    new_generations: int
    reused_generations: int
    failures: int
    run_dir: Path


def generation_fields(model: str, params: GenParams, example: Example) -> dict[str, Any]:
    """What addresses a generation record: the model, the params, the exact messages and the version."""
    return {"model": model, "params": to_jsonable(params), "messages": example.messages(), "v": COLLECT_VERSION}


def collect(
    cfg: CollectConfig,
    load_model: Callable[[str], Any] | None = None,
    load_task: Callable[[str], Task] | None = None,
) -> CollectResult:
    """Run the collection described by ``cfg``; ``load_model``/``load_task`` are injectable for tests."""
    if load_model is None:
        from thrifty.llm.factory import LazyChatModel

        def load_model(spec: str) -> Any:
            return LazyChatModel(spec, llamacpp={"n_threads": cfg.n_threads, "prefix_cache": cfg.prefix_cache})

    if load_task is None:
        from thrifty.tasks.loader import load_task
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    tasks = {spec: load_task(spec) for spec in cfg.tasks}
    examples = {spec: task.examples(cfg.split, cfg.n_per_task, cfg.seed) for spec, task in tasks.items()}
    params = cfg.gen_params()
    new = reused = failures = 0
    with RunStore(cfg.store_path) as store:
        for model_spec in cfg.models:
            with _model_lock(cfg.store_path, model_spec):  # a concurrent collect of this model waits, then reuses
                todo: list[tuple[str, Example, str]] = []
                for spec, exs in examples.items():
                    for ex in exs:
                        key = record_key("generation", generation_fields(model_spec, params, ex))
                        if store.has("generation", key):
                            reused += 1
                            _alias(store, key, {"model": model_spec, "task": spec, "example": ex.id,
                                                "split": cfg.split})
                        else:
                            todo.append((spec, ex, key))
                if todo:
                    n_new, n_fail = _generate(store, model_spec, load_model(model_spec), todo, params, cfg)
                    new += n_new
                    failures += n_fail
        judge_model = load_model(cfg.judge_model) if cfg.judge_model else None
        table = _score_and_grade(store, cfg, tasks, examples, params, judge_model)
    result = CollectResult(table, new, reused, failures, run_dir)
    _write_summary(result, cfg)
    return result


@contextmanager
def _model_lock(store_path: Path, model_spec: str) -> Iterator[None]:
    """Hold an exclusive lock for collecting ``model_spec`` into this store, so two collect runs on the same work
    never both call the backend for an item: the second waits (saying so once), then finds the first one's
    answers stored. Advisory (``flock``), for processes and threads on one machine; shards collected on several
    machines go into separate stores (``thrifty store merge``)."""
    import fcntl
    import sys

    from thrifty.core.types import content_hash

    path = store_path.with_name(f".{store_path.name}.{content_hash(model_spec)[:12]}.lock")
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"collect {model_spec}: another collect of this model on {store_path} is running; waiting for it",
                  file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alias(store: RunStore, key: str, tags: dict[str, Any]) -> None:
    """A generation is addressed by its inputs, so the same prompt in another task or split reuses it; its tags
    name only the first use. Readers look generations up by tags, so every further use gets an alias record:
    the same value under its own tags (keyed by the original key and those tags; written once)."""
    stored = store.tags("generation", key) or {}
    if all(stored.get(k) == v for k, v in tags.items()):
        return
    alias = record_key("generation", {"alias_of": key, **tags})
    if not store.has("generation", alias):
        store.put("generation", alias, store.get("generation", key), tags)


def _generate(store: RunStore, model_spec: str, model: Any, todo, params: GenParams, cfg: CollectConfig):
    retry = RetryPolicy(timeout_s=cfg.timeout_s, retries=cfg.retries)
    stats = {"new": 0, "fail": 0}
    with Progress(len(todo), f"collect {model_spec}") as bar:

        def on_done(i: int, res: Any) -> None:
            spec, ex, key = todo[i]
            if isinstance(res, BaseException):
                stats["fail"] += 1
                bar.advance(note=f"failed: {type(res).__name__}")
                return
            tags = {"model": model_spec, "task": spec, "example": ex.id, "split": cfg.split}
            if not store.put("generation", key, res, tags):  # the same prompt answered for another task or split
                _alias(store, key, tags)
            stats["new"] += 1
            bar.advance(note=f"{res.tokens_out} tok in {res.latency_s:.1f}s")

        chat_batch(model, [(ex.messages(), params) for _, ex, _ in todo], cfg.concurrency, retry, on_done)
    return stats["new"], stats["fail"]


def _score_and_grade(store: RunStore, cfg: CollectConfig, tasks, examples, params: GenParams, judge_model):
    """Score every stored generation with its task's verifier and grade each example's answers with the judge
    (all models' answers to one example together, so a joint judge sees them side by side)."""
    from thrifty.judge import CachedJudge, make_judge

    cells: dict[str, dict[str, dict[str, Any]]] = {
        m: {spec: {"values": [], "correct": [], "grades": Counter()} for spec in cfg.tasks} for m in cfg.models
    }
    total = sum(len(exs) for exs in examples.values())
    with Progress(total, "score and grade" if cfg.judge else "score") as bar:
        for spec, exs in examples.items():
            task = tasks[spec]
            scored = _ScoredTask(task)  # the verifier judge reuses the scores computed (or stored) just above
            judge = make_judge(cfg.judge, model=judge_model, task=scored) if cfg.judge else None
            for ex in exs:
                texts: dict[str, str] = {}
                for model_spec in cfg.models:
                    gkey = record_key("generation", generation_fields(model_spec, params, ex))
                    gen = store.get("generation", gkey)
                    if gen is None:
                        continue  # failed this run; retried next time
                    texts[model_spec] = gen["text"]
                    score, _ = store.get_or_compute(
                        "score",
                        {"generation": gkey, "task": spec, "example": ex.id, "v": COLLECT_VERSION},
                        lambda ex=ex, gen=gen, task=task: task.score(ex, gen["text"]),
                        {"model": model_spec, "task": spec, "example": ex.id, "split": cfg.split},
                    )
                    scored.remember(ex, gen["text"], score)
                    cells[model_spec][spec]["values"].append(float(score["value"]))
                    cells[model_spec][spec]["correct"].append(float(score["correct"]))
                if judge is not None and texts:
                    cached = CachedJudge(judge, store, {"task": spec, "split": cfg.split, "example": ex.id})
                    for model_spec, grade in cached.grade(ex, texts).items():
                        cells[model_spec][spec]["grades"][grade.label] += 1
                bar.advance()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for model_spec in cfg.models:
        pooled = {"values": [], "correct": [], "grades": Counter()}
        table[model_spec] = {}
        for spec in cfg.tasks:
            cell = cells[model_spec][spec]
            for k in ("values", "correct"):
                pooled[k] += cell[k]
            pooled["grades"].update(cell["grades"])
            table[model_spec][spec] = _row(cell, bool(cfg.judge))
        table[model_spec]["ALL"] = _row(pooled, bool(cfg.judge))
    return table


class _ScoredTask:
    """A task whose ``score`` answers from scores already computed for (example, text) — so a verifier judge does
    not run a task's checker a second time (HumanEval executes code) — and asks the task otherwise."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.name = getattr(task, "name", type(task).__name__)
        self._memo: dict[tuple[str, str], Any] = {}

    def remember(self, example: Example, text: str, score: dict[str, Any]) -> None:
        from thrifty.tasks.base import Score

        self._memo[(example.id, text)] = Score(float(score["value"]), bool(score["correct"]), score.get("parsed"),
                                               str(score.get("reason", "")))

    def score(self, example: Example, text: str) -> Any:
        hit = self._memo.get((example.id, text))
        return hit if hit is not None else self.task.score(example, text)

    def __getattr__(self, name: str) -> Any:  # everything else (examples, metadata) is the task's own
        return getattr(self.task, name)


def _row(cell: dict[str, Any], graded: bool) -> dict[str, float]:
    from thrifty.judge import GRADE_LABELS, LABEL_VALUE

    values, correct, grades = cell["values"], cell["correct"], cell["grades"]
    n = len(values)
    row = {"n": n, "score": sum(values) / n if n else float("nan"),
           "accuracy": sum(correct) / n if n else float("nan")}
    if graded:
        n_graded = sum(grades.values())
        for label in GRADE_LABELS:
            row[label] = grades[label] / n_graded if n_graded else float("nan")
        parsed = [LABEL_VALUE[lab] for lab, c in grades.items() for _ in range(c) if lab in LABEL_VALUE]
        row["grade_value"] = sum(parsed) / len(parsed) if parsed else float("nan")
    return row


def _write_summary(result: CollectResult, cfg: CollectConfig) -> None:
    import json

    out = {"config": to_jsonable(cfg), "table": result.table, "new_generations": result.new_generations,
           "reused_generations": result.reused_generations, "failures": result.failures}
    (result.run_dir / "summary.json").write_text(json.dumps(out, indent=2, sort_keys=True), encoding="utf-8")


def format_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """A plain-text table: one row per (model, task) with accuracy, mean score and, when graded, the grade mix."""
    if not table:
        raise ConfigError("nothing collected")
    graded = any("grade_value" in r for rows in table.values() for r in rows.values())
    width = max(len(m) for m in table)
    tw = max(len(t) for rows in table.values() for t in rows)
    head = f"{'model':<{width}}  {'task':<{tw}}  {'n':>4}  {'accuracy':>8}  {'score':>6}"
    if graded:
        head += f"  {'great':>6}  {'ok':>6}  {'bad':>6}  {'unparsed':>8}  {'grade':>6}"
    lines = [head]
    for model, rows in table.items():
        for task, r in rows.items():
            line = f"{model:<{width}}  {task:<{tw}}  {int(r['n']):>4}  {r['accuracy']:>8.3f}  {r['score']:>6.3f}"
            if graded:
                line += (f"  {r['great']:>6.3f}  {r['ok']:>6.3f}  {r['bad']:>6.3f}  {r['unparsed']:>8.3f}"
                         f"  {r['grade_value']:>6.3f}")
            lines.append(line)
    return "\n".join(lines)
