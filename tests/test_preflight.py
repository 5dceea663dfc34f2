"""The memory guard's estimate when several training processes share this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optkit.guards import weights_bytes
from optkit.passes.base import Plan
from optkit.preflight import memory_demands
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits


def _demands(recipe_dict: dict[str, Any]) -> dict[str, tuple[str, int]]:
    recipe = recipe_from_dict(recipe_dict)
    folder = Path(recipe.model.source)
    splits = load_splits(recipe.data, recipe.seed, recipe.model.task)
    plan = Plan(json.loads((folder / "config.json").read_text()), weights_bytes(folder), splits, recipe.data.max_length)
    return {d.field: (d.what, d.bytes) for d in memory_demands(recipe, plan)}


def test_each_further_local_rank_adds_a_model_its_gradients_and_adamw_state(
    recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    alone = _demands(recipe_dict)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two nodes of two ranks: two share this machine's memory
    shared = _demands(recipe_dict)
    weights = weights_bytes(Path(recipe_dict["model"]["source"]))
    field = "baseline[0].finetune.batch_size"
    assert shared[field][1] == alone[field][1] + 4 * weights
    assert "with 2 training processes on this machine" in shared[field][0]
    steps = {k for k in alone if not k.startswith("evaluate.")}
    assert {k: v for k, v in shared.items() if k not in steps} == {k: v for k, v in alone.items() if k not in steps}
