"""``inc_quantize`` (neural-compressor autotune) on the tiny model, and the load-transform hook it relies on."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import EvaluationError
from optkit.passes.base import Artifact
from optkit.passes.torch_transforms import TRANSFORM_FILE, finish_loading, register_transform
from tests.conftest import context


def _need_inc() -> None:
    """Skip without neural-compressor (it lives in .venv-inc: `make test-inc`), unless that run requires it."""
    if os.environ.get("OPTKIT_REQUIRE_INC"):
        import neural_compressor.torch.quantization  # noqa: F401  (an ImportError fails the test)
    else:
        pytest.importorskip("neural_compressor.torch.quantization", reason="needs optkit[inc]: make test-inc")


def test_a_folder_without_a_transform_loads_unchanged(tmp_path: Path) -> None:
    model = object()
    assert finish_loading(tmp_path, model) is model


def test_a_named_transform_is_applied_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    import torch

    register_transform("test-scale", lambda m, o: torch.nn.Sequential(m, torch.nn.Identity()) if o["wrap"] else m)
    (tmp_path / TRANSFORM_FILE).write_text(json.dumps({"transform": "test-scale", "options": {"wrap": True}}))
    loaded = finish_loading(tmp_path, torch.nn.Linear(2, 2))
    assert isinstance(loaded, torch.nn.Sequential) and not loaded.training
    (tmp_path / TRANSFORM_FILE).write_text(json.dumps({"transform": "nope"}))
    with pytest.raises(EvaluationError, match=r"load transform 'nope'.*install the package"):
        finish_loading(tmp_path, torch.nn.Linear(2, 2))


def test_inc_autotune_keeps_the_first_config_within_tolerance_and_the_harness_loads_it(
    base_recipe: dict[str, Any], finetuned: Artifact, tmp_path: Path
) -> None:
    _need_inc()
    from optkit.evaluate.harness import _load_torch
    from optkit.evaluate.predict import torch_logits
    from optkit.passes.inc_quantize import IncQuantizeConfig, inc_quantize
    from optkit.tasks import get_task

    recipe = copy.deepcopy(base_recipe)
    recipe["data"]["splits"]["validation"] = 0.5
    ctx = context(recipe, tmp_path / "out")
    inc_quantize(finetuned, IncQuantizeConfig(configs=["rtn_int8", "bf16"], tolerable_loss=0.05), ctx)
    inc = ctx.meta["inc"]
    assert inc["trials"] and inc["trials"][0]["config"] == "rtn_int8"
    assert inc["chosen"] == "rtn_int8" and len(inc["trials"]) == 1  # INC stops at the first that passes
    spec = json.loads((ctx.out_dir / TRANSFORM_FILE).read_text())
    assert spec == {"transform": "inc", "options": {"config": "rtn_int8", "group_size": 32}}

    task = get_task("text-classification")
    model, tok = _load_torch(Artifact(ctx.out_dir, "torch", key="inc"), task)
    float_model, _ = _load_torch(finetuned, task)
    assert any("WeightOnly" in type(m).__name__ for m in model.modules())  # INC's int8 weight-only layers
    texts = ctx.splits().eval.texts
    got, ref = torch_logits(model, tok, texts, 16, 16), torch_logits(float_model, tok, texts, 16, 16)
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.95
    assert abs(got - ref).max() < 0.1
