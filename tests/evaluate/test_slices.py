"""Slices of the eval rows: groups, each group's change with its interval, small groups flagged, the slice gate."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import DataError
from optkit.evaluate.slices import slice_changes, slice_groups, worst_slice
from optkit.recipe import DataSpec, recipe_from_dict
from optkit.reports.changes import changes_markdown
from optkit.reports.gates import check_gates
from optkit.sources.data import load_splits
from optkit.tasks import get_task

NAMES = ["rotten", "fresh"]


def _rows() -> tuple[list[str], list[int], list[str]]:
    """600 texts of 3, 10 or 30 words (200 each), alternating labels, and a 'source' column whose
    group 'blog' has only 12 rows."""
    texts = [" ".join(["word"] * (3, 10, 30)[i % 3]) for i in range(600)]
    targets = [i % 2 for i in range(600)]
    source = ["blog" if i < 12 else ("press" if i % 4 else "forum") for i in range(600)]
    return texts, targets, source


def test_groups_terciles_labels_and_pooled_columns() -> None:
    task = get_task("text-classification")
    texts, targets, _ = _rows()
    length = slice_groups("length", texts, targets, NAMES, task, [])
    assert list(length) == ["short (≤3 words)", "medium (4–10 words)", "long (>10 words)"]
    assert {k: len(v) for k, v in length.items()} == {
        "short (≤3 words)": 200,
        "medium (4–10 words)": 200,
        "long (>10 words)": 200,
    }
    assert {k: len(v) for k, v in slice_groups("label", texts, targets, NAMES, task, []).items()} == {
        "rotten": 300,
        "fresh": 300,
    }
    many = [f"user{i}" for i in range(600)]  # a free-text column: 20 groups kept, the rest pooled
    pooled = slice_groups("author", texts, targets, NAMES, task, many)
    assert len(pooled) == 21 and len(pooled["(other)"]) == 580 and list(pooled)[-1] == "(other)"


def test_the_slice_that_pays_is_named_small_groups_are_flagged_and_the_gate_fails(
    recipe_dict: dict[str, Any],
) -> None:
    task = get_task("text-classification")
    texts, targets, source = _rows()
    groups = {
        name: slice_groups(name, texts, targets, NAMES, task, source if name == "source" else [])
        for name in ("length", "source")
    }
    baseline = list(targets)  # right everywhere
    variant = [1 - y if i % 3 == 2 and i % 5 == 0 else y for i, y in enumerate(targets)]  # 40 long rows wrong
    changes = slice_changes(task, groups, baseline, variant, targets, NAMES, seed=0)
    long = changes["length"]["long (>10 words)"]
    assert long["rows"] == 200 and long["delta"] == pytest.approx(-0.2) and long["verdict"] == "a loss beyond noise"
    assert changes["length"]["short (≤3 words)"]["delta_ci95"] == [0.0, 0.0]
    assert changes["source"]["blog"]["rows"] == 12 and changes["source"]["blog"]["inconclusive"]
    assert not changes["source"]["press"]["inconclusive"]
    worst = worst_slice(changes)
    assert worst is not None and (worst["slice"], worst["group"]) == ("length", "long (>10 words)")
    recipe_dict["evaluate"]["slices"] = ["length", "source"]
    recipe_dict["report"]["gates"] = {"int8-dynamic": {"max_slice_drop": 0.05}}
    hurt = {"slices": changes, "worst_slice": worst}
    variants = {"baseline": {}, "fp32-onnx": {}, "int8-dynamic": hurt, "int8-static": {}}
    evaluation = {"variants": variants, "results": [], "reference": "fp32-onnx"}
    (gate,) = check_gates(recipe_from_dict(recipe_dict), evaluation)
    assert not gate["passed"] and gate["message"].startswith(
        "int8-dynamic: worst slice length='long (>10 words)' (200 rows): accuracy drop +20.00 points, 95% CI"
    )
    base = slice_changes(task, groups, baseline, None, targets, NAMES, seed=0)
    report = {
        "variants": {
            "baseline": {"slices": base},
            "int8-dynamic": {**hurt, "changed_rows": 40, "changed_share": 40 / 600, "accuracy_delta": -40 / 600},
        }
    }
    md = "\n".join(changes_markdown(report))
    assert (
        "### Slice: source" in md
        and "| blog | 12 | 1.0000 | -8.33 pts (95% CI -25.00…+0.00, within noise) (too few rows to conclude) |" in md
    )


def test_slice_columns_ride_along_without_dropping_rows_or_changing_the_data_key(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment", "source"])
        for i in range(100):
            w.writerow([f"review number {i}", "fresh" if i % 2 else "rotten", "" if i % 10 == 0 else f"s{i % 3}"])
    spec = DataSpec(
        source=str(path), text="review", label="sentiment", splits={"train": 60, "eval": 40, "calibration": 8}
    )
    plain = load_splits(spec, 1)
    with_source = load_splits(spec, 1, columns=["source"])
    assert with_source.fingerprint == plain.fingerprint and with_source.eval.texts == plain.eval.texts
    column = with_source.eval.columns["source"]
    assert len(column) == 40 and "(missing)" in column and set(column) <= {"s0", "s1", "s2", "(missing)"}
    with pytest.raises(
        DataError, match=r"evaluate\.slices: column 'lang' is not in .*columns: review, sentiment, source"
    ):
        load_splits(spec, 1, columns=["lang"])


def test_gates_that_cannot_be_judged_are_refused_before_any_work(recipe_dict: dict[str, Any]) -> None:
    from optkit.errors import RecipeError
    from optkit.preflight import _check_gates_fit

    recipe_dict["report"]["gates"] = {"*": {"max_slice_drop": 0.05}}
    with pytest.raises(RecipeError, match=r"report\.gates\.\*\.max_slice_drop: evaluate\.slices is empty"):
        _check_gates_fit(recipe_from_dict(recipe_dict), ["accuracy", "macro_f1"], True)
    recipe_dict["report"]["gates"] = {"int8-static": {"max_class_drop": 0.05}}
    with pytest.raises(RecipeError, match=r"report\.gates\.int8-static\.max_class_drop: .* reports no classes"):
        _check_gates_fit(recipe_from_dict(recipe_dict), ["mse"], False)
    recipe_dict["evaluate"]["slices"] = ["length", "length"]
    with pytest.raises(RecipeError, match="names a slice twice"):
        recipe_from_dict(recipe_dict)
