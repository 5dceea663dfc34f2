"""The notes of a run's report, built in one place from what the passes and the measurements say."""

from __future__ import annotations

from typing import Any

from optkit.evaluate.contention import busy_note
from optkit.recipe import Recipe, shape_label
from optkit.reports.compression import sparsity_notes
from optkit.reports.traffic import traffic_notes

__all__ = ["gate_noise_notes", "run_notes"]


def run_notes(recipe: Recipe, report: dict[str, Any]) -> list[str]:
    """Plain-language explanations a deployment engineer would otherwise have to dig for: what each pass
    says about the variants it built, busy or noisy timing windows, and sparsity that buys no speed."""
    notes = []
    for name in report["variants"]:
        last_of_kind = {step.kind: step for step in recipe.chain(name)}  # a pass speaks once per variant
        for step in last_of_kind.values():
            notes += step.report_notes(name, report)
    busy_windows: set[str] = set()  # one note per timing window, not per variant in it
    for r in report["results"]:
        where = f"{r['provider']} {shape_label(r)}"
        busy = busy_note(r.get("contention"))
        if busy and where not in busy_windows:
            busy_windows.add(where)
            notes.append(
                f"latency at {where}: {busy}, so its milliseconds are slower than on a quiet machine; the "
                f"speed-ups within this run stay comparable (all variants were timed interleaved, in the same window)."
            )
    notes += _unmet_precision_notes(report)
    for r in report["results"]:
        lat = r.get("latency") or {}
        if lat.get("noisy"):
            notes.append(
                f"{r['variant']} {r['provider']} {shape_label(r)}: noisy timing (robust CV "
                f"{lat['robust_cv']:.2f}); the machine was busy. The 95% interval of the median "
                f"{lat['p50_ci95_ms'][0]:.2f}–{lat['p50_ci95_ms'][1]:.2f} ms says how far to trust the p50."
            )
    return notes + traffic_notes(report) + sparsity_notes(report) + gate_noise_notes(report)


def gate_noise_notes(report: dict[str, Any]) -> list[str]:
    """A gate keeps its absolute threshold, but where the allowed change lies inside the 95% interval of
    the measured change, another sample of eval rows could have decided it the other way: say so."""
    notes = []
    for g in report.get("gates") or []:
        v = report["variants"].get(g["variant"]) or {}
        if g["gate"] == "max_accuracy_drop":
            ci, delta, what = v.get("accuracy_delta_ci95"), v.get("accuracy_delta"), "accuracy"
        elif g["gate"] == "max_metric_drop":
            primary = (report.get("task") or {}).get("primary_metric", "accuracy")
            ci, delta, what = v.get(f"{primary}_delta_ci95"), v.get(f"{primary}_delta"), primary
        elif g["gate"] == "max_class_drop" and v.get("worst_class"):
            worst = v["worst_class"]
            ci, delta = worst.get("ci95"), worst["delta"]
            what = f"class {worst['class']!r} {'F1' if worst['metric'] == 'f1' else worst['metric']}"
        elif g["gate"] == "max_slice_drop" and v.get("worst_slice"):
            worst = v["worst_slice"]
            ci, delta, what = worst.get("ci95"), worst["delta"], f"slice {worst['slice']}={worst['group']!r}"
        else:
            continue
        allowed = -g["threshold"]
        if not ci or delta is None or not ci[0] <= allowed <= ci[1]:
            continue
        notes.append(
            f"{g['variant']}: the {g['gate']} gate {'passed' if g['passed'] else 'failed'} on the {what} change of "
            f"{delta * 100:+.2f} points, but the limit ({allowed * 100:+.2f}) lies inside the change's 95% interval "
            f"({ci[0] * 100:+.2f}…{ci[1] * 100:+.2f}): on another sample of eval rows the gate could decide the "
            f"other way. More eval rows narrow the interval."
        )
    return notes


def _unmet_precision_notes(report: dict[str, Any]) -> list[str]:
    """One note per timing window whose adaptive timing ended before every interval met its target.

    The rows still hold honest intervals, only wider than asked; the note names the widest, so a
    reader knows which figure to distrust and that a quieter machine or a larger budget would help.
    """
    windows: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        lat = r.get("latency") or {}
        if lat.get("precision_target") and lat.get("stopped_by") in ("budget", "max_runs"):
            windows.setdefault(f"{r['provider']} {shape_label(r)}", []).append(r)
    notes = []
    for where, rows in windows.items():
        lat = rows[0]["latency"]
        widest = max(rows, key=lambda r: r["latency"].get("p50_ci95_half_width", 0.0))
        ended = "the time budget" if lat["stopped_by"] == "budget" else f"the cap of {lat['max_runs']} runs"
        notes.append(
            f"latency at {where}: adaptive timing ended at {ended} after {min(r['latency']['runs'] for r in rows)} "
            f"runs per variant, before every median was known to ±{lat['precision_target']:.1%}: the widest "
            f"interval is ±{widest['latency'].get('p50_ci95_half_width', 0.0):.1%} ({widest['variant']}). A quieter "
            f"machine, or a larger time_budget_s / max_runs, narrows it."
        )
    return notes
