"""Embedding routers: kNN and logistic p_good on clustered fixtures, CV choices, brute-force checks, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.evals.prob_metrics import auroc
from thrifty.route.replay.embed_router import (
    DEFAULT_KS,
    KNNRouter,
    LogisticEmbedRouter,
    log_loss,
    nearest,
    router_from_dict,
)


def clusters(n: int, dim: int = 16, seed: int = 0, spread: float = 0.15):
    """Two well separated clusters on the sphere; label 1 (good) for the second. Rows in random order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim))
    y = rng.permutation(np.arange(n) % 2)
    X = centres[y] + spread * rng.normal(size=(n, dim))
    return X, y


def noisy(n: int, dim: int = 8, seed: int = 1):
    """Rows with a label that depends weakly on the first coordinate (no exact ties in similarity)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    return X, y


def brute_knn(X, y, Q, k, prior, mean, weighting="uniform"):
    """p_good of each row of Q by an explicit loop over sorted cosine similarities."""
    out = []
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    for q in Q:
        s = Xn @ (q / np.linalg.norm(q))
        order = sorted(range(len(y)), key=lambda i: (-s[i], i))[:k]
        w = [1.0 if weighting == "uniform" else (1 + s[i]) / 2 for i in order]
        out.append((sum(wi * y[i] for wi, i in zip(w, order, strict=True)) + prior * mean) / (sum(w) + prior))
    return np.array(out)


# ---------------------------------------------------------------- kNN


def test_knn_ranks_held_out_clusters_almost_perfectly():
    X, y = clusters(120)
    router = KNNRouter().fit(X[:80], y[:80])
    p = router.p_good(X[80:])
    assert auroc(p, y[80:]) > 0.99
    assert np.all((p > 0) & (p < 1))
    assert router.k_ in DEFAULT_KS and set(router.cv_log_loss) == set(DEFAULT_KS)


@pytest.mark.parametrize("folds", [None, 4])
def test_cv_picks_a_k_of_the_grid_with_the_lowest_loss(folds):
    X, y = noisy(90)
    router = KNNRouter(ks=(1, 3, 9, 27), folds=folds).fit(X, y, seed=3)
    assert set(router.cv_log_loss) == {1, 3, 9, 27}
    assert router.k_ == min(router.cv_log_loss, key=router.cv_log_loss.get)
    again = KNNRouter(ks=(1, 3, 9, 27), folds=folds).fit(X, y, seed=3)
    assert again.k_ == router.k_ and again.cv_log_loss == router.cv_log_loss


def test_leave_one_out_loss_matches_refitting_without_each_row():
    X, y = noisy(25)
    router = KNNRouter(ks=(3, 7), prior=2.0, weighting="similarity").fit(X, y)
    for k in (3, 7):
        held = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            held.append(KNNRouter(k=k, prior=2.0, weighting="similarity").fit(X[keep], y[keep]).p_good(X[i])[0])
        assert router.cv_log_loss[k] == pytest.approx(log_loss(np.array(held), y), rel=1e-7)  # float32 rows


def test_grid_larger_than_the_data_is_cut_to_what_fits():
    X, y = noisy(6)
    router = KNNRouter(ks=(3, 5, 7, 11)).fit(X, y)
    assert set(router.cv_log_loss) == {3, 5}
    assert KNNRouter(ks=(11,)).fit(X, y).k_ == 5  # no k of the grid fits: the most that leave-one-out allows


@pytest.mark.parametrize("weighting", ["uniform", "similarity"])
def test_p_good_matches_a_brute_force_loop(weighting):
    X, y = noisy(40)
    Q = np.random.default_rng(5).normal(size=(7, X.shape[1]))
    router = KNNRouter(k=5, prior=1.5, weighting=weighting).fit(X, y)
    mean = (y.sum() + 1) / (len(y) + 2)
    np.testing.assert_allclose(router.p_good(Q), brute_knn(X, y, Q, 5, 1.5, mean, weighting), rtol=1e-6)


def test_prior_keeps_unanimous_neighbours_off_zero_and_one():
    X = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [0.0, 1.0], [0.1, 0.99], [0.2, 0.98]])
    y = np.array([1, 1, 1, 0, 0, 0])
    router = KNNRouter(k=3).fit(X, y)
    p = router.p_good(np.array([[1.0, 0.05], [0.05, 1.0]]))
    assert p == pytest.approx([(3 + 0.5) / 4, 0.5 / 4])  # mean (3 + 1) / (6 + 2) = 0.5, one pseudo-count
    one_class = KNNRouter(k=2).fit(X[:3], y[:3])
    assert 0 < one_class.p_good(X[:1])[0] < 1


def test_similarity_ties_keep_training_order():
    T = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    idx, sims = nearest(T[:1], T, 3)
    assert idx.tolist() == [[0, 1, 2]] and sims.tolist() == [[1.0, 1.0, 1.0]]
    idx, _ = nearest(T, T, 2, skip_self=True)
    assert idx[:3].tolist() == [[1, 2], [0, 2], [0, 1]]


def test_many_query_blocks_agree_with_one(monkeypatch):
    import thrifty.route.replay.embed_router as er

    X, y = noisy(50)
    whole = KNNRouter(k=4).fit(X, y).p_good(X)
    monkeypatch.setattr(er, "_BLOCK_ROWS", 7)
    np.testing.assert_array_equal(KNNRouter(k=4).fit(X, y).p_good(X), whole)


def test_knn_agrees_with_scikit_learn_for_a_fixed_k():
    neighbors = pytest.importorskip("sklearn.neighbors")
    X, y = noisy(60)
    Q = np.random.default_rng(9).normal(size=(20, X.shape[1]))
    ref = neighbors.KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute").fit(X, y)
    expected = ref.predict_proba(Q)[:, 1]
    np.testing.assert_allclose(KNNRouter(k=7, prior=0.0).fit(X, y).p_good(Q), expected, atol=1e-8)
    smoothed = KNNRouter(k=7, prior=1.0).fit(X, y)
    np.testing.assert_allclose(smoothed.p_good(Q), (7 * expected + smoothed.mean_) / 8, rtol=1e-9)


# ---------------------------------------------------------------- logistic


def test_logistic_ranks_held_out_clusters_and_picks_l2_from_the_grid():
    X, y = clusters(120)
    router = LogisticEmbedRouter(l2_grid=(0.01, 0.1, 1.0), folds=4).fit(X[:80], y[:80], seed=1)
    p = router.p_good(X[80:])
    assert auroc(p, y[80:]) > 0.99
    assert np.all((p > 0) & (p < 1))
    assert router.l2_ in (0.01, 0.1, 1.0) and set(router.cv_log_loss) == {0.01, 0.1, 1.0}
    assert router.l2_ == min(router.cv_log_loss, key=router.cv_log_loss.get)


def test_logistic_is_deterministic_and_learns_the_direction():
    X, y = noisy(80)
    a = LogisticEmbedRouter(folds=3).fit(X, y, seed=4)
    b = LogisticEmbedRouter(folds=3).fit(X, y, seed=4)
    np.testing.assert_array_equal(a.p_good(X), b.p_good(X))
    assert a.l2_ == b.l2_
    p = a.p_good(np.eye(X.shape[1])[:1] * np.array([[3.0], [-3.0]]))
    assert p[0] > 0.5 > p[1]  # good answers sit at large first coordinates


def test_one_penalty_skips_cross_validation():
    X, y = noisy(30)
    router = LogisticEmbedRouter(l2_grid=(0.5,)).fit(X, y)
    assert router.l2_ == 0.5 and router.cv_log_loss == {}


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize(
    "router", [KNNRouter(ks=(3, 5)), KNNRouter(k=4, weighting="similarity", prior=0.5, folds=3),
               LogisticEmbedRouter(l2_grid=(0.1, 1.0), folds=3)],
)
def test_to_dict_round_trips_through_json(router):
    X, y = noisy(40)
    Q = np.random.default_rng(2).normal(size=(9, X.shape[1]))
    router.fit(X, y, seed=7)
    loaded = router_from_dict(json.loads(json.dumps(router.to_dict())))
    assert type(loaded) is type(router)
    np.testing.assert_array_equal(loaded.p_good(Q), router.p_good(Q))
    assert loaded.to_dict() == router.to_dict()


def test_malformed_saved_routers_are_one_line_errors():
    X, y = noisy(20)
    saved = KNNRouter(k=3).fit(X, y).to_dict()
    broken = [
        ({**saved, "X": saved["X"][:-8]}, "not a saved kNN router"),
        ({**saved, "k": 99}, "inconsistent"),
        ({**saved, "version": 9}, "version 9"),
        ({**saved, "kind": "forest"}, "unknown saved router kind 'forest'"),
        ([1, 2], "unknown saved router kind None"),
    ]
    saved_lr = LogisticEmbedRouter(l2_grid=(1.0,)).fit(X, y).to_dict()
    broken += [({**saved_lr, "bias": [0.0, 1.0, 2.0]}, "inconsistent shapes"),
               ({**saved_lr, "std": [0.0] * X.shape[1]}, "non-positive std"),
               ({k: v for k, v in saved_lr.items() if k != "weights"}, "not a saved logistic router")]
    for d, match in broken:
        with pytest.raises(ConfigError, match=match) as exc:
            router_from_dict(d)
        assert "\n" not in str(exc.value)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: KNNRouter(k=0), "k must be a positive integer"),
        (lambda: KNNRouter(ks=()), "ks must list"),
        (lambda: KNNRouter(prior=-1.0), "prior must be"),
        (lambda: KNNRouter(weighting="gauss"), "weighting must be one of"),
        (lambda: KNNRouter(folds=1), "folds must be >= 2"),
        (lambda: LogisticEmbedRouter(l2_grid=(0.0,)), "l2_grid must list positive"),
        (lambda: LogisticEmbedRouter(folds=1), "folds must be >= 2"),
    ],
)
def test_bad_settings(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize("cls", [KNNRouter, LogisticEmbedRouter])
def test_bad_data_and_unfitted_use(cls):
    X, y = noisy(10)
    with pytest.raises(ConfigError, match="not fitted"):
        cls().p_good(X)
    with pytest.raises(ConfigError, match="labels must be 0"):
        cls().fit(X, y + 1)
    with pytest.raises(ConfigError, match=r"labels must have shape \(10,\)"):
        cls().fit(X, y[:5])
    with pytest.raises(ConfigError, match="NaN"):
        cls().fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ConfigError, match="at least 2"):
        cls().fit(X[:1], y[:1])
    router = cls().fit(X, y.astype(bool))
    with pytest.raises(ConfigError, match="features have 3 columns"):
        router.p_good(X[:, :3])


def test_knn_rejects_zero_rows_and_k_beyond_the_data():
    X, y = noisy(10)
    with pytest.raises(ConfigError, match="row 2 is all zeros"):
        KNNRouter(k=3).fit(np.where(np.arange(10)[:, None] == 2, 0.0, X), y)
    with pytest.raises(ConfigError, match="k=11 exceeds the 10 training rows"):
        KNNRouter(k=11).fit(X, y)
