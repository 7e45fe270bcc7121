"""The words of the routing report, shared by its markdown and its HTML page: headline, cost unit, definitions.

Every function reads a ``route eval`` result dict and returns plain text (the HTML page escapes it), so both
outputs say the same thing: the headline (the router's saving at 95 % of the large model's quality beside the
oracle's and the best baseline's, with its bootstrap interval) and, when the router saves nothing, why; what a
cost number is; one line per metric saying exactly what the code computes; and the router file read as a
sentence and a small table. Results written before a key existed are read with that part left out.
"""

from __future__ import annotations

import math
from typing import Any

NON_BASELINES = ("router", "random", "oracle")  # the rest are learned or post-hoc baselines


def fmt(x: Any, pct: bool = False) -> str:
    """A number as text: 3 decimals, or a percentage with one; NaN and None as a dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, float)):
        return f"{100 * x:.1f} %" if pct else f"{x:.3f}"
    return str(x)


def fmt_ci(ci: Any, pct: bool = False) -> str:
    """``[lo, hi]`` as text, or an empty string when there is no interval (or it is undefined)."""
    if not ci or len(ci) != 2 or any(v is None or not math.isfinite(float(v)) for v in ci):
        return ""
    return f"[{fmt(float(ci[0]), pct)}, {fmt(float(ci[1]), pct)}]"


def with_ci(x: Any, ci: Any, pct: bool = False) -> str:
    """A point estimate followed by its interval when it has one."""
    band = fmt_ci(ci, pct)
    return f"{fmt(x, pct)} {band}" if band else fmt(x, pct)


def _saving(m: dict[str, Any], name: str) -> float:
    v = m[name]["summary"].get("savings", float("nan"))
    return v if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf


def best_baseline(methods: dict[str, Any]) -> str | None:
    """The baseline (not router, random or oracle) with the largest saving at 95 %; None when there is none."""
    learned = [k for k in methods if k not in NON_BASELINES]
    return max(learned, key=lambda k: _saving(methods, k)) if learned else None


def why_no_saving(result: dict[str, Any]) -> str:
    """One line saying why the router saves nothing at 95 % of the large model's quality."""
    m = result["methods"]
    r, o = m["router"]["summary"], result.get("overhead", {})
    oracle = m.get("oracle", {}).get("summary", {}).get("savings", float("nan"))
    if not oracle > 0:
        return ("even a perfect router saves nothing here: the small model is right too rarely to keep 95 % of the "
                f"large model's quality (quality {result['q_small']:.3f} vs {result['q_large']:.3f})")
    auroc = r.get("auroc", float("nan"))
    if not auroc >= 0.6:
        return (f"the deferral signal barely separates good from bad answers (AUROC {fmt(auroc)}), so reaching "
                "95 % means deferring almost everything")
    tokens = float(o.get("tokens_in", 0))
    if result["router"].get("predictor", {}).get("name") == "plain_probe" and tokens > 0:
        return (f"every deferral pays the small model's discarded prefill ({tokens:.0f} prompt tokens per query), "
                f"more than the deferrals save (the oracle, which pays nothing to decide, saves {100 * oracle:.1f} %)")
    if tokens > 0:
        return (f"the prediction costs {tokens:.0f} prompt tokens per query, more than its deferrals save "
                f"(the oracle saves {100 * oracle:.1f} %)")
    return (f"its ordering still sends too many queries to the large model to keep 95 % of its quality "
            f"(the oracle saves {100 * oracle:.1f} %)")


