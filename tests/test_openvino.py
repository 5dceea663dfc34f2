"""cpu and openvino side by side, for real: runs in the environment that `make openvino` builds.

In the ordinary environment (the onnxruntime CPU wheel) these tests skip. Where the OpenVINO
provider is required (``OPTKIT_REQUIRE_OPENVINO=1``, set by ``make test-openvino`` and the CI
step), a missing provider or an openvino row that was not measured fails them instead.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.openvino

OV = "OpenVINOExecutionProvider"
REQUIRED = os.environ.get("OPTKIT_REQUIRE_OPENVINO") == "1"


@pytest.fixture(autouse=True)
def _openvino_present() -> None:
    import onnxruntime as ort

    if OV not in ort.get_available_providers():
        why = f"{OV} not in this onnxruntime build ({ort.__version__}); `make openvino` builds a venv with it"
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


def _assert_measured_on(row: dict[str, Any], ort_name: str) -> None:
    """A measured row whose nodes really ran on ``ort_name`` (OpenVINO fuses what it takes into few nodes)."""
    assert row["status"] == "measured", (row["variant"], row["provider"], row["status"])
    placement = row["placement"]
    assert placement["session_providers"][0] == ort_name
    assert placement["nodes"].get(ort_name, 0) >= 1 and placement["fallback_share"] <= 0.5, placement
    assert row["latency"]["p50_ms"] > 0


def test_tiny_recipe_measures_every_onnx_variant_on_cpu_and_openvino(
    base_recipe: dict[str, Any], tmp_path: Path
) -> None:
    from optkit.api import run_recipe

    data = copy.deepcopy(base_recipe)
    data["evaluate"]["providers"] = [
        "cpu",
        {"name": "openvino", "options": {"device_type": "CPU", "precision": "FP32"}},
    ]
    data["evaluate"]["memory"] = True
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    report = json.loads((tmp_path / "reports" / "tiny" / "report.json").read_text())
    assert report["recipe"]["evaluate"]["providers"] == ["cpu", "openvino"]
    onnx = [n for n, v in report["variants"].items() if v["format"] == "onnx"]
    assert len(onnx) == 3
    rows = {(r["variant"], r["provider"]): r for r in report["results"]}
    for name in onnx:
        _assert_measured_on(rows[name, "cpu"], "CPUExecutionProvider")
        ov = rows[name, "openvino"]
        _assert_measured_on(ov, OV)
        assert ov["provider_options"] == {"device_type": "CPU", "precision": "FP32", "num_of_threads": "1"}
        assert ov["memory"]["peak_rss_mb"] > 0 and "gpu_peak_mb" not in ov["memory"]
    assert rows["baseline", "openvino"]["status"] == "not measured: PyTorch variants are timed on the CPU only"
    md = (tmp_path / "reports" / "tiny" / "report.md").read_text()
    assert "## Provider: openvino" in md and "openvino options: device_type=CPU, precision=FP32" in md


def test_bench_measures_one_file_on_cpu_and_openvino(exported: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    args = ["bench", str(exported.onnx_file), "-p", "cpu", "-p", "openvino", "--seq", "16", "--runs", "10"]
    args += ["--warmup", "2", "--threads", "1", "--provider-option", "openvino:precision=FP32", "-o", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    cpu, ov = report["results"]
    _assert_measured_on(cpu, "CPUExecutionProvider")
    _assert_measured_on(ov, OV)
    assert report["settings"]["provider_options"] == {"openvino": {"precision": "FP32"}}
    assert "| openvino | b1×s16 |" in result.output
