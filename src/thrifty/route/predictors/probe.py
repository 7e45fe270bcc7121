"""Hidden-state probe: a logistic-regression head on the model's own hidden state predicts the judge's grade.

In the spirit of P(IK) (a trained head predicting "I know"), but read at exactly the position the zero-shot
predictor reads its label: the conversation under the zero-shot instruction, assistant turn prefilled with the
prefix (``"Grade:"``), last prompt token. One forward pass, no generated tokens; the answer, if any, continues
from the same prompt as with the other predictors.

Training data: examples joined with the judge's grades of this model's answers (:func:`labelled_examples`),
turned into features by :func:`collect_features`, fitted by :class:`ProbeClassifier` (multinomial logistic
regression in numpy: standardised features, L2 penalty on the weights, Newton steps solved by conjugate
gradients with a backtracking line search — deterministic, no randomness).

Classes the training set lacks get a floor probability (:data:`ABSENT_FLOOR` each) and the classes that were
seen share the rest, so a probe never says a grade is impossible only because it never saw one (and never NaN).
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.types import Messages, content_hash
from thrifty.judge.base import LABEL_INDEX, LABELS
from thrifty.llm.capabilities import HIDDEN_STATE, count_prompt_tokens, supports
from thrifty.route.predictors.base import DEFAULT_PREFIX, RUBRIC_TEXT, Prediction, PromptPredictor
from thrifty.route.predictors.base import prompt_version as base_prompt_version

PROBE_VERSION = 1
CLASSES: tuple[str, ...] = tuple(sorted(LABELS, key=LABEL_INDEX.__getitem__))
"""Column order of :meth:`ProbeClassifier.predict_proba`: bad, ok, great (the ordinal class index)."""

ABSENT_FLOOR = 1e-3
"""Probability given to each class that never occurred in the training labels."""

_ARRAYS = ("weights", "bias", "mean", "std", "present")


@dataclass
class ProbeData:
    """Features (one row per example), ordinal labels (bad=0, ok=1, great=2) and where each row came from."""

    X: np.ndarray
    y: np.ndarray
    ids: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


def labelled_examples(
    store: Any, model: str, examples: Mapping[str, Iterable[Any]], split: str, judge: str = "verifier"
) -> list[tuple[str, Any, str]]:
    """(task, example, label) for every example of ``examples`` (task → Examples) that ``judge`` graded for
    ``model`` on ``split``. Unparsed grades and ungraded examples are left out; a later grade record of one
    example replaces an earlier one."""
    from thrifty.judge.cache import stored_labels

    found = stored_labels(store, model, split, judge)
    out = []
    for task, exs in examples.items():
        for ex in exs:
            label = found.get((task, ex.id))
            if label in LABELS:
                out.append((task, ex, label))
    return out


def prompt_version(predictor: PromptPredictor) -> str:
    """A short hash of what fixes the probed position: instruction text, prefix and placement."""
    return base_prompt_version(predictor, PROBE_VERSION)


def feature(model: Any, prompt: Messages, prefix: str, layer: int | None = None) -> np.ndarray:
    """The model's hidden state at the prediction position (after ``prefix``), as a float64 vector."""
    if not supports(model, HIDDEN_STATE):
        raise ConfigError(f"model {getattr(model, 'model_id', model)!r} cannot return hidden states")
    kw = {} if layer is None else {"layer": layer}
    vec = np.asarray(model.hidden_state(prompt, assistant_prefix=prefix, **kw), dtype=np.float64).reshape(-1)
    if not vec.size or not np.all(np.isfinite(vec)):
        raise DataError(f"model {getattr(model, 'model_id', '?')!r} returned a non-finite or empty hidden state")
    return vec


