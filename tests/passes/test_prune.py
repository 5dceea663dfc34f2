"""``prune``: exactly the chosen heads and neurons go, the result loads and exports, masks are permanent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optkit.errors import RecipeError
from optkit.passes.base import Artifact
from optkit.passes.prune import PruneConfig, prune
from optkit.passes.surgery import keep_layers, prunable_linears, remove_heads, shrink_ffn
from optkit.recipe import recipe_from_dict
from optkit.structure import describe_folder
from tests.conftest import context

TEXTS = ["the movie was great", "a dull and boring film", "it was really very fun", "stale plot"]


def _load(path: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def _logits(model: Any, path: Path) -> Any:
    from transformers import AutoTokenizer

    from optkit.evaluate.predict import torch_logits

    return torch_logits(model, AutoTokenizer.from_pretrained(path), TEXTS, 16, 4)


def test_surgery_removes_exactly_the_named_heads_and_neurons_and_reloads(teacher: Artifact, tmp_path: Path) -> None:
    import numpy as np
    import torch

    model = _load(teacher.path)
    layer1, layer0 = model.bert.encoder.layer[1], model.bert.encoder.layer[0]
    q_before = layer1.attention.self.query.weight.detach().clone()
    up_before = layer0.intermediate.dense.weight.detach().clone()
    remove_heads(model, {1: [0, 2], 3: [3]})
    # head size 8: heads 1 and 3 of layer 1 stay, in order
    torch.testing.assert_close(layer1.attention.self.query.weight, torch.cat([q_before[8:16], q_before[24:32]]))
    assert layer1.attention.output.dense.weight.shape == (32, 16)
    keep = [1, 5, 7, 60]
    shrink_ffn(model, {i: torch.tensor([60, 5, 1, 7]) for i in range(4)})
    torch.testing.assert_close(model.bert.encoder.layer[0].intermediate.dense.weight, up_before[keep])
    assert model.config.intermediate_size == 4
    expected = _logits(model, teacher.path)

    model.save_pretrained(tmp_path)
    reloaded = _load(tmp_path)
    assert {k: sorted(v) for k, v in reloaded.config.pruned_heads.items()} == {1: [0, 2], 3: [3]}
    assert reloaded.bert.encoder.layer[1].attention.self.query.weight.shape == (16, 32)
    np.testing.assert_allclose(_logits(reloaded, teacher.path), expected, atol=1e-6)


def test_dropping_layers_carries_their_pruned_heads_along(teacher: Artifact, tmp_path: Path) -> None:
    model = _load(teacher.path)
    remove_heads(model, {1: [0], 3: [1, 2]})
    keep_layers(model, [1, 3])
    assert model.config.num_hidden_layers == 2
    assert {k: sorted(v) for k, v in model.config.pruned_heads.items()} == {0: [0], 1: [1, 2]}
    model.save_pretrained(tmp_path)
    reloaded = _load(tmp_path)  # from_pretrained re-applies pruned_heads: shapes must match the weights
    assert [lyr.attention.self.query.out_features for lyr in reloaded.bert.encoder.layer] == [24, 16]


@pytest.mark.parametrize("importance", ["gradient", "magnitude"])
def test_structured_prune_removes_the_least_important_head_and_neuron(
    importance: str, teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    """A head and an FFN neuron whose weights are zero contribute nothing: both rankings must cut them."""
    import torch

    model = _load(teacher.path)
    with torch.no_grad():
        att = model.bert.encoder.layer[2].attention
        for lin in (att.self.query, att.self.key, att.self.value):
            lin.weight[8:16] = 0
            lin.bias[8:16] = 0
        att.output.dense.weight[:, 8:16] = 0
        for lyr in model.bert.encoder.layer:
            lyr.intermediate.dense.weight[10] = 0
            lyr.output.dense.weight[:, 10] = 0
    src = tmp_path / "src"
    model.save_pretrained(src)
    for f in teacher.path.glob("*.json"):
        if f.name != "config.json":
            (src / f.name).write_bytes(f.read_bytes())
    (src / "vocab.txt").write_bytes((teacher.path / "vocab.txt").read_bytes())

    ctx = context(teacher_recipe, tmp_path / "out")
    config = PruneConfig(method="structured", heads=1 / 16, ffn=1 / 64, importance=importance)
    prune(Artifact(src, "torch", key="src"), config, ctx)
    assert ctx.meta["removed_heads"] == {"2": [1]}
    pruned = _load(ctx.out_dir)
    assert pruned.config.intermediate_size == 63
    for lyr in pruned.bert.encoder.layer:  # the all-zero neuron is the one that went
        assert bool((lyr.intermediate.dense.weight.abs().sum(1) > 0).all())


def test_structured_prune_shrinks_loads_and_exports_matching_pytorch(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    from optkit.passes.onnx_export import ExportConfig, export

    ctx = context(teacher_recipe, tmp_path / "pruned")
    prune(teacher, PruneConfig(method="structured", heads=0.25, ffn=0.5, drop_layers=[3]), ctx)
    after = describe_folder(ctx.out_dir)
    assert after is not None
    assert (after["layers"], after["heads"], after["ffn"]) == (3, 9, 32)  # 12 heads left in 3 layers, 25% of 12
    assert ctx.meta["encoder_params_removed"] > 0.3
    assert after["encoder_params"] == sum(p.numel() for p in _load(ctx.out_dir).bert.encoder.parameters())

    out = context(teacher_recipe, tmp_path / "onnx")
    export(Artifact(ctx.out_dir, "torch", key="pruned"), ExportConfig(), out)  # raises if ONNX != PyTorch
    assert out.meta["validation"]["max_abs_diff"] < 1e-4
    assert out.meta["validation"]["agreement"] == 1.0


def test_gradual_structured_prune_with_recovery_reaches_the_target(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    ctx = context(teacher_recipe, tmp_path)
    config = PruneConfig(method="structured", heads=0.5, ffn=0.5, iterations=2, recovery_epochs=2)
    prune(teacher, config, ctx)
    after = ctx.meta["after"]
    assert (after["heads"], after["ffn"]) == (8, 32)
    assert [r["iteration"] for r in ctx.meta["recovery"]] == [1, 2]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_prune_writes_permanent_zeros_that_survive_recovery(
    scope: str, teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    ctx = context(teacher_recipe, tmp_path)
    prune(teacher, PruneConfig(method="unstructured", sparsity=0.5, scope=scope, recovery_epochs=2), ctx)
    after = describe_folder(ctx.out_dir)
    assert after is not None
    assert 0.49 <= after["encoder_weight_sparsity"] <= 0.51
    assert after["params"] == ctx.meta["before"]["params"]  # shapes unchanged: no speed-up to claim
    weights = load_file(str(ctx.out_dir / "model.safetensors"))
    assert not any(k.endswith(("weight_orig", "weight_mask")) for k in weights)
    if scope == "layer":
        for name, t in weights.items():
            if ".encoder.layer." in name and t.dim() == 2:
                assert abs(float((t == 0).float().mean()) - 0.5) < 0.01, name


def test_nm_prune_leaves_at_most_n_nonzeros_in_every_group_of_m(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    ctx = context(teacher_recipe, tmp_path)
    prune(teacher, PruneConfig(method="nm", n=2, m=4, recovery_epochs=1), ctx)
    model = _load(ctx.out_dir)
    linears = prunable_linears(model)
    assert len(linears) == 4 * 6  # q, k, v, attention out, FFN up, FFN down per layer
    for name, lin in linears:
        groups = (lin.weight.detach().reshape(-1, 4) != 0).sum(1)
        assert int(groups.max()) <= 2, name
    assert ctx.meta["after"]["encoder_weight_sparsity"] >= 0.5


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"prune": {"method": "unstructured", "heads": 0.5}}, "heads do(es) not apply to method 'unstructured'"),
        ({"prune": {"method": "structured"}}, "removes nothing"),
        ({"prune": {"method": "nm", "n": 4, "m": 4}}, "n (4) must be smaller than m (4)"),
        ({"prune": {"method": "structured", "heads": 1.5}}, "less than 1"),
    ],
)
def test_bad_prune_options_fail_at_validation(recipe_dict: dict, step: dict, message: str) -> None:
    recipe_dict["variants"]["pruned"] = [step, {"export": {}}]
    with pytest.raises(RecipeError, match=r"variants\.pruned") as e:
        recipe_from_dict(recipe_dict)
    assert message in str(e.value)


def test_a_torch_pass_after_export_is_a_plan_error(recipe_dict: dict) -> None:
    recipe_dict["variants"]["late"] = [{"export": {}}, {"prune": {"method": "unstructured"}}]
    with pytest.raises(RecipeError, match=r"a torch pass cannot follow 'export'; move 'prune' before export"):
        recipe_from_dict(recipe_dict)
