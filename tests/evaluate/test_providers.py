"""Providers on a CPU-only build: real unavailability, and CUDA mocked at the availability boundary only."""

from __future__ import annotations

import pytest

from optkit.bench import bench_model
from optkit.errors import EvaluationError
from optkit.evaluate.providers import (
    count_placement,
    gpu_memory_used_mb,
    io_binding_runner,
    ort_provider_name,
    placement_problem,
    provider_status,
)
from optkit.passes.base import Artifact
from optkit.recipe import LatencySpec, Shape

FAST = LatencySpec(warmup=1, runs=5, block=5, threads=1)


def _events(cuda: int, cpu: int) -> list[dict]:
    ev = [{"cat": "Session", "name": "model_run"}]
    for i in range(cuda):
        ev.append(
            {
                "cat": "Node",
                "name": f"mm{i}_kernel_time",
                "args": {"op_name": "MatMul", "provider": "CUDAExecutionProvider"},
            }
        )
        ev.append({"cat": "Node", "name": f"mm{i}_fence_before", "args": {"op_name": "MatMul"}})
    for i in range(cpu):
        ev.append(
            {
                "cat": "Node",
                "name": f"sh{i}_kernel_time",
                "args": {"op_name": "Shape", "provider": "CPUExecutionProvider"},
            }
        )
    return ev


def test_placement_counts_nodes_per_provider_and_flags_mostly_fallen_back() -> None:
    good = {**count_placement(_events(9, 1), "CUDAExecutionProvider"), "session_providers": ["CUDAExecutionProvider"]}
    assert good["nodes"] == {"CUDAExecutionProvider": 9, "CPUExecutionProvider": 1}
    assert good["fallback_share"] == pytest.approx(0.1) and placement_problem("cuda", good) is None
    bad = {**count_placement(_events(3, 7), "CUDAExecutionProvider"), "session_providers": ["CUDAExecutionProvider"]}
    problem = placement_problem("cuda", bad)
    assert problem == "7 of 10 nodes (70%) fell back to the CPU (Shape 7); not reported as a cuda figure"
    dropped = {**good, "session_providers": ["CPUExecutionProvider"]}
    assert "session fell back to CPUExecutionProvider" in placement_problem("cuda", dropped)


def test_unavailable_provider_is_a_reason_or_with_strict_an_error() -> None:
    assert ort_provider_name("cuda") == "CUDAExecutionProvider" and ort_provider_name("MyEP") == "MyEP"
    assert provider_status("cpu") is None
    reason = provider_status("cuda")
    assert reason.startswith("CUDAExecutionProvider not available in this onnxruntime build (CPU, onnxruntime ")
    with pytest.raises(EvaluationError, match=r"provider 'cuda': CUDAExecutionProvider not available.*optkit\[gpu\]"):
        provider_status("cuda", strict=True)
    with pytest.raises(EvaluationError, match="TensorrtExecutionProvider not available"):
        provider_status("tensorrt", strict=True)


def test_bench_reports_cpu_figures_and_cuda_not_measured(exported: Artifact) -> None:
    report = bench_model(
        exported.onnx_file, providers=["cpu", "cuda"], shapes=[Shape(batch=2, seq=16)], latency=FAST, memory=False
    )
    cpu, cuda = report["results"]
    assert cpu["status"] == "measured" and cpu["placement"]["fallback_share"] == 0.0
    assert cpu["placement"]["nodes"]["CPUExecutionProvider"] == cpu["placement"]["total_nodes"] > 10
    assert cuda["status"].startswith("not measured: CUDAExecutionProvider not available in this onnxruntime build")
    with pytest.raises(EvaluationError, match="CUDAExecutionProvider not available"):
        bench_model(exported.onnx_file, providers=["cpu", "cuda"], latency=FAST, memory=False, strict_providers=True)


def test_cuda_mocked_available_but_session_on_cpu_is_flagged_not_reported(exported: Artifact, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The only mock: onnxruntime claims CUDA exists. The session still runs on CPU, and optkit must notice."""
    import onnxruntime as ort

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    report = bench_model(
        exported.onnx_file, providers=["cuda"], shapes=[Shape(batch=1, seq=16)], latency=FAST, memory=False
    )
    (row,) = report["results"]
    assert row["status"].startswith("not measured: session fell back to CPUExecutionProvider")
    assert "latency" not in row and row["placement"]["nodes"].get("CUDAExecutionProvider", 0) == 0
    with pytest.raises(EvaluationError, match="fell back"):
        bench_model(exported.onnx_file, providers=["cuda"], latency=FAST, memory=False, strict_providers=True)


def test_io_binding_runner_matches_plain_run_on_cpu(exported: Artifact) -> None:
    """The GPU timing path (inputs bound once, outputs left on the device) exercised with device 'cpu'."""
    import numpy as np

    from optkit.evaluate.inputs import synthetic_feed
    from optkit.evaluate.predict import create_session

    session = create_session(exported.onnx_file, "cpu", 1)
    feed = synthetic_feed(session, 2, 16, vocab=60)
    run = io_binding_runner(session, feed, "cpu")
    run()
    binding = session.io_binding()
    for name, value in feed.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output(session.get_outputs()[0].name, "cpu")
    session.run_with_iobinding(binding)
    np.testing.assert_allclose(binding.copy_outputs_to_cpu()[0], session.run(None, feed)[0], rtol=1e-5, atol=1e-6)


def test_gpu_memory_is_unknown_without_a_driver(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert gpu_memory_used_mb() is None
