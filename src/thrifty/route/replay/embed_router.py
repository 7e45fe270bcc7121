"""Embedding routers: predict p(the small model's answer is good) from a query's sentence embedding.

RouteLLM-style baselines that see only the query, as vectors (e.g. from :mod:`thrifty.llm.embed`); this module
never loads a model. Labels are 1 (good: the small model's answer is acceptable) or 0 (bad).

- :class:`KNNRouter`: cosine k-nearest neighbours. p_good is the (plain or similarity-weighted) mean label of
  the k most similar training queries, shrunk toward the training mean by ``prior`` pseudo-counts:
  ``(Σ w·y + prior·m) / (Σ w + prior)`` with ``m = (Σ y + 1) / (n + 2)``, so a small k never says exactly 0
  or 1. Weights are 1 (``"uniform"``) or ``(1 + cos) / 2`` (``"similarity"``). With ``k=None``, k is chosen
  from ``ks`` by the lowest held-out log-loss: leave-one-out by default, stratified k-fold with ``folds``.
  Ties in similarity go to the earlier training row; ties in loss to the larger k.
- :class:`LogisticEmbedRouter`: L2-regularised logistic regression, i.e. the probe's multinomial classifier on
  two of its classes (bad and great), with the penalty chosen by the probe's stratified cross-validation.

Both are deterministic (cross-validation folds come from a private generator seeded by ``seed``) and save to
and load from plain JSON-able dicts (:meth:`to_dict`, :func:`router_from_dict`).
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.core.rng import derive_seed

DEFAULT_KS = (3, 5, 7, 11, 15, 21, 31)
DEFAULT_L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
WEIGHTINGS = ("uniform", "similarity")
VERSION = 1
_EPS = 1e-9  # p_good is kept in [_EPS, 1 - _EPS]
_BLOCK_ROWS = 512  # query rows per similarity block (bounds memory at 512 × n floats)
_BAD, _GOOD = 0, 2  # the probe classes standing for bad and good (its "bad" and "great")


# ---------------------------------------------------------------- inputs


def check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Features as a finite float64 (n, d) array with n >= 2, labels as an int64 0/1 vector of length n."""
    X = _check_x(X)
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ConfigError(f"labels must have shape ({X.shape[0]},), got {y.shape}")
    if X.shape[0] < 2:
        raise ConfigError(f"a router needs at least 2 labelled rows, got {X.shape[0]}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) or not np.all(
        (y == 0) | (y == 1)
    ):
        raise ConfigError("labels must be 0 (bad) or 1 (good)")
    return X, y.astype(np.int64)