def collect_features(
    model: Any, labelled: Sequence[tuple[str, Any, str]], prefix: str = DEFAULT_PREFIX,
    rubric_text: str = RUBRIC_TEXT, placement: str = "start", layer: int | None = None, plain: bool = False,
) -> ProbeData:
    """Features and labels for ``labelled`` (from :func:`labelled_examples`): each example's messages under the
    zero-shot instruction, read at the position right after ``prefix`` — or, with ``plain``, the conversation
    itself read at its last token (the plain-prompt probe's position)."""
    if not labelled:
        raise ConfigError("no labelled examples to probe; collect with a judge first")
    from thrifty.core.progress import Progress

    reader = PromptPredictor(model, prefix, rubric_text, placement)
    rows, ys, ids, tasks = [], [], [], []
    with Progress(len(labelled), "hidden states" + (" (plain prompt)" if plain else "")) as bar:
        for task, ex, label in labelled:
            if plain:
                rows.append(feature(model, ex.messages(), "", layer))
            else:
                rows.append(feature(model, reader.prompt(ex.messages(), task), prefix, layer))
            ys.append(LABEL_INDEX[label])
            ids.append(str(ex.id))
            tasks.append(str(task))
            bar.advance()
    if len({r.size for r in rows}) != 1:
        raise DataError("hidden states of different sizes; one model and layer per probe")
    return ProbeData(np.stack(rows), np.asarray(ys, dtype=np.int64), ids, tasks)


