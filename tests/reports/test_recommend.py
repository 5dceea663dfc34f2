"""The recommended variant: the fastest acceptable one, never the baseline, never one that failed a gate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from optkit.reports.recommend import acceptable, recommend


def _report(
    accuracies: dict[str, float],
    p50s: dict[tuple[str, int], float],
    gates: list[tuple[str, bool]] = (),  # type: ignore[assignment]
    select: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A recipe report with just what the ranking reads; p50s are keyed by (variant, batch) at seq 128."""
    return {
        "recipe": {
            "evaluate": {"shapes": [{"batch": 1, "seq": 128}, {"batch": 8, "seq": 128}], "providers": ["cpu", "cuda"]},
            "report": {"select": select or {"shape": None, "provider": None, "metric": None, "tolerance": 0.01}},
        },
        "reference": "fp32-onnx",
        "variants": {n: {"accuracy": a, "macro_f1": a - 0.01} for n, a in accuracies.items()},
        "results": [
            {"variant": n, "provider": "cpu", "batch": b, "seq": 128, "status": "measured", "latency": {"p50_ms": t}}
            for (n, b), t in p50s.items()
        ]
        + [
            {"variant": n, "provider": "cuda", "batch": 1, "seq": 128, "status": "not measured: no GPU"}
            for n in accuracies
        ],
        "gates": [{"variant": n, "passed": ok, "message": ""} for n, ok in gates],
    }


ACC = {"baseline": 0.830, "fp32-onnx": 0.830, "int8-dynamic": 0.827, "int8-static": 0.805, "pruned": 0.825}
P50 = {
    ("baseline", 1): 40.0,
    ("fp32-onnx", 1): 30.0,
    ("int8-dynamic", 1): 20.0,
    ("int8-static", 1): 15.0,
    ("pruned", 1): 18.0,
    ("baseline", 8): 300.0,
    ("fp32-onnx", 8): 200.0,
    ("int8-dynamic", 8): 90.0,
    ("int8-static", 8): 120.0,
    ("pruned", 8): 100.0,
}


def test_the_fastest_variant_within_the_tolerance_wins_and_the_too_lossy_one_is_passed_over() -> None:
    rec = recommend(_report(ACC, P50))
    # int8-static is fastest but 2.5 points down; pruned (0.5 down) is next fastest
    assert rec["variant"] == "pruned"
    assert rec["candidates"] == ["pruned", "int8-dynamic", "fp32-onnx"]
    assert (rec["provider"], rec["shape"], rec["metric"], rec["p50_ms"]) == (
        "cpu",
        {"batch": 1, "seq": 128},
        "accuracy",
        18.0,
    )
    assert "1.67× fp32-onnx" in rec["reason"] and "-0.50 points" in rec["reason"]
    assert "within 1.00 points of the baseline" in rec["reason"]


def test_a_variant_with_gates_must_pass_them_all_and_then_no_tolerance_applies() -> None:
    report = _report(ACC, P50, gates=[("int8-static", True), ("pruned", True), ("pruned", False)])
    assert acceptable(report, "accuracy", True, 0.01) == ["fp32-onnx", "int8-dynamic", "int8-static"]
    rec = recommend(report)
    assert rec["variant"] == "int8-static"  # 2.5 points down, but its own gate allowed that
    assert "passes every gate" in rec["reason"]


def test_the_tolerance_boundary_is_inclusive() -> None:
    acc = {"baseline": 0.83, "fp32-onnx": 0.83, "int8-dynamic": 0.82}
    report = _report(acc, {("fp32-onnx", 1): 30.0, ("int8-dynamic", 1): 20.0})
    assert recommend(report)["variant"] == "int8-dynamic"  # exactly 1 point down
    report["variants"]["int8-dynamic"]["accuracy"] = 0.8199
    assert recommend(report)["variant"] == "fp32-onnx"


def test_the_baseline_is_never_recommended_even_when_fastest() -> None:
    p50 = dict(P50) | {("baseline", 1): 1.0}
    rec = recommend(_report(ACC, p50))
    assert rec["variant"] == "pruned" and "baseline" not in rec["candidates"]


def test_select_picks_the_shape_the_metric_and_the_tolerance() -> None:
    at_b8 = recommend(_report(ACC, P50, select={"shape": {"batch": 8, "seq": 128}, "tolerance": 0.01}))
    assert at_b8["variant"] == "int8-dynamic" and at_b8["shape"] == {"batch": 8, "seq": 128}
    loose = recommend(_report(ACC, P50, select={"tolerance": 0.03}))
    assert loose["variant"] == "int8-static" and loose["tolerance"] == 0.03
    f1 = recommend(_report(ACC, P50, select={"metric": "macro_f1", "tolerance": 0.0}))
    assert f1["metric"] == "macro_f1" and f1["variant"] == "fp32-onnx"


def test_nothing_acceptable_means_no_recommendation_and_says_why() -> None:
    report = _report(ACC, P50, gates=[(n, False) for n in ACC if n != "baseline"])
    rec = recommend(report)
    assert rec["variant"] is None and rec["candidates"] == [] and rec["p50_ms"] is None
    assert rec["reason"].startswith("no variant passes its gates")


def test_an_acceptable_variant_that_was_not_measured_cannot_win() -> None:
    report = _report(ACC, {k: v for k, v in P50.items() if k[0] == "baseline"})
    rec = recommend(report)
    assert rec["variant"] is None and "was measured at cpu b1×s128" in rec["reason"]


def test_the_pareto_front_is_reported_in_latency_order() -> None:
    rec = recommend(_report(ACC, P50))
    # int8-static (fastest), pruned, int8-dynamic, fp32-onnx (most accurate, tied with the slower baseline)
    assert rec["pareto"] == ["int8-static", "pruned", "int8-dynamic", "fp32-onnx"]


@pytest.mark.parametrize("higher", [True, False])
def test_a_lower_is_better_metric_counts_a_rise_as_the_loss(higher: bool) -> None:
    report = _report({"baseline": 1.0, "a": 1.005, "b": 1.02}, {("a", 1): 10.0, ("b", 1): 5.0})
    report["task"] = {"primary_metric": "mae", "metrics": [{"name": "mae", "higher_is_better": higher}]}
    for v in report["variants"].values():
        v["mae"] = v.pop("accuracy")
    chosen = recommend(copy.deepcopy(report))["variant"]
    assert chosen == ("b" if higher else "a")  # b's mae is 0.02 worse when lower is better
