from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from optkit.evaluate.memory import _in_child, _peak_rss_bytes, _rss_bytes, measure_peak_rss, measure_peak_rss_shapes
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


def test_one_probe_process_measures_every_shape_as_a_fresh_process_would(exported: Artifact) -> None:
    shared = measure_peak_rss_shapes(exported.path, "onnx", [(4, 16), (1, 16), (4, 16)], runs=2, threads=1)
    assert list(shared) == [(4, 16), (1, 16)]  # duplicates once
    for figure in shared.values():
        assert "error" not in figure, figure
        assert figure["shapes_in_process"] == 2  # one interpreter, one import of onnxruntime
        assert figure["peak_rss_mb"] >= figure["rss_before_load_mb"] > 10
    # the second shape's figure is its own, not the first shape's peak carried over: b1 measured after
    # b4 in the shared probe agrees with b1 alone in a process of its own
    alone = measure_peak_rss(exported.path, "onnx", batch=1, seq=16, runs=2, threads=1)
    assert alone["model_rss_mb"] == pytest.approx(shared[(1, 16)]["model_rss_mb"], abs=3)


def test_a_forked_child_does_not_inherit_its_parents_peak() -> None:
    """What makes sharing a probe honest: a child's high-water mark starts at its own RSS."""
    spike = bytearray(300 * 2**20)
    spike[::4096] = b"x" * len(spike[::4096])  # touch every page so it counts as resident
    del spike
    assert _peak_rss_bytes() > 300 * 2**20
    child = _in_child(lambda: {"peak": _peak_rss_bytes(), "rss": _rss_bytes()})
    assert child["peak"] < child["rss"] + 50 * 2**20
    crashed = _in_child(lambda: {"x": 1 / 0})
    assert crashed["error"].startswith("memory probe failed: ZeroDivisionError")


def test_without_fork_each_shape_gets_its_own_process(exported: Artifact, monkeypatch: pytest.MonkeyPatch) -> None:
    import optkit.evaluate.memory as memory

    monkeypatch.setattr(memory, "_can_fork", lambda: False)
    args = argparse.Namespace(
        format="onnx",
        path=str(exported.path),
        shapes="1x8,2x8",
        runs=1,
        threads=1,
        provider="CPUExecutionProvider",
        provider_options=None,
    )
    assert [(f["batch"], f["seq"]) for f in memory._probe(args)["shapes"]] == [(1, 8)]  # stops after one shape

    calls: list[list[tuple[int, int]]] = []

    def one_at_a_time(path: Path, fmt: str, shapes: list[tuple[int, int]], *rest: object) -> dict:
        calls.append(list(shapes))
        return {"shapes": [{"batch": shapes[0][0], "seq": shapes[0][1], "peak_rss_mb": 1.0}]}

    monkeypatch.setattr(memory, "_spawn", one_at_a_time)
    out = measure_peak_rss_shapes(exported.path, "onnx", [(1, 8), (2, 8)])
    assert calls == [[(1, 8), (2, 8)], [(2, 8)]]  # the parent spawns again for what is left
    one = {"peak_rss_mb": 1.0, "shapes_in_process": 1}
    assert out == {(1, 8): one, (2, 8): one}

    boom = {"error": "memory probe failed (exit 1): boom"}
    monkeypatch.setattr(memory, "_spawn", lambda *a: dict(boom))
    assert measure_peak_rss_shapes(exported.path, "onnx", [(1, 8), (2, 8)]) == {(1, 8): boom, (2, 8): boom}
