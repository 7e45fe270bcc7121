"""Registry lookups (lazy entries, errors) and explicit RNG helpers (stable, independent, no global state)."""

from __future__ import annotations

import random

import pytest

from thrifty.core.errors import ConfigError
from thrifty.core.registry import Registry
from thrifty.core.rng import derive_seed, np_rng, py_rng, torch_generator
from thrifty.core.types import canonical_json, content_hash


def test_registry_lazy_and_errors():
    reg: Registry = Registry("widget")
    reg.add("join", "os.path:join")

    @reg.register("twice")
    def twice(x):
        return 2 * x

    assert reg.get("twice")(3) == 6
    import os.path

    assert reg.get("join") is os.path.join
    assert reg.names() == ["join", "twice"] and "join" in reg
    with pytest.raises(ConfigError, match="unknown widget 'nope'; choose one of join, twice"):
        reg.get("nope")
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("twice", twice)


def test_derive_seed_is_stable_and_label_sensitive():
    assert derive_seed(0, "test", "x") == derive_seed(0, "test", "x")
    assert derive_seed(0, "test", "x") != derive_seed(0, "train", "x")
    assert derive_seed(0, "a") != derive_seed(1, "a")
    assert 0 <= derive_seed(5, "z") < 2**63


def test_generators_are_private_and_reproducible():
    state = random.getstate()
    a, b = py_rng(3, "k"), py_rng(3, "k")
    assert [a.random() for _ in range(3)] == [b.random() for _ in range(3)]
    assert random.getstate() == state  # global RNG untouched
    assert np_rng(1, "x").integers(0, 10**9) == np_rng(1, "x").integers(0, 10**9)
    torch = pytest.importorskip("torch")
    g1, g2 = torch_generator(7, "m"), torch_generator(7, "m")
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_canonical_hash_ignores_key_order():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
