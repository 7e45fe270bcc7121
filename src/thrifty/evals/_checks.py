"""Input checks shared by the metric modules: arrays in, validated numpy arrays out, one-line errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError

LABELS = ("bad", "ok", "great")
PROB_ATOL = 1e-4


class MetricInputError(ConfigError, ValueError):
    """A metric got an input it cannot use (wrong shape, out of range, empty); catchable as ValueError too."""


def _array(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise MetricInputError(f"{name}: cannot be read as an array ({exc})") from None


def as_float_1d(x: Any, name: str, *, unit: bool = False, nonneg: bool = False) -> np.ndarray:
    """A non-empty finite 1-D float array; ``unit`` requires values in [0, 1], ``nonneg`` values ≥ 0."""
    a = _array(x, name)
    if a.ndim != 1:
        raise MetricInputError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise MetricInputError(f"{name}: empty input")
    try:
        a = a.astype(float)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name}: values must be numbers") from None
    if not np.all(np.isfinite(a)):
        raise MetricInputError(f"{name}: contains NaN or infinite values")
    if unit and (a.min() < 0.0 or a.max() > 1.0):
        raise MetricInputError(f"{name}: values must lie in [0, 1] (got min {a.min():.4g}, max {a.max():.4g})")
    if nonneg and a.min() < 0.0:
        raise MetricInputError(f"{name}: values must be ≥ 0 (got min {a.min():.4g})")
    return a


def as_labels(y: Any, name: str = "labels", k: int = 3) -> np.ndarray:
    """Integer labels in {0..k-1} (bad=0, ok=1, great=2); the names 'bad', 'ok', 'great' are accepted too."""
    a = _array(y, name)
    if a.ndim != 1:
        raise MetricInputError(f"{name}: expected a 1-D array of labels, got shape {a.shape}")
    if a.size == 0:
        raise MetricInputError(f"{name}: empty input")
    if a.dtype.kind in "UO":
        lookup = {lab: i for i, lab in enumerate(LABELS[:k])}
        unknown = sorted({str(v) for v in a.tolist() if v not in lookup})
        if unknown:
            raise MetricInputError(f"{name}: unknown label(s) {unknown[:3]}; use {list(LABELS[:k])} or 0..{k - 1}")
        return np.array([lookup[v] for v in a.tolist()], dtype=np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise MetricInputError(f"{name}: labels must be whole numbers 0..{k - 1}")
    elif a.dtype.kind not in "iub":
        raise MetricInputError(f"{name}: labels must be integers 0..{k - 1} or label names")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() > k - 1:
        raise MetricInputError(f"{name}: labels must lie in 0..{k - 1} (got {a.min()}..{a.max()})")
    return a


def as_probs(p: Any, name: str = "probs", k: int = 3, atol: float = PROB_ATOL) -> np.ndarray:
    """An (n, k) float array of rows in [0, 1] that sum to 1 within ``atol``."""
    a = _array(p, name)
    if a.ndim != 2 or a.shape[1] != k:
        raise MetricInputError(f"{name}: expected shape (n, {k}), got {a.shape}")
    if a.shape[0] == 0:
        raise MetricInputError(f"{name}: empty input")
    a = a.astype(float)
    if not np.all(np.isfinite(a)):
        raise MetricInputError(f"{name}: contains NaN or infinite values")
    if a.min() < -atol or a.max() > 1.0 + atol:
        raise MetricInputError(f"{name}: probabilities must lie in [0, 1]")
    err = np.abs(a.sum(axis=1) - 1.0)
    if err.max() > atol:
        i = int(np.argmax(err))
        raise MetricInputError(f"{name}: row {i} sums to {a[i].sum():.6g}, not 1 (tolerance {atol:g})")
    return np.clip(a, 0.0, 1.0)


def as_p_good(p: Any, name: str = "probs") -> np.ndarray:
    """p_good per query: a 1-D array is taken as p_good itself; an (n, 3) array gives p_ok + p_great."""
    a = _array(p, name)
    if a.ndim == 2:
        probs = as_probs(a, name)
        return np.clip(probs[:, 1] + probs[:, 2], 0.0, 1.0)
    return as_float_1d(a, name, unit=True)


def same_length(**arrays: np.ndarray) -> int:
    """The common length of the arrays (first axis); a one-line error naming the lengths otherwise."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise MetricInputError(f"inputs differ in length: {shown}")
    return next(iter(lengths.values()))


def check_bins(n_bins: Any) -> int:
    """A positive whole number of bins."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise MetricInputError(f"n_bins must be a positive integer (got {n_bins!r})")
    return int(n_bins)
