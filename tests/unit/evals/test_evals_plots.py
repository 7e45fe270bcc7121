"""Evaluation plots: each function writes a real PNG without a display and rejects mis-shaped input."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.evals import MetricInputError, reliability_binary
from thrifty.evals.plots import confusion_plot, curve_plot, reliability_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


def test_reliability_plot_writes_png_with_empty_bins(tmp_path):
    probs = np.array([0.05, 0.1, 0.9, 0.95, 0.97])
    rel = reliability_binary(probs, ["bad", "bad", "great", "ok", "bad"], n_bins=10)
    assert np.isnan(rel.conf).any()  # some bins are empty and must be skipped, not crash
    out = reliability_plot(rel.edges, rel.conf, rel.acc, rel.count, tmp_path / "sub" / "rel.png", title="t")
    assert out == tmp_path / "sub" / "rel.png" and _is_png(out)


def test_confusion_plot_writes_png(tmp_path):
    out = confusion_plot([[3, 1, 0], [0, 2, 1], [1, 0, 5]], ("bad", "ok", "great"), tmp_path / "cm.png")
    assert _is_png(out)


def test_curve_plot_writes_png(tmp_path):
    out = curve_plot([("policy", [0, 0.5, 1], [0.2, 0.6, 0.7]), ("random", [0, 1], [0.2, 0.7])],
                     tmp_path / "curve.png", xlabel="cost", ylabel="quality", points=[("big", 1.0, 0.7)])
    assert _is_png(out)


@pytest.mark.parametrize("call", [
    lambda p: reliability_plot([0, 0.5, 1], [0.2], [0.1], [1], p),
    lambda p: confusion_plot([[1, 2], [3, 4]], ("bad", "ok", "great"), p),
    lambda p: curve_plot([("a", [0, 1], [1])], p),
    lambda p: curve_plot([], p),
])
def test_bad_shapes_raise_and_write_nothing(tmp_path, call):
    with pytest.raises(MetricInputError):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
