"""`thrifty route eval`: replay a router and its baselines over stored test records (no new answers needed).

For every judged test example with both models' stored answers, the router's predictor predicts the small
model's grade (stored predictions reused; a re-run loads no model). Each method orders the queries by a
deferral signal, and sweeping the threshold gives its quality vs %-large-calls and quality vs cost curves:

- **router**: 1 − calibrated p_good (unreadable predictions first); it pays the prediction's prompt tokens (or
  latency) on every query. Its fitted operating point (the router file's threshold) is reported too.
- **random** (expected line), **oracle** (defers by the true quality gain), **always small / always large**.
- **P(True)** (AutoMix-style self-verification after answering): the small model always answers, is asked
  whether its answer is correct, and the query is deferred when P(True) is low; it pays answer + verification.
- **Chow** (token log-probability): defers the answers whose mean token log-prob is lowest (Chow-average); the
  log-probs come with generation in deployment, so only the answer is paid (here the stored answer is re-scored).
- **embed kNN** (RouteLLM-style over real sentence embeddings, all-MiniLM-L6-v2): cosine kNN with k chosen by
  cross-validation on the same train-split grades; it pays the encoder on every query.
- **prompt router** (RouteLLM-style, prompt only): p(acceptable) from hashed prompt features, trained on the
  small model's judged train-split answers (:mod:`thrifty.route.replay.baselines`); skipped with a note when the store
  holds no train grades.

Per method: APGR, CPT(50 %) and CPT(80 %), cost at 95 % of the large model's quality (and the saving against
plain always-large, which pays no prediction), AIQ, and AUROC of the deferral signal against "the small answer is bad"; the router's overhead tokens
and latency; APGR per task. Quality is the grade mapped bad 0 / ok 0.5 / great 1. Each method's APGR and saving
carry a paired bootstrap 95 % interval over the queries (``n_boot`` resamples, :mod:`thrifty.route.replay.eval_ci`).
Outputs: JSON, markdown, two plots and one self-contained HTML page (:mod:`thrifty.route.replay.report_html`; the words
both share come from :mod:`thrifty.route.replay.report_text`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError
from thrifty.core.progress import Progress
from thrifty.core.store import RunStore
from thrifty.route.decide.files import RouterFile
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.route.replay.report_text import format_markdown
from thrifty.tasks.base import Task

BASELINES = ("random", "oracle", "prompt_router", "embed_knn", "p_true", "chow")


@dataclass
class EvalConfig(ReadsStore):
    """Replay ``router`` (a router file) and the baselines on the judged ``split`` records of ``tasks``."""

    router: str = ""
    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/route_eval")
    tasks: list[str] = record_field("tasks", [])  # default: the tasks the router was fitted on
    split: str = record_field("split", "test")
    n_per_task: int = record_field("n_per_task", 50)
    train_n_per_task: int = 100  # prompt router's training examples per task (train split)
    seed: int = record_field("seed", 0)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    n_threads: int = record_field("n_threads", 1)
    n_boot: int = 1000  # bootstrap resamples for the APGR and saving intervals (0: no intervals)

    def __post_init__(self) -> None:
        check_records(self, tasks_required=False)
        if not self.router:
            raise ConfigError("router must name a router file (from `thrifty route calibrate`)")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
        if self.train_n_per_task < 1:
            raise ConfigError(f"train_n_per_task must be >= 1, got {self.train_n_per_task}")
        if self.n_boot < 0:
            raise ConfigError(f"n_boot must be >= 0, got {self.n_boot}")


def _method(name: str, q_small: np.ndarray, q_large: np.ndarray, score: np.ndarray | None,
            cost_w: np.ndarray, cost_s: np.ndarray, bad: np.ndarray, plain: np.ndarray | None = None,
            n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """One method's curve and summary; with ``plain`` (each query's plain always-large cost) and ``n_boot`` > 0
    also the bootstrap intervals of its APGR and saving (``apgr_ci``, ``savings_ci``)."""
    from thrifty.evals import auroc
    from thrifty.evals.routing_metrics import routing_summary
    from thrifty.route.replay.eval_ci import method_cis, method_curve

    curve = method_curve(name, q_small, q_large, score, cost_w, cost_s)
    out = {"summary": routing_summary(curve, (0.5, 0.8)), "c": curve.c.tolist(), "r": curve.r.tolist(),
           "cost": curve.cost.tolist(), "score": None if score is None else np.asarray(score, float).tolist()}
    if score is not None and bad.any() and (~bad).any():
        out["summary"]["auroc"] = float(auroc(score, bad))
    if plain is not None and n_boot > 0:
        ci = method_cis(name, q_small, q_large, score, cost_w, cost_s, plain, n_boot=n_boot, seed=seed)
        out["summary"].update({k: ci[k] for k in ("apgr_ci", "savings_ci", "n_boot")})
    return out


def _rebase_savings(methods: dict[str, Any], cost_large: float) -> None:
    """Savings against the plain always-large cost (no prediction paid), the same yardstick for every method:
    a router's own c = 1 endpoint also pays its predictions, which nobody would."""
    for m in methods.values():
        s = m["summary"]
        s["cost_large_plain"] = cost_large
        s["savings"] = 1.0 - s["cost_at_q"] / cost_large if cost_large > 0 and s["cost_at_q"] == s["cost_at_q"] \
            else float("nan")