def headline_facts(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers the headline shows: the router's APGR and saving (with intervals), the oracle's and the best
    baseline's saving, the AUROC of the router's signal, and ``why`` (None when the router saves money)."""
    m = result["methods"]
    r = m["router"]["summary"]
    best = best_baseline(m)
    return {"predictor": result["router"].get("predictor", {}).get("name", "?"),
            "apgr": r["apgr"], "apgr_ci": r.get("apgr_ci"), "saving": r["savings"], "saving_ci": r.get("savings_ci"),
            "oracle_saving": m["oracle"]["summary"]["savings"] if "oracle" in m else None,
            "oracle_saving_ci": m["oracle"]["summary"].get("savings_ci") if "oracle" in m else None,
            "best_baseline": best, "best_saving": m[best]["summary"]["savings"] if best else None,
            "best_saving_ci": m[best]["summary"].get("savings_ci") if best else None, "auroc": r.get("auroc"),
            "why": None if r["savings"] > 0 else why_no_saving(result)}


def _saving_text(v: Any, ci: Any = None) -> str:
    return with_ci(v, ci, True) if isinstance(v, (int, float)) and math.isfinite(v) else "never reaches 95 %"


def headline(result: dict[str, Any]) -> str:
    """The line a person reads first (and a ``Why:`` line when the router saves nothing)."""
    f = headline_facts(result)
    line = (f"Headline: router ({f['predictor']}) APGR {with_ci(f['apgr'], f['apgr_ci'])}; saving at 95 % of the "
            f"large model's quality {_saving_text(f['saving'], f['saving_ci'])}")
    if f["oracle_saving"] is not None:
        line += f" (oracle {_saving_text(f['oracle_saving'])}"
        if f["best_baseline"]:
            line += f", best baseline {f['best_baseline']} {_saving_text(f['best_saving'], f['best_saving_ci'])}"
        line += ")"
    if f["auroc"] is not None:
        line += f"; AUROC of the deferral signal {fmt(f['auroc'])}"
    return line + (f"\nWhy: {f['why']}" if f["why"] else "")


def price_text(pricing: dict[str, Any]) -> str:
    """How tokens were priced, model by model where the result names them."""
    from thrifty.evals.cost import ACTIVE_PARAMS_B

    given, source = pricing.get("prices") or {}, pricing.get("source", "")
    parts = []
    for mod in pricing.get("models") or [] if source != "uniform" else []:
        if mod in given:
            parts.append(f"{mod} {float(given[mod]):g} per 1k tokens (given)")
        elif mod in ACTIVE_PARAMS_B:
            parts.append(f"{mod} {ACTIVE_PARAMS_B[mod]:g} per token")
        else:
            parts.append(f"{mod} 1 per 1k tokens (no price known)")
    lead = {"active_parameters": "each prompt or output token costs its model's active parameters in billions "
                                 "(proportional to the compute it takes)",
            "given": "the given prices per 1k tokens",
            "uniform": "no price known, so every model costs 1 per 1k tokens (cost counts thousands of tokens)",
            "mixed": "mixed prices"}.get(source, f"prices: {source or 'unknown'}")
    return lead + (": " + ", ".join(parts) if parts else "")


def cost_unit_short(result: dict[str, Any]) -> str:
    """The cost unit in a few words (the headline's; :func:`cost_unit` says it in full)."""
    p = result.get("pricing") or {}
    if p.get("unit") == "latency":
        return "seconds per query"
    return "price units per query (" + {"active_parameters": "tokens × billions of active parameters",
                                         "given": "the given prices per 1k tokens", "uniform": "thousands of tokens",
                                         }.get(p.get("source", ""), "mixed prices") + ")"


def cost_unit(result: dict[str, Any]) -> str:
    """One sentence saying what a cost number in the report is."""
    p = result.get("pricing") or {}
    if p.get("unit") == "latency":
        return ("Cost = mean seconds per query: the measured wall time of the query's stored calls, whatever the "
                "method pays to decide included.")
    disc = float(p.get("cached_discount", 0.1))
    return (f"Cost = mean price units per query; {price_text(p)}; a cached prompt token costs {100 * disc:.0f} % of "
            "an uncached one; whatever the method pays to decide is included.")


def definitions(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(term, one-line definition) for every column of the method table, as the code computes it."""
    n_boot = result["methods"]["router"]["summary"].get("n_boot")
    out = [
        ("quality", "per query, the judge's grade of the answer served: bad 0, ok 0.5, great 1; each method's "
                    "curve sweeps its threshold over every distinct deferral score"),
        ("APGR", "area under mean quality against the fraction of queries sent to the large model (trapezoid "
                 "over all thresholds), rescaled so always-small is 0 and always-large 1; random deferral is 0.5"),
        ("CPT(50 %), CPT(80 %)", "the fraction of queries sent to the large model at which the method first "
                                 "recovers 50 % (80 %) of the small-to-large quality gap, linear between thresholds"),
        ("cost at 95 % of large quality", "the lowest mean cost per query over the method's thresholds whose mean "
                                          "quality reaches 95 % of always-large's (no interpolation)"),
        ("saving vs always large", "1 − cost at 95 % ÷ the mean cost of sending every query to the large model "
                                   "with no prediction; negative means dearer than always-large"),
        ("AIQ", "mean quality under the upper concave hull of the method's (cost, quality) points, held flat after "
                "its best point, averaged over the method's own cost range (RouterBench)"),
        ("AUROC (bad)", "the chance that a query whose small answer was graded bad gets a higher deferral score "
                        "than one graded ok or great (ties ½); 0.5 is no signal, — where a method has no score"),
    ]
    if n_boot:
        out.append(("[lo, hi]", f"95 % percentile interval over {n_boot} bootstrap resamples of the queries, the "
                                "same resamples for every method (paired)"))
    return out


_CALIBRATION = {"none": "uncalibrated", "isotonic": "isotonic-calibrated"}
_SIGNAL = {"p_good": "p_good (p_ok + p_great)", "expected_grade": "expected grade (0.5 p_ok + p_great)"}


def _tau(x: Any) -> str:
    return f"{float(x):.4g}" if isinstance(x, (int, float)) else "?"


def _calibrator(cal: dict[str, Any]) -> str:
    kind = cal.get("kind", "none")
    if kind == "temperature":
        return f"temperature-calibrated (T = {float(cal.get('temperature', 1.0)):.3g})"
    if kind == "isotonic":
        return f"isotonic-calibrated ({len(cal.get('iso_x') or [])} knots)"
    return _CALIBRATION.get(kind, f"{kind}-calibrated")


def target_text(target: dict[str, Any]) -> str:
    """The calibration target of a router file, in words."""
    kind = target.get("kind")
    if kind == "quality":
        return (f"quality ≥ {float(target.get('quality', 0.95)):g} × the large model's, certified at δ = "
                f"{float(target.get('delta', 0.1)):g}")
    if kind == "defer_rate":
        return f"a defer rate of {100 * float(target.get('defer_rate', 0.5)):.0f} %"
    if kind == "budget":
        return f"a mean cost of at most {float(target.get('budget', 0)):g} per query"
    return "—"


def router_sentence(result: dict[str, Any]) -> str:
    """What the router does, in one or two sentences."""
    r = result["router"]
    pol, pred = r.get("policy") or {}, r.get("predictor") or {}
    tau = pol.get("tau_good")
    text = (f"Router {r.get('version', '?')} answers with {r['small']} when the "
            f"{_calibrator(pol.get('calibrator') or {})} {_SIGNAL.get(pol.get('signal', 'p_good'), pol.get('signal'))}"
            f" read by the {pred.get('name', '?')} predictor is at least {_tau(tau)}, "
            f"and otherwise (or when the prediction is unreadable) defers to {r['large']}.")
    fitted, target = r.get("fitted_on") or {}, r.get("target") or {}
    if target.get("kind"):
        text += f" The threshold was fitted on the {fitted.get('split', '?')} split for {target_text(target)}."
    if r.get("own_policy_tasks"):
        text += f" Tasks with their own threshold: {', '.join(r['own_policy_tasks'])}."
    return text


def router_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows describing the router file."""
    r = result["router"]
    pol, pred, target = r.get("policy") or {}, r.get("predictor") or {}, r.get("target") or {}
    rows = [("predictor", f"{pred.get('name', '?')} (version {pred.get('version') or '—'})"),
            ("artefact", str(pred.get("artefact") or "—")),
            ("calibrator", _calibrator(pol.get("calibrator") or {})),
            ("threshold", f"answer iff signal ≥ {_tau(pol.get('tau_good'))}"
                          + (f"; great above {_tau(pol['tau_great'])}" if pol.get("tau_great") is not None else "")),
            ("signal", _SIGNAL.get(pol.get("signal", "p_good"), str(pol.get("signal"))))]
    if target:
        rows.append(("target", target_text(target)))
    pricing = result.get("pricing") or {}
    rows.append(("cost", "seconds (latency)" if pricing.get("unit") == "latency" else "tokens at prices"))
    if pricing.get("unit") != "latency":
        rows.append(("prices", f"{price_text(pricing)}; cached prompt tokens at "
                               f"{100 * float(pricing.get('cached_discount', 0.1)):.0f} %"))
    fitted = r.get("fitted_on") or {}
    if fitted:
        rows.append(("fitted on", f"{fitted.get('split', '?')} split, {fitted.get('n_per_task', '?')} per task of "
                                  f"{', '.join(fitted.get('tasks') or [])}"))
    if r.get("judge"):
        rows.append(("judge", str(r["judge"])))
    return rows


def selection_table(result: dict[str, Any]) -> tuple[str, list[str], list[list[str]]] | None:
    """(rule, header, rows) of the predictor selection the router file records; None when it has none."""
    sel = result["router"].get("selection")
    if not isinstance(sel, dict) or not sel.get("candidates"):
        return None
    q = float(sel.get("quality", 0.95))
    header = ["candidate", "APGR", f"cost at {q:g} × large quality", "saving vs always large", "defers there",
              "AUROC (bad)", "n"]
    rows = [[name + (" (chosen)" if name == sel.get("chosen") else ""), fmt(c.get("apgr")),
             fmt(c.get("cost_at_target")), fmt(c.get("saving_at_target"), True), fmt(c.get("defer_at_target"), True),
             fmt(c.get("auroc_bad")), str(c.get("n", "—"))] for name, c in sel["candidates"].items()]
    return str(sel.get("rule", "")), header, rows


def _md_table(header: list[str], rows: list[list[str]], numeric: bool = True) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---|" + ("---:|" if numeric else "---|") * (len(header) - 1),
            *("| " + " | ".join(r) + " |" for r in rows)]


def format_markdown(result: dict[str, Any]) -> str:
    """The route-eval summary in markdown: headline, one row per method (with intervals), what a cost is, the
    metric definitions, the router's operating point and overhead, the router file and its predictor selection."""
    r = result["router"]
    lines = [f"# Routing replay: {r['small']} → {r['large']} ({result['split']} split, n = {result['n']})", ""]
    head = headline(result).split("\n")
    lines += [f"**{head[0]}**", *(f"**Why:** {w.removeprefix('Why: ')}" for w in head[1:]), "",
              f"Mean quality: small {result['q_small']:.3f}, large {result['q_large']:.3f}; costs in "
              f"{cost_unit_short(result)}.", ""]
    rows = [[name, with_ci(s["apgr"], s.get("apgr_ci")), fmt(s["cpt_50"], True), fmt(s["cpt_80"], True),
             fmt(s["cost_at_q"]), with_ci(s["savings"], s.get("savings_ci"), True), fmt(s["aiq"]), fmt(s.get("auroc"))]
            for name, s in ((k, v["summary"]) for k, v in result["methods"].items())]
    lines += _md_table(["method", "APGR", "CPT(50 %)", "CPT(80 %)", "cost at 95 % of large quality",
                        "saving vs always large", "AIQ", "AUROC (bad)"], rows)
    lines += ["", cost_unit(result), "", *(f"- **{term}**: {text}" for term, text in definitions(result))]
    op, o = result["methods"]["router"]["operating_point"], result["overhead"]
    lines += ["", f"Router at its fitted threshold: defers {100 * op['defer_rate']:.1f} %, quality "
              f"{op['quality']:.3f}, mean cost {op['cost']:.4g}.",
              f"Router overhead per query: {o['tokens_in']:.0f} prompt tokens, {o['tokens_out']:.1f} generated, "
              f"{o['latency_s']:.2f} s; {o['parse_failures']} unreadable predictions (deferred)."]
    lines += [f"Note: {n}" for n in result.get("notes", [])]
    lines += ["", "## Router", "", router_sentence(result), "",
              *_md_table(["field", "value"], [list(x) for x in router_rows(result)], numeric=False)]
    sel = selection_table(result)
    if sel:
        split = (r.get("fitted_on") or {}).get("split", "val")
        lines += ["", f"## Predictor chosen on {split}", "", f"Rule: {sel[0]}.", "", *_md_table(sel[1], sel[2])]
    return "\n".join(lines) + "\n"


__all__ = ["best_baseline", "cost_unit", "cost_unit_short", "definitions", "fmt", "fmt_ci", "format_markdown", "headline", "headline_facts",
           "price_text", "router_rows", "router_sentence", "selection_table", "target_text", "why_no_saving",
           "with_ci"]
