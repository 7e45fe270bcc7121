"""The routing report: one self-contained HTML page (inline CSS, plots embedded as data URIs, no scripts).

It shows, from a ``route eval`` result: the headline (the router's saving at 95 % of large quality with its
interval, beside the oracle's and the best baseline's, and why when it saves nothing), the method table with
bootstrap intervals, what a cost number is, one-line metric definitions, the router's operating point and
overhead, both curves, the per-task breakdown, the router read as a sentence and a table (with the predictor
selection its file records, and the raw file folded away), and the package versions the run used. The words
come from :mod:`thrifty.route.replay.report_text`, shared with the markdown. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from thrifty.route.replay.report_text import (
    cost_unit,
    cost_unit_short,
    definitions,
    fmt,
    fmt_ci,
    headline_facts,
    router_rows,
    router_sentence,
    selection_table,
    with_ci,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:980px;color:#222;
line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .6rem}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.head{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ccc;border-radius:6px;padding:.6rem 1rem;
min-width:11rem}.card b{display:block;font-size:1.4rem}.card small{color:#555}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}.note{color:#8a5300}
.why{border-left:4px solid #c0392b;padding:.3rem .8rem;background:#fdf2f1}.unit{color:#444;font-size:.9rem}
dl{font-size:.85rem;color:#333}dt{font-weight:600;float:left;clear:left;margin-right:.4rem}dd{margin:0 0 .2rem 0}
"""

_E = html.escape


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    """A table of plain-text cells (every header and cell escaped here)."""
    head = "".join(f"<th>{_E(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<td{' class=n' if i >= numeric_from else ''}>{_E(str(c))}</td>" for i, c in enumerate(row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p class=note>({_E(path.name)} missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_E(alt)}" src="data:image/png;base64,{data}">'


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a routing run may use (absent ones left out)."""
    out = {"python": platform.python_version()}
    for pkg in ("thrifty", "numpy", "llama-cpp-python", "torch", "transformers", "peft", "trl", "reasoning-gym"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _card(title: str, value: str, ci: str = "") -> str:
    return f"<div class=card>{_E(title)}<b>{_E(value)}</b>" + (f"<small>95 % CI {_E(ci)}</small>" if ci else "") \
        + "</div>"


def _headline(result: dict[str, Any]) -> str:
    f = headline_facts(result)
    cards = [_card("router APGR", fmt(f["apgr"]), fmt_ci(f["apgr_ci"])),
             _card(f"router ({f['predictor']}) saving at 95 % of large quality", fmt(f["saving"], True),
                   fmt_ci(f["saving_ci"], True))]
    if f["oracle_saving"] is not None:
        cards.append(_card("oracle saving at 95 %", fmt(f["oracle_saving"], True), fmt_ci(f["oracle_saving_ci"], True)))
    if f["best_baseline"]:
        cards.append(_card(f"best baseline ({f['best_baseline']}) saving at 95 %", fmt(f["best_saving"], True),
                           fmt_ci(f["best_saving_ci"], True)))
    cards.append(_card("AUROC of the router's deferral signal", fmt(f["auroc"])))
    out = "<div class=head>" + "".join(cards) + "</div>"
    if f["why"]:
        out += f"<p class=why><b>Why no saving:</b> {_E(f['why'])}</p>"
    return out + f"<p class=unit>Costs in {_E(cost_unit_short(result))}; definitions below the method table.</p>"


def _methods(result: dict[str, Any]) -> str:
    rows = [[name, with_ci(s["apgr"], s.get("apgr_ci")), fmt(s["cpt_50"], True), fmt(s["cpt_80"], True),
             fmt(s["cost_at_q"]), with_ci(s["savings"], s.get("savings_ci"), True), fmt(s["aiq"]), fmt(s.get("auroc"))]
            for name, s in ((k, v["summary"]) for k, v in result["methods"].items())]
    table = _table(["method", "APGR [95 % CI]", "CPT(50 %)", "CPT(80 %)", "cost at 95 % quality",
                    "saving vs always large [95 % CI]", "AIQ", "AUROC (bad)"], rows)
    terms = "".join(f"<dt>{_E(t)}</dt><dd>{_E(d)}</dd>" for t, d in definitions(result))
    return f"<h2>Methods</h2>{table}<p class=unit>{_E(cost_unit(result))}</p><dl>{terms}</dl>"


def _router(result: dict[str, Any]) -> str:
    r = result["router"]
    parts = [f"<h2>Router</h2><p>{_E(router_sentence(result))}</p>",
             _table(["field", "value"], [list(x) for x in router_rows(result)], numeric_from=2)]
    sel = selection_table(result)
    if sel:
        split = (r.get("fitted_on") or {}).get("split", "val")
        parts.append(f"<h2>Predictor chosen on {_E(str(split))}</h2><p>Rule: {_E(sel[0])}.</p>"
                     + _table(sel[1], sel[2]))
    raw = {k: r[k] for k in ("version", "small", "large", "predictor", "policy", "target", "fitted_on", "selection")
           if k in r}
    parts.append("<details><summary>router file (JSON)</summary><pre>"
                 + _E(json.dumps(raw, indent=2, default=str)) + "</pre></details>")
    return "".join(parts)


def render(result: dict[str, Any], run_dir: Path) -> str:
    """The HTML page for a ``route eval`` result whose plots lie in ``run_dir``."""
    r, m = result["router"], result["methods"]
    parts = [f"<h1>Routing report: {_E(r['small'])} → {_E(r['large'])}</h1>",
             f"<p>{_E(result['split'])} split, {result['n']} queries, tasks: {_E(', '.join(result['tasks']))}. "
             f"Mean quality (bad 0, ok 0.5, great 1): small {fmt(result['q_small'])}, large "
             f"{fmt(result['q_large'])}.</p>", _headline(result), _methods(result)]
    op, o = m["router"]["operating_point"], result["overhead"]
    parts.append(f"<p>At its fitted threshold ({fmt(op['tau'])}) the router defers {fmt(op['defer_rate'], True)}"
                 f" of queries for quality {fmt(op['quality'])} at mean cost {fmt(op['cost'])}. Overhead per query:"
                 f" {float(o['tokens_in']):.0f} prompt tokens, {float(o['tokens_out']):.1f} generated, "
                 f"{float(o['latency_s']):.2f} s; {int(o['parse_failures'])} unreadable predictions (deferred).</p>")
    parts += [f"<p class=note>{_E(n)}</p>" for n in result.get("notes", [])]
    parts.append("<h2>Curves</h2>" + _image(run_dir / "quality_vs_large_calls.png", "quality vs large calls")
                 + _image(run_dir / "quality_vs_cost.png", "quality vs cost"))
    if result.get("per_task"):
        parts.append("<h2>Per task</h2>")
        parts.append(_table(["task", "n", "small quality", "large quality", "router APGR", "oracle APGR"],
                            [[t, str(v["n"]), fmt(v["q_small"]), fmt(v["q_large"]), fmt(v["router_apgr"]),
                              fmt(v["oracle_apgr"])] for t, v in result["per_task"].items()]))
    parts.append(_router(result))
    parts.append("<h2>Versions</h2>" + _table(["package", "version"], [[k, v] for k, v in versions().items()]))
    body = "\n".join(parts)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>thrifty routing report</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(result: dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``report.html`` next to the eval outputs; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    path.write_text(render(result, run_dir), "utf-8")
    return path
