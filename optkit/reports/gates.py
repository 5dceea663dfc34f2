"""Recipe gates: each violated threshold names the variant, the metric and by how much."""

from __future__ import annotations

from typing import Any

from optkit.recipe import GateSpec, Recipe

__all__ = ["check_gates"]

_METRIC_WORDS = {"f1": "F1", "recall": "recall"}


def check_gates(recipe: Recipe, evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (variant, gate) with value, threshold and ``passed``."""
    out: list[dict[str, Any]] = []
    gates = recipe.report.gates
    variants = evaluation["variants"]
    first = recipe.evaluate.shapes[0]
    for name in recipe.variants:
        merged = _merge(gates.get("*"), gates.get(name))
        v = variants[name]
        for metric, threshold in merged.items():
            if metric == "max_accuracy_drop":
                value = variants["baseline"]["accuracy"] - v["accuracy"]
                passed = value <= threshold + 1e-12
                text = f"accuracy drop {value * 100:+.2f} points (allowed {threshold * 100:.2f})"
            elif metric == "min_agreement":
                value = v["agreement_with_baseline"]
                passed = value >= threshold
                text = f"agreement with baseline {value:.4f} (required {threshold:.4f})"
            elif metric == "max_class_drop":
                value, passed, text = _class_drop(v, threshold)
            elif metric == "max_slice_drop":
                value, passed, text = _slice_drop(v, threshold, evaluation)
            elif metric == "max_metric_drop":
                value, passed, text = _metric_drop(v, variants["baseline"], threshold, evaluation)
            elif metric == "min_metric":
                out += _metric_floors(name, v, threshold)
                continue
            elif metric == "max_size_ratio":
                value = v["size_ratio"]
                passed = value <= threshold
                text = f"size {value:.3f}× of {evaluation['reference']} (allowed {threshold:.3f}×)"
            else:  # min_speedup
                row = _first_measured(evaluation["results"], name, first.batch, first.seq)
                value = row.get("speedup_vs_reference") if row else None
                passed = value is not None and value >= threshold
                shown = "not measured" if value is None else f"{value:.2f}×"
                text = f"p50 speed-up at {first.label} vs {evaluation['reference']} {shown} (required {threshold:.2f}×)"
            out.append(
                {
                    "variant": name,
                    "gate": metric,
                    "value": value,
                    "threshold": threshold,
                    "passed": bool(passed),
                    "message": f"{name}: {text}",
                }
            )
    return out


def _primary(evaluation: dict[str, Any]) -> tuple[str, bool]:
    """The report's primary metric and whether higher is better (accuracy for reports without a task block)."""
    task = evaluation.get("task") or {}
    primary = task.get("primary_metric", "accuracy")
    return primary, next((m["higher_is_better"] for m in task.get("metrics", []) if m["name"] == primary), True)


def _metric_drop(
    variant: dict[str, Any], baseline: dict[str, Any], threshold: float, evaluation: dict[str, Any]
) -> tuple[float | None, bool, str]:
    """The primary metric's drop against the baseline (a rise where lower is better), with its interval."""
    primary, higher = _primary(evaluation)
    if primary not in variant or primary not in baseline:
        return None, False, f"{primary} not measured for this variant"
    change = variant[primary] - baseline[primary]
    value = (-change if higher else change) + 0.0
    passed = value <= threshold + 1e-12
    ci = variant.get(f"{primary}_delta_ci95")
    noise = f", 95% CI of the change {ci[0] * 100:+.2f}…{ci[1] * 100:+.2f}" if ci else ""
    text = f"{primary} drop {value * 100:+.2f} points{noise} (allowed {threshold * 100:.2f})"
    return value, passed, text


def _metric_floors(name: str, variant: dict[str, Any], floors: dict[str, float]) -> list[dict[str, Any]]:
    """One gate entry per floor in ``min_metric``, named ``min_metric.<metric>``."""
    out = []
    for metric, floor in floors.items():
        value = variant.get(metric)
        passed = value is not None and value >= floor
        shown = "not measured" if value is None else f"{value:.4f}"
        out.append(
            {
                "variant": name,
                "gate": f"min_metric.{metric}",
                "value": value,
                "threshold": floor,
                "passed": bool(passed),
                "message": f"{name}: {metric} {shown} (required {floor:.4f})",
            }
        )
    return out


def _class_drop(variant: dict[str, Any], threshold: float) -> tuple[float | None, bool, str]:
    """The worst-hit class's drop in recall or F1 (points), against the allowed drop; the class named."""
    worst = variant.get("worst_class")
    if worst is None:
        return None, False, "no per-class figures to judge the worst class by (the task reports no classes)"
    value = -worst["delta"] + 0.0  # no "-0.00"
    passed = value <= threshold + 1e-12
    ci = worst.get("ci95")
    noise = f", 95% CI of the change {ci[0] * 100:+.2f}…{ci[1] * 100:+.2f}" if ci else ""
    text = (
        f"worst class {worst['class']!r}: {_METRIC_WORDS.get(worst['metric'], worst['metric'])} drop "
        f"{value * 100:+.2f} points{noise} (allowed {threshold * 100:.2f})"
    )
    return value, passed, text


def _slice_drop(
    variant: dict[str, Any], threshold: float, evaluation: dict[str, Any]
) -> tuple[float | None, bool, str]:
    """The worst slice group's drop of the primary metric, against the allowed drop; slice and group named."""
    worst = variant.get("worst_slice")
    if worst is None:
        return None, False, "no slice figures to judge (evaluate.slices is empty)"
    task = evaluation.get("task") or {}
    primary = task.get("primary_metric", "accuracy")
    higher = next((m["higher_is_better"] for m in task.get("metrics", []) if m["name"] == primary), True)
    value = (-worst["delta"] if higher else worst["delta"]) + 0.0
    passed = value <= threshold + 1e-12
    ci = worst.get("ci95")
    noise = f", 95% CI of the change {ci[0] * 100:+.2f}…{ci[1] * 100:+.2f}" if ci else ""
    small = ", too few rows to conclude" if worst.get("inconclusive") else ""
    text = (
        f"worst slice {worst['slice']}={worst['group']!r} ({worst['rows']} rows{small}): {primary} drop "
        f"{value * 100:+.2f} points{noise} (allowed {threshold * 100:.2f})"
    )
    return value, passed, text


def _merge(*specs: GateSpec | None) -> dict[str, float]:
    merged: dict[str, float] = {}
    for spec in specs:
        if spec is not None:
            merged.update({k: v for k, v in spec.model_dump().items() if v is not None})
    return merged


def _first_measured(results: list[dict[str, Any]], name: str, batch: int, seq: int) -> dict[str, Any] | None:
    for row in results:
        if (row["variant"], row["batch"], row["seq"], row["status"]) == (name, batch, seq, "measured"):
            return row
    return None
