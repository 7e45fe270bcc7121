"""Hidden-state probe: logistic regression checked by finite differences and brute force, files, predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.route.predictors.base import DEFAULT_PREFIX
from thrifty.route.predictors.probe import (
    ABSENT_FLOOR,
    CLASSES,
    ProbeClassifier,
    ProbePredictor,
    collect_features,
    fit_probe,
    labelled_examples,
    prompt_version,
)
from thrifty.route.predictors.zero_shot import ZeroShotPredictor
from thrifty.tasks.base import Example


def _blobs(seed: int, n: int = 30, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [2.0, 0.5], [0.5, 2.0]])
    y = np.arange(n) % 3
    X = centres[y] + spread * rng.standard_normal((n, 2))
    return X, y


def _standardised(probe: ProbeClassifier, X: np.ndarray) -> np.ndarray:
    return (X - probe.mean) / probe.std


def _theta(probe: ProbeClassifier) -> np.ndarray:
    return np.concatenate([probe.weights, probe.bias[:, None]], axis=1)


def _fd_gradient(probe: ProbeClassifier, theta: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    g = np.zeros_like(theta)
    h = 1e-6
    for idx in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (probe.objective(up, Z, Y) - probe.objective(down, Z, Y)) / (2 * h)
    return g


def test_gradient_matches_finite_differences_and_vanishes_at_the_optimum():
    X, y = _blobs(0)
    probe = ProbeClassifier(l2=0.05).fit(X, y)
    Z, Y = _standardised(probe, X), np.eye(3)[y]
    theta = _theta(probe)
    fd = _fd_gradient(probe, theta, Z, Y)
    assert np.max(np.abs(fd)) < 1e-6  # a minimum: no direction lowers the objective
    rng = np.random.default_rng(1)
    other = theta + rng.standard_normal(theta.shape)
    assert np.allclose(probe.gradient(other, Z, Y), _fd_gradient(probe, other, Z, Y), atol=1e-6)
    assert np.max(np.abs(_fd_gradient(probe, other, Z, Y))) > 1e-2  # and away from it, it does not vanish


def test_one_feature_two_classes_matches_a_brute_force_grid_search():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-0.5, 1.0, 20), rng.normal(0.7, 1.0, 20)])[:, None]
    y = np.array([0] * 20 + [2] * 20)
    probe = ProbeClassifier(l2=0.1).fit(x, y)
    Z, Y = _standardised(probe, x), np.eye(2)[(y == 2).astype(int)]
    # two-class softmax depends only on the difference of the class scores; with the L2 term the optimum is
    # antisymmetric (w, -w), (b, -b), so a grid over (w, b) for class "great" with "bad" = -(w, b) covers it
    grid = np.linspace(-2, 2, 401)
    best = min(
        ((probe.objective(np.array([[-w, -b], [w, b]]), Z, Y), w, b) for w in grid for b in grid[::4]),
        key=lambda t: t[0],
    )
    fitted = probe.objective(_theta(probe), Z, Y)
    assert fitted <= best[0] + 1e-12
    assert best[0] - fitted < 1e-3  # the grid gets close: same optimum
    assert abs(probe.weights[1, 0] - best[1]) < 0.02


def test_predict_proba_is_the_softmax_of_the_learned_weights_in_bad_ok_great_order():
    X, y = _blobs(2)
    probe = ProbeClassifier(l2=0.1).fit(X, y)
    assert CLASSES == ("bad", "ok", "great")
    x = np.array([[0.3, -1.2], [2.5, 0.1]])
    z = (x - X.mean(axis=0)) / X.std(axis=0)
    logits = z @ probe.weights.T + probe.bias
    hand = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(probe.predict_proba(x), hand, atol=1e-12)
    assert np.allclose(probe.predict_proba(x[0]), hand[:1])


def test_separable_data_is_fitted_perfectly_and_stays_finite():
    X, y = _blobs(4, n=24, spread=0.05)
    probe = ProbeClassifier(l2=1e-3).fit(X, y)
    assert probe.meta["train_accuracy"] == 1.0
    assert np.all(np.isfinite(probe.weights))
    assert probe.meta["label_counts"] == {"bad": 8, "ok": 8, "great": 8}


def test_absent_classes_get_the_floor_and_never_nan():
    X, y = _blobs(5)
    keep = y != 1
    probe = ProbeClassifier().fit(X[keep], y[keep])
    p = probe.predict_proba(X)
    assert np.allclose(p[:, 1], ABSENT_FLOOR)
    assert np.allclose(p.sum(axis=1), 1.0) and np.all(np.isfinite(p))
    single = ProbeClassifier().fit(X[:4], np.full(4, 2))
    assert np.allclose(single.predict_proba(X[:2]), [[ABSENT_FLOOR, ABSENT_FLOOR, 1 - 2 * ABSENT_FLOOR]] * 2)


def test_fit_rejects_bad_input():
    with pytest.raises(ConfigError, match="labels must be class indices"):
        ProbeClassifier().fit(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ConfigError, match="NaN"):
        ProbeClassifier().fit(np.array([[np.nan]]), np.array([0]))
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        ProbeClassifier(l2=0)
    with pytest.raises(ConfigError, match="not fitted"):
        ProbeClassifier().predict_proba(np.zeros((1, 2)))


def test_save_load_round_trip(tmp_path):
    X, y = _blobs(6)
    probe = ProbeClassifier().fit(X, y, model="m", layer=None, prompt_version="abc")
    path = probe.save(tmp_path / "sub" / "probe.npz")
    back = ProbeClassifier.load(path)
    assert np.array_equal(back.predict_proba(X), probe.predict_proba(X))
    assert back.meta == json.loads(json.dumps(probe.meta))
    assert back.meta["model"] == "m" and back.meta["feature_dim"] == 2 and back.meta["n_train"] == 30


def _rewrite(path, **changes):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bias": None}, "lacks"),
        ({"weights": np.zeros((3, 5))}, "'weights' has shape"),
        ({"mean": np.array([np.nan, 0.0])}, "NaN"),
        ({"meta": np.array("{not json")}, "not a probe file"),
        ({"meta": np.array(json.dumps({"feature_dim": 7, "l2": 0.01}))}, "feature_dim=7"),
        ({"present": np.array([1.0, 0.0, 1.0])}, "'present'"),
    ],
)
def test_malformed_probe_files_raise_one_line_data_errors(tmp_path, change, message):
    X, y = _blobs(7)
    path = ProbeClassifier().fit(X, y).save(tmp_path / "p.npz")
    _rewrite(path, **change)
    with pytest.raises(DataError, match=message) as info:
        ProbeClassifier.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_garbage_and_missing_files_raise_data_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="not a probe file"):
        ProbeClassifier.load(bad)
    with pytest.raises(DataError, match="not found"):
        ProbeClassifier.load(tmp_path / "none.npz")


class FakeModel:
    """Hidden state = two numbers read from the last user message: whether it says "hard", and its length."""

    def __init__(self, model_id: str = "fake") -> None:
        self.model_id = model_id
        self.calls: list[tuple[list, str]] = []

    def hidden_state(self, messages, assistant_prefix=""):
        self.calls.append((messages, assistant_prefix))
        text = [m for m in messages if m["role"] == "user"][-1]["content"]
        return np.array([1.0 if "hard" in text else 0.0, len(text) / 10.0], dtype=np.float32)

    def prompt_ids(self, messages, assistant_prefix=""):
        return list(range(sum(len(m["content"].split()) for m in messages) + 1))


def _examples() -> dict[str, list[Example]]:
    easy = [Example(f"e{i}", f"easy question {'x' * i}") for i in range(6)]
    hard = [Example(f"h{i}", f"hard question {'y' * i}") for i in range(6)]
    return {"t:easy": easy, "t:hard": hard}


def _store_with_grades(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "store.sqlite")
    for task, exs in _examples().items():
        for ex in exs:
            label = "great" if task == "t:easy" else "bad"
            tags = {"task": task, "example": ex.id, "split": "train", "judge": "verifier"}
            store.put("grade", f"{task}/{ex.id}", {"fake": {"label": label}, "other": {"label": "ok"}}, tags)
    store.put("grade", "unparsed", {"fake": {"label": "unparsed"}},
              {"task": "t:easy", "example": "e0x", "split": "train", "judge": "verifier"})
    store.put("grade", "test-split", {"fake": {"label": "ok"}},
              {"task": "t:easy", "example": "e1", "split": "test", "judge": "verifier"})
    store.put("grade", "other-judge", {"fake": {"label": "ok"}},
              {"task": "t:easy", "example": "e2", "split": "train", "judge": "rubric"})
    return store


def test_labelled_examples_join_grades_of_this_model_split_and_judge(tmp_path):
    with _store_with_grades(tmp_path) as store:
        exs = _examples()
        exs["t:easy"].append(Example("e0x", "ungradable"))
        exs["t:easy"].append(Example("never", "not graded"))
        rows = labelled_examples(store, "fake", exs, split="train")
        assert len(rows) == 12
        assert {(t, ex.id, lab) for t, ex, lab in rows if ex.id in ("e1", "e2", "h0")} == {
            ("t:easy", "e1", "great"), ("t:easy", "e2", "great"), ("t:hard", "h0", "bad")}
        assert labelled_examples(store, "fake", exs, split="test") == [("t:easy", exs["t:easy"][1], "ok")]
        assert {lab for _, _, lab in labelled_examples(store, "other", exs, "train")} == {"ok"}
        assert labelled_examples(store, "fake", exs, "train", judge="nobody") == []


def test_probe_predictor_reads_the_zero_shot_position_and_learns_the_grade(tmp_path):
    model = FakeModel()
    with _store_with_grades(tmp_path) as store:
        rows = labelled_examples(store, "fake", _examples(), split="train")
    data = collect_features(model, rows)
    assert data.X.shape == (12, 2) and sorted(set(data.y.tolist())) == [0, 2]
    msgs = rows[0][1].messages()
    assert model.calls[0] == (ZeroShotPredictor(model).prompt(msgs, "t:easy"), DEFAULT_PREFIX)
    pred = ProbePredictor(model, fit_probe(data, "fake", ZeroShotPredictor(model)))
    hard = pred.predict([{"role": "user", "content": "hard question yyy"}])
    easy = pred.predict([{"role": "user", "content": "easy question"}])
    for p in (hard, easy):
        assert abs(p.p_great + p.p_ok + p.p_bad - 1.0) < 1e-9
        assert p.method == "probe" and p.parsed and p.latency_s > 0 and p.tokens_out == 0
        assert p.p_ok == pytest.approx(ABSENT_FLOOR)
    assert hard.label == "bad" and easy.label == "great"
    assert hard.tokens_in == len(model.prompt_ids(pred.prompt([{"role": "user", "content": "hard question yyy"}]),
                                                  DEFAULT_PREFIX))
    assert pred.continuation("bad") == ZeroShotPredictor(model).continuation("bad")


def test_probe_predictor_refuses_a_probe_for_another_model_or_prompt():
    X, y = _blobs(8)
    model = FakeModel("fake")
    version = prompt_version(ZeroShotPredictor(model))
    with pytest.raises(DataError, match="model='other'"):
        ProbePredictor(model, ProbeClassifier().fit(X, y, model="other", prompt_version=version))
    with pytest.raises(DataError, match="prompt_version"):
        ProbePredictor(model, ProbeClassifier().fit(X, y, model="fake", prompt_version="nope"))
    with pytest.raises(ConfigError, match="not fitted"):
        ProbePredictor(model, ProbeClassifier())
    assert prompt_version(ZeroShotPredictor(model, prefix="Score:")) != version
    pred = ProbePredictor(model, ProbeClassifier().fit(np.zeros((3, 5)), np.array([0, 1, 2]), model="fake"))
    with pytest.raises(DataError, match="expects"):  # the fake's 2 features against a 5-feature probe
        pred.predict([{"role": "user", "content": "q"}])
