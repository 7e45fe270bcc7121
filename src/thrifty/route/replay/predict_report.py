"""Prediction-evaluation report: metrics per predictor × task (and pooled), gains over zero-shot, JSON/markdown/plots.

Gold grades and predictions are encoded as the evals package expects (bad=0, ok=1, great=2; probability rows
(p_bad, p_ok, p_great)). Every metric comes from :mod:`thrifty.evals`; confidence intervals are percentile
bootstraps with a numpy Generator derived from the config seed and the cell's name (order-independent).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ALL = "ALL"


def _arrays(items: list[Any]) -> tuple[Any, Any, Any]:
    import numpy as np

    from thrifty.judge.base import LABEL_INDEX

    y = np.array([LABEL_INDEX[it.gold] for it in items], dtype=np.int64)
    probs = np.array([[it.prediction["p_bad"], it.prediction["p_ok"], it.prediction["p_great"]] for it in items],
                     dtype=float)
    probs = np.clip(probs, 0.0, 1.0)
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs, np.argmax(probs, axis=1)


def _ci(ci: Any) -> list[float]:
    return [ci.lo, ci.hi]


def cell_metrics(items: list[Any], seed: int, label: tuple[str, ...], n_boot: int, bins: int) -> dict[str, Any]:
    """All metrics of one (predictor, task) cell; ``label`` names the cell for its bootstrap generator."""
    import numpy as np

    from thrifty.core.rng import np_rng
    from thrifty.evals import (
        argmax_labels,
        auroc_bad,
        bootstrap_ci,
        label_summary,
        macro_f1,
        prob_summary,
    )

    y, probs, _ = _arrays(items)
    pred = argmax_labels(probs)
    out: dict[str, Any] = dict(label_summary(y, pred))
    out.update(prob_summary(probs, y, bins))
    rng = np_rng(seed, "predict_eval", *label)
    out["accuracy_ci"] = _ci(bootstrap_ci(lambda t, p: float(np.mean(t == p)), y, pred, n_boot=n_boot, rng=rng))
    out["macro_f1_ci"] = _ci(bootstrap_ci(macro_f1, y, pred, n_boot=n_boot, rng=rng))
    out["auroc_bad_ci"] = _ci(bootstrap_ci(auroc_bad, probs, y, n_boot=n_boot, rng=rng))
    out["gold_counts"] = np.bincount(y, minlength=3).tolist()  # bad, ok, great
    out["parse_failures"] = sum(1 for it in items if not it.prediction.get("parsed", True))
    for key in ("tokens_in", "tokens_out", "latency_s"):
        out[f"mean_{key}"] = float(np.mean([float(it.prediction.get(key, 0.0)) for it in items]))
    return out


def improvement(items: list[Any], base: list[Any], seed: int, label: tuple[str, ...], n_boot: int) -> dict[str, Any]:
    """Accuracy gain over the baseline in points; a paired-bootstrap CI when both ran on exactly the same items."""
    import numpy as np

    from thrifty.core.rng import np_rng
    from thrifty.evals import bootstrap_ci

    mine = {(it.task, it.example): it for it in items}
    theirs = {(it.task, it.example): it for it in base}
    if set(mine) != set(theirs):
        ya, _, a = _arrays(items)
        yb, _, b = _arrays(base)
        pts = 100.0 * (float(np.mean(a == ya)) - float(np.mean(b == yb)))
        return {"points": pts, "ci": None, "paired": False, "n": len(mine)}
    keys = sorted(mine)
    y, _, a = _arrays([mine[k] for k in keys])
    _, _, b = _arrays([theirs[k] for k in keys])
    ci = bootstrap_ci(lambda t, p, q: 100.0 * float(np.mean(p == t) - np.mean(q == t)), y, a, b,
                      n_boot=n_boot, rng=np_rng(seed, "predict_eval_gain", *label))
    return {"points": ci.point, "ci": [ci.lo, ci.hi], "paired": True, "n": len(keys)}


def build_result(cfg: Any, items: list[Any], counts: dict[str, Any],
                 versions: dict[str, str | None]) -> dict[str, Any]:
    """The JSON-able result: config, counts, artefact versions (report card, probe, adapter),
    metrics[predictor][task|ALL], improvement[predictor][task|ALL]."""
    from thrifty.core.types import to_jsonable

    metrics: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, list[Any]]] = {}
    for name in cfg.predictors:
        mine = [it for it in items if it.predictor == name]
        cells = {t: [it for it in mine if it.task == t] for t in cfg.tasks}
        cells[ALL] = mine
        groups[name] = cells
        metrics[name] = {t: cell_metrics(c, cfg.seed, (name, t), cfg.n_boot, cfg.bins)
                         for t, c in cells.items() if c}
    gains: dict[str, dict[str, Any]] = {}
    if "zero_shot" in groups:
        for name, cells in groups.items():
            if name == "zero_shot":
                continue
            gains[name] = {t: improvement(c, groups["zero_shot"][t], cfg.seed, (name, t), cfg.n_boot)
                           for t, c in cells.items() if c and groups["zero_shot"][t]}
    return _finite({"config": to_jsonable(cfg), "model": cfg.model, "split": cfg.split, "judge": cfg.judge,
                    "card_version": versions.get("report_card"), "versions": dict(versions),
                    "counts": dict(counts), "metrics": metrics,
                    "improvement": gains})


def _finite(obj: Any) -> Any:
    """NaN/inf become None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def _ci_text(ci: Any, pct: bool = False) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{_f(ci[0], pct)}, {_f(ci[1], pct)}]"


