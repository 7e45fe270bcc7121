"""The repository's own numerics against scikit-learn (dev extra): probe logistic regression, isotonic
calibration, AUROC / average precision, quadratic κ, F1, confusion matrix, Brier score."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.isotonic import IsotonicRegression  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion  # noqa: E402

from thrifty.evals import auroc  # noqa: E402
from thrifty.evals.label_metrics import (  # noqa: E402
    confusion_matrix,
    macro_f1,
    precision_recall_f1,
    quadratic_weighted_kappa,
)
from thrifty.evals.prob_metrics import average_precision, brier_binary  # noqa: E402
from thrifty.route.decide.calibrators import fit_isotonic  # noqa: E402
from thrifty.route.predictors.probe import ABSENT_FLOOR, ProbeClassifier  # noqa: E402

LABELS = [0, 1, 2]


def _grades(rng: np.random.Generator, n: int, d: int, classes=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """Features on different scales whose first columns carry the class, with label noise."""
    y = rng.choice(classes, size=n)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 20.0, size=d) + rng.normal(size=d) * 5
    X[:, 0] += 3.0 * y
    X[:, 1] -= 1.5 * (y == 1)
    return X, y


def _scaled(X: np.ndarray) -> np.ndarray:
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


def _sklearn_probe(Z: np.ndarray, y: np.ndarray, C: float) -> LogisticRegression:
    return LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(Z, y)


@pytest.mark.parametrize("l2", [1e-3, 1e-1, 1.0])
def test_probe_is_sklearn_multinomial_logistic_regression_with_c_of_one_over_n_l2(l2):
    # ours: mean cross-entropy + l2/2 ‖W‖²; sklearn: C Σ cross-entropy + ½ ‖W‖² (intercepts unpenalised in both).
    # Dividing ours by l2 gives sklearn's form with C = 1 / (n · l2).
    rng = np.random.default_rng(7)
    X, y = _grades(rng, 240, 6)
    ours = ProbeClassifier(l2=l2, tol=1e-12).fit(X, y)
    sk = _sklearn_probe(_scaled(X), y, C=1.0 / (len(y) * l2))
    np.testing.assert_allclose(ours.weights, sk.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.bias - ours.bias.mean(), sk.intercept_ - sk.intercept_.mean(), atol=1e-5)
    Xt, _ = _grades(rng, 50, 6)
    np.testing.assert_allclose(ours.predict_proba(Xt), sk.predict_proba(_scaled_like(X, Xt)), atol=1e-6)


def _scaled_like(X: np.ndarray, Xt: np.ndarray) -> np.ndarray:
    std = X.std(axis=0)
    return (Xt - X.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


def test_probe_with_two_grades_is_sklearn_binary_logistic_regression_with_c_of_two_over_n_l2():
    # With two classes ours keeps a weight row per class (w_great − w_bad = w), sklearn one vector w. At the
    # optimum the rows are ±w/2, so our penalty is l2/2 · ‖w‖²/2: sklearn's C doubles to 2 / (n · l2).
    rng = np.random.default_rng(11)
    X, y = _grades(rng, 200, 4, classes=(0, 2))
    l2 = 0.05
    ours = ProbeClassifier(l2=l2, tol=1e-12).fit(X, y)
    sk = _sklearn_probe(_scaled(X), y, C=2.0 / (len(y) * l2))
    np.testing.assert_allclose(ours.weights[1] - ours.weights[0], sk.coef_[0], atol=1e-5)
    present = ours.predict_proba(X)[:, [0, 2]] / (1.0 - ABSENT_FLOOR)
    np.testing.assert_allclose(present, sk.predict_proba(_scaled(X)), atol=1e-6)


def test_isotonic_matches_sklearn_with_ties_and_clipping():
    rng = np.random.default_rng(3)
    s = np.round(rng.uniform(0, 1, 300), 2)  # many tied scores
    good = (rng.uniform(0, 1, 300) < 0.2 + 0.6 * s).astype(float)
    ours = fit_isotonic(s, good)
    sk = IsotonicRegression(out_of_bounds="clip").fit(s, good)
    grid = np.r_[-0.5, np.linspace(0, 1, 401), 1.5]
    np.testing.assert_allclose(ours(grid), sk.predict(grid), atol=1e-12)
    np.testing.assert_allclose(ours(s), sk.predict(s), atol=1e-12)


def test_ranking_metrics_match_sklearn_with_ties():
    rng = np.random.default_rng(5)
    positive = rng.uniform(size=500) < 0.3
    score = np.round(rng.normal(size=500) + positive, 1)  # ties across both classes
    assert auroc(score, positive) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
    assert average_precision(score, positive) == pytest.approx(average_precision_score(positive, score), abs=1e-12)


def test_label_metrics_match_sklearn_including_an_unpredicted_grade():
    rng = np.random.default_rng(9)
    y_true = rng.choice(LABELS, size=400, p=[0.3, 0.3, 0.4])
    y_pred = np.where(rng.uniform(size=400) < 0.6, y_true, rng.choice([0, 2], size=400))  # "ok" rarely predicted
    y_pred[y_pred == 1] = 2  # and now never
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), sk_confusion(y_true, y_pred, labels=LABELS))
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(
        cohen_kappa_score(y_true, y_pred, labels=LABELS, weights="quadratic"), abs=1e-12)
    assert macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0), abs=1e-12)
    for ours, theirs in zip(precision_recall_f1(y_true, y_pred), precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, zero_division=0)[:3], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_binary_brier_matches_sklearn():
    rng = np.random.default_rng(13)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=200)
    y = rng.choice(LABELS, size=200)
    good = (y != 0).astype(int)
    assert brier_binary(probs, y) == pytest.approx(brier_score_loss(good, probs[:, 1] + probs[:, 2]), abs=1e-12)
