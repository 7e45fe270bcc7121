"""Does calibration hit its targets on held-out data? Defer-rate accuracy and quality-guarantee coverage.

Part A (synthetic, the truth known): a small model whose answer is acceptable with probability ``t`` (a hidden
per-query difficulty) and a predictor that reports a miscalibrated ``p_good = t**2``; the large model is right
90 % of the time. For each of ``--splits`` resamples: fit (isotonic calibration + threshold) on ``--n-fit``
queries (``--n-fit-quality`` for the quality target: a distribution-free guarantee with 5 % slack needs a few
thousand), then measure on ``--n-holdout`` fresh queries: (1) target defer rate 30 % — the achieved rate, and
(2) target quality ≥ 95 % of the large model's, certified at δ = 0.1 — how often the held-out quality meets it
(it should in at least 90 % of the splits) and what deferral it cost.

Part B (real, when the stores exist): the probe predictions of ``bench/rpra_predict.py`` (210 test items of
Qwen2.5-Coder-0.5B): fit the defer-rate threshold on a random half, measure on the other half, ``--splits``
times. (No quality check: that store holds no large-model answers on these items.)

    python bench/calibration_check.py [--splits 20] [--n-fit 300] [--n-holdout 5000] [--seed 0]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from thrifty.route.decide.calibrators import fit_isotonic, threshold_for_defer_rate, threshold_for_quality  # noqa: E402
from thrifty.route.decide.policy import Calibrator  # noqa: E402

DEFER, QUALITY, DELTA = 0.30, 0.95, 0.10


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = rng.random(n)
    p_good = t ** 2  # under-confident at the top, the calibrator's job to fix
    q_small = (rng.random(n) < t).astype(float)
    q_large = (rng.random(n) < 0.9).astype(float)
    return p_good, q_small, q_large


def _calibrated(cal: Calibrator, p_good: np.ndarray) -> np.ndarray:
    return cal.calibrate(np.c_[1 - p_good, p_good, np.zeros_like(p_good)])[0]


def _fit(p: np.ndarray, qs: np.ndarray) -> Calibrator:
    iso = fit_isotonic(p, qs)
    return Calibrator("isotonic", iso_x=iso.x, iso_y=iso.y)


def synthetic(splits: int, n_fit: int, n_fit_quality: int, n_hold: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rates, met, defer_q, certified = [], [], [], 0
    for _ in range(splits):
        p, qs, _ = _draw(rng, n_fit)
        cal = _fit(p, qs)
        tau_rate = threshold_for_defer_rate(_calibrated(cal, p), DEFER)
        p2, qs2, ql2 = _draw(rng, n_fit_quality)
        cal2 = _fit(p2, qs2)
        res = threshold_for_quality(_calibrated(cal2, p2), qs2, ql2, QUALITY, DELTA)
        hp, hqs, hql = _draw(rng, n_hold)
        rates.append(float(np.mean(_calibrated(cal, hp) < tau_rate)))
        hs = _calibrated(cal2, hp)
        if res.certified:
            certified += 1
            routed = np.where(hs >= res.tau, hqs, hql)
            met.append(bool(routed.mean() >= QUALITY * hql.mean()))
            defer_q.append(float(np.mean(hs < res.tau)))
    dev = np.abs(np.array(rates) - DEFER)
    return {"defer_target": DEFER, "defer_mean": float(np.mean(rates)), "defer_max_abs_dev": float(dev.max()),
            "within_3_points": int(np.sum(dev <= 0.03)), "splits": splits, "certified": certified,
            "quality_met": int(np.sum(met)), "defer_when_certified": float(np.mean(defer_q)) if defer_q else None}


def real(splits: int, seed: int, store: Path, probe: Path) -> dict | None:
    if not store.is_file() or not probe.is_file():
        return None
    from _common import DEMO_TASKS
    from thrifty.route.records.predictions import PredictEvalConfig, gather_predictions

    cfg = PredictEvalConfig(store=str(store), run_dir=str(store.parent / "calibration_check"),
                            model="qwen2.5-coder-0.5b-instruct", tasks=DEMO_TASKS, n_per_task=70,
                            predictors=["probe"], probe=str(probe))
    items, counts, _ = gather_predictions(cfg)
    if counts["new_predictions"]:
        print(f"note: {counts['new_predictions']} probe predictions were missing and computed now")
    s = np.array([it.prediction["p_good"] for it in items])
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(splits):
        order = rng.permutation(len(s))
        fit, hold = order[: len(s) // 2], order[len(s) // 2:]
        tau = threshold_for_defer_rate(s[fit], DEFER)
        rates.append(float(np.mean(s[hold] < tau)))
    dev = np.abs(np.array(rates) - DEFER)
    return {"n": len(s), "defer_mean": float(np.mean(rates)), "defer_max_abs_dev": float(dev.max()),
            "within_3_points": int(np.sum(dev <= 0.03)), "splits": splits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--n-fit", type=int, default=300, help="fit size for the defer-rate target")
    ap.add_argument("--n-fit-quality", type=int, default=2000, help="fit size for the certified quality target")
    ap.add_argument("--n-holdout", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default="runs/bench_rpra/store.sqlite")
    ap.add_argument("--probe", default="runs/bench_rpra/probe/probe.npz")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    a = synthetic(args.splits, args.n_fit, args.n_fit_quality, args.n_holdout, args.seed)
    print(f"A. synthetic ({args.splits} splits, fit {args.n_fit} for the rate and {args.n_fit_quality} for the "
          f"quality target, hold-out {args.n_holdout}):")
    print(f"   defer-rate target {DEFER:.0%}: achieved mean {a['defer_mean']:.3f}, max |deviation| "
          f"{a['defer_max_abs_dev']:.3f}, within ±3 points in {a['within_3_points']}/{a['splits']} splits")
    print(f"   quality ≥ {QUALITY:.0%} × large at δ = {DELTA}: certified in {a['certified']}/{a['splits']} splits; "
          f"held-out quality met the target in {a['quality_met']}/{a['certified']} of those; mean defer rate "
          f"{a['defer_when_certified'] if a['defer_when_certified'] is None else round(a['defer_when_certified'], 3)}")
    b = real(args.splits, args.seed, Path(args.store), Path(args.probe))
    if b is None:
        print("B. real: skipped (run bench/rpra_predict.py first)")
    else:
        print(f"B. real (probe on {b['n']} test items of Qwen2.5-Coder-0.5B, half/half, {b['splits']} splits):")
        print(f"   defer-rate target {DEFER:.0%}: achieved mean {b['defer_mean']:.3f}, max |deviation| "
              f"{b['defer_max_abs_dev']:.3f}, within ±3 points in {b['within_3_points']}/{b['splits']} splits")
    if args.json:
        Path(args.json).write_text(json.dumps({"synthetic": a, "real": b}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