class ProbeClassifier:
    """Multinomial logistic regression over the three grades.

    Minimises mean cross-entropy + ``l2``/2 · ‖W‖² on standardised features (the intercept is not penalised);
    only the classes present in ``y`` are modelled. ``meta`` carries provenance (model id, layer, prompt
    version...) saved with the weights.
    """

    def __init__(self, l2: float = 1e-2, max_iter: int = 100, tol: float = 1e-8) -> None:
        if not l2 > 0:
            raise ConfigError(f"l2 must be > 0 (it keeps separable data finite), got {l2}")
        self.l2, self.max_iter, self.tol = float(l2), int(max_iter), float(tol)
        self.weights = self.bias = self.mean = self.std = None
        self.present = np.zeros(len(CLASSES), dtype=bool)
        self.meta: dict[str, Any] = {}
        self.n_iter = 0

    # ---- fitting ----------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, **meta: Any) -> ProbeClassifier:
        """Fit on features ``X`` (n, d) and ordinal labels ``y`` (bad=0, ok=1, great=2); ``meta`` is recorded."""
        X, y = _check_xy(X, y)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        Z = (X - self.mean) / self.std
        self.present = np.bincount(y, minlength=len(CLASSES)) > 0
        cls = np.flatnonzero(self.present)
        Y = (y[:, None] == cls[None, :]).astype(np.float64)
        theta = np.zeros((len(cls), X.shape[1] + 1))
        if len(cls) > 1:
            theta = self._newton(Z, Y, theta)
        self.weights, self.bias = theta[:, :-1], theta[:, -1]
        acc = float(np.mean(self.predict_proba(X).argmax(axis=1) == y))
        counts = {lab: int(np.sum(y == LABEL_INDEX[lab])) for lab in CLASSES}
        self.meta = {**meta, "feature_dim": int(X.shape[1]), "label_counts": counts, "train_accuracy": acc,
                     "n_train": int(X.shape[0]), "l2": self.l2, "version": PROBE_VERSION}
        return self

    def objective(self, theta: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        """Mean cross-entropy + L2 term at parameters ``theta`` (classes × (d + 1), last column intercepts)."""
        logits = Z @ theta[:, :-1].T + theta[:, -1]
        lse = _logsumexp(logits)
        nll = float(np.mean(lse - np.sum(Y * logits, axis=1)))
        return nll + 0.5 * self.l2 * float(np.sum(theta[:, :-1] ** 2))

    def gradient(self, theta: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`objective` with respect to ``theta``."""
        P = _softmax(Z @ theta[:, :-1].T + theta[:, -1])
        R = (P - Y) / Z.shape[0]
        g = np.concatenate([R.T @ Z, R.sum(axis=0)[:, None]], axis=1)
        g[:, :-1] += self.l2 * theta[:, :-1]
        return g

    def _newton(self, Z: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> np.ndarray:
        n = Z.shape[0]
        f = self.objective(theta, Z, Y)
        for it in range(self.max_iter):
            self.n_iter = it + 1
            g = self.gradient(theta, Z, Y)
            if np.sqrt(np.sum(g**2)) < self.tol:
                break
            P = _softmax(Z @ theta[:, :-1].T + theta[:, -1])

            def hess_vec(v: np.ndarray, P: np.ndarray = P) -> np.ndarray:
                a = Z @ v[:, :-1].T + v[:, -1]  # (n, k)
                r = P * (a - np.sum(P * a, axis=1, keepdims=True)) / n
                out = np.concatenate([r.T @ Z, r.sum(axis=0)[:, None]], axis=1)
                out[:, :-1] += self.l2 * v[:, :-1]
                out[:, -1] += 1e-10 * v[:, -1]  # intercepts are only defined up to a shared shift
                return out

            step = _conjugate_gradient(hess_vec, -g, max_iter=200)
            slope = float(np.sum(g * step))
            t = 1.0
            while t > 1e-10:
                new = theta + t * step
                f_new = self.objective(new, Z, Y)
                if f_new <= f + 1e-4 * t * slope:
                    break
                t *= 0.5
            else:
                break
            if f - f_new < 1e-15 * max(1.0, abs(f)):
                theta, f = new, f_new
                break
            theta, f = new, f_new
        return theta

    # ---- prediction -------------------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 3) probabilities in :data:`CLASSES` order (bad, ok, great); absent classes get the floor."""
        if not self.fitted:
            raise ConfigError("probe is not fitted; call fit() or load() first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise DataError(f"features have shape {X.shape}, the probe expects (n, {self.mean.shape[0]})")
        Z = (X - self.mean) / self.std
        P = _softmax(Z @ self.weights.T + self.bias)
        n_absent = int(np.sum(~self.present))
        out = np.full((X.shape[0], len(CLASSES)), ABSENT_FLOOR)
        out[:, self.present] = P * (1.0 - ABSENT_FLOOR * n_absent)
        return out

    @property
    def version(self) -> str:
        """A short hash of the fitted weights and meta: the key of predictions made with this probe."""
        if not self.fitted:
            raise ConfigError("probe is not fitted; it has no version")
        parts = [np.ascontiguousarray(getattr(self, k)).tobytes() for k in _ARRAYS]
        return content_hash({"arrays": [hashlib.sha256(b).hexdigest() for b in parts], "meta": self.meta})[:12]

    # ---- files ------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write weights and standardisation (npz) with the JSON meta inside the same file."""
        if not self.fitted:
            raise ConfigError("probe is not fitted; nothing to save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(fh, weights=self.weights, bias=self.bias, mean=self.mean, std=self.std,
                     present=self.present, meta=np.array(json.dumps(self.meta, sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbeClassifier:
        """Read a probe written by :meth:`save`; anything malformed raises a one-line DataError."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in _ARRAYS}
                meta = json.loads(str(data["meta"]))
        except FileNotFoundError:
            raise DataError(f"{path}: probe file not found") from None
        except KeyError as exc:
            raise DataError(f"{path}: probe file lacks {exc}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # not an npz, pickled, bad JSON
            raise DataError(f"{path}: not a probe file ({type(exc).__name__}: {exc})") from None
        _check_loaded(path, arrays, meta)
        probe = cls(l2=meta["l2"])
        probe.weights, probe.bias = arrays["weights"].astype(np.float64), arrays["bias"].astype(np.float64)
        probe.mean, probe.std = arrays["mean"].astype(np.float64), arrays["std"].astype(np.float64)
        probe.present, probe.meta = arrays["present"].astype(bool), meta
        return probe

    def check_compatible(self, model_id: str | None = None, prompt: str | None = None,
                         layer: int | None = None, where: str = "probe") -> None:
        """Raise a one-line DataError if the probe was trained for another model, prompt or layer."""
        for key, want in (("model", model_id), ("prompt_version", prompt), ("layer", layer)):
            have = self.meta.get(key)
            if want is not None and have is not None and have != want:
                raise DataError(f"{where}: trained with {key}={have!r}, used with {key}={want!r}")


class ProbePredictor(PromptPredictor):
    """Predicts the grade from ``model``'s hidden state at the zero-shot prediction position with ``probe``.

    The prompt (and so :meth:`continuation`) is the zero-shot predictor's; ``layer`` is passed to backends that
    take one (None: the backend's default, the final layer).
    """

    name = "probe"

    def __init__(self, model: Any, probe: ProbeClassifier, prefix: str = DEFAULT_PREFIX,
                 rubric_text: str = RUBRIC_TEXT, placement: str = "start", layer: int | None = None) -> None:
        super().__init__(model, prefix, rubric_text, placement)
        if not probe.fitted:
            raise ConfigError("probe is not fitted; call fit() or load() first")
        probe.check_compatible(getattr(model, "model_id", None), prompt_version(self), layer)
        self.probe, self.layer = probe, layer

    def predict(self, messages: Messages, task: str | None = None) -> Prediction:
        return probe_prediction(self.probe, self.model, self.prompt(messages, task), self.prefix, self.layer,
                                "probe")


def probe_prediction(probe: ProbeClassifier, model: Any, prompt: Messages, prefix: str, layer: int | None,
                     method: str) -> Prediction:
    """One probe read: ``model``'s hidden state at (``prompt``, ``prefix``) classified by ``probe``, with the
    prompt tokens the read evaluated and its wall time (shared by the instruction and plain-prompt probes)."""
    t0 = time.perf_counter()
    p = probe.predict_proba(feature(model, prompt, prefix, layer))[0]
    return Prediction.from_class_probs(p, tokens_in=count_prompt_tokens(model, prompt, prefix),
                                       latency_s=time.perf_counter() - t0, method=method)


def fit_probe(data: ProbeData, model_id: str, predictor: PromptPredictor | None = None,
              layer: int | None = None, l2: float = 1e-2) -> ProbeClassifier:
    """Fit a probe on ``data`` and record its provenance (model id, layer, prompt version)."""
    version = prompt_version(predictor) if predictor is not None else None
    return ProbeClassifier(l2=l2).fit(data.X, data.y, model=model_id, layer=layer, prompt_version=version)


def _check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"features must be a non-empty (n, d) array, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ConfigError(f"labels must have shape ({X.shape[0]},), got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("features contain NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(CLASSES):
        raise ConfigError(f"labels must be class indices 0..{len(CLASSES) - 1} (bad, ok, great)")
    return X, y.astype(np.int64)


def _check_loaded(path: Path, a: dict[str, np.ndarray], meta: Any) -> None:
    if not isinstance(meta, dict):
        raise DataError(f"{path}: probe meta is not a JSON object")
    present = a["present"]
    if present.shape != (len(CLASSES),) or present.dtype != bool:
        raise DataError(f"{path}: 'present' must be {len(CLASSES)} booleans")
    k, d = int(present.sum()), a["mean"].shape[0] if a["mean"].ndim == 1 else -1
    shapes = {"weights": (k, d), "bias": (k,), "mean": (d,), "std": (d,)}
    for name, shape in shapes.items():
        if a[name].shape != shape or not np.issubdtype(a[name].dtype, np.floating):
            raise DataError(f"{path}: {name!r} has shape {a[name].shape}, expected {shape} floats")
        if not np.all(np.isfinite(a[name])):
            raise DataError(f"{path}: {name!r} holds NaN or infinite values")
    if k == 0 or d <= 0 or np.any(a["std"] <= 0):
        raise DataError(f"{path}: probe has no classes, no features or a non-positive std")
    if meta.get("feature_dim", d) != d:
        raise DataError(f"{path}: meta says feature_dim={meta['feature_dim']}, weights have {d}")
    if not isinstance(meta.get("l2"), (int, float)) or not meta["l2"] > 0:
        raise DataError(f"{path}: probe meta lacks a positive 'l2'")
    if meta.get("version", PROBE_VERSION) != PROBE_VERSION:
        raise DataError(f"{path}: probe version {meta['version']} is not the supported {PROBE_VERSION}")


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _conjugate_gradient(matvec: Any, b: np.ndarray, max_iter: int = 200, rtol: float = 1e-10) -> np.ndarray:
    """Solve matvec(x) = b for a symmetric positive-definite operator (arrays of any shape)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = float(np.sum(r * r))
    stop = rtol * rtol * max(rs, 1e-300)
    for _ in range(max_iter):
        if rs <= stop:
            break
        ap = matvec(p)
        alpha = rs / float(np.sum(p * ap))
        x += alpha * p
        r -= alpha * ap
        rs_new = float(np.sum(r * r))
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x
