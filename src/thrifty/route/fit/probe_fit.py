"""`thrifty route probe fit`: fit the hidden-state probe on a model's judged train answers.

Steps: the judged ``split`` examples of ``tasks`` for ``model`` (from the run store) → the model's hidden state at
the zero-shot prediction position for each (cached in the run dir, keyed by model, prompt, layer and examples,
so a re-run reads no model) → the L2 strength chosen by stratified k-fold cross-validation on those training
features only (lowest mean held-out log-loss; ties go to the stronger penalty) → the probe fitted on all of
them, saved with its provenance, fit time and peak memory.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError, DataError
from thrifty.core.progress import peak_rss_mb
from thrifty.core.rng import derive_seed
from thrifty.core.store import RunStore
from thrifty.core.types import content_hash
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.tasks.base import Task

DEFAULT_L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class ProbeFitConfig(ReadsStore):
    """What to fit: a probe on ``model``'s hidden states for its judged ``split`` answers to ``tasks``."""

    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/probe")
    model: str = ""
    tasks: list[str] = record_field("tasks", [])
    split: str = record_field("split", "train")
    n_per_task: int = record_field("n_per_task", 100)
    seed: int = record_field("seed", 0)
    judge: str = record_field("judge", "verifier")
    l2: list[float] = field(default_factory=lambda: list(DEFAULT_L2_GRID))  # one value: no cross-validation
    folds: int = 5
    layer: int | None = None  # None: the backend's default (the final layer)
    # where the hidden state is read: "instruction" (after the zero-shot instruction and "Grade:") or "plain" (the
    # conversation as the answer sees it: the answer then continues this prefill and the prediction costs nothing)
    # or "prompt" (no hidden state: hashed words of the query and its task tag — a prompt router, predictor
    # prompt_router; no model is loaded)
    position: str = "instruction"
    n_threads: int = record_field("n_threads", 1)
    out: str = ""  # default: <run_dir>/probe.npz

    def __post_init__(self) -> None:
        check_records(self)
        if not self.model:
            raise ConfigError("model must name the model whose hidden states are probed")
        if self.split == "test":
            raise ConfigError("fit the probe on the train (or val) split; the test split is for evaluation")
        if not self.l2 or any(not (isinstance(v, (int, float)) and v > 0) for v in self.l2):
            raise ConfigError(f"l2 must list positive penalties, got {self.l2}")
        from thrifty.route.predictors.plain_probe import POSITIONS

        if self.position not in POSITIONS:
            raise ConfigError(f"unknown probe position {self.position!r}; choose {', '.join(POSITIONS)}")
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2, got {self.folds}")

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir) / "probe.npz"


def stratified_folds(y: Sequence[int], k: int, rng: random.Random) -> list[int]:
    """A fold index in ``range(k)`` per row: each class is shuffled with ``rng`` and dealt round-robin, so
    every fold gets a near-equal share of every class."""
    y = list(y)
    fold = [0] * len(y)
    for cls in sorted(set(y)):
        rows = [i for i, v in enumerate(y) if v == cls]
        rng.shuffle(rows)
        for j, i in enumerate(rows):
            fold[i] = j % k
    return fold


def cv_log_loss(X: np.ndarray, y: np.ndarray, l2: float, fold: Sequence[int], k: int) -> float:
    """Mean held-out log-loss of a probe with penalty ``l2`` over the ``k`` folds (each row held out once)."""
    from thrifty.route.predictors.probe import ProbeClassifier

    fold_arr = np.asarray(fold)
    losses = np.empty(len(y))
    for f in range(k):
        test = fold_arr == f
        if not test.any():
            continue
        probe = ProbeClassifier(l2=l2).fit(X[~test], y[~test])
        p = probe.predict_proba(X[test])
        losses[test] = -np.log(p[np.arange(int(test.sum())), y[test]])
    return float(losses.mean())


def choose_l2(X: np.ndarray, y: np.ndarray, grid: Sequence[float], k: int,
              rng: random.Random) -> tuple[float, dict[float, float]]:
    """The penalty of ``grid`` with the lowest k-fold held-out log-loss (ties: the larger penalty), and every
    penalty's loss. One penalty, or too few rows per fold, skips cross-validation."""
    grid = sorted({float(v) for v in grid})
    if len(grid) == 1 or len(y) < 2 * k:
        return grid[-1] if len(grid) > 1 else grid[0], {}
    fold = stratified_folds(y.tolist(), k, rng)
    scores = {l2: cv_log_loss(X, y, l2, fold, k) for l2 in grid}
    best = min(grid, key=lambda v: (round(scores[v], 12), -v))
    return best, scores


