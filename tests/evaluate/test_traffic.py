"""Latency on real traffic: which rows are replayed, the same requests for every variant, the statistics."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import RecipeError
from optkit.evaluate.traffic import length_distribution, request_rows, time_requests, traffic_stats
from optkit.recipe import recipe_from_dict


def test_request_rows_spread_over_the_split_and_respect_the_cap() -> None:
    assert request_rows(10, 1, None) == [[i] for i in range(10)]
    capped = request_rows(100, 1, 5)
    assert capped == [[0], [20], [40], [60], [80]]  # evenly spread, not the first five rows
    batched = request_rows(10, 4, None)
    assert [len(r) for r in batched] == [4, 4, 2] and [i for r in batched for i in r] == list(range(10))
    with pytest.raises(ValueError, match="at least one eval row"):
        request_rows(0, 1, None)


def test_length_distribution_counts_buckets_truncation_and_padding() -> None:
    lengths = [5, 20, 20, 40, 128]
    padded = [20, 20, 20, 128, 128]  # e.g. batch 2-3 requests padded to their longest row
    d = length_distribution(lengths, padded, 128)
    assert d["rows"] == 5 and d["p50"] == 20 and d["max"] == 128 and d["truncated_rows"] == 1
    assert d["histogram"] == {"1-16": 1, "17-32": 2, "33-64": 1, "65-128": 1}
    assert d["padding_overhead"] == pytest.approx(sum(padded) / sum(lengths))
    assert length_distribution([3, 4], [3, 4], 16)["padding_overhead"] == 1.0


def test_every_variant_replays_the_same_requests_in_order_interleaved() -> None:
    calls: list[tuple[str, int]] = []
    ticks = itertools.count()

    def runner(name: str) -> Any:
        return lambda i: calls.append((name, i))

    record: dict[str, Any] = {}
    samples = time_requests(
        {"a": runner("a"), "b": runner("b")}, 7, warmup=2, block=3, clock=lambda: float(next(ticks)), record=record
    )
    assert {n: len(s) for n, s in samples.items()} == {"a": 7, "b": 7}
    assert record["rounds"] == 3 and record["warmup_runs"] == {"a": 2, "b": 2}
    timed = calls[4:]  # after two warm-up requests each
    # round 0: a settles on 0 then runs 0-2, b likewise; round 1 starts with b (rotation)
    assert timed[:8] == [("a", 0), ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 0), ("b", 1), ("b", 2)]
    assert timed[8] == ("b", 3)
    for name in "ab":
        seen = [i for n, i in timed if n == name]
        assert sorted(set(seen)) == list(range(7))


def test_traffic_stats_pair_requests() -> None:
    ref = [10.0, 20.0, 30.0, 40.0, 50.0]
    fast = [5.0, 10.0, 15.0, 20.0, 25.0]
    stats = traffic_stats({"ref": ref, "fast": fast}, "ref", 1)
    assert stats["fast"]["paired_speedup"]["median"] == pytest.approx(2.0)
    assert stats["fast"]["paired_speedup"]["ci95"] == pytest.approx([2.0, 2.0])
    assert stats["fast"]["speedup_vs_reference"] == pytest.approx(2.0)
    assert stats["ref"]["latency"]["p90_ms"] == pytest.approx(46.0) and "noisy" not in stats["ref"]["latency"]
    assert traffic_stats({"x": ref}, None, 1)["x"]["paired_speedup"] is None


def test_traffic_entries_of_shapes_are_kept_apart(schema_recipe_dict: dict) -> None:
    ev = schema_recipe_dict["evaluate"]
    ev["shapes"] = [{"batch": 1, "seq": 16}, {"traffic": "eval"}, {"traffic": "eval", "batch": 4, "requests": 9}]
    recipe = recipe_from_dict(schema_recipe_dict)
    assert [(s.batch, s.seq) for s in recipe.evaluate.shapes] == [(1, 16)]
    assert [(t.batch, t.requests) for t in recipe.evaluate.traffic] == [(1, 500), (4, 9)]
    assert recipe_from_dict(recipe.model_dump(mode="json")).evaluate == recipe.evaluate


def test_traffic_alone_is_refused(schema_recipe_dict: dict) -> None:
    schema_recipe_dict["evaluate"]["shapes"] = [{"traffic": "eval"}]
    with pytest.raises(RecipeError, match=r"needs at least one fixed \{batch, seq\} shape"):
        recipe_from_dict(schema_recipe_dict)


def test_a_run_reports_traffic_next_to_fixed_shapes_and_fusion(recipe_dict: dict, tmp_path: Path) -> None:
    import json

    import yaml

    from optkit.api import run_recipe
    from optkit.evaluate.providers import provider_status

    data = copy.deepcopy(recipe_dict)
    data["baseline"] = [{"finetune": {"epochs": 1, "max_steps": 2, "batch_size": 16}}]
    data["variants"] = {"fp32-onnx": [{"export": {}}], "fused": [{"export": {}}, {"optimize": {}}]}
    data["evaluate"]["shapes"] = [
        {"batch": 1, "seq": 16},
        {"traffic": "eval", "requests": 12},
        {"traffic": "eval", "batch": 4, "requests": 5, "include_preprocessing": True},
    ]
    data["evaluate"]["providers"] = ["cpu", "cuda"]  # no CUDA here: its traffic rows say why
    data["report"] = {"formats": ["json", "md", "html"]}
    path = tmp_path / "traffic.yaml"
    path.write_text(yaml.safe_dump(data))
    run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    out = tmp_path / "reports" / "tiny"
    report = json.loads((out / "report.json").read_text())
    first, second, *on_cuda = report["traffic"]
    assert [g["provider"] for g in on_cuda] == ["cuda", "cuda"]
    if provider_status("cuda") is not None:  # the usual case: no GPU build here
        assert "lengths" not in on_cuda[0]
        assert all(r["status"].startswith("not measured: ") for g in on_cuda for r in g["rows"])
    assert first["label"] == "traffic:eval b1" and second["label"] == "traffic:eval b4 +tok"
    assert first["lengths"]["rows"] == 12 and first["lengths"]["padding_overhead"] == 1.0
    assert second["lengths"]["rows"] == 20 and second["lengths"]["padding_overhead"] >= 1.0
    rows = {r["variant"]: r for r in first["rows"]}
    assert set(rows) == {"baseline", "fp32-onnx", "fused"} and all(len(r["samples_ms"]) == 12 for r in rows.values())
    assert rows["fp32-onnx"]["speedup_vs_reference"] == pytest.approx(1.0)
    assert rows["baseline"]["paired_speedup"]["median"] > 0
    assert {(r["batch"], r["seq"]) for r in report["results"]} == {(1, 16)}  # fixed shapes unchanged
    md = (out / "report.md").read_text()
    # the runner hands optimize its lineage, so the fused graph is checked against the fine-tuned PyTorch model
    (step,) = [s for s in report["steps"] if s["kind"] == "optimize"]
    assert step["meta"]["validation"]["against"] == "PyTorch" and step["meta"]["fused_ops"]["Attention"] == 2
    assert "## Graph fusion" in md and "fused step 2 (optimize): Attention 2" in md
    assert "## Latency on real traffic" in md and "### cpu traffic:eval b4 +tok" in md and "tokens per row" in md
    assert "Latency on real traffic" in (out / "report.html").read_text()


def test_traffic_section_compacts_missing_providers_and_notes_busy_windows() -> None:
    from optkit.reports.traffic import traffic_html, traffic_markdown, traffic_notes

    why = "not measured: CUDAExecutionProvider not available"
    busy = {"other_cpu_share": 0.8, "steal_share": 0.0, "window_s": 10.0, "cpus": 2}
    report = {
        "traffic": [
            {"provider": "cuda", "label": "traffic:eval b1", "shape": {}, "rows": [{"variant": "a", "status": why}]},
            {"provider": "cpu", "label": "traffic:eval b1", "shape": {}, "rows": [], "contention": busy},
        ]
    }
    md = "\n".join(traffic_markdown(report))
    assert f"cuda traffic:eval b1: {why}" in md and "| a |" not in md
    assert why in traffic_html(report)
    (note,) = traffic_notes(report)
    assert note.startswith("latency at cpu traffic:eval b1: other processes used 80% of the 2 CPUs")
    assert traffic_markdown({"results": []}) == [] and traffic_html({}) == ""
