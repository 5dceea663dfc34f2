"""data.splits.validation: rows for tuning decisions, cut from the held-out rows, leaving train alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from optkit.errors import DataError, RecipeError
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits


def _splits(recipe_dict: dict[str, Any], validation: float | None) -> Any:
    data = copy.deepcopy(recipe_dict)
    if validation is not None:
        data["data"]["splits"]["validation"] = validation
    recipe = recipe_from_dict(data)
    return load_splits(recipe.data, recipe.seed, recipe.model.task)


def test_validation_rows_are_held_out_of_training_and_of_the_report_eval(base_recipe: dict[str, Any]) -> None:
    plain, cut = _splits(base_recipe, None), _splits(base_recipe, 0.25)
    assert len(plain.validation) == 0 and "validation_rows" not in plain.info
    val = set(cut.validation.rows)
    assert len(val) == round(0.25 * len(plain.eval)) == cut.info["validation_rows"]
    assert not val & set(cut.train.rows) and not val & set(cut.eval.rows) and not val & set(cut.calibration.rows)
    assert set(cut.eval.rows) | val == set(plain.eval.rows)  # the held-out rows, divided
    assert [r for r in plain.eval.rows if r not in val] == cut.eval.rows  # eval keeps its order
    # train and calibration are the very same rows, so a fine-tune stays cached
    assert cut.train.rows == plain.train.rows and cut.calibration.rows == plain.calibration.rows
    assert cut.train_fingerprint == plain.fingerprint == plain.training_fingerprint
    assert cut.fingerprint != plain.fingerprint  # everything keyed on the eval rows misses
    labels = set(cut.validation.labels)
    assert len(labels) == 2  # stratified: both classes present


def test_a_count_works_and_too_many_rows_are_refused(base_recipe: dict[str, Any]) -> None:
    assert len(_splits(base_recipe, 10).validation) == 10
    with pytest.raises(DataError, match=r"data.splits.validation: 60 rows asked.*held-out rows"):
        _splits(base_recipe, 60)  # the tiny recipe holds out 60 rows for eval


def test_a_fractional_count_is_refused(schema_recipe_dict: dict[str, Any]) -> None:
    schema_recipe_dict["data"]["splits"]["validation"] = 12.5
    with pytest.raises(RecipeError, match="validation"):
        recipe_from_dict(schema_recipe_dict)


def test_only_passes_that_read_held_out_rows_change_key_with_validation(base_recipe: dict[str, Any]) -> None:
    """The fine-tune's and export's keys stay; tune's follows the validation rows."""
    from optkit.passes.base import Artifact
    from optkit.passes.registry import get_pass
    from optkit.runner import _key_inputs

    def key_of(validation: float | None, step_index: int, variant: str) -> Any:
        data = copy.deepcopy(base_recipe)
        data["variants"]["tuned"] = [{"export": {}}, {"tune": {}}]
        data["data"]["splits"]["validation"] = validation or 0
        recipe = recipe_from_dict(data)
        splits = load_splits(recipe.data, recipe.seed, recipe.model.task)
        chain = list(recipe.baseline) if variant == "baseline" else recipe.chain(variant)
        step = chain[step_index]
        return _key_inputs(recipe, step, get_pass(step.kind), Artifact(recipe_path(), "torch", "k"), lambda: splits)

    def recipe_path() -> Any:
        from pathlib import Path

        return Path(".")

    assert key_of(None, 0, "baseline") == key_of(0.5, 0, "baseline")  # finetune
    assert key_of(None, -2, "tuned") == key_of(0.5, -2, "tuned")  # export
    assert key_of(0.25, -1, "tuned")["data"] != key_of(0.5, -1, "tuned")["data"]  # tune
