from __future__ import annotations

from pathlib import Path

from optkit.evaluate.memory import measure_peak_rss
from optkit.passes.base import Artifact


def test_probe_measures_the_model_in_its_own_process(exported: Artifact) -> None:
    small = measure_peak_rss(exported.path, "onnx", batch=1, seq=16, runs=2, threads=1)
    assert "error" not in small, small
    assert small["peak_rss_mb"] >= small["rss_before_load_mb"] > 10
    assert small["model_rss_mb"] > 0 and small["load_s"] > 0
    # the probe's peak is its own, not the (much larger) pytest parent's
    import psutil

    assert small["peak_rss_mb"] < psutil.Process().memory_info().rss / 2**20


def test_probe_failure_is_reported_not_raised(tmp_path: Path) -> None:
    out = measure_peak_rss(tmp_path, "onnx", batch=1, seq=8)
    assert out["error"].startswith("memory probe failed")
