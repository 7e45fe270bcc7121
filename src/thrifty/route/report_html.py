"""The routing report: one self-contained HTML page (inline CSS, plots embedded as data URIs, no scripts).

It shows, from a ``route eval`` result: the headline numbers, the method table (APGR, CPT, cost at 95 % quality,
AIQ, AUROC), the router's operating point and overhead, the per-task breakdown, both curves, the router file's
policy and fit, and the package versions the run used. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:980px;color:#222;
line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .6rem}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.head{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ccc;border-radius:6px;padding:.6rem 1rem;
min-width:12rem}.card b{display:block;font-size:1.4rem}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}.note{color:#8a5300}
"""


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, float)):
        return f"{100 * x:.1f} %" if pct else f"{x:.3f}"
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<td{' class=n' if i >= numeric_from else ''}>{c}</td>" for i, c in enumerate(row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p class=note>({html.escape(path.name)} missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a routing run may use (absent ones left out)."""
    out = {"python": platform.python_version()}
    for pkg in ("thrifty", "numpy", "llama-cpp-python", "torch", "transformers", "peft", "trl", "reasoning-gym"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def render(result: dict[str, Any], run_dir: Path) -> str:
    """The HTML page for a ``route eval`` result whose plots lie in ``run_dir``."""
    r, m = result["router"], result["methods"]
    rs = m["router"]["summary"]
    cards = [("router APGR", _fmt(rs["apgr"])),
             ("saving at 95 % of large quality", _fmt(rs["savings"], True)),
             ("AUROC of the deferral signal", _fmt(rs.get("auroc")))]
    parts = [f"<h1>Routing report: {html.escape(r['small'])} → {html.escape(r['large'])}</h1>",
             f"<p>{html.escape(result['split'])} split, {result['n']} queries, tasks: "
             f"{html.escape(', '.join(result['tasks']))}. Mean quality (bad 0, ok 0.5, great 1): small "
             f"{_fmt(result['q_small'])}, large {_fmt(result['q_large'])}.</p>",
             "<div class=head>" + "".join(f"<div class=card>{html.escape(k)}<b>{v}</b></div>" for k, v in cards)
             + "</div>", "<h2>Methods</h2>"]
    rows = [[html.escape(name), _fmt(s["apgr"]), _fmt(s["cpt_50"], True), _fmt(s["cpt_80"], True),
             _fmt(s["cost_at_q"]), _fmt(s["savings"], True), _fmt(s["aiq"]), _fmt(s.get("auroc"))]
            for name, s in ((k, v["summary"]) for k, v in m.items())]
    parts.append(_table(["method", "APGR", "CPT(50 %)", "CPT(80 %)", "cost at 95 % quality",
                         "saving vs always large", "AIQ", "AUROC (bad)"], rows))
    op, o = m["router"]["operating_point"], result["overhead"]
    parts.append(f"<p>At its fitted threshold ({_fmt(op['tau'])}) the router defers {_fmt(op['defer_rate'], True)}"
                 f" of queries for quality {_fmt(op['quality'])} at mean cost {_fmt(op['cost'])}. Overhead per query:"
                 f" {o['tokens_in']:.0f} prompt tokens, {o['tokens_out']:.1f} generated, {o['latency_s']:.2f} s; "
                 f"{o['parse_failures']} unreadable predictions (deferred).</p>")
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in result.get("notes", [])]
    parts.append("<h2>Curves</h2>" + _image(run_dir / "quality_vs_large_calls.png", "quality vs large calls")
                 + _image(run_dir / "quality_vs_cost.png", "quality vs cost"))
    if result.get("per_task"):
        parts.append("<h2>Per task</h2>")
        parts.append(_table(["task", "n", "small quality", "large quality", "router APGR", "oracle APGR"],
                            [[html.escape(t), str(v["n"]), _fmt(v["q_small"]), _fmt(v["q_large"]),
                              _fmt(v["router_apgr"]), _fmt(v["oracle_apgr"])]
                             for t, v in result["per_task"].items()]))
    parts.append("<h2>Router</h2><pre>" + html.escape(json.dumps(
        {k: r[k] for k in ("version", "predictor", "policy")}, indent=2, default=str)) + "</pre>")
    parts.append("<h2>Versions</h2>" + _table(["package", "version"],
                                                [[html.escape(k), html.escape(v)] for k, v in versions().items()]))
    body = "\n".join(parts)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>thrifty routing report</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(result: dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``report.html`` next to the eval outputs; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    path.write_text(render(result, run_dir), "utf-8")
    return path
