"""`thrifty route sft`, `route probe fit` and `route calibrate`: fit the learned predictors and the deferral policy
on judged records."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_field_flags, add_verb, resolve_config
from thrifty.route.predictors.build import PREDICTORS
from thrifty.route.records.config import record_flags


def _common_data_args(p: argparse.ArgumentParser) -> None:
    add_field_flags(p, record_flags("store"))
    p.add_argument("--model", help="model spec whose grades are learned (as tagged in the store)")
    add_field_flags(p, record_flags("tasks", "n_per_task", "run_dir"))
    p.add_argument("--out", help="output path (default: inside --run-dir)")


def register_verbs(verbs) -> None:
    """Add ``sft``, ``probe fit`` and ``calibrate`` to the route room's verbs."""
    p = add_verb(verbs, "sft", "fine-tune a LoRA grade predictor on the model's own judged answers (hindsight "
                 "relabelling; TRL + PEFT on CPU); writes an adapter for the hf backend", _sft)
    add_config_args(p)
    _common_data_args(p)
    p.add_argument("--hf-model", help="local Hugging Face directory of the model (default: export its GGUF)")
    p.add_argument("--steps", type=int, help="training steps (default: one epoch)")

    probe = verbs.add_parser("probe", help="fit a hidden-state probe grade predictor",
                             description="fit a hidden-state probe grade predictor")
    probe_verbs = probe.add_subparsers(dest="probe_verb", metavar="<fit>", parser_class=type(probe))
    probe_verbs.required = True
    f = probe_verbs.add_parser("fit", help="fit a logistic-regression probe on the model's hidden states at the "
                               "prediction position (L2 chosen by cross-validation on the train split)")
    f.set_defaults(func=_probe_fit)
    add_config_args(f)
    _common_data_args(f)
    f.add_argument("--position", choices=["instruction", "plain", "prompt"], help="read the hidden state after the "
                   "zero-shot instruction and 'Grade:' (default) or at the end of the plain conversation, whose "
                   "prefill the answer then continues (no extra token: predictor plain_probe); or no hidden state: "
                   "hashed words of the query (a prompt router, predictor prompt_router; loads no model)")

    c = add_verb(verbs, "calibrate", "fit a calibrated answer-or-defer policy on held-out (val) records for a "
                 "defer-rate, quality or budget target; writes the router file", _calibrate)
    add_config_args(c)
    add_field_flags(c, record_flags("store"))
    c.add_argument("--small", help="model spec that predicts and answers")
    c.add_argument("--large", help="model spec deferred to")
    add_field_flags(c, record_flags("tasks", "n_per_task"))
    c.add_argument("--predictor", choices=list(PREDICTORS), help="grade predictor")
    c.add_argument("--candidates", help="comma-separated predictors to compare on the split; the router keeps the "
                   "one cheapest at select_quality (default 0.95) x the large model's quality there")
    c.add_argument("--card", help="report card JSON (report_card)")
    c.add_argument("--probe", help="probe file (probe, plain_probe)")
    c.add_argument("--adapter", help="adapter directory (sft)")
    c.add_argument("--prompt-router", help="prompt-router file (prompt_router; probe fit --position prompt)")
    c.add_argument("--calibration", choices=["none", "temperature", "isotonic"], help="calibrator")
    c.add_argument("--target", choices=["defer_rate", "quality", "budget"], help="what the threshold must meet")
    c.add_argument("--signal", choices=["p_good", "expected_grade"], help="what the threshold is on: p(not bad) "
                   "(default) or the expected grade 0.5 p(ok) + p(great)")
    c.add_argument("--per-task", action="store_const", const=True, help="also fit one policy per task (domain) "
                   "with enough rows (min_task_n, default 30)")
    add_field_flags(c, record_flags("run_dir", run_dir="where the config and router go"))
    c.add_argument("--out", help="router file path (default: <run-dir>/router.json)")