def evaluate_router(cfg: EvalConfig, load_model: Callable[[str], Any] | None = None,
                    load_task: Callable[[str], Task] | None = None,
                    load_embedder: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Run the replay ``cfg`` describes; writes route_eval.{json,md} and plots; returns the result."""
    from thrifty.evals.routing_metrics import grade_quality
    from thrifty.route.decide.files import load_router
    from thrifty.route.fit.calibrate import routed_p_good
    from thrifty.route.records.joins import (
        joined_rows,
        prediction_arrays,
        price_source,
        query_costs,
        require_rows,
        router_predictions,
    )

    router = load_router(cfg.router)
    target = router.target
    tasks = list(cfg.tasks or router.fitted_on.get("tasks", []))
    if not tasks:
        raise ConfigError("no tasks: give tasks, or use a router file that records the tasks it was fitted on")
    judge = router.judge
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "route_eval_config.yaml")
    items, counts = router_predictions(router, cfg.router, cfg.store_path, cfg.run_dir, tasks, cfg.split,
                                       cfg.n_per_task, cfg.seed, cfg.n_threads, load_model, load_task)
    if load_task is None:
        from thrifty.tasks.loader import load_task
    loaded = {t: load_task(t) for t in tasks}
    messages = {(t, ex.id): ex.messages() for t, task in loaded.items()
                for ex in task.examples(cfg.split, cfg.n_per_task, cfg.seed)}
    train: list[tuple[tuple[str, Any], bool]] = []
    with RunStore(cfg.store_path) as store:
        rows, large, gens = joined_rows(store, items, router.small, router.large, tasks, cfg.split, judge)
        if {"prompt_router", "embed_knn"} & set(cfg.baselines):
            train = _train_rows(store, {t: task.examples("train", cfg.train_n_per_task, cfg.seed)
                                        for t, task in loaded.items()}, router.small, judge)
    require_rows(rows, cfg.split)
    q_small = grade_quality([r.gold for r in rows])
    q_large = grade_quality([large[(r.task, r.example)] for r in rows])
    bad = np.array([r.gold == "bad" for r in rows])
    kw = {"small": router.small, "large": router.large, "cost": target.get("cost", "tokens"),
          "prices": target.get("prices", {}), "cached_discount": float(target.get("cached_discount", 0.1))}
    cw_r, cs_r = query_costs(rows, gens, **kw, predictor=router.predictor.name)
    cw, cs = query_costs(rows, gens, **kw, with_prediction=False)
    probs, parsed = prediction_arrays(rows)
    p_good, tau_row = routed_p_good(router, probs, parsed, [r.task for r in rows])  # per-task policies if any
    boot = {"plain": cs, "n_boot": cfg.n_boot, "seed": cfg.seed}  # every method: the same paired resamples
    methods = {"router": _method("router", q_small, q_large, 1.0 - p_good, cw_r, cs_r, bad, **boot)}
    answered = parsed & (p_good >= tau_row)
    methods["router"]["operating_point"] = {
        "tau": router.policy.tau_good, "defer_rate": float(np.mean(~answered)),
        "quality": float(np.where(answered, q_small, q_large).mean()),
        "cost": float(np.where(answered, cw_r, cs_r).mean())}
    for name in ("random", "oracle"):
        if name in cfg.baselines:
            methods[name] = _method(name, q_small, q_large, None, cw, cs, bad, **boot)
    notes = []
    if "prompt_router" in cfg.baselines:
        if len({g for _, g in train}) < 2:
            notes.append("prompt_router skipped: the store needs the small model's graded train-split answers "
                         "with both acceptable and bad grades")
        else:
            from thrifty.route.replay.baselines import PromptRouter

            pr = PromptRouter().fit([(t, m) for (t, m), _ in train], [g for _, g in train], seed=cfg.seed)
            test_rows = [(r.task, messages[(r.task, r.example)]) for r in rows]
            methods["prompt_router"] = _method("prompt_router", q_small, q_large, 1.0 - pr.p_good(test_rows),
                                               cw, cs, bad, **boot)
    if "embed_knn" in cfg.baselines and len({g for _, g in train}) >= 2:
        _embed_knn(methods, notes, train, [(r.task, messages[(r.task, r.example)]) for r in rows], cfg.seed, kw,
                   (q_small, q_large, cw, cs, bad), load_embedder, cfg.n_boot)
    per_task = {}
    tasks_of = np.array([r.task for r in rows])
    for t in tasks:
        sel = tasks_of == t
        if sel.sum() >= 2:
            per_task[t] = {"n": int(sel.sum()), "q_small": float(q_small[sel].mean()),
                           "q_large": float(q_large[sel].mean()),
                           **{f"{k}_apgr": _method(k, q_small[sel], q_large[sel],
                                                   (1.0 - p_good)[sel] if k == "router" else None,
                                                   (cw_r if k == "router" else cw)[sel],
                                                   (cs_r if k == "router" else cs)[sel], bad[sel])["summary"]["apgr"]
                              for k in ("router", "oracle")}}
    for name in ("p_true", "chow"):
        if name in cfg.baselines:
            methods[name] = _posthoc_method(name, cfg, router, rows, messages, gens, kw, q_small, q_large, bad,
                                            load_model)
    _rebase_savings(methods, float(cs.mean()))
    overhead = {"tokens_in": float(np.mean([r.prediction.get("tokens_in", 0) for r in rows])),
                "tokens_out": float(np.mean([r.prediction.get("tokens_out", 0) for r in rows])),
                "latency_s": float(np.mean([r.prediction.get("latency_s", 0.0) for r in rows])),
                "parse_failures": int((~parsed).sum())}
    selection = router.fit.get("selection")  # candidates compared by `route calibrate`
    rec = router.record  # the report quotes the file as written
    result = {"router": {**{k: rec[k] for k in ("version", "small", "large", "predictor", "policy")},
                         "own_policy_tasks": sorted(router.task_policies),
                         **{k: rec[k] for k in ("judge", "target", "fitted_on") if k in rec},
                         **({"selection": selection} if selection else {})},
              "split": cfg.split, "tasks": tasks, "n": len(rows), "counts": counts, "overhead": overhead,
              "pricing": {"unit": kw["cost"], "source": price_source([router.small, router.large], kw["prices"]),
                          "cached_discount": kw["cached_discount"], "models": [router.small, router.large],
                          "prices": dict(kw["prices"])},
              "q_small": float(q_small.mean()), "q_large": float(q_large.mean()), "methods": methods,
              "per_task": per_task, "notes": notes,
              "queries": {"task": [r.task for r in rows], "example": [r.example for r in rows],
                          "q_small": q_small.tolist(), "q_large": q_large.tolist()}}
    _write(result, run_dir)
    return result


def _posthoc_method(name: str, cfg: EvalConfig, router: RouterFile, rows: list[Any],
                    messages: dict[Any, Any], gens: dict[str, Any], kw: dict[str, Any], q_small: np.ndarray,
                    q_large: np.ndarray, bad: np.ndarray, load_model: Any) -> dict[str, Any]:
    """A baseline that scores the small model's stored answer after it was given (``p_true`` or ``chow``);
    scores are stored and reused. The small answer is always paid; P(True) also pays its verification read."""
    from thrifty.evals.cost import Usage, query_cost
    from thrifty.llm.factory import LazyChatModel, threaded_loader
    from thrifty.route.records.joins import price_table, query_costs
    from thrifty.route.replay.baselines import POSTHOC

    score_fn, version = POSTHOC[name]
    table = price_table([router.small, router.large], kw["prices"], kw["cached_discount"])
    small = LazyChatModel(router.small, loader=load_model or threaded_loader(cfg.n_threads))
    scores, extra = [], []
    with RunStore(cfg.store_path) as store, Progress(len(rows), f"{name} {router.small}") as bar:
        for r in rows:
            answer = str(gens[router.small][(r.task, r.example)].get("text", ""))
            msgs = messages[(r.task, r.example)]
            fields = {"predictor": name, "model": router.small, "answer": answer, "task": r.task,
                      "example": r.example, "v": version, "messages": msgs}
            tags = {"model": router.small, "task": r.task, "example": r.example, "split": cfg.split,
                    "predictor": name}
            value, _ = store.get_or_compute("prediction", fields,
                                            lambda a=answer, m=msgs: score_fn(small, m, a), tags)
            scores.append(float(value["defer"]))
            check = Usage(router.small, int(value["tokens_in"]), 0, 0, float(value["latency_s"]))
            extra.append(query_cost([check], table, "latency" if kw["cost"] == "latency" else "tokens"))
            bar.advance()
    cw, cs = query_costs(rows, gens, **kw, with_prediction=False)
    pay = cw + np.asarray(extra)
    return _method(name, q_small, q_large, np.asarray(scores), pay, pay + cs, bad, plain=cs, n_boot=cfg.n_boot,
                   seed=cfg.seed)


def _embed_knn(methods: dict[str, Any], notes: list[str], train: list[Any], test: list[Any], seed: int,
               kw: dict[str, Any], arrays: tuple[np.ndarray, ...], load_embedder: Any, n_boot: int = 0) -> None:
    """The kNN router over sentence embeddings; it pays the encoder on every query. Skipped with a note when
    the encoder is not pulled or cannot load."""
    from thrifty.core.errors import ModelError
    from thrifty.evals.cost import Usage, query_cost
    from thrifty.route.records.joins import price_table
    from thrifty.route.replay.baselines import EMBEDDER, embed_knn_scores

    q_small, q_large, cw, cs, bad = arrays
    try:
        p_good, tokens, enc = embed_knn_scores(train, test, seed, load_embedder() if load_embedder else None)
    except (ModelError, ImportError) as exc:
        notes.append(f"embed_knn skipped: {exc} (thrifty models pull {EMBEDDER})")
        return
    table = price_table([enc], kw["prices"], kw["cached_discount"])
    unit = "latency" if kw["cost"] == "latency" else "tokens"
    enc_cost = np.array([query_cost([Usage(enc, int(n))], table, unit) for n in tokens])
    methods["embed_knn"] = _method("embed_knn", q_small, q_large, 1.0 - p_good, cw + enc_cost, cs + enc_cost, bad,
                                   plain=cs, n_boot=n_boot, seed=seed)


def _train_rows(store: RunStore, train: dict[str, list[Any]], small: str,
                judge: str) -> list[tuple[tuple[str, Any], bool]]:
    """((task, messages), acceptable) for the small model's graded train-split answers."""
    from thrifty.route.records.predictions import gold_grades

    out = []
    for t, exs in train.items():
        grades = gold_grades(store, small, t, "train", judge)
        out.extend(((t, ex.messages()), grades[ex.id] != "bad") for ex in exs
                   if grades.get(ex.id) in ("great", "ok", "bad"))
    return out


def _write(result: dict[str, Any], run_dir: Path) -> None:
    from thrifty.evals.plots import curve_plot

    (run_dir / "route_eval.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (run_dir / "route_eval.md").write_text(format_markdown(result))
    m = result["methods"]
    op = m["router"]["operating_point"]
    unit = "seconds" if result["pricing"]["unit"] == "latency" else "price units"
    curve_plot([(k, v["c"], v["r"]) for k, v in m.items()], run_dir / "quality_vs_large_calls.png",
               "quality vs large-model calls", "fraction of queries sent to the large model", "mean quality",
               points=[("router at its threshold", op["defer_rate"], op["quality"])])
    curve_plot([(k, v["cost"], v["r"]) for k, v in m.items()], run_dir / "quality_vs_cost.png",
               "quality vs cost", f"mean cost per query ({unit})", "mean quality",
               points=[("router at its threshold", op["cost"], op["quality"])])
    from thrifty.route.replay.report_html import write_report

    write_report(result, run_dir)


__all__ = ["BASELINES", "EvalConfig", "evaluate_router", "format_markdown"]
