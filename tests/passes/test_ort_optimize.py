"""The optimize pass (ORT transformer fusion) and Optimum's quantisation presets, on the tiny BERT."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import RecipeError
from optkit.passes.base import Artifact
from optkit.passes.ort_optimize import OptimizeConfig, optimize, ort_model_type
from optkit.passes.ort_quantize import QuantizeConfig, quantize
from optkit.recipe import recipe_from_dict
from tests.conftest import context


def _fused(base_recipe: dict[str, Any], exported: Artifact, finetuned: Artifact, out: Path, **options: Any) -> Any:
    ctx = dataclasses.replace(context(base_recipe, out), lineage=(finetuned,))
    optimize(exported, OptimizeConfig(**options), ctx)
    return ctx


@pytest.fixture(scope="module")
def fused(base_recipe: dict, exported: Artifact, finetuned: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _fused(base_recipe, exported, finetuned, tmp_path_factory.mktemp("fused"))


def test_optimize_fuses_every_layer_and_matches_pytorch(fused: Any) -> None:
    ops = fused.meta["fused_ops"]
    # the tiny BERT has 2 layers: one Attention, two SkipLayerNorms and one BiasGelu each; one embedding block
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4 and ops["BiasGelu"] == 2
    assert ops["EmbedLayerNormalization"] == 1
    assert fused.meta["model_type"] == "bert" and fused.meta["num_heads"] > 0
    check = fused.meta["validation"]
    assert check["against"] == "PyTorch" and check["max_abs_diff"] < 1e-3 and check["agreement"] == 1.0
    assert (fused.out_dir / "tokenizer.json").is_file() and (fused.out_dir / "config.json").is_file()


def test_quantize_after_optimize_makes_qattention(base_recipe: dict, fused: Any, tmp_path: Path) -> None:
    ctx = context(base_recipe, tmp_path / "q")
    quantize(Artifact(fused.out_dir, "onnx", key="fused"), QuantizeConfig(mode="dynamic"), ctx)
    ops = ctx.meta["op_counts"]
    assert ops.get("QAttention") == 2 and "Attention" not in ops and ops.get("MatMulInteger", 0) >= 4


def test_fusions_can_be_switched_off(
    base_recipe: dict, exported: Artifact, finetuned: Artifact, tmp_path: Path
) -> None:
    ctx = _fused(base_recipe, exported, finetuned, tmp_path, attention=False, bias_gelu=False)
    ops = ctx.meta["fused_ops"]
    assert "Attention" not in ops and "BiasGelu" not in ops and ops["SkipLayerNormalization"] >= 2


def test_without_a_torch_ancestor_it_validates_against_the_input(
    base_recipe: dict, exported: Artifact, tmp_path: Path
) -> None:
    ctx = context(base_recipe, tmp_path / "o")  # no lineage: nothing to load in PyTorch
    optimize(exported, OptimizeConfig(), ctx)
    assert ctx.meta["validation"]["against"] == "the input ONNX model"
    assert ctx.meta["validation"]["max_abs_diff"] < 1e-3


def test_float16_halves_the_weights(base_recipe: dict, exported: Artifact, finetuned: Artifact, tmp_path: Path) -> None:
    import onnx

    ctx = _fused(base_recipe, exported, finetuned, tmp_path, float16=True)
    graph = onnx.load(str(ctx.out_dir / "model.onnx")).graph
    big = [t for t in graph.initializer if len(t.dims) == 2 and t.dims[0] * t.dims[1] >= 32 * 32]
    assert big and all(t.data_type == onnx.TensorProto.FLOAT16 for t in big)
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io types kept
    assert ctx.meta["validation"]["max_abs_diff"] < OptimizeConfig(float16=True).tolerance


def test_a_failed_check_fails_the_step(
    base_recipe: dict, exported: Artifact, finetuned: Artifact, tmp_path: Path
) -> None:
    from optkit.errors import PassError

    with pytest.raises(PassError, match=r"does not match PyTorch: max \|logit diff\|"):
        _fused(base_recipe, exported, finetuned, tmp_path, float16=True, atol=1e-9)


def test_model_types_without_fusions_are_refused() -> None:
    assert ort_model_type("distilbert", "v") == "bert"
    with pytest.raises(RecipeError, match=r"variants.x\[1\]: .*no fusions for model_type 'gpt2'.*model_type"):
        ort_model_type("gpt2", "variants.x[1]")


def test_options_reach_the_cache_key() -> None:
    from optkit.cache import cache_key

    a, b = OptimizeConfig(), OptimizeConfig(attention=False)
    assert cache_key({"config": a.model_dump(mode="json")}) != cache_key({"config": b.model_dump(mode="json")})


@pytest.mark.parametrize(
    ("preset", "weights"), [("optimum-avx512-vnni", "QInt8"), ("optimum-avx2", "QUInt8")], ids=["vnni", "avx2"]
)
def test_optimum_preset_quantizes_as_optimum_does(
    base_recipe: dict, exported: Artifact, tmp_path: Path, preset: str, weights: str
) -> None:
    ctx = context(base_recipe, tmp_path / "p")
    quantize(exported, QuantizeConfig.optimum(preset), ctx)  # type: ignore[arg-type]
    assert ctx.meta["preset"]["weights"] == weights and ctx.meta["preset"]["per_channel"] is True
    assert ctx.meta["op_counts"].get("MatMulInteger", 0) >= 4
    assert (ctx.out_dir / "ort_config.json").is_file() and (ctx.out_dir / "tokenizer.json").is_file()


def test_optimum_preset_after_fusion_makes_qattention(base_recipe: dict, fused: Any, tmp_path: Path) -> None:
    ctx = context(base_recipe, tmp_path / "pf")
    quantize(Artifact(fused.out_dir, "onnx", key="fused"), QuantizeConfig.optimum("optimum-avx512-vnni"), ctx)
    assert ctx.meta["op_counts"].get("QAttention") == 2


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "static"}, "run as dynamic"),
        ({"weight_type": "uint8"}, "sets the weight and activation types"),
        ({"reduce_range": True}, "has no reduce_range"),
        ({"preset": "optimum-tensorrt"}, "optimum-avx512-vnni"),
    ],
    ids=["static", "weight-type", "reduce-range", "unknown"],
)
def test_preset_conflicts_are_refused(schema_recipe_dict: dict, options: dict, match: str) -> None:
    step = {"mode": "dynamic", "preset": "optimum-avx512-vnni"} | options
    schema_recipe_dict["variants"]["int8-dynamic"][1] = {"quantize": step}
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(schema_recipe_dict)


def test_configs_without_preset_dump_as_before() -> None:
    """No 'preset' key unless set: cache keys of earlier quantize steps still hit."""
    assert "preset" not in QuantizeConfig().model_dump(mode="json")
    dumped = QuantizeConfig.optimum("optimum-avx2", reduce_range=True).model_dump(mode="json")
    assert dumped["preset"] == "optimum-avx2" and QuantizeConfig(**dumped).reduce_range is True


def test_optimize_in_a_recipe_round_trips(schema_recipe_dict: dict) -> None:
    schema_recipe_dict["variants"]["fused-int8"] = [{"export": {}}, {"optimize": {}}, {"quantize": {}}]
    recipe = recipe_from_dict(schema_recipe_dict)
    assert [s.kind for s in recipe.variants["fused-int8"]] == ["export", "optimize", "quantize"]
    again = recipe_from_dict(recipe.model_dump(mode="json"))
    assert again.variants["fused-int8"] == recipe.variants["fused-int8"]


def test_notes_say_fp16_on_cpu_is_slow_and_fused_fp32_gains_nothing() -> None:
    def report(chain: list[dict[str, Any]], speedup: float) -> dict[str, Any]:
        row = {"variant": "v", "provider": "cpu", "batch": 1, "seq": 128, "status": "measured"}
        return {
            "reference": "fp32-onnx",
            "variants": {"v": {"chain": chain}},
            "results": [row | {"speedup_vs_reference": speedup}],
        }

    fused = [{"kind": "export"}, {"kind": "optimize"}]
    assert "float16 on the CPU provider (0.40×" in OptimizeConfig(float16=True).report_notes("v", report(fused, 0.4))[0]
    assert "already fuses the plain graph" in OptimizeConfig().report_notes("v", report(fused, 1.01))[0]
    assert OptimizeConfig().report_notes("v", report(fused, 1.2)) == []
    assert OptimizeConfig().report_notes("v", report([*fused, {"kind": "quantize"}], 1.0)) == []
