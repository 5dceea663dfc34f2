"""Paired changes between two models' predictions: intervals, McNemar, per-class changes, the worst class
and its gate, built from predictions constructed so that one class pays for compression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from optkit.evaluate.paired import changed_examples, decode_predictions, encode_predictions, paired_change
from optkit.recipe import recipe_from_dict
from optkit.reports.changes import changes_html, changes_markdown
from optkit.reports.charts import class_change_svg
from optkit.reports.gates import check_gates
from optkit.reports.notes import gate_noise_notes
from optkit.tasks import Task, get_task

NAMES = ["world", "sports", "science"]


def _suffering_science() -> tuple[list[int], list[int], list[int]]:
    """600 rows, 200 per class. The baseline gets 90% of each class right; the variant predicts the same
    except 60 'science' rows the baseline got right, which it calls 'world'."""
    targets = [i % 3 for i in range(600)]
    baseline = [y if i % 10 else (y + 1) % 3 for i, y in enumerate(targets)]
    variant = list(baseline)
    hit = [i for i, y in enumerate(targets) if y == 2 and baseline[i] == y][:60]
    for i in hit:
        variant[i] = 0
    return targets, baseline, variant


def test_the_class_that_suffers_is_named_worst_with_an_interval_that_excludes_zero() -> None:
    targets, baseline, variant = _suffering_science()
    task = get_task("text-classification")
    change = paired_change(task, baseline, variant, targets, NAMES, seed=42)
    science, world = change["per_class"]["science"], change["per_class"]["world"]
    assert science["support"] == 200 and science["recall"] == pytest.approx(0.9 - 0.3)
    assert science["recall_delta"] == pytest.approx(-0.3)
    lo, hi = science["recall_delta_ci95"]
    assert -0.38 < lo < -0.3 < hi < -0.22  # binomial-ish spread around the true drop, never reaching 0
    assert world["recall_delta"] == 0.0 and world["recall_delta_ci95"] == [0.0, 0.0]
    assert world["precision_delta"] < 0  # 60 wrong 'world' calls dilute world's precision
    worst = change["worst_class"]
    assert (worst["class"], worst["metric"]) == ("science", "recall") and worst["verdict"] == "a loss beyond noise"
    # the overall change: 60 rows lost, none gained: -10 points, beyond noise, McNemar p = 2 / 2^60
    assert change["accuracy_delta_verdict"] == "a loss beyond noise"
    assert change["discordant_rows"] == {"reference_only_right": 60, "variant_only_right": 0}
    assert change["mcnemar_p"] == pytest.approx(2 / 2**60)
    assert change["changed_rows"] == 60 and change["changed_share"] == pytest.approx(0.1)
    assert paired_change(task, baseline, variant, targets, NAMES, seed=42) == change  # seeded


def test_max_class_drop_fails_naming_the_class_and_notes_a_decision_inside_the_interval(
    recipe_dict: dict[str, Any],
) -> None:
    targets, baseline, variant = _suffering_science()
    task = get_task("text-classification")
    hurt = paired_change(task, baseline, variant, targets, NAMES, seed=42)
    same = paired_change(task, baseline, baseline, targets, NAMES, seed=42)
    recipe_dict["report"]["gates"] = {"*": {"max_class_drop": 0.05}, "int8-static": {"max_class_drop": 0.31}}
    evaluation = {
        "variants": {"baseline": {}, "fp32-onnx": same, "int8-dynamic": hurt, "int8-static": hurt},
        "results": [],
        "reference": "fp32-onnx",
    }
    gates = {g["variant"]: g for g in check_gates(recipe_from_dict(recipe_dict), evaluation)}
    assert gates["fp32-onnx"]["passed"] and gates["fp32-onnx"]["value"] == 0.0
    failed = gates["int8-dynamic"]
    assert not failed["passed"] and failed["value"] == pytest.approx(0.3)
    assert failed["message"].startswith("int8-dynamic: worst class 'science': recall drop +30.00 points, 95% CI")
    assert failed["message"].endswith("(allowed 5.00)")
    # 31 points allowed: passes, but the limit lies inside the interval of the change: a note says so
    assert gates["int8-static"]["passed"]
    notes = gate_noise_notes({"variants": evaluation["variants"], "gates": list(gates.values())})
    assert len(notes) == 1 and notes[0].startswith(
        "int8-static: the max_class_drop gate passed on the class 'science' recall change of -30.00 points, "
        "but the limit (-31.00) lies inside"
    )


def test_reports_show_the_change_per_class_and_the_rows_that_changed() -> None:
    targets, baseline, variant = _suffering_science()
    task = get_task("text-classification")
    texts = [f"row {i} text" for i in range(600)]
    hurt = paired_change(task, baseline, variant, targets, NAMES, seed=1)
    hurt |= {
        "accuracy": 0.8,
        "accuracy_delta": -0.1,
        "changed_examples": changed_examples(
            task, baseline, variant, targets, NAMES, texts, ([0.9] * 600, [0.6] * 600), limit=3
        ),
    }
    report = {"variants": {"baseline": {"accuracy": 0.9}, "int8": hurt}, "task": None}
    md = "\n".join(changes_markdown(report))
    assert "| int8 | -10.00 pts (95% CI " in md and ", a loss beyond noise) |" in md
    assert "| science | 200 | 0.857 | 0.600 |" in md  # precision, recall of the suffering class
    assert "### Rows that changed: int8 (60, first 3)" in md
    assert "| 2 | science | science (0.90) | world (0.60) | row 2 text |" in md  # baseline right, variant wrong
    svg = class_change_svg(report)
    assert svg is not None and svg.startswith("<svg")
    page = changes_html(report, svg)
    assert "<h3>Per class: int8</h3>" in page and '<td class="l">world (0.60)</td>' in page and svg in page
    assert class_change_svg({"variants": {"baseline": {}, "x": {**hurt, "changed_rows": 0}}}) is None


def test_predictions_encode_compactly_and_round_trip() -> None:
    ids = [0, 1, 9, 10, 35, 36, 61]
    assert encode_predictions(ids) == "019azAZ" and decode_predictions("019azAZ") == ids
    assert encode_predictions([0.5, 1.0]) == [0.5, 1.0] and decode_predictions([0.5, 1.0]) == [0.5, 1.0]
    assert encode_predictions([0, 62]) == [0, 62]  # beyond the alphabet: a plain list
    assert encode_predictions([True, False]) == [True, False]  # bools are not class ids
    with pytest.raises(ValueError, match="unknown prediction code '-'"):
        decode_predictions("01-")


class _Scores(Task):
    """A task without classes whose primary metric (MSE) is a mean over rows: an interval, nothing else."""

    name = "test-scores"
    metrics = {"mse": False}  # noqa: RUF012

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float]:
        return [(p - y) ** 2 for p, y in zip(predictions, targets, strict=True)]


def test_a_task_without_classes_gets_its_metric_interval_but_no_mcnemar_or_class_table() -> None:
    targets = [float(i % 7) for i in range(300)]
    reference = [y + 0.1 for y in targets]
    worse = [y + 0.3 for y in targets]  # squared error 0.01 -> 0.09 on every row
    change = paired_change(_Scores(), reference, worse, targets, [], seed=0)
    assert change["mse_delta_ci95"] == pytest.approx([0.08, 0.08])
    assert change["mse_delta_verdict"] == "a loss beyond noise"  # higher MSE is worse
    assert "mcnemar_p" not in change and "per_class" not in change and change["changed_rows"] == 300


def test_an_accuracy_gate_inside_the_interval_gets_a_note_and_one_outside_does_not() -> None:
    variants = {
        "int8-static": {"accuracy_delta": -0.0020, "accuracy_delta_ci95": [-0.0074, 0.0031]},
        "int8-dynamic": {"accuracy_delta": 0.0008, "accuracy_delta_ci95": [-0.0039, 0.0055]},
    }
    gates = [
        {"variant": "int8-static", "gate": "max_accuracy_drop", "threshold": 0.005, "passed": True},
        {"variant": "int8-dynamic", "gate": "max_accuracy_drop", "threshold": 0.01, "passed": True},
    ]
    (note,) = gate_noise_notes({"variants": variants, "gates": gates})
    assert note == (
        "int8-static: the max_accuracy_drop gate passed on the accuracy change of -0.20 points, but the limit (-0.50) "
        "lies inside the change's 95% interval (-0.74…+0.31): on another sample of eval rows the gate could decide "
        "the other way. More eval rows narrow the interval."
    )