def _features(cfg: ProbeFitConfig, labelled: list[Any], model: Any) -> Any:
    """Hidden-state features of ``labelled``, read from / written to a cache file in the run dir."""
    from thrifty.route.predictors import ZeroShotPredictor, collect_features
    from thrifty.route.predictors.plain_probe import plain_features, plain_prompt_version
    from thrifty.route.predictors.probe import ProbeData, prompt_version

    if cfg.position == "prompt":
        from thrifty.route.predictors.prompt_router import DEFAULT_DIM, prompt_data

        return prompt_data(labelled, DEFAULT_DIM), False  # hashing the query text is cheaper than a cache
    plain = cfg.position == "plain"
    version = plain_prompt_version() if plain else prompt_version(ZeroShotPredictor(None))
    key = content_hash({"model": cfg.model, "prompt": version, "layer": cfg.layer,
                        "rows": [(t, ex.id, lab) for t, ex, lab in labelled]})[:16]
    cache = Path(cfg.run_dir) / f"features-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as d:
            return ProbeData(d["X"], d["y"], [str(v) for v in d["ids"]], [str(v) for v in d["tasks"]]), True
    data = (plain_features if plain else collect_features)(model, labelled, layer=cfg.layer)
    with cache.open("wb") as fh:
        np.savez(fh, X=data.X, y=data.y, ids=np.array(data.ids), tasks=np.array(data.tasks))
    return data, False


def fit_probe_run(cfg: ProbeFitConfig, load_model: Callable[..., Any] | None = None,
                  load_task: Callable[[str], Task] | None = None) -> dict[str, Any]:
    """Fit and save the probe ``cfg`` describes; returns a summary (sizes, l2 scores, times, memory)."""
    from thrifty.llm.factory import LazyChatModel, threaded_loader
    from thrifty.route.predictors import ZeroShotPredictor, fit_probe, labelled_examples

    if load_task is None:
        from thrifty.tasks.loader import load_task
    if not cfg.store_path.exists():
        raise ConfigError(f"{cfg.store_path}: no run store here; collect the {cfg.split} split with a judge first")
    examples = {spec: load_task(spec).examples(cfg.split, cfg.n_per_task, cfg.seed) for spec in cfg.tasks}
    with RunStore(cfg.store_path) as store:
        labelled = labelled_examples(store, cfg.model, examples, cfg.split, cfg.judge)
    if not labelled:
        raise DataError(f"no {cfg.judge!r} grades of {cfg.model!r} on the {cfg.split} split of these tasks in "
                        f"{cfg.store_path}; run `thrifty route collect --split {cfg.split}` with a judge first")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "probe_config.yaml")
    loader = load_model or threaded_loader(cfg.n_threads)
    t0 = time.perf_counter()
    data, cached = _features(cfg, labelled, LazyChatModel(cfg.model, loader=loader))
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    best, scores = choose_l2(data.X, data.y, cfg.l2, cfg.folds, random.Random(derive_seed(cfg.seed, "probe-cv")))
    if cfg.position == "plain":
        from thrifty.route.predictors.plain_probe import fit_plain_probe

        probe = fit_plain_probe(data, cfg.model, layer=cfg.layer, l2=best)
    elif cfg.position == "prompt":
        from thrifty.route.predictors.prompt_router import fit_prompt_router

        probe = fit_prompt_router(data, cfg.model, l2=best)
    else:
        probe = fit_probe(data, cfg.model, ZeroShotPredictor(None), layer=cfg.layer, l2=best)
    t_fit = time.perf_counter() - t1
    probe.save(cfg.out_path)
    counts = {lab: int(np.sum(data.y == i)) for i, lab in enumerate(("bad", "ok", "great"))}
    summary = {"probe": str(cfg.out_path), "position": cfg.position, "version": probe.version, "n": len(data.y), "dim": int(data.X.shape[1]),
               "labels": counts, "l2": best, "cv_log_loss": {str(k): v for k, v in scores.items()},
               "features_cached": cached, "features_s": round(t_feat, 2), "fit_s": round(t_fit, 2),
               "peak_rss_mb": round(peak_rss_mb(), 1)}
    (run_dir / "probe_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
