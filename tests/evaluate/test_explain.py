from __future__ import annotations

from pathlib import Path

from optkit.evaluate.explain import explain_onnx, graph_census
from optkit.passes.base import Artifact
from optkit.passes.ort_quantize import slow_int8_hint

NO_VNNI = {"model": "test cpu", "isa": ["AVX2", "FMA"], "int8_vnni": False}


def test_census_counts_float_and_quantised_nodes(exported: Artifact, base_recipe: dict, tmp_path: Path) -> None:
    from optkit.passes.ort_quantize import QuantizeConfig, quantize
    from tests.conftest import context

    fp32 = explain_onnx(exported.onnx_file, NO_VNNI, threads=1)
    assert fp32["source"]["quantized_compute"] == 0 and fp32["source"]["float_compute"] > 0
    assert fp32["optimized"]["nodes"] < fp32["source"]["nodes"]  # ORT fused something
    ctx = context(base_recipe, tmp_path / "q")
    quantize(exported, QuantizeConfig(mode="static"), ctx)
    static = explain_onnx(ctx.out_dir / "model.onnx", NO_VNNI, threads=1)
    src = static["source"]
    assert src["conversions"]["QuantizeLinear"] > 0 and src["q_dq_pairs"] > 0  # QDQ format as written
    opt = static["optimized"]
    assert opt["quantized_compute"] > 0  # ORT fused DQ→MatMul→Q into integer kernels
    assert sum(opt["conversions"].values()) < sum(src["conversions"].values())
    hint = slow_int8_hint(static, 0.93)
    assert hint.startswith("int8 is not faster here (0.93×): this CPU has no VNNI (AVX2, FMA)")
    assert "left unfused" in hint
    assert slow_int8_hint(static, 1.3) is None


def test_hint_on_gpu_provider_names_the_provider(exported: Artifact) -> None:
    census = graph_census(exported.onnx_file)
    explain = {"isa": [], "int8_vnni": True, "source": census, "optimized": {"error": "x"}}
    assert "on the cuda provider" in slow_int8_hint(explain, 0.8, provider="cuda")


def test_int8_hint_threshold_is_1_05x_exactly() -> None:
    """README: the note appears when int8 is not at least 1.05x the reference; at 1.05x it does not."""
    graph = {"ops": {}, "float_compute": 2, "quantized_compute": 10, "conversions": {"DequantizeLinear": 3}}
    explain = {"isa": ["AVX2"], "int8_vnni": True, "source": {}, "optimized": dict(graph, q_dq_pairs=1)}
    assert slow_int8_hint(explain, 1.05) is None and slow_int8_hint(explain, 1.2) is None
    assert slow_int8_hint(explain, None) is None  # no speed-up measured: nothing to explain
    assert slow_int8_hint(explain, 1.0499) == (
        "int8 is not faster here (1.05×): 2 of 12 MatMul-class nodes still run in float; "
        "3 quantise/dequantise nodes left unfused after ORT's optimisation, 1 of them Q→DQ pairs"
    )
    assert slow_int8_hint(explain, 1.04).startswith("int8 is not faster here (1.04×): 2 of 12")
