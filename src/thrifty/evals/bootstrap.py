"""Percentile bootstrap confidence intervals with paired resampling and an explicit numpy Generator."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.evals._checks import MetricInputError


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with its percentile interval; unpacks as ``point, lo, hi = ci``."""

    point: float
    lo: float  # NaN when every replicate was NaN
    hi: float
    n_boot: int  # replicates drawn
    n_nan: int  # replicates whose metric was NaN (dropped before taking percentiles)
    alpha: float

    def __iter__(self) -> Iterator[float]:
        return iter((self.point, self.lo, self.hi))


def bootstrap_ci(metric_fn: Callable[..., Any], *arrays: Any, n_boot: int = 1000, alpha: float = 0.05,
                 rng: np.random.Generator) -> BootstrapCI:
    """Percentile bootstrap CI of ``metric_fn(*arrays)``.

    Each replicate b draws n indices i_1..i_n uniformly with replacement (n = common length of the arrays'
    first axis) and evaluates metric_fn on every array indexed by the *same* indices (paired resampling).
    The interval is [Q_{α/2}, Q_{1−α/2}] of the finite replicates (numpy's linear quantile). Replicates that
    are NaN (e.g. a resample with no 'bad' label) are dropped and counted in ``n_nan``. ``rng`` must be a
    ``numpy.random.Generator``; no global random state is used. point = metric_fn on the original arrays.
    """
    if not isinstance(rng, np.random.Generator):
        raise MetricInputError(f"rng must be a numpy.random.Generator (got {type(rng).__name__})")
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise MetricInputError(f"n_boot must be a positive integer (got {n_boot!r})")
    if not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise MetricInputError(f"alpha must lie in (0, 1) (got {alpha!r})")
    if not arrays:
        raise MetricInputError("bootstrap_ci needs at least one array to resample")
    data = [np.asarray(a) for a in arrays]
    if any(a.ndim == 0 for a in data):
        raise MetricInputError("bootstrap_ci: every input must be an array, not a scalar")
    lengths = [len(a) for a in data]
    if len(set(lengths)) > 1:
        raise MetricInputError(f"bootstrap_ci: arrays differ in length: {lengths}")
    n = lengths[0]
    if n == 0:
        raise MetricInputError("bootstrap_ci: empty input")

    point = _scalar(metric_fn(*data))
    n_boot = int(n_boot)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        reps[b] = _scalar(metric_fn(*(a[idx] for a in data)))
    finite = reps[~np.isnan(reps)]
    n_nan = n_boot - finite.size
    if finite.size == 0:
        return BootstrapCI(point, float("nan"), float("nan"), n_boot, n_nan, float(alpha))
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapCI(point, float(lo), float(hi), n_boot, n_nan, float(alpha))


def _scalar(value: Any) -> float:
    if np.ndim(value) != 0:
        raise MetricInputError(f"metric_fn must return one number (got shape {np.shape(value)})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MetricInputError(f"metric_fn must return one number (got {type(value).__name__})") from None
    if math.isinf(out):
        raise MetricInputError("metric_fn returned an infinite value")
    return out
