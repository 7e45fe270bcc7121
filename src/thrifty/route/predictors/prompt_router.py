"""Prompt router as a deployable predictor: the small model's grade predicted from the query text alone.

Where answers are short, any read of the small model costs about what its answer costs: a deferred query still
pays the prefill, and nothing before the answer can be cheap relative to it. There a router that never calls
the small model before deciding is the one that pays — a deferral costs the large model only. This predictor
is that router: hashed word unigrams and bigrams of the last user message, a log-length bucket and the task tag
(:func:`prompt_features`) under the probe's logistic model, fitted on the small model's
judged train answers (``thrifty route probe fit --position prompt``; no model is loaded). Its prediction costs
no token; the answer, when it answers, is the plain conversation. The same features and classifier are the
``prompt_router`` baseline of ``thrifty route eval``; this makes it a router file's predictor, so calibration
can choose it on val when it beats the self-prediction probes there.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages, content_hash
from thrifty.judge.base import LABEL_INDEX
from thrifty.route.predictors.base import PlainConversation, Prediction
from thrifty.route.predictors.probe import PROBE_VERSION, ProbeClassifier, ProbeData

FEATURES_VERSION = 1  # bump when prompt_features changes what it computes
DEFAULT_DIM = 2048
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)  # signed hashing keeps collisions unbiased


def last_user_text(messages: Messages) -> str:
    """The last user message's content ("" when there is none)."""
    users = [m for m in messages if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def prompt_features(text: str, task: str = "", dim: int = DEFAULT_DIM) -> np.ndarray:
    """Hashed unigram + bigram counts of ``text`` (lower-cased words and punctuation), a log-length feature and
    the task tag, in ``dim`` signed buckets, L2-normalised."""
    words = _WORD.findall(text.lower())
    vec = np.zeros(dim, dtype=np.float64)
    tokens = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    tokens += [f"task:{task}", f"len:{min(12, int(math.log2(1 + len(words))))}"]
    for tok in tokens:
        i, sign = _bucket(tok, dim)
        vec[i] += sign
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def prompt_router_version(dim: int) -> str:
    """The prompt version a prompt-router probe records (features, their size, the probe's version)."""
    return content_hash({"position": "prompt", "dim": dim, "features": FEATURES_VERSION, "v": PROBE_VERSION})[:16]


def prompt_vector(messages: Messages, task: str | None, dim: int) -> np.ndarray:
    """The features of one query (its last user message and task tag)."""
    return prompt_features(last_user_text(messages), task or "", dim)


def prompt_data(labelled: Sequence[tuple[str, Any, str]], dim: int) -> ProbeData:
    """Features and labels for ``labelled`` (task, example, label) rows — the query text only."""
    if not labelled:
        raise ConfigError("no labelled examples to fit a prompt router on; collect with a judge first")
    X = np.stack([prompt_vector(ex.messages(), task, dim) for task, ex, _ in labelled])
    y = np.array([LABEL_INDEX[lab] for _, _, lab in labelled], dtype=np.int64)
    return ProbeData(X, y, [str(ex.id) for _, ex, _ in labelled], [str(t) for t, _, _ in labelled])


def fit_prompt_router(data: ProbeData, model_id: str, l2: float = 1e-2) -> ProbeClassifier:
    """A prompt router fitted on ``data``, recording the model whose grades it predicts and its feature version."""
    dim = int(data.X.shape[1])
    return ProbeClassifier(l2=l2).fit(data.X, data.y, model=model_id, layer=None,
                                      prompt_version=prompt_router_version(dim), features="prompt", dim=dim)


class PromptRouterPredictor(PlainConversation):
    """Predicts ``model``'s grade from the query text with a fitted prompt router (see the module notes).

    ``prompt`` is the conversation itself and ``continuation`` empty: an answer is the plain conversation. A
    prediction reads no model, so it reports no tokens."""

    name = "prompt_router"

    def __init__(self, model: Any, probe: ProbeClassifier) -> None:
        if not probe.fitted:
            raise ConfigError("prompt router is not fitted; fit one with `thrifty route probe fit --position prompt`")
        self.dim = int(probe.meta.get("dim") or probe.meta.get("feature_dim") or 0)
        if self.dim < 1:
            raise ConfigError("prompt router file does not record its feature size")
        probe.check_compatible(getattr(model, "model_id", None), prompt_router_version(self.dim), None,
                               where="prompt router")
        self.model, self.probe = model, probe

    def predict(self, messages: Messages, task: str | None = None) -> Prediction:
        t0 = time.perf_counter()
        p = self.probe.predict_proba(prompt_vector(messages, task, self.dim)[None, :])[0]
        return Prediction.from_class_probs(p, latency_s=time.perf_counter() - t0, method="prompt_router")


__all__ = [
    "DEFAULT_DIM",
    "FEATURES_VERSION",
    "PromptRouterPredictor",
    "fit_prompt_router",
    "last_user_text",
    "prompt_data",
    "prompt_features",
    "prompt_router_version",
    "prompt_vector",
]
