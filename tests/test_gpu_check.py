"""scripts/gpu_check.sh without a GPU: valid bash, a clean refusal (exit 2, nothing installed); its row check on
reports that do and do not hold real GPU figures."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _rows_module() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check_rows", ROOT / "scripts" / "gpu_check_rows.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("fake_smi", [None, "exit 9"], ids=["no-nvidia-smi", "nvidia-smi-lists-no-gpu"])
def test_without_a_gpu_the_script_refuses_with_exit_2_and_touches_nothing(tmp_path: Path, fake_smi: str | None) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = f"{bin_dir}:/usr/bin:/bin"
    if fake_smi is None and shutil.which("nvidia-smi", path=path):
        pytest.skip("this machine has nvidia-smi on /usr/bin")
    if fake_smi is not None:
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{fake_smi}\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": path, "GPU_CHECK_OUT": str(tmp_path / "out"), "GPU_CHECK_VENV": str(tmp_path / "v")}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "gpu_check: skipped: no NVIDIA GPU here" in done.stderr
    assert "Nothing was installed or run" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "v").exists()


def _gpu_row(provider: str = "cuda", **over: Any) -> dict[str, Any]:
    ort_name = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[provider]
    row = {
        "variant": "fp32-onnx",
        "provider": provider,
        "batch": 1,
        "seq": 128,
        "status": "measured",
        "latency": {"p50_ms": 1.5},
        "io_binding": True,
        "placement": {
            "requested": ort_name,
            "nodes": {ort_name: 40, "CPUExecutionProvider": 2},
            "fallback_share": 2 / 42,
            "session_providers": [ort_name, "CPUExecutionProvider"],
        },
        "memory": {"peak_rss_mb": 900.0, "gpu_peak_mb": 610.0},
    }
    row.update(over)
    return row


def _report(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"variants": {"fp32-onnx": {"format": "onnx"}, "baseline": {"format": "torch"}}, "results": list(rows)}


def test_row_check_passes_real_gpu_rows_and_allows_tensorrt_not_measured_unless_required() -> None:
    rows = _rows_module()
    trt_missing = {
        "variant": "fp32-onnx",
        "provider": "tensorrt",
        "batch": 1,
        "seq": 128,
        "status": "not measured: TensorrtExecutionProvider not available",
    }
    baseline = {
        "variant": "baseline",
        "provider": "cuda",
        "batch": 1,
        "seq": 128,
        "status": "not measured: PyTorch variants are timed on the CPU only",
    }
    report = _report(_gpu_row(), trt_missing, baseline)
    assert rows.problems(report) == []
    assert rows.problems(report, require_tensorrt=True) == [
        "tensorrt: no row measured (not measured: TensorrtExecutionProvider not available)"
    ]
    assert rows.problems(_report(_gpu_row("tensorrt"))) == ["cuda: no row measured (no rows at all)"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "placement": {
                    "requested": "CUDAExecutionProvider",
                    "nodes": {"CPUExecutionProvider": 42},
                    "fallback_share": 1.0,
                    "session_providers": ["CPUExecutionProvider"],
                }
            },
            "session ran on ['CPUExecutionProvider']",
        ),
        ({"io_binding": False}, "timed without I/O binding"),
        (
            {"memory": {"peak_rss_mb": 900.0, "gpu_peak_mb": None, "gpu_note": "no pynvml/nvidia-smi"}},
            "no GPU memory figure (no pynvml/nvidia-smi)",
        ),
        ({"status": "not measured: session fell back to CPUExecutionProvider"}, "carries a latency"),
    ],
    ids=["fell-back", "no-binding", "no-gpu-memory", "latency-on-unmeasured"],
)
def test_row_check_fails_a_gpu_figure_from_a_cpu_session(change: dict[str, Any], expected: str) -> None:
    found = _rows_module().problems(_report(_gpu_row(**copy.deepcopy(change))))
    assert found and any(expected in p for p in found), found


def test_row_check_cli_exit_codes(tmp_path: Path) -> None:
    import json

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_report(_gpu_row())))
    bad.write_text(json.dumps(_report(_gpu_row(io_binding=False))))
    rows = _rows_module()
    assert rows.main([str(good)]) == 0
    assert rows.main([str(good), str(bad)]) == 1
    assert rows.main([str(tmp_path / "missing.json")]) == 2
