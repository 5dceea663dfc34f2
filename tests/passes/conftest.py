from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optkit.passes.base import Artifact, PassContext
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits
from optkit.sources.model import resolve_model


def context(recipe_dict: dict[str, Any], out: Path) -> PassContext:
    recipe = recipe_from_dict(recipe_dict)
    splits = load_splits(recipe.data, recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    return PassContext(out_dir=out, step="test", recipe=recipe, splits=lambda: splits)


@pytest.fixture(scope="session")
def finetuned(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The tiny model fine-tuned once, shared by the export and quantisation tests."""
    from optkit.passes.finetune import FinetuneConfig, finetune

    ctx = context(base_recipe, tmp_path_factory.mktemp("finetuned"))
    finetune(resolve_model(ctx.recipe.model), FinetuneConfig(epochs=8, learning_rate=3e-3, batch_size=16), ctx)
    return Artifact(ctx.out_dir, "torch", key="finetuned", meta=ctx.meta)


@pytest.fixture(scope="session")
def exported(base_recipe: dict[str, Any], finetuned: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    from optkit.passes.onnx_export import ExportConfig, export

    ctx = context(base_recipe, tmp_path_factory.mktemp("exported"))
    export(finetuned, ExportConfig(), ctx)
    return Artifact(ctx.out_dir, "onnx", key="exported", meta=ctx.meta)
