"""Explicit random-number helpers: every consumer gets its own seeded generator; nothing touches global RNG."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from thrifty.core.types import content_hash

if TYPE_CHECKING:  # heavy imports only for type checkers
    import numpy as np
    import torch


def derive_seed(seed: int, *labels: Any) -> int:
    """A child seed from a parent seed and labels (e.g. derive_seed(0, "test", "chain_sum")); 63-bit, stable."""
    return int(content_hash([int(seed), *[str(x) for x in labels]])[:15], 16)


def py_rng(seed: int, *labels: Any) -> random.Random:
    """A private ``random.Random`` seeded from ``derive_seed(seed, *labels)`` (or ``seed`` alone)."""
    return random.Random(derive_seed(seed, *labels) if labels else seed)


def np_rng(seed: int, *labels: Any) -> np.random.Generator:
    """A private numpy Generator."""
    import numpy as np

    return np.random.default_rng(derive_seed(seed, *labels) if labels else seed)


def torch_generator(seed: int, *labels: Any, device: str | Any = "cpu") -> torch.Generator:
    """A private torch.Generator on ``device`` (torch imported only here)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed((derive_seed(seed, *labels) if labels else seed) % (2**63 - 1))
    return g
