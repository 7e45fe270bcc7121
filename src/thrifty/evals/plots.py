"""Evaluation plots as PNG files from plain arrays: reliability diagrams, confusion heat maps, metric curves.

matplotlib is imported inside each function with the non-interactive Agg backend, so nothing needs a display
and importing this module stays cheap. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thrifty.evals._checks import MetricInputError


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    plt = _pyplot()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def reliability_plot(edges: Any, conf: Any, acc: Any, count: Any, path: str | Path, title: str = "",
                     xlabel: str = "predicted probability", ylabel: str = "observed frequency") -> Path:
    """Reliability diagram: per bin (edges[m], edges[m+1]] a bar of the observed frequency ``acc``, the mean
    confidence ``conf`` as a point, the diagonal, and bin counts as a histogram below. Empty bins (NaN) are
    left blank."""
    import numpy as np

    e = np.asarray(edges, dtype=float)
    c, a, n = (np.asarray(x, dtype=float) for x in (conf, acc, count))
    if e.ndim != 1 or e.size < 2 or not (c.shape == a.shape == n.shape == (e.size - 1,)):
        raise MetricInputError(f"reliability_plot: need M+1 edges and M values per bin (got {e.size} edges, "
                               f"{c.size}/{a.size}/{n.size} values)")
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = np.diff(e)
    used = n > 0
    top.bar(e[:-1][used], a[used], width=width[used], align="edge", alpha=0.6, edgecolor="black",
            label="observed")
    top.plot(c[used], a[used], "o", color="tab:red", label="mean confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel(ylabel)
    top.legend(loc="upper left", fontsize=8)
    if title:
        top.set_title(title, fontsize=10)
    bottom.bar(e[:-1], n, width=width, align="edge", color="tab:gray", edgecolor="black")
    bottom.set_xlabel(xlabel)
    bottom.set_ylabel("count")
    return _save(fig, path)


def confusion_plot(matrix: Any, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Heat map of a square count matrix (rows true, columns predicted) with each count written in its cell."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise MetricInputError(f"confusion_plot: need a square matrix matching {len(labels)} labels, got {m.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.6))
    im = ax.imshow(m, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(list(ticks), list(labels))
    ax.set_yticks(list(ticks), list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = m.max() if m.size and m.max() > 0 else 1.0
    for i in ticks:
        for j in ticks:
            ax.text(j, i, f"{m[i, j]:g}", ha="center", va="center",
                    color="white" if m[i, j] > peak / 2 else "black")
    fig.colorbar(im, ax=ax)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers × 4 line styles: 28 curves with distinct pairs


def curve_styles(n: int) -> list[tuple[str, str]]:
    """(line style, marker) for ``n`` curves: each of the first 28 gets its own marker-and-style pair (marker
    and style cycle together, so curves drawn over each other stay tellable apart, in grey print too)."""
    return [(LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)]) for i in range(n)]


def curve_plot(curves: Sequence[tuple[str, Any, Any]], path: str | Path, title: str = "", xlabel: str = "x",
               ylabel: str = "y", points: Sequence[tuple[str, float, float]] = ()) -> Path:
    """Line plot of named curves ``(name, xs, ys)`` (e.g. quality vs cost of routing policies) plus optional
    named single points ``(name, x, y)`` (e.g. each model on its own). Every curve has its own colour, line
    style and marker (:func:`curve_styles`); the markers sit on about 12 of each curve's points."""
    import numpy as np

    if not curves and not points:
        raise MetricInputError("curve_plot: nothing to draw (no curves and no points)")
    arrays = []
    for name, xs, ys in curves:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        if x.ndim != 1 or x.shape != y.shape:
            raise MetricInputError(f"curve_plot: curve {name!r} needs 1-D xs and ys of one length")
        arrays.append((name, x, y))
    plt = _pyplot()
    crowded = len(arrays) + len(points) > 6  # then the legend goes beside the axes, off the curves
    fig, ax = plt.subplots(figsize=(7.5 if crowded else 5.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["black"])
    # earlier curves are drawn wider, with larger hollow markers, so curves lying on each other all stay visible
    shrink = 1.0 / max(1, len(arrays) - 1)
    for i, ((name, x, y), (line, marker)) in enumerate(zip(arrays, curve_styles(len(arrays)), strict=True)):
        ax.plot(x, y, linestyle=line, marker=marker, markevery=max(1, x.size // 12),
                markersize=10 - 5 * i * shrink, markerfacecolor="none", markeredgewidth=1.3,
                linewidth=2.6 - 1.4 * i * shrink, color=colours[i % len(colours)], label=name)
    for name, x, y in points:
        ax.plot([x], [y], marker="*", markersize=13, color="black", linestyle="none", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if crowded:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def heatmap_plot(matrix: Any, path: str | Path, title: str = "", xlabel: str = "column", ylabel: str = "row",
                 row_labels: Sequence[str] = (), marks: Any = None, colorbar: str = "") -> Path:
    """Heat map of any (rows, columns) matrix (NaN cells blank), e.g. tokens per segment for each video; ``marks``
    (a boolean matrix of the same shape) draws a dot in the cells it sets."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0 or (row_labels and len(row_labels) != m.shape[0]):
        raise MetricInputError(f"heatmap_plot: need a non-empty 2-D matrix (and one label per row), got {m.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(12.0, 3 + m.shape[1] * 0.12), min(10.0, 1.5 + m.shape[0] * 0.22)))
    im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", aspect="auto", interpolation="nearest")
    if marks is not None:
        mk = np.asarray(marks, dtype=bool)
        if mk.shape != m.shape:
            raise MetricInputError(f"heatmap_plot: marks {mk.shape} do not match the matrix {m.shape}")
        ys, xs = np.nonzero(mk)
        ax.plot(xs, ys, "o", color="red", markersize=3, linestyle="none")
    if row_labels:
        ax.set_yticks(range(m.shape[0]), list(row_labels), fontsize=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label=colorbar)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)