def _check_x(X: Any, dim: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and dim is not None:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] == 0 or (dim is None and X.shape[0] == 0):
        raise ConfigError(f"features must be an (n, d) array, got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise ConfigError(f"features have {X.shape[1]} columns, the router was fitted on {dim}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("features contain NaN or infinite values")
    return X


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ConfigError(f"row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros; cosine is undefined")
    return X / norms


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of ``p`` for 0/1 labels ``y`` (p clipped to [1e-12, 1 - 1e-12])."""
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# ---------------------------------------------------------------- kNN


def nearest(Q: np.ndarray, T: np.ndarray, k: int, skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities (each (m, k), most similar first) of the ``k`` rows of ``T`` nearest to
    each row of ``Q`` (both unit rows). Equal similarities keep training order. ``skip_self`` (Q is T) leaves
    each row out of its own neighbours."""
    m = Q.shape[0]
    idx = np.empty((m, k), dtype=np.int64)
    sims = np.empty((m, k), dtype=np.float64)
    for start in range(0, m, _BLOCK_ROWS):
        S = Q[start : start + _BLOCK_ROWS] @ T.T
        if skip_self:
            rows = np.arange(S.shape[0])
            S[rows, rows + start] = -np.inf
        order = np.argsort(-S, axis=1, kind="stable")[:, :k]
        idx[start : start + S.shape[0]] = order
        sims[start : start + S.shape[0]] = np.take_along_axis(S, order, axis=1)
    return idx, sims


def _knn_p(labels: np.ndarray, sims: np.ndarray, ks: Sequence[int], prior: float, mean: Any,
           weighting: str) -> dict[int, np.ndarray]:
    """p_good for every k of ``ks`` from neighbours' labels and similarities ((m, K), most similar first)."""
    w = np.ones_like(sims) if weighting == "uniform" else (1.0 + sims) / 2.0
    num, den = np.cumsum(w * labels, axis=1), np.cumsum(w, axis=1)
    out = {k: (num[:, k - 1] + prior * mean) / (den[:, k - 1] + prior) for k in ks}
    return {k: np.clip(p, _EPS, 1.0 - _EPS) for k, p in out.items()}


def _prior_mean(n_good: Any, n: Any) -> Any:
    return (n_good + 1.0) / (n + 2.0)


class KNNRouter:
    """Cosine kNN estimate of p(good); k fixed, or chosen from ``ks`` by held-out log-loss in :meth:`fit`."""

    name = "embed_knn"

    def __init__(self, k: int | None = None, ks: Sequence[int] = DEFAULT_KS, prior: float = 1.0,
                 weighting: str = "uniform", folds: int | None = None) -> None:
        if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
            raise ConfigError(f"k must be a positive integer or None (chosen by cross-validation), got {k!r}")
        ks = tuple(sorted({int(v) for v in ks}))
        if not ks or ks[0] < 1:
            raise ConfigError(f"ks must list positive neighbour counts, got {ks}")
        if not (math.isfinite(prior) and prior >= 0):
            raise ConfigError(f"prior must be a finite number >= 0 (pseudo-counts), got {prior}")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        if folds is not None and folds < 2:
            raise ConfigError(f"folds must be >= 2 (or None: leave-one-out), got {folds}")
        self.k, self.ks, self.prior, self.weighting, self.folds = k, ks, float(prior), weighting, folds
        self.k_: int | None = None
        self.X_: np.ndarray | None = None
        self.y_: np.ndarray | None = None
        self.mean_ = 0.5
        self.cv_log_loss: dict[int, float] = {}

    @property
    def fitted(self) -> bool:
        return self.X_ is not None

    def fit(self, X: Any, y: Any, seed: int = 0) -> KNNRouter:
        """Keep the training rows (as float32 unit vectors) and choose k; ``seed`` fixes the k-fold split."""
        X, y = check_xy(X, y)
        T = _unit_rows(X).astype(np.float32)
        n = len(y)
        if self.k is not None and self.k > n:
            raise ConfigError(f"k={self.k} exceeds the {n} training rows")
        self.X_, self.y_ = T, y
        self.mean_ = float(_prior_mean(y.sum(), n))
        if self.k is not None:
            self.k_, self.cv_log_loss = int(self.k), {}
            return self
        T64 = T.astype(np.float64)
        if self.folds is None:
            self.cv_log_loss = self._loo(T64, y)
        else:
            self.cv_log_loss = self._kfold(T64, y, random.Random(derive_seed(seed, "embed-knn-cv")))
        self.k_ = min(self.cv_log_loss, key=lambda k: (round(self.cv_log_loss[k], 12), -k))
        return self

    def _candidates(self, n_train: int) -> list[int]:
        return [k for k in self.ks if k <= n_train] or [n_train]

    def _loo(self, T: np.ndarray, y: np.ndarray) -> dict[int, float]:
        n = len(y)
        ks = self._candidates(n - 1)
        idx, sims = nearest(T, T, max(ks), skip_self=True)
        mean = _prior_mean(y.sum() - y, n - 1)  # each row's prior leaves that row out too
        ps = _knn_p(y[idx], sims, ks, self.prior, mean, self.weighting)
        return {k: log_loss(p, y) for k, p in ps.items()}

    def _kfold(self, T: np.ndarray, y: np.ndarray, rng: random.Random) -> dict[int, float]:
        from thrifty.route.fit.probe_fit import stratified_folds

        folds = min(self.folds or 2, len(y))
        fold = np.asarray(stratified_folds(y.tolist(), folds, rng))
        ks = self._candidates(min(int(np.sum(fold != f)) for f in range(folds)))
        held = {k: np.empty(len(y)) for k in ks}
        for f in range(folds):
            test = fold == f
            if not test.any():
                continue
            train_y = y[~test]
            idx, sims = nearest(T[test], T[~test], max(ks))
            ps = _knn_p(train_y[idx], sims, ks, self.prior, _prior_mean(train_y.sum(), len(train_y)),
                        self.weighting)
            for k, p in ps.items():
                held[k][test] = p
        return {k: log_loss(p, y) for k, p in held.items()}

    def p_good(self, X: Any) -> np.ndarray:
        """p(good) per row of ``X`` (n, d), in (0, 1). Training rows count as their own neighbours."""
        if self.X_ is None or self.y_ is None or self.k_ is None:
            raise ConfigError("the kNN router is not fitted; call fit() or from_dict() first")
        Q = _unit_rows(_check_x(X, self.X_.shape[1]))
        idx, sims = nearest(Q, self.X_.astype(np.float64), self.k_)
        return _knn_p(self.y_[idx], sims, [self.k_], self.prior, self.mean_, self.weighting)[self.k_]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the fitted router (training rows as base64 float32)."""
        if self.X_ is None or self.y_ is None:
            raise ConfigError("the kNN router is not fitted; nothing to save")
        return {"kind": "knn", "version": VERSION,
                "config": {"k": self.k, "ks": list(self.ks), "prior": self.prior, "weighting": self.weighting,
                           "folds": self.folds},
                "k": self.k_, "mean": self.mean_,
                "cv_log_loss": {str(k): v for k, v in self.cv_log_loss.items()},
                "shape": list(self.X_.shape), "X": _encode(self.X_), "y": self.y_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KNNRouter:
        """The router saved by :meth:`to_dict`; anything malformed raises a one-line ConfigError."""
        _check_kind(d, "knn")
        try:
            router = cls(**d["config"])
            n, dim = (int(v) for v in d["shape"])
            X = _decode(d["X"], (n, dim))
            y = np.asarray(d["y"], dtype=np.int64)
            k, mean = int(d["k"]), float(d["mean"])
            losses = {int(key): float(v) for key, v in d.get("cv_log_loss", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a saved kNN router ({type(exc).__name__}: {exc})") from None
        if y.shape != (n,) or not np.all((y == 0) | (y == 1)) or not 1 <= k <= n or not 0 < mean < 1:
            raise ConfigError("saved kNN router is inconsistent (labels, k or mean out of range)")
        router.X_, router.y_, router.k_, router.mean_, router.cv_log_loss = X, y, k, mean, losses
        return router


def _encode(X: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(X, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) != 4 * shape[0] * shape[1]:
        raise ValueError(f"X holds {len(raw)} bytes, shape {shape} needs {4 * shape[0] * shape[1]}")
    X = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(X)):
        raise ValueError("X holds NaN or infinite values")
    return X


# ---------------------------------------------------------------- logistic regression


class LogisticEmbedRouter:
    """L2-regularised logistic regression on embeddings, the penalty chosen from ``l2_grid`` by stratified
    ``folds``-fold cross-validation (one value: no cross-validation)."""

    name = "embed_logistic"

    def __init__(self, l2_grid: Sequence[float] = DEFAULT_L2_GRID, folds: int = 5) -> None:
        grid = tuple(sorted({float(v) for v in l2_grid}))
        if not grid or not all(math.isfinite(v) and v > 0 for v in grid):
            raise ConfigError(f"l2_grid must list positive penalties, got {list(l2_grid)}")
        if folds < 2:
            raise ConfigError(f"folds must be >= 2, got {folds}")
        self.l2_grid, self.folds = grid, int(folds)
        self.l2_: float | None = None
        self.cv_log_loss: dict[float, float] = {}
        self.probe: Any = None

    @property
    def fitted(self) -> bool:
        return self.probe is not None

    def fit(self, X: Any, y: Any, seed: int = 0) -> LogisticEmbedRouter:
        """Choose the penalty by cross-validation (folds seeded by ``seed``), then fit on every row."""
        from thrifty.route.fit.probe_fit import choose_l2
        from thrifty.route.predictors.probe import ProbeClassifier

        X, y = check_xy(X, y)
        y3 = np.where(y == 1, _GOOD, _BAD)
        rng = random.Random(derive_seed(seed, "embed-logistic-cv"))
        self.l2_, self.cv_log_loss = choose_l2(X, y3, self.l2_grid, self.folds, rng)
        self.probe = ProbeClassifier(l2=self.l2_).fit(X, y3, model=self.name)
        return self

    def p_good(self, X: Any) -> np.ndarray:
        """p(good) per row of ``X`` (n, d), in (0, 1)."""
        if self.probe is None:
            raise ConfigError("the logistic router is not fitted; call fit() or from_dict() first")
        p = self.probe.predict_proba(_check_x(X, self.probe.mean.shape[0]))
        return np.clip(1.0 - p[:, _BAD], _EPS, 1.0 - _EPS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the fitted router (the probe's weights and standardisation)."""
        if self.probe is None:
            raise ConfigError("the logistic router is not fitted; nothing to save")
        pr = self.probe
        return {"kind": "logistic", "version": VERSION,
                "config": {"l2_grid": list(self.l2_grid), "folds": self.folds},
                "l2": self.l2_, "cv_log_loss": {repr(k): v for k, v in self.cv_log_loss.items()},
                "weights": pr.weights.tolist(), "bias": pr.bias.tolist(), "mean": pr.mean.tolist(),
                "std": pr.std.tolist(), "present": pr.present.tolist(), "meta": pr.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticEmbedRouter:
        """The router saved by :meth:`to_dict`; anything malformed raises a one-line ConfigError."""
        from thrifty.route.predictors.probe import CLASSES, ProbeClassifier

        _check_kind(d, "logistic")
        try:
            router = cls(**d["config"])
            l2 = float(d["l2"])
            arrays = {key: np.asarray(d[key], dtype=np.float64) for key in ("weights", "bias", "mean", "std")}
            present = np.asarray(d["present"], dtype=bool)
            losses = {float(key): float(v) for key, v in d.get("cv_log_loss", {}).items()}
            meta = dict(d.get("meta", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a saved logistic router ({type(exc).__name__}: {exc})") from None
        dim, k = arrays["mean"].shape[0] if arrays["mean"].ndim == 1 else 0, int(present.sum())
        shapes = {"weights": (k, dim), "bias": (k,), "mean": (dim,), "std": (dim,)}
        bad_shape = any(arrays[a].shape != s for a, s in shapes.items())
        if present.shape != (len(CLASSES),) or dim == 0 or bad_shape:
            raise ConfigError("saved logistic router has arrays of inconsistent shapes")
        finite = all(np.all(np.isfinite(a)) for a in arrays.values())
        if not finite or np.any(arrays["std"] <= 0) or not l2 > 0:
            raise ConfigError("saved logistic router holds non-finite values, a non-positive std or l2")
        probe = ProbeClassifier(l2=l2)
        probe.weights, probe.bias = arrays["weights"], arrays["bias"]
        probe.mean, probe.std = arrays["mean"], arrays["std"]
        probe.present, probe.meta = present, meta
        router.l2_, router.cv_log_loss, router.probe = l2, losses, probe
        return router


# ---------------------------------------------------------------- files


def _check_kind(d: Any, kind: str) -> None:
    if not isinstance(d, dict) or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise ConfigError(f"expected a saved {kind} router, got {got!r}")
    if d.get("version") != VERSION:
        raise ConfigError(f"saved {kind} router has version {d.get('version')!r}; this code reads {VERSION}")


def router_from_dict(d: Any) -> KNNRouter | LogisticEmbedRouter:
    """A fitted router from :meth:`KNNRouter.to_dict` or :meth:`LogisticEmbedRouter.to_dict` output."""
    kinds = {"knn": KNNRouter, "logistic": LogisticEmbedRouter}
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in kinds:
        raise ConfigError(f"unknown saved router kind {kind!r}; expected one of {', '.join(kinds)}")
    return kinds[kind].from_dict(d)
