from __future__ import annotations

from typing import Any

from optkit.recipe import recipe_from_dict
from optkit.reports.gates import check_gates


def _evaluation(speedup: float | None) -> dict[str, Any]:
    variants = {
        "baseline": {"accuracy": 0.85},
        "fp32-onnx": {"accuracy": 0.85, "size_ratio": 1.0, "agreement_with_baseline": 1.0},
        "int8-dynamic": {"accuracy": 0.842, "size_ratio": 0.26, "agreement_with_baseline": 0.97},
        "int8-static": {"accuracy": 0.80, "size_ratio": 0.65, "agreement_with_baseline": 0.9},
    }
    row = {"variant": "int8-dynamic", "batch": 1, "seq": 16, "provider": "cpu"}
    row.update({"status": "measured", "speedup_vs_reference": speedup} if speedup else {"status": "not measured: x"})
    return {"variants": variants, "results": [row], "reference": "fp32-onnx"}


def test_gates_merge_wildcard_and_per_variant_thresholds(recipe_dict: dict) -> None:
    recipe_dict["report"]["gates"] = {
        "*": {"max_accuracy_drop": 0.02},
        "int8-dynamic": {"max_accuracy_drop": 0.01, "min_speedup": 1.2, "max_size_ratio": 0.3, "min_agreement": 0.95},
    }
    gates = check_gates(recipe_from_dict(recipe_dict), _evaluation(1.31))
    by = {(g["variant"], g["gate"]): g for g in gates}
    assert by[("int8-dynamic", "max_accuracy_drop")]["passed"]  # 0.8 points <= 1.0
    assert by[("int8-dynamic", "max_accuracy_drop")]["threshold"] == 0.01  # specific beats '*'
    assert by[("int8-dynamic", "min_speedup")]["passed"]
    assert by[("int8-dynamic", "max_size_ratio")]["passed"] and by[("int8-dynamic", "min_agreement")]["passed"]
    failed = by[("int8-static", "max_accuracy_drop")]
    assert not failed["passed"]
    assert failed["message"] == "int8-static: accuracy drop +5.00 points (allowed 2.00)"
    assert by[("fp32-onnx", "max_accuracy_drop")]["passed"]


def test_speed_gate_fails_when_too_slow_or_not_measured(recipe_dict: dict) -> None:
    recipe_dict["report"]["gates"] = {"int8-dynamic": {"min_speedup": 1.2}}
    recipe = recipe_from_dict(recipe_dict)
    (slow,) = check_gates(recipe, _evaluation(1.1))
    assert not slow["passed"] and "1.10× (required 1.20×)" in slow["message"]
    (missing,) = check_gates(recipe, _evaluation(None))
    assert not missing["passed"] and "not measured" in missing["message"]