def _sft(args: argparse.Namespace) -> int:
    from thrifty.route.fit.sft import SFTConfig, train_sft

    cfg = resolve_config(SFTConfig, args, {"model": "model", "out": "out",
                                           "hf_model": "hf_model", "steps": "max_steps"})
    meta = train_sft(cfg)
    losses = meta["losses"]
    print(f"adapter {meta['version']} written to {cfg.out_dir}")
    print(f"items: {meta['n_items']} ({', '.join(f'{k} {v}' for k, v in meta['labels'].items())}), trained on "
          f"{meta['n_trained']}{' after class balancing' if meta['balanced'] else ''}")
    if losses:
        print(f"loss: first {losses[0]:.3f}, last {losses[-1]:.3f} over {len(losses)} steps")
    print(f"wall time {meta['wall_s']:.1f} s, peak memory {meta['peak_rss_mb']:.0f} MB")
    return 0


def _probe_fit(args: argparse.Namespace) -> int:
    from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run

    cfg = resolve_config(ProbeFitConfig, args, {"model": "model", "out": "out",
                                                "position": "position"})
    s = fit_probe_run(cfg)
    print(f"probe {s['version']} ({s['position']} position) written to {s['probe']}")
    print(f"items: {s['n']} ({', '.join(f'{k} {v}' for k, v in s['labels'].items())}), feature size {s['dim']}, "
          f"l2 {s['l2']:g}" + (" (cross-validated)" if s["cv_log_loss"] else ""))
    print(f"features {s['features_s']:.1f} s{' (cached)' if s['features_cached'] else ''}, fit {s['fit_s']:.2f} s, "
          f"peak memory {s['peak_rss_mb']:.0f} MB")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router

    cfg = resolve_config(CalibrateConfig, args, {
        "small": "small", "large": "large",
        "predictor": "predictor", "card": "card", "probe": "probe", "adapter": "adapter",
        "prompt_router": "prompt_router", "candidates": "candidates",
        "calibration": "calibration", "target": "target", "per_task": "per_task", "signal": "signal",
        "out": "out"})
    r = calibrate_router(cfg)
    f, pol = r["fit"], r["policy"]
    print(f"router {r['version']} written to {cfg.out_path}")
    print(f"policy: answer with {r['small']} when calibrated {pol.get('signal', 'p_good')} >= {pol['tau_good']:.4g} "
          f"({pol['calibrator']['kind']} calibration), else defer to {r['large']}")
    print(f"on {f['n']} {cfg.split} queries: defer {100 * f['defer_rate']:.1f} %, quality {f['quality']:.3f} "
          f"(small {f['quality_small']:.3f}, large {f['quality_large']:.3f}), mean cost {f['mean_cost']:.4g} "
          f"(always small {f['cost_small_always']:.4g}, always large {f['cost_large_always']:.4g})")
    sel = f.get("selection")
    if sel:
        print(f"predictor chosen on {cfg.split}: {sel['chosen']} ({sel['rule']})")
        for name, c in sel["candidates"].items():
            print(f"  {name}: saving {100 * c['saving_at_target']:+.1f} % at {cfg.select_quality:g} x large quality, "
                  f"APGR {c['apgr']:.3f}, AUROC {c['auroc_bad']:.3f}")
    if cfg.target == "quality":
        verdict = "certified" if f["certified"] else "NOT certified at this sample size (defers everything)"
        print(f"quality >= {cfg.quality:g} x large: {verdict}; upper bound on the shortfall {f['bound']:+.4f} "
              f"(delta {cfg.delta:g})")
    print(f"p_good ECE {f['before']['ece']:.3f} -> {f['after']['ece']:.3f}, Brier {f['before']['brier']:.3f} -> "
          f"{f['after']['brier']:.3f}")
    for task, tf in r.get("task_fit", {}).items():
        print(f"  {task}: own threshold {r['task_policies'][task]['tau_good']:.4g} on {tf['n']} queries, defer "
              f"{100 * tf['defer_rate']:.1f} %, quality {tf['quality']:.3f}")
    if f.get("per_task_skipped"):
        print(f"  global policy only (fewer than {cfg.min_task_n} rows): {', '.join(f['per_task_skipped'])}")
    return 0

