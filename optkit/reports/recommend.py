"""The variant to ship: the fastest one that is good enough, and why, from a finished report.

Peers rank by one number and can end up recommending the input model, or a variant that failed
its own accuracy goal. Here a variant must first be acceptable (pass every gate the recipe set
for it; a variant without gates must stay within ``report.select.tolerance`` of the baseline on
the chosen metric) and measured at the chosen shape; the fastest of those by p50 wins. The
baseline is the yardstick, not a candidate: it is what the user already has.
"""

from __future__ import annotations

from typing import Any

from optkit.reports.charts import label_of, measured_rows
from optkit.reports.metrics import delta_text, primary_metric, task_block
from optkit.reports.pareto import pareto_front

__all__ = ["acceptable", "recommend", "recommendation_text"]


def recommend(report: dict[str, Any]) -> dict[str, Any]:
    """``report["recommended"]``: the winner (or None), the yardsticks used, the candidates and the Pareto front."""
    select = report["recipe"]["report"].get("select") or {}
    metric = select.get("metric") or primary_metric(report)
    higher = next((m["higher_is_better"] for m in task_block(report)["metrics"] if m["name"] == metric), True)
    tolerance = float(select.get("tolerance", 0.01))
    provider, shape = _ranking_point(report, select)
    rows = _p50s(report, provider, shape)
    ok = acceptable(report, metric, higher, tolerance)
    candidates = sorted((n for n in ok if n in rows), key=lambda n: rows[n])
    variants = report["variants"]
    points = {
        n: (rows[n], variants[n][metric] if higher else -variants[n][metric]) for n in rows if metric in variants[n]
    }
    winner = candidates[0] if candidates else None
    return {
        "variant": winner,
        "reason": _reason(report, winner, metric, tolerance, provider, shape, rows, ok),
        "provider": provider,
        "shape": {"batch": shape[0], "seq": shape[1]} if shape else None,
        "metric": metric,
        "tolerance": tolerance,
        "p50_ms": rows.get(winner) if winner else None,
        "candidates": candidates,
        "pareto": pareto_front(points),
        "package": None,  # filled in when the run writes the winner's package
    }


def acceptable(report: dict[str, Any], metric: str, higher: bool, tolerance: float) -> list[str]:
    """Variants (not the baseline) that pass every gate they have, or without gates stay within ``tolerance``."""
    gated: dict[str, bool] = {}
    for gate in report.get("gates", []):
        gated[gate["variant"]] = gated.get(gate["variant"], True) and bool(gate["passed"])
    base = report["variants"]["baseline"].get(metric)
    out = []
    for name, v in report["variants"].items():
        if name == "baseline":
            continue
        if name in gated:
            good = gated[name]
        else:
            value = v.get(metric)
            drop = None if value is None or base is None else (base - value if higher else value - base)
            good = drop is not None and drop <= tolerance + 1e-12
        if good:
            out.append(name)
    return out


def _ranking_point(report: dict[str, Any], select: dict[str, Any]) -> tuple[str | None, tuple[int, int] | None]:
    """The provider and shape to rank at: the recipe's choice, else the first provider with measured rows and
    the first shape."""
    shapes = report["recipe"]["evaluate"]["shapes"]
    wanted = select.get("shape") or (shapes[0] if shapes else None)
    shape = (int(wanted["batch"]), int(wanted["seq"])) if wanted else None
    measured = [r for r in report["results"] if r["status"] == "measured"]
    providers = [select["provider"]] if select.get("provider") else report["recipe"]["evaluate"]["providers"]
    for provider in providers:
        if any(r["provider"] == provider for r in measured):
            return provider, shape
    return (providers[0] if providers else None), shape


def _p50s(report: dict[str, Any], provider: str | None, shape: tuple[int, int] | None) -> dict[str, float]:
    if provider is None or shape is None:
        return {}
    return {n: float(r["latency"]["p50_ms"]) for n, r in measured_rows(report, provider, *shape).items()}


def _reason(
    report: dict[str, Any],
    winner: str | None,
    metric: str,
    tolerance: float,
    provider: str | None,
    shape: tuple[int, int] | None,
    rows: dict[str, float],
    ok: list[str],
) -> str:
    """One sentence a reviewer can check against the tables."""
    allowed = delta_text(metric, tolerance).lstrip("+")
    where = f"{provider} {label_of(report, *shape)}" if shape else str(provider)
    if winner is None:
        if not ok:
            return (
                f"no variant passes its gates (or, without gates, stays within {allowed} of the baseline's "
                f"{metric}); nothing to ship from this run"
            )
        return f"no acceptable variant ({', '.join(ok)}) was measured at {where}"
    ref = report.get("reference")
    speed = ""
    if ref in rows and ref != winner:
        speed = f", {rows[ref] / rows[winner]:.2f}× {ref}"
    delta = report["variants"][winner][metric] - report["variants"]["baseline"][metric]
    gates = any(g["variant"] == winner for g in report.get("gates", []))
    why = "passes every gate" if gates else f"within {allowed} of the baseline"
    return (
        f"fastest acceptable variant at {where}: p50 {rows[winner]:.2f} ms{speed}; "
        f"{metric} {delta_text(metric, delta)} vs the baseline; {why}"
    )


def recommendation_text(report: dict[str, Any]) -> tuple[str, str] | None:
    """(headline, details) for the Markdown and HTML reports; None for reports written before recommendations."""
    rec = report.get("recommended")
    if not rec:
        return None
    head = f"Recommended: {rec['variant']}" if rec["variant"] else "Recommended: none"
    details = rec["reason"][:1].upper() + rec["reason"][1:] + "."
    if rec.get("package"):
        details += f" Package: {rec['package']}/ (beside this report)."
    if rec.get("pareto"):
        details += f" Pareto front of {rec['metric']} vs p50: {', '.join(rec['pareto'])}."
    return head, details
