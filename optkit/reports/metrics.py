"""Which metrics a report shows, in what order and how: read from the report's task block.

Reports written before tasks existed (and classification reports) show accuracy, its change in
points and macro-F1, as they always did; another task's report shows its own metrics.
"""

from __future__ import annotations

from typing import Any

__all__ = ["delta_text", "metric_cells", "metric_headers", "metric_label", "primary_metric"]

_CLASSIFICATION = {
    "name": "text-classification",
    "primary_metric": "accuracy",
    "metrics": [{"name": "accuracy", "higher_is_better": True}, {"name": "macro_f1", "higher_is_better": True}],
}
# How the classification columns have always been headed; other metrics use their own names.
_HEADERS = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    # feature-extraction: a k-NN classifier over the embeddings, and each row's cosine to the baseline's
    "knn_accuracy": "k-NN accuracy",
    "knn_macro_f1": "k-NN macro-F1",
    "cosine_mean": "cosine to baseline (mean)",
    "cosine_p5": "cosine to baseline (p5)",
}
_DELTA_HEADERS = {"accuracy": "Δ acc (pts)", "knn_accuracy": "Δ k-NN acc (pts)"}
_IN_POINTS = {"accuracy", "macro_f1", "knn_accuracy", "knn_macro_f1"}  # fractions of 1: changes read best in points


def task_block(report: dict[str, Any]) -> dict[str, Any]:
    return report.get("task") or _CLASSIFICATION


def primary_metric(report: dict[str, Any]) -> str:
    return str(task_block(report)["primary_metric"])


def metric_label(metric: str) -> str:
    """How a metric is named in tables and on chart axes."""
    return _HEADERS.get(metric, metric)


def metric_headers(report: dict[str, Any], *, secondary: bool = True) -> list[str]:
    """Primary metric, its change against the baseline, then (with ``secondary``) the other metrics."""
    primary = primary_metric(report)
    headers = [_HEADERS.get(primary, primary), _DELTA_HEADERS.get(primary, f"Δ {primary}")]
    if secondary:
        headers += [_HEADERS.get(m["name"], m["name"]) for m in task_block(report)["metrics"][1:]]
    return headers


def metric_cells(report: dict[str, Any], name: str, variant: dict[str, Any], *, secondary: bool = True) -> list[str]:
    """The cells under ``metric_headers`` for one variant; '–' where a variant has no such figure (bench)."""
    primary = primary_metric(report)
    delta = variant.get(f"{primary}_delta")
    ci = variant.get(f"{primary}_delta_ci95")
    cells = [
        _value(variant.get(primary)),
        "–" if name == "baseline" or delta is None else _delta(primary, delta) + (_interval(primary, ci) if ci else ""),
    ]
    if secondary:
        cells += [_value(variant.get(m["name"])) for m in task_block(report)["metrics"][1:]]
    return cells


def delta_text(metric: str, x: float) -> str:
    """A change of ``metric`` with its unit: '+0.23 points' for fractions of 1, '+0.0123' otherwise."""
    return f"{_delta(metric, x)} points" if metric in _IN_POINTS else _delta(metric, x)


def _value(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _interval(metric: str, ci: list[float]) -> str:
    """The change's paired 95% interval beside it: `` [-0.61…+0.15]``."""
    return f" [{_delta(metric, ci[0])}…{_delta(metric, ci[1])}]"


def _delta(metric: str, x: float) -> str:
    return f"{x * 100:+.2f}" if metric in _IN_POINTS else f"{x:+.4f}"
