"""Three tiers against two: SmolLM2-135M → Qwen2.5-Coder-0.5B → Qwen2.5-Coder-1.5B on held-out tasks.

Reuses the run of ``bench/routing_quality.py`` (its store, the 0.5B's answers and the 0.5B → 1.5B router of
``--mid-router``, by default the probe router). SmolLM2 answers the same val and test questions; a zero-shot
router SmolLM2 → 0.5B is calibrated on val (defer rate ``--defer-rate``); the two routers are chained into a
ladder and replayed on test with `thrifty route ladder eval`'s code. Prices per 1k tokens follow model size
(0.27 / 1 / 3). Printed: always-X rows, the fitted ladder, APGR in normalised cost for the ladder and for the
0.5B → 1.5B router on the same records.

    python bench/ladder_quality.py [--run-dir runs/bench_routing] [--mid-router router_probe/router.json]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from thrifty.route.decide.files import load_router  # noqa: E402
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router  # noqa: E402
from thrifty.route.fit.ladder import build_ladder, save_ladder  # noqa: E402
from thrifty.route.records.collect import CollectConfig, collect  # noqa: E402
from thrifty.route.replay.ladder_eval import LadderEvalConfig, evaluate_ladder, format_ladder  # noqa: E402

TINY, SMALL, LARGE = "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"
PRICES = {TINY: 0.27, SMALL: 1.0, LARGE: 3.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/bench_routing", help="the routing_quality run to build on")
    ap.add_argument("--mid-router", default="router_probe/router.json", help="0.5B → 1.5B router (in --run-dir)")
    ap.add_argument("--defer-rate", type=float, default=0.5, help="SmolLM2's calibrated defer rate on val")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    mid = load_router(run / args.mid_router)
    tasks, fitted = mid.fitted_on["tasks"], mid.fitted_on
    summary = json.loads((run / "routing_quality.json").read_text()) if (run / "routing_quality.json").exists() else {}
    conf = summary.get("config", {})
    n_val, n_test = fitted["n_per_task"], int(conf.get("n_test_per_task", 60))
    store = str(run / "store.sqlite")
    for split, n in (("val", n_val), ("test", n_test)):
        collect(CollectConfig(models=[TINY], tasks=tasks, split=split, n_per_task=n, max_tokens=int(
            conf.get("max_tokens", 256)), n_threads=args.threads, store=store, run_dir=str(run / f"tiny_{split}")))
    tiny_cfg = CalibrateConfig(store=store, run_dir=str(run / "router_tiny"), small=TINY, large=SMALL, tasks=tasks,
                               n_per_task=n_val, predictor="zero_shot", target="defer_rate",
                               defer_rate=args.defer_rate, prices=PRICES, n_threads=args.threads)
    calibrate_router(tiny_cfg)
    mid_priced = run / "router_mid_priced.json"  # the same policy, with the ladder's prices recorded
    mid["target"] = {**mid.get("target", {}), "prices": PRICES}
    mid_priced.write_text(json.dumps(mid, indent=2) + "\n")
    ladder = save_ladder(build_ladder([tiny_cfg.out_path, mid_priced]), run / "ladder.json")
    res = evaluate_ladder(LadderEvalConfig(ladder=str(ladder), store=store, run_dir=str(run / "ladder_eval"),
                                           n_per_task=n_test, n_threads=args.threads))
    print(format_ladder(res))
    two = json.loads(mid_priced.read_text())
    two_ladder = save_ladder(build_ladder([mid_priced]), run / "ladder_two.json")
    res2 = evaluate_ladder(LadderEvalConfig(ladder=str(two_ladder), store=store, run_dir=str(run / "ladder_two_eval"),
                                            n_per_task=n_test, n_threads=args.threads))
    print(f"\nOn the same {res['n']} test queries: 3 tiers APGR {res['ladder_curve']['apgr']:.3f} (normalised cost "
          f"{TINY} → {LARGE}); 2 tiers {SMALL} → {LARGE} ({two['predictor']['name']} router) APGR "
          f"{res2['ladder_curve']['apgr']:.3f} (normalised cost {SMALL} → {LARGE}); fitted ladder quality "
          f"{res['fitted']['quality']:.3f} at cost {res['fitted']['cost']:.4f} vs the 2-tier router's "
          f"{res2['fitted']['quality']:.3f} at {res2['fitted']['cost']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
