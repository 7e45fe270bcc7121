"""Config: defaults ← YAML ← overrides, coercion, validation, unknown keys, round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from thrifty.core.config import load_config, save_config
from thrifty.core.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


@dataclass
class Outer:
    name: str = "run"
    tasks: list[str] = field(default_factory=lambda: ["a"])
    mode: Literal["pa", "rpra"] = "pa"
    debug: bool = False
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: from-yaml\ninner:\n  steps: 5\ntasks: [x, y]\n")
    cfg = load_config(Outer, p, ["inner.lr=0.5", "debug=true", "limit=7", "mode=rpra"])
    assert cfg == Outer(name="from-yaml", tasks=["x", "y"], mode="rpra", debug=True, limit=7,
                        inner=Inner(lr=0.5, steps=5))


def test_comma_list_override_and_none():
    cfg = load_config(Outer, None, ["tasks=a,b,c", "limit=null"])
    assert cfg.tasks == ["a", "b", "c"] and cfg.limit is None


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("nope=1", "unknown key 'nope'"),
        ("inner.steps=zero", "expected an integer"),
        ("inner.steps=0", "steps must be >= 1"),
        ("mode=fast", "is not one of"),
        ("debug=maybe", "expected true/false"),
        ("novalue", "key=value"),
    ],
)
def test_bad_values_give_one_line_errors(override, needle):
    with pytest.raises(ConfigError) as exc:
        load_config(Outer, None, [override])
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_yaml_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: ok\ntasks: [a, b\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_config(Outer, p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(Outer, None, ["inner.lr=0.25", "tasks=q"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(out.read_text())["inner"]["lr"] == 0.25
    assert load_config(Outer, out) == cfg
