"""Shared by the bench scripts: offline mode (set before anything imports a hub-aware library) and the demo's
task mix, on which the small model is right sometimes and the large one more often (`configs/route/demo.yaml`)."""

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
