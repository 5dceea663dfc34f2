"""A deeper tiny teacher for pruning and distillation: 4 layers x 4 heads, so there is something to cut."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from optkit.passes.base import Artifact
from tests.conftest import context


@pytest.fixture(scope="session")
def teacher(tiny_model_dir: Path, base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A 4-layer, 4-head, FFN-64 BERT fine-tuned on the tiny reviews (the tokenizer of the tiny model)."""
    import torch
    from transformers import BertConfig, BertModel

    from optkit.passes.finetune import FinetuneConfig, finetune
    from optkit.sources.model import resolve_model

    src = tmp_path_factory.mktemp("deep-bert")
    for f in tiny_model_dir.iterdir():
        if f.name != "model.safetensors" and f.name != "config.json":
            shutil.copy(f, src / f.name)
    config = BertConfig(
        vocab_size=len((tiny_model_dir / "vocab.txt").read_text().split()),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(src)
    recipe = dict(base_recipe, model={"source": str(src), "num_labels": 2})
    ctx = context(recipe, tmp_path_factory.mktemp("teacher"))
    finetune(resolve_model(ctx.recipe.model), FinetuneConfig(epochs=12, learning_rate=3e-3, batch_size=16), ctx)
    return Artifact(ctx.out_dir, "torch", key="teacher", meta=ctx.meta)


@pytest.fixture
def teacher_recipe(recipe_dict: dict[str, Any], teacher: Artifact) -> dict[str, Any]:
    """A recipe whose model is the tiny teacher's folder: pass contexts need a recipe."""
    return dict(recipe_dict, model={"source": str(teacher.path), "num_labels": 2})
