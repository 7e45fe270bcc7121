"""Shared by the bench scripts: offline mode (set before anything imports a hub-aware library), the demo's task mix,
on which the small model is right sometimes and the large one more often (`configs/route/demo.yaml`), a mean ± sd
summary, and the 4×4 Sudoku validation/test split the dLLM preference benches choose and report on."""

from __future__ import annotations

import os

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

DEMO_TASKS = [
    "gym:products?min_digits=2&max_digits=2",
    "gym:chain_sum?min_terms=3&max_terms=4&min_digits=1&max_digits=2",
    "gym:basic_arithmetic?min_terms=2&max_terms=3&max_digits=2&allow_parentheses=false&allow_negation=false",
]


def go_offline() -> None:
    """Set the offline variables for this process (nothing reaches for a model hub or a price map)."""
    os.environ.update(OFFLINE)


def mean_sd(vals: list[float]) -> dict:
    """{"mean", "sd" (sample; 0 for one value), "n"} of ``vals``."""
    import statistics

    return {"mean": statistics.mean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def sudoku_val_test(init_run: str, n_eval: int, n_val: int) -> tuple[list, list]:
    """(validation, test) puzzles for an SFT run on 4×4 Sudoku: test as the RL loop draws it (``n_eval`` from the
    run's test stream), validation (:func:`thrifty.dlm.sudoku.val_puzzles`) disjoint from the first 1,024 test
    puzzles."""
    from thrifty.dlm.run import load_model
    from thrifty.dlm.sudoku import val_puzzles
    from thrifty.dlm.tasks import DlmExample

    sft_cfg, task, _ = load_model(init_run)
    test = task.examples("test", n_eval, seed=sft_cfg.seed + 1000)
    avoid = {ex.prompt for ex in task.examples("test", max(1024, n_eval), seed=sft_cfg.seed + 1000)}
    assert {ex.prompt for ex in test} <= avoid
    return [DlmExample(p, s) for p, s in val_puzzles(n_val, avoid, seed=sft_cfg.seed)], test
