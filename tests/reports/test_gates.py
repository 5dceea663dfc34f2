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


def test_gates_merge_wildcard_and_per_variant_thresholds(schema_recipe_dict: dict) -> None:
    schema_recipe_dict["report"]["gates"] = {
        "*": {"max_accuracy_drop": 0.02},
        "int8-dynamic": {"max_accuracy_drop": 0.01, "min_speedup": 1.2, "max_size_ratio": 0.3, "min_agreement": 0.95},
    }
    gates = check_gates(recipe_from_dict(schema_recipe_dict), _evaluation(1.31))
    by = {(g["variant"], g["gate"]): g for g in gates}
    assert by[("int8-dynamic", "max_accuracy_drop")]["passed"]  # 0.8 points <= 1.0
    assert by[("int8-dynamic", "max_accuracy_drop")]["threshold"] == 0.01  # specific beats '*'
    assert by[("int8-dynamic", "min_speedup")]["passed"]
    assert by[("int8-dynamic", "max_size_ratio")]["passed"] and by[("int8-dynamic", "min_agreement")]["passed"]
    failed = by[("int8-static", "max_accuracy_drop")]
    assert not failed["passed"]
    assert failed["message"] == "int8-static: accuracy drop +5.00 points (allowed 2.00)"
    assert by[("fp32-onnx", "max_accuracy_drop")]["passed"]


def test_speed_gate_fails_when_too_slow_or_not_measured(schema_recipe_dict: dict) -> None:
    schema_recipe_dict["report"]["gates"] = {"int8-dynamic": {"min_speedup": 1.2}}
    recipe = recipe_from_dict(schema_recipe_dict)
    (slow,) = check_gates(recipe, _evaluation(1.1))
    assert not slow["passed"] and "1.10× (required 1.20×)" in slow["message"]
    (missing,) = check_gates(recipe, _evaluation(None))
    assert not missing["passed"] and "not measured" in missing["message"]


def test_each_gate_passes_at_its_threshold_and_fails_just_past_it(schema_recipe_dict: dict) -> None:
    """A gate set to the measured value passes (the README's 'at least' / 'at most'); one step past it fails."""
    at = {"min_speedup": 1.25, "max_size_ratio": 0.26, "min_agreement": 0.97}
    schema_recipe_dict["report"]["gates"] = {"int8-dynamic": at}
    gates = check_gates(recipe_from_dict(schema_recipe_dict), _evaluation(1.25))
    assert [(g["gate"], g["value"], g["threshold"], g["passed"]) for g in gates] == [
        ("min_speedup", 1.25, 1.25, True),
        ("max_size_ratio", 0.26, 0.26, True),
        ("min_agreement", 0.97, 0.97, True),
    ]
    assert [g["message"] for g in gates] == [
        "int8-dynamic: p50 speed-up at b1×s16 vs fp32-onnx 1.25× (required 1.25×)",
        "int8-dynamic: size 0.260× of fp32-onnx (allowed 0.260×)",
        "int8-dynamic: agreement with baseline 0.9700 (required 0.9700)",
    ]
    # 0.85 - 0.842 is 0.008000000000000007 in floats: a drop equal to the threshold as written still passes
    schema_recipe_dict["report"]["gates"] = {"int8-dynamic": {"max_accuracy_drop": 0.008}}
    (drop,) = check_gates(recipe_from_dict(schema_recipe_dict), _evaluation(1.25))
    assert drop["passed"] and drop["message"] == "int8-dynamic: accuracy drop +0.80 points (allowed 0.80)"
    past = {"min_speedup": 1.2501, "max_size_ratio": 0.2599, "min_agreement": 0.9701}
    schema_recipe_dict["report"]["gates"] = {"int8-dynamic": past}
    assert [g["passed"] for g in check_gates(recipe_from_dict(schema_recipe_dict), _evaluation(1.25))] == [False] * 3


def test_speed_gate_reads_the_first_shape_only(schema_recipe_dict: dict) -> None:
    """The speed-up gate is judged at evaluate.shapes[0]; a faster row at another shape does not count."""
    schema_recipe_dict["evaluate"]["shapes"] = [{"batch": 1, "seq": 16}, {"batch": 8, "seq": 16}]
    schema_recipe_dict["report"]["gates"] = {"int8-dynamic": {"min_speedup": 1.2}}
    evaluation = _evaluation(None)
    other = {"variant": "int8-dynamic", "batch": 8, "seq": 16, "provider": "cpu", "status": "measured"}
    evaluation["results"].append(dict(other, speedup_vs_reference=3.0))
    (gate,) = check_gates(recipe_from_dict(schema_recipe_dict), evaluation)
    assert gate["value"] is None and not gate["passed"]
    assert gate["message"] == "int8-dynamic: p50 speed-up at b1×s16 vs fp32-onnx not measured (required 1.20×)"
