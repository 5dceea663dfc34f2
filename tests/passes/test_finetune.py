from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optkit.errors import DataError
from optkit.evaluate.predict import torch_logits
from optkit.passes.base import Artifact
from optkit.passes.finetune import FinetuneConfig, finetune
from optkit.sources.model import resolve_model
from optkit.tasks.text_classification import classification_scores
from tests.conftest import context


def test_finetune_learns_the_task_and_saves_a_loadable_classifier(finetuned: Artifact, base_recipe: dict) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from optkit.recipe import recipe_from_dict
    from optkit.sources.data import load_splits

    meta = finetuned.meta
    assert meta["steps"] == 128  # 16 epochs x ceil(120 / 16)
    assert meta["final_loss"] < 0.2  # chance level (60/40 classes) is 0.67
    model = AutoModelForSequenceClassification.from_pretrained(finetuned.path).eval()
    assert model.config.id2label == {0: "rotten", 1: "fresh"}
    tok = AutoTokenizer.from_pretrained(finetuned.path)
    recipe = recipe_from_dict(base_recipe)
    splits = load_splits(recipe.data, recipe.seed)
    preds = torch_logits(model, tok, splits.eval.texts, 16, 32).argmax(-1).tolist()
    assert classification_scores(preds, splits.eval.labels, 2)["accuracy"] >= 0.8


def _weights(path: Path) -> Any:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_finetune_is_reproducible_with_the_same_seed(recipe_dict: dict, tmp_path: Path) -> None:
    cfg = FinetuneConfig(epochs=1, learning_rate=1e-3, batch_size=16, max_steps=3)
    runs = []
    for i in range(2):
        ctx = context(recipe_dict, tmp_path / f"r{i}")
        finetune(resolve_model(ctx.recipe.model), cfg, ctx)
        runs.append(_weights(ctx.out_dir))
    w0, w1 = runs
    assert all((w0[k] == w1[k]).all() for k in w0)
    ctx = context(recipe_dict, tmp_path / "other-seed")
    finetune(resolve_model(ctx.recipe.model), cfg.model_copy(update={"seed": 999}), ctx)
    w2 = _weights(ctx.out_dir)
    assert any(not (w0[k] == w2[k]).all() for k in w0)


def test_num_labels_that_do_not_match_the_data_are_refused(recipe_dict: dict, tmp_path: Path) -> None:
    recipe_dict["model"]["num_labels"] = 3
    ctx = context(recipe_dict, tmp_path / "x")
    with pytest.raises(DataError, match=r"model.num_labels is 3 but data.labels gives 2 classes"):
        finetune(resolve_model(ctx.recipe.model), FinetuneConfig(max_steps=1), ctx)