def format_markdown(result: dict[str, Any]) -> str:
    """Markdown tables: label agreement, probability quality, cost, and the gain over zero-shot."""
    c = result["counts"]
    lines = [f"# Grade prediction: {result['model']} ({result['split']} split, judge {result['judge']})", "",
             f"Evaluated items: skipped {c['ungraded']} without a grade, {c['unparsed_grades']} with an unparsed "
             f"grade; {c['failures']} prediction failures; {c['new_predictions']} new and "
             f"{c['reused_predictions']} stored predictions."]
    versions = {k: v for k, v in (result.get("versions") or {}).items() if v}
    if versions:
        lines.append("Artefact versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    lines += ["", "## Label agreement (accuracy %, 95% bootstrap CI)", "",
              "| predictor | task | n | accuracy | majority baseline | macro-F1 | κ (quadratic) | over-confidence "
              "| parse failures |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in result["metrics"].items():
        for task, r in rows.items():
            lines.append(f"| {name} | {task} | {r['n']} | {_f(r['accuracy'], True)}{_ci_text(r['accuracy_ci'], True)}"
                         f" | {_f(r['majority_baseline'], True)} | {_f(r['macro_f1'])}{_ci_text(r['macro_f1_ci'])}"
                         f" | {_f(r['kappa_quadratic'])} | {_f(r['overconfidence_rate'])} | {r['parse_failures']} |")
    lines += ["", "## Probability quality (p(bad) ranks, p(not bad) calibration)", "",
              "| predictor | task | AUROC p(bad) | AUPRC p(bad) | ECE | Brier | tokens in | tokens out | latency s |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in result["metrics"].items():
        for task, r in rows.items():
            lines.append(f"| {name} | {task} | {_f(r['auroc_bad'])}{_ci_text(r['auroc_bad_ci'])} | "
                         f"{_f(r['auprc_bad'])} | {_f(r['ece'])} | {_f(r['brier'])} | {r['mean_tokens_in']:.1f} | "
                         f"{r['mean_tokens_out']:.1f} | {r['mean_latency_s']:.3f} |")
    if result["improvement"]:
        lines += ["", "## Gain over zero-shot (accuracy points, paired 95% bootstrap CI)", "",
                  "| predictor | task | n | gain | CI |", "|---|---|---:|---:|---|"]
        for name, rows in result["improvement"].items():
            for task, g in rows.items():
                ci = f"[{g['ci'][0]:+.1f}, {g['ci'][1]:+.1f}]" if g["ci"] and g["ci"][0] is not None else "unpaired"
                lines.append(f"| {name} | {task} | {g['n']} | {g['points']:+.1f} | {ci} |")
    lines += ["", "## Confusion matrices (rows gold bad/ok/great, columns predicted)", ""]
    for name, rows in result["metrics"].items():
        if ALL in rows:
            cm = rows[ALL]["confusion"]
            lines.append(f"- {name}: " + "; ".join(f"{lab} → {cm[i]}" for i, lab in enumerate(("bad", "ok", "great"))))
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], items: list[Any], run_dir: Path, bins: int) -> dict[str, Path]:
    """Write predict_eval.json, predict_eval.md and per-predictor reliability/confusion PNGs; returns the paths."""
    from thrifty.evals import reliability_binary
    from thrifty.evals.plots import confusion_plot, reliability_plot

    paths = {"json": run_dir / "predict_eval.json", "markdown": run_dir / "predict_eval.md"}
    paths["json"].write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n", "utf-8")
    paths["markdown"].write_text(format_markdown(result), "utf-8")
    for name, rows in result["metrics"].items():
        mine = [it for it in items if it.predictor == name]
        if not mine or ALL not in rows:
            continue
        y, probs, _ = _arrays(mine)
        rel = reliability_binary(probs, y, bins)
        paths[f"reliability_{name}"] = reliability_plot(
            rel.edges, rel.conf, rel.acc, rel.count, run_dir / f"reliability_{name}.png",
            title=f"{name}: p(not bad) reliability (ECE {rows[ALL]['ece']:.3f})")
        paths[f"confusion_{name}"] = confusion_plot(rows[ALL]["confusion"], ("bad", "ok", "great"),
                                                    run_dir / f"confusion_{name}.png", title=f"{name}: confusion")
    return paths
