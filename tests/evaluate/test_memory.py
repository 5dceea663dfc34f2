from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from optkit.evaluate.memory import _peak_rss_bytes, _reset_peak, measure_peak_rss, measure_peak_rss_shapes
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


def test_one_probe_process_measures_every_shape_smallest_first(exported: Artifact) -> None:
    out = measure_peak_rss_shapes(exported.path, "onnx", [(4, 16), (1, 16), (4, 16)], runs=2, threads=1)
    assert list(out) == [(1, 16), (4, 16)]  # smallest first, duplicates once
    for figure in out.values():
        assert "error" not in figure, figure
        assert figure["shapes_in_process"] == 2  # one interpreter, one load, not one per shape
        assert figure["peak_rss_mb"] >= figure["rss_before_load_mb"] > 10
    assert out[(1, 16)]["load_s"] == out[(4, 16)]["load_s"]  # the same load served both


def test_peak_reset_lowers_the_high_water_mark() -> None:
    """What makes sharing a process honest: after a reset the mark is today's RSS, not an earlier spike."""
    spike = bytearray(300 * 2**20)
    spike[::4096] = b"x" * len(spike[::4096])  # touch every page so it counts as resident
    high = _peak_rss_bytes()
    del spike
    if not _reset_peak():
        pytest.skip("this kernel does not let a process reset its high-water mark")
    assert _peak_rss_bytes() < high - 200 * 2**20


def test_where_the_mark_cannot_be_reset_each_shape_gets_its_own_process(
    exported: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optkit.evaluate.memory as memory

    monkeypatch.setattr(memory, "_reset_peak", lambda: False)
    args = argparse.Namespace(
        format="onnx", path=str(exported.path), shapes="1x8,2x8", runs=1, threads=1, provider="CPUExecutionProvider"
    )
    assert [(f["batch"], f["seq"]) for f in memory._probe(args)["shapes"]] == [(1, 8)]  # stops after one shape

    calls: list[list[tuple[int, int]]] = []

    def one_at_a_time(path: Path, fmt: str, shapes: list[tuple[int, int]], *rest: object) -> dict:
        calls.append(list(shapes))
        return {"shapes": [{"batch": shapes[0][0], "seq": shapes[0][1], "peak_rss_mb": 1.0}]}

    monkeypatch.setattr(memory, "_spawn", one_at_a_time)
    out = measure_peak_rss_shapes(exported.path, "onnx", [(2, 8), (1, 8)])
    assert calls == [[(1, 8), (2, 8)], [(2, 8)]]  # the parent spawns again for what is left
    assert out == {
        (1, 8): {"peak_rss_mb": 1.0, "shapes_in_process": 1},
        (2, 8): {"peak_rss_mb": 1.0, "shapes_in_process": 1},
    }

    monkeypatch.setattr(memory, "_spawn", lambda *a: {"error": "memory probe failed (exit 1): boom"})
    failed = measure_peak_rss_shapes(exported.path, "onnx", [(1, 8), (2, 8)])
    assert failed == {
        (1, 8): {"error": "memory probe failed (exit 1): boom"},
        (2, 8): {"error": "memory probe failed (exit 1): boom"},
    }
