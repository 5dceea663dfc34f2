"""Why is a quantised variant as fast (or slow) as it is: ISA, quantised vs float nodes, unfused QDQ.

The users' most common surprise is int8 that is not faster than fp32. The usual reasons can be
read off the machine and the graph: no VNNI (int8 dot products on AVX2 need widening steps),
MatMuls left in float, and QuantizeLinear/DequantizeLinear pairs that ONNX Runtime could not
fuse into an integer kernel and so run as separate conversions. The graph is read twice: as
written, and after ORT's own optimisation (what actually runs).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["FLOAT_COMPUTE_OPS", "QUANTIZED_OPS", "explain_onnx", "graph_census"]

QUANTIZED_OPS = {
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "QLinearMatMul",
    "QGemm",
    "QAttention",
    "QEmbedLayerNormalization",
    "ConvInteger",
    "QLinearConv",
    "QLinearAdd",
    "QLinearMul",
    "MatMulNBits",
}
FLOAT_COMPUTE_OPS = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "Conv", "FusedConv", "Attention"}
_CONVERSIONS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def graph_census(model_path: Path) -> dict[str, Any]:
    """Op counts of an ONNX file: all, quantised compute, float compute, Q/DQ conversions and Q→DQ pairs."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    nodes = list(model.graph.node)
    ops = Counter(n.op_type for n in nodes)
    consumers: dict[str, list[str]] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n.op_type)
    q_dq_pairs = sum(
        1
        for n in nodes
        if n.op_type == "QuantizeLinear"
        for out in n.output
        for c in consumers.get(out, [])
        if c == "DequantizeLinear"
    )
    return {
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "nodes": len(nodes),
        "quantized_compute": sum(ops[o] for o in QUANTIZED_OPS),
        "float_compute": sum(ops[o] for o in FLOAT_COMPUTE_OPS),
        "conversions": {o: ops[o] for o in sorted(_CONVERSIONS) if ops[o]},
        "q_dq_pairs": q_dq_pairs,
    }


def _optimized_census(model_path: Path, threads: int | None) -> dict[str, Any]:
    """The census of the graph ONNX Runtime really executes (CPU EP, default optimisation level)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="optkit-opt-") as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        return graph_census(Path(tmp) / "optimized.onnx")


def explain_onnx(model_path: Path, cpu: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """ISA and graph facts for one ONNX variant; ``optimized`` is ``{"error": why}`` if ORT cannot save it."""
    out: dict[str, Any] = {
        "isa": cpu.get("isa", []),
        "int8_vnni": bool(cpu.get("int8_vnni")),
        "source": graph_census(model_path),
    }
    try:
        out["optimized"] = _optimized_census(model_path, threads)
    except Exception as e:  # ORT cannot always serialise its optimised graph (e.g. over 2 GB)
        out["optimized"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return out
