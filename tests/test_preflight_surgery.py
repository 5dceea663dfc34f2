"""Layer indices and widths in prune/distill are checked against the model before any step runs."""

from __future__ import annotations

import pytest

from optkit.errors import RecipeError
from optkit.passes.base import Plan
from optkit.preflight import check_chains
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits

CONFIG = {"num_hidden_layers": 6, "intermediate_size": 1536, "num_attention_heads": 12}


def _check(recipe_dict: dict, chain: list) -> None:
    recipe_dict["variants"] = {"v": [*chain, {"export": {}}]}
    recipe_dict["report"] = {"gates": {}}
    recipe = recipe_from_dict(recipe_dict)
    check_chains(recipe, Plan(CONFIG, 0, load_splits(recipe.data, recipe.seed), recipe.data.max_length))


def test_valid_cuts_pass(recipe_dict: dict) -> None:
    _check(recipe_dict, [{"distill": {"student": {"layers": [0, 2, 5], "intermediate_size": 768}}}])
    _check(
        recipe_dict,
        [{"prune": {"method": "structured", "drop_layers": [5]}}, {"distill": {"student": {"layers": [0, 4]}}}],
    )


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ([{"distill": {"student": {"layers": [0, 6]}}}], "variants.v[0].distill.student.layers: layer index 6"),
        ([{"distill": {"student": {"intermediate_size": 2000}}}], "student.intermediate_size: FFN width 2000"),
        ([{"distill": {"student": {"num_attention_heads": 16}}}], "heads per layer 16"),
        (
            [{"distill": {"student": {"layers": [0, 1]}}}, {"distill": {"student": {"layers": [2]}}}],
            "variants.v[1].distill.student.layers: layer index 2",
        ),
        ([{"prune": {"method": "structured", "drop_layers": [0, 1, 2, 3, 4, 5]}}], "leave at least one"),
        ([{"prune": {"method": "structured", "drop_layers": [6]}}], "variants.v[0].prune.drop_layers"),
    ],
)
def test_cuts_beyond_the_model_fail_naming_the_field(recipe_dict: dict, chain: list, message: str) -> None:
    with pytest.raises(RecipeError) as e:
        _check(recipe_dict, chain)
    assert message in str(e.value)
