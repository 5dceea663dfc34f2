from __future__ import annotations

from pathlib import Path

import pytest

from optkit.errors import RecipeError
from optkit.passes.base import Artifact
from optkit.passes.ort_quantize import QuantizeConfig, quantize
from optkit.recipe import recipe_from_dict
from tests.conftest import context


def _logits(path: Path, texts: list[str]):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from optkit.evaluate.predict import create_session, onnx_logits

    return onnx_logits(create_session(path / "model.onnx"), AutoTokenizer.from_pretrained(path), texts, 16, 32)


def test_dynamic_quantization_makes_integer_matmuls(base_recipe: dict, exported: Artifact, tmp_path: Path) -> None:
    ctx = context(base_recipe, tmp_path / "dyn")
    quantize(exported, QuantizeConfig(mode="dynamic"), ctx)
    ops = ctx.meta["op_counts"]
    assert ops.get("MatMulInteger", 0) >= 12 and ops.get("DynamicQuantizeLinear", 0) >= 1
    assert ops.get("MatMul", 0) < 12  # attention score MatMuls (activation x activation) may stay float
    assert (ctx.out_dir / "tokenizer.json").is_file()
    texts = ctx.splits().eval.texts
    ref, got = _logits(exported.path, texts), _logits(ctx.out_dir, texts)
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.9


def test_static_quantization_is_qdq_on_matmul_only(base_recipe: dict, exported: Artifact, tmp_path: Path) -> None:
    import onnx

    ctx = context(base_recipe, tmp_path / "static")
    quantize(exported, QuantizeConfig(mode="static"), ctx)
    graph = onnx.load(str(ctx.out_dir / "model.onnx")).graph
    assert ctx.meta["op_counts"]["QuantizeLinear"] > 0 and ctx.meta["calibration_rows"] == 16
    producers = {o: n.op_type for n in graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    weights = {i.name for i in graph.initializer}
    # int8 weights exist only for MatMuls ...
    weight_dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    assert weight_dq and {t for n in weight_dq for t in consumers[n.output[0]]} == {"MatMul"}
    # ... and MatMul results stay float (no re-quantisation before bias Adds and Softmax)
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and producers.get(n.input[0]) == "MatMul"]
    assert not (ctx.out_dir / "preprocessed.onnx").exists()
    texts = ctx.splits().eval.texts
    ref, got = _logits(exported.path, texts), _logits(ctx.out_dir, texts)
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.9


def test_calibration_options_in_dynamic_mode_are_rejected(recipe_dict: dict) -> None:
    recipe_dict["variants"]["int8-dynamic"][1] = {"quantize": {"mode": "dynamic", "calibration": "entropy"}}
    with pytest.raises(RecipeError, match=r"quantize: calibration options are for mode: static"):
        recipe_from_dict(recipe_dict)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_works_with_batches_of_different_lengths(
    base_recipe: dict, exported: Artifact, tmp_path: Path, method: str
) -> None:
    """Histogram calibrators stack all batches: batches padded to different lengths failed with
    'setting an array element with a sequence ... inhomogeneous shape' (MiniLM, rotten tomatoes)."""
    import dataclasses

    recipe = {**base_recipe, "data": {**base_recipe["data"], "max_length": 32}}
    ctx = context(recipe, tmp_path / method)
    splits = ctx.splits()
    # batches of 4 rows of 6, 12, 18, 24 words: each batch padded to another length without the fix
    texts = [" ".join([t] * (1 + (i // 4) % 4)) for i, t in enumerate(splits.calibration.texts)]
    varied = dataclasses.replace(splits, calibration=dataclasses.replace(splits.calibration, texts=texts))
    ctx.splits = lambda: varied
    extra = {"calibration_percentile": 99.99} if method == "percentile" else {}
    quantize(exported, QuantizeConfig(mode="static", calibration=method, calibration_batch_size=4, **extra), ctx)
    assert ctx.meta["op_counts"]["QuantizeLinear"] > 0
