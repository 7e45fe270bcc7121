"""Deferral baselines beside self-prediction: a prompt-only learned router (RouteLLM-style), AutoMix-style
self-verification after answering (P(True)) and Chow's token log-probability rule.

P(True) asks the small model, after its own answer, whether that answer is correct and reads P(True) from one
next-token distribution over True/False; it needs the answer first, so it always pays the small model's answer
plus the verification prompt.

The prompt-only router sees only the query — never the small model — and learns, from the small model's
judged *train* answers (the same records the report card and the fine-tuned predictor learn from), how likely
the small model's answer is to be acceptable (not ``bad``). Features (:func:`prompt_features`): hashed word
unigrams and bigrams of the last user message (a stable hash, not Python's salted one), its length in log-words,
and the task tag; L2-normalised. Classifier: the probe's multinomial logistic regression (numpy, deterministic)
with L2 chosen by stratified cross-validation on the train split. RouteLLM proper trains on human preference
between a strong and a weak model; ours predicts the small model's own grade from the prompt — the same target
as every other predictor here, so the comparison isolates what looking inside the model adds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from thrifty.core.errors import DataError
from thrifty.core.types import Messages
from thrifty.route.predictors.prompt_router import (  # noqa: F401  (prompt_features re-exported: the features
    DEFAULT_DIM,  # live with the prompt-router predictor, which is this router made deployable)
    last_user_text,
    prompt_features,
    prompt_vector,
)


class PromptRouter:
    """p(small model's answer is acceptable) from the prompt alone; fitted with :meth:`fit`."""

    name = "prompt_router"

    def __init__(self, dim: int = DEFAULT_DIM) -> None:
        self.dim = dim
        self.probe: Any = None
        self.l2: float | None = None

    def features(self, rows: Sequence[tuple[str, Messages]]) -> np.ndarray:
        return np.stack([prompt_vector(m, t, self.dim) for t, m in rows])

    def fit(self, rows: Sequence[tuple[str, Messages]], good: Sequence[bool], seed: int = 0,
            grid: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0)) -> PromptRouter:
        """Fit on (task, messages) rows labelled acceptable (True) or bad (False)."""
        from thrifty.route.fit.probe_fit import choose_l2
        from thrifty.route.predictors.probe import ProbeClassifier

        if len(rows) != len(good) or len(rows) < 2:
            raise DataError("the prompt router needs at least two labelled training queries")
        X = self.features(rows)
        y = np.where(np.asarray(good, dtype=bool), 2, 0)
        self.l2, _ = choose_l2(X, y, grid, 5, random.Random(seed))
        self.probe = ProbeClassifier(l2=self.l2).fit(X, y, model="prompt_router")
        return self

    def p_good(self, rows: Sequence[tuple[str, Messages]]) -> np.ndarray:
        """p(acceptable) per (task, messages) row."""
        if self.probe is None:
            raise DataError("the prompt router is not fitted")
        p = self.probe.predict_proba(self.features(rows))
        return 1.0 - p[:, 0]


P_TRUE_QUESTION = "Is the answer you just gave correct? Reply with only True or False."
"""AutoMix-style self-verification: asked after the model's own answer, read as P(True) from one distribution."""
P_TRUE_LABELS = ("True", "False")
P_TRUE_VERSION = 1


def p_true_messages(messages: Messages, answer: str) -> Messages:
    """The conversation, the model's answer, then the verification question."""
    return [*(dict(m) for m in messages), {"role": "assistant", "content": answer},
            {"role": "user", "content": P_TRUE_QUESTION}]


def p_true(model: Any, messages: Messages, answer: str) -> dict[str, Any]:
    """P(True) of the model's own ``answer`` (0.5 when unreadable), with the read's accounting; ``defer`` is the
    deferral score 1 − P(True)."""
    lp = model.label_probs(p_true_messages(messages, answer), list(P_TRUE_LABELS))
    readable = bool(lp.parsed) and lp.mass > 0
    pt = float(lp.probs.get("True", 0.5)) if readable else 0.5
    return {"p_true": pt, "defer": 1.0 - pt, "parsed": readable, "tokens_in": int(lp.tokens_in),
            "latency_s": float(lp.latency_s)}


CHOW_VERSION = 1
EMPTY_ANSWER_LOGPROB = -50.0
"""Mean log-prob given to an empty answer: it is deferred before any real one."""


def chow(model: Any, messages: Messages, answer: str) -> dict[str, Any]:
    """Chow-average confidence of ``answer``: the mean log-probability of its tokens under the model that wrote
    it; ``defer`` = −mean (low confidence defers first). Needs a backend with ``token_logprobs``."""
    from thrifty.core.errors import ConfigError
    from thrifty.llm.capabilities import TOKEN_LOGPROBS, supports

    if not supports(model, TOKEN_LOGPROBS):
        raise ConfigError(f"model {getattr(model, 'model_id', model)!r} cannot score token log-probs (Chow)")
    lps = model.token_logprobs(messages, answer) if answer else []
    mean = float(np.mean(lps)) if lps else EMPTY_ANSWER_LOGPROB
    return {"mean_logprob": mean, "defer": -mean, "n_tokens": len(lps), "tokens_in": 0, "latency_s": 0.0}


POSTHOC = {"p_true": (p_true, P_TRUE_VERSION), "chow": (chow, CHOW_VERSION)}
"""Post-hoc baselines (scored after the small model answered): name → (scorer, version)."""


EMBEDDER = "all-minilm-l6-v2"
"""The sentence encoder of the embedding baselines (a bundled folder model: ``thrifty models pull``)."""


def embed_knn_scores(train: Sequence[tuple[tuple[str, Messages], bool]], test: Sequence[tuple[str, Messages]],
                     seed: int = 0, embedder: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """RouteLLM-style kNN over real sentence embeddings of the last user message: (p_good of each test query,
    the encoder's tokens per test query, the encoder's id). ``embedder`` None loads the bundled encoder; k is
    chosen on the train rows (:class:`~thrifty.route.replay.embed_router.KNNRouter`)."""
    from thrifty.route.replay.embed_router import KNNRouter

    if embedder is None:
        from thrifty.llm.embed import load_embedder

        embedder = load_embedder(EMBEDDER)
    if len({g for _, g in train}) < 2:
        raise DataError("the kNN router needs graded train queries with both acceptable and bad answers")
    tr_text = [last_user_text(m) for (_, m), _ in train]
    te_text = [last_user_text(m) for _, m in test]
    knn = KNNRouter().fit(embedder.embed(tr_text), np.array([g for _, g in train]), seed=seed)
    tokens = np.array([min(len(embedder.tokenizer(t)["input_ids"]), embedder.max_length) for t in te_text])
    return knn.p_good(embedder.embed(te_text)), tokens, str(getattr(embedder, "model_id", EMBEDDER))
