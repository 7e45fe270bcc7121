"""`thrifty demo`: the self-predicting router end to end on the bundled models, from the shipped configs.

The steps (each resumable from the run store, so a re-run only reads it): pull both Qwen models and the sentence
encoder of the kNN baseline; both models answer the test split; the small one answers the train split; its report
card is built, its plain-prompt probe and a prompt router (query text only) are fitted from those grades;
zero-shot, report-card and probe predictions are scored; both models answer the val split; there the cheaper of
the plain probe and the prompt router at 95 % of the large model's quality is kept and calibrated; the router and
its baselines are replayed on the test split, writing ``runs/demo/eval/report.html``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from thrifty.core.errors import ConfigError, ThriftyError

SMALL = "qwen2.5-coder-0.5b-instruct"
LARGE = "qwen2.5-coder-1.5b-instruct"
EMBEDDER = "all-minilm-l6-v2"
CONFIGS = ("demo.yaml", "demo_train.yaml", "demo_probe.yaml", "demo_prompt.yaml", "demo_predict.yaml",
           "demo_val.yaml", "demo_calibrate.yaml", "demo_eval.yaml")


def register(rooms) -> None:
    """Add the ``demo`` command (no verbs)."""
    help_text = "run the self-predicting router demo end to end on the bundled models (resumable)"
    p = rooms.add_parser("demo", help=help_text, description=help_text)
    p.add_argument("--configs", default=None, metavar="DIR",
                   help="folder with the demo's YAML configs (default: configs/route here, else the copy "
                        "installed with the package)")
    p.add_argument("--run-dir", default="runs/demo", help="the run dir the configs write to (for the card path)")
    p.set_defaults(func=_demo)


def steps(configs: Path, run_dir: Path) -> list[list[str]]:
    """The demo as a list of `thrifty` command lines."""
    card = str(run_dir / f"card-{SMALL}.json")
    return [
        ["models", "pull", SMALL, LARGE, EMBEDDER],
        ["route", "collect", "--config", str(configs / "demo.yaml")],
        ["route", "collect", "--config", str(configs / "demo_train.yaml")],
        ["route", "report-card", "build", "--store", str(run_dir / "store.sqlite"), "--model", SMALL, "--out", card],
        ["route", "probe", "fit", "--config", str(configs / "demo_probe.yaml")],
        ["route", "probe", "fit", "--config", str(configs / "demo_prompt.yaml")],
        ["route", "predict-eval", "--config", str(configs / "demo_predict.yaml")],
        ["route", "collect", "--config", str(configs / "demo_val.yaml")],
        ["route", "calibrate", "--config", str(configs / "demo_calibrate.yaml")],
        ["route", "eval", "--config", str(configs / "demo_eval.yaml")],
    ]


def default_configs() -> Path:
    """``configs/route`` of the current folder (a checkout), else the copy a wheel installs in the package."""
    here = Path("configs/route")
    if here.is_dir():
        return here
    import thrifty

    return Path(thrifty.__file__).resolve().parent / "configs" / "route"


def _demo(args: argparse.Namespace) -> int:
    from thrifty.cli.main import main

    configs = Path(args.configs) if args.configs else default_configs()
    missing = [name for name in CONFIGS if not (configs / name).is_file()]
    if missing:
        raise ConfigError(f"{configs}: demo configs missing ({', '.join(missing)}); run from the repository root "
                          "or pass --configs")
    plan = steps(configs, Path(args.run_dir))
    t0 = time.perf_counter()
    for i, argv in enumerate(plan, 1):
        print(f"\n== demo step {i}/{len(plan)}: thrifty {' '.join(argv)}", flush=True)
        rc = main(argv)
        if rc != 0:
            raise ThriftyError(f"demo step {i} (thrifty {' '.join(argv[:2])}) failed with exit code {rc}")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; open {Path(args.run_dir) / 'eval' / 'report.html'}",
          file=sys.stderr)
    return 0
