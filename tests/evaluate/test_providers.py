"""Providers on a CPU-only build: real unavailability, and CUDA mocked at the availability boundary only."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

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


def test_io_binding_runner_outputs_match_session_run_on_cpu(exported: Artifact) -> None:
    """The GPU timing path (inputs bound once, outputs left on the device), run with device 'cpu'.

    Every output of the bound run must equal ``session.run`` on the same feed. The two rows
    differ in their ids and in their padding, so binding another input's values, another row or
    a stale buffer changes the logits.
    """
    import numpy as np

    from optkit.evaluate.inputs import synthetic_feed
    from optkit.evaluate.predict import create_session

    session = create_session(exported.onnx_file, "cpu", 1)
    feed = synthetic_feed(session, 2, 16, vocab=60)
    mask = next(name for name in feed if "mask" in name)
    feed[mask][1, 9:] = 0  # row 1 is padded: a mask bound from row 0 or from ones would not be
    expected = session.run(None, feed)
    assert np.abs(expected[0][0] - expected[0][1]).max() > 100 * 1e-6  # the rows differ far beyond the tolerance
    run = io_binding_runner(session, feed, "cpu")
    assert run() is None  # a timed call copies nothing back to the host
    got = run.outputs()
    assert len(got) == len(expected) == len(session.get_outputs())
    for out, want in zip(got, expected, strict=True):
        assert out.shape == want.shape
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    run()  # a second run on the same binding gives the same answer
    np.testing.assert_allclose(run.outputs()[0], expected[0], rtol=1e-5, atol=1e-6)


_FAKE_SMI = """#!/bin/sh
# nvidia-smi as optkit calls it: one CSV line per (process, GPU); any other call is refused.
if [ "$*" != "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits" ]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2
  exit 6
fi
printf '%s\\n' {lines}
"""


def _fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> Path:
    """A fake ``nvidia-smi`` alone on PATH (with the shell it needs), and pynvml made unimportable."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(_FAKE_SMI.format(lines=" ".join(shlex.quote(line) for line in lines)))
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # the #!/bin/sh line needs no PATH
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    return smi


def test_gpu_memory_sums_this_process_lines_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several GPUs and processes: only this pid's lines count, summed; a pid with no line is unknown."""
    pid = os.getpid()
    lines = [
        f"{pid}, 1024",  # GPU 0
        f"{pid + 1}, 4000",
        f"{pid}1, 7000",  # a pid that starts with ours is another process
        f"{pid // 10}, 9000",  # and so is one that ours starts with
        f"{pid}, 512",  # GPU 1
        f"   {pid},   256",  # padded columns
    ]
    _fake_nvidia_smi(tmp_path, monkeypatch, lines)
    assert gpu_memory_used_mb() == 1024 + 512 + 256
    assert gpu_memory_used_mb(pid + 1) == 4000
    assert gpu_memory_used_mb(pid + 2) is None  # no line: unknown, not 0


def test_gpu_memory_is_unknown_without_nvidia_smi_or_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smi = _fake_nvidia_smi(tmp_path, monkeypatch, [f"{os.getpid()}, 100"])
    assert gpu_memory_used_mb() == 100  # the control: with the tool present the figure is known
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert gpu_memory_used_mb() is None
    smi.unlink()  # no nvidia-smi anywhere on PATH and no pynvml
    assert gpu_memory_used_mb() is None
