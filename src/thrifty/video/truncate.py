"""Ways to cut one segment's M memory states down to k (Tempo spec ablation c): ``head`` keeps the first k (what
the compressor is built for: causal, so the first k of M equal a run with k), ``tail`` the last k, ``random`` a
seeded random k in their original order, ``merge`` a ToMe-style reduction that repeatedly averages the two most
similar states (cosine; size-weighted means, so a merged state is the mean of its members) until k remain, each
placed at its earliest member's position. Pure torch functions on (M, d) tensors.
"""

from __future__ import annotations

import torch

from thrifty.core.errors import ConfigError

TRUNCATIONS = ("head", "tail", "random", "merge")


def merge_similar(states: torch.Tensor, k: int) -> torch.Tensor:
    """(M, d) → (k, d): merge the most cosine-similar pair (ties: lowest index pair) until k groups remain."""
    groups = [[i] for i in range(states.shape[0])]
    means = [states[i].clone() for i in range(states.shape[0])]
    while len(groups) > k:
        x = torch.nn.functional.normalize(torch.stack(means), dim=-1)
        sim = x @ x.T
        sim.fill_diagonal_(float("-inf"))
        flat = int(torch.argmax(sim))  # first maximum in row-major order: the lowest (i, j) on ties
        i, j = sorted(divmod(flat, sim.shape[0]))
        ni, nj = len(groups[i]), len(groups[j])
        means[i] = (means[i] * ni + means[j] * nj) / (ni + nj)
        groups[i] = groups[i] + groups[j]
        del groups[j], means[j]
    order = sorted(range(len(groups)), key=lambda g: min(groups[g]))
    return torch.stack([means[g] for g in order]) if order else states[:0]


def truncate(states: torch.Tensor, k: int, mode: str = "head", gen: torch.Generator | None = None) -> torch.Tensor:
    """The k states of ``states`` (M, d) a segment keeps under ``mode``; ``random`` needs ``gen``."""
    m = states.shape[0]
    if not 0 <= k <= m:
        raise ConfigError(f"cannot keep {k} of {m} memory states")
    if mode == "head":
        return states[:k]
    if mode == "tail":
        return states[m - k:]
    if mode == "random":
        if gen is None:
            raise ConfigError("random truncation needs a torch.Generator (no global randomness)")
        keep = torch.sort(torch.randperm(m, generator=gen)[:k]).values
        return states[keep]
    if mode == "merge":
        return merge_similar(states, k)
    raise ConfigError(f"unknown truncation {mode!r}; choose one of: {', '.join(TRUNCATIONS)}")
