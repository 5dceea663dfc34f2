"""Adaptive latency timing: the stopping rule on synthetic sample streams, and its recipe fields.

No test here times anything real: streams come from seeded generators and a fake clock, so each
stop is decided by the samples alone and the assertions hold on a busy machine too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from optkit.bench import bench_model
from optkit.errors import RecipeError
from optkit.evaluate.latency import p50_half_width, stop_reason, time_interleaved
from optkit.evaluate.stats import summarize
from optkit.passes.base import Artifact
from optkit.recipe import (
    DEFAULT_MAX_RUNS,
    DEFAULT_MIN_RUNS,
    DEFAULT_PRECISION,
    LatencySpec,
    Shape,
    load_recipe,
    recipe_from_dict,
)
from optkit.reports.notes import _unmet_precision_notes
from optkit.reports.schema import validate_report


def tight(n: int, seed: int = 1, p50: float = 30.0) -> list[float]:
    """A quiet machine: ±1% gaussian jitter around ``p50``."""
    rng = random.Random(seed)
    return [p50 * (1 + rng.gauss(0, 0.01)) for _ in range(n)]


def noisy(n: int, seed: int = 2, p50: float = 30.0) -> list[float]:
    """A busy machine: log-normal spread of about 30%, so a hundred runs pin the median to ±7% at best."""
    rng = random.Random(seed)
    return [p50 * rng.lognormvariate(0, 0.3) for _ in range(n)]


def test_half_width_is_the_wider_side_of_the_reported_interval() -> None:
    xs = noisy(40)
    s = summarize(xs, batch=1)
    lo, hi = s["p50_ci95_ms"]
    assert p50_half_width(xs) == pytest.approx(max(s["p50_ms"] - lo, hi - s["p50_ms"]) / s["p50_ms"])
    assert p50_half_width(tight(40)) < 0.01 < 0.05 < p50_half_width(xs)
    assert p50_half_width([]) == float("inf")


@pytest.mark.parametrize(
    ("streams", "kwargs", "expected"),
    [
        ({"a": tight(20), "b": tight(20, seed=3, p50=12.0)}, {}, "precision"),
        # the floor: tight, but fewer than min_runs samples say nothing yet
        ({"a": tight(19), "b": tight(19, seed=3)}, {}, None),
        # every variant must be tight, not most
        ({"a": tight(60), "b": noisy(60)}, {}, None),
        ({"a": tight(100), "b": noisy(100)}, {}, "max_runs"),
        ({"a": noisy(40)}, {"elapsed_s": 31.0, "time_budget_s": 30.0}, "budget"),
        ({"a": noisy(40)}, {"elapsed_s": 29.0, "time_budget_s": 30.0}, None),
        # a spent budget still waits for min_runs, so the interval rests on enough samples
        ({"a": noisy(10)}, {"elapsed_s": 99.0, "time_budget_s": 30.0}, None),
        # fixed count: no precision target, the count alone ends it
        ({"a": noisy(100)}, {"precision": None}, "runs"),
        ({"a": tight(99)}, {"precision": None}, None),
        # precision wins a tie with the cap: it is the answer the caller wanted
        ({"a": tight(100)}, {}, "precision"),
    ],
    ids=[
        "tight-stops-for-precision",
        "below-floor",
        "one-noisy-variant-keeps-going",
        "noisy-hits-the-cap",
        "noisy-hits-the-budget",
        "budget-not-yet-spent",
        "budget-waits-for-floor",
        "fixed-count",
        "fixed-count-not-reached",
        "precision-beats-cap",
    ],
)
def test_stop_reason(streams: dict[str, list[float]], kwargs: dict[str, Any], expected: str | None) -> None:
    args: dict[str, Any] = {"runs": 100, "precision": 0.03, "min_runs": 20, **kwargs}
    assert stop_reason(streams, **args) == expected


def fake(stream: Iterator[float], now: list[float]) -> Callable[[], None]:
    """A runner whose every call (timed or settling) takes the next duration of ``stream``, in ms, on a fake clock."""

    def run() -> None:
        now[0] += next(stream) / 1000

    return run


def test_interleaved_timing_stops_for_precision_on_a_quiet_stream() -> None:
    now = [0.0]
    runners = {"a": fake(iter(tight(500)), now), "b": fake(iter(tight(500, seed=5, p50=10.0)), now)}
    record: dict[str, Any] = {}
    samples = time_interleaved(
        runners, warmup=0, runs=300, block=10, min_runs=20, precision=0.03, clock=lambda: now[0], record=record
    )
    # ±1% jitter meets ±3% as soon as the floor allows: two rounds of 10
    assert {n: len(v) for n, v in samples.items()} == {"a": 20, "b": 20}
    assert record["stopped_by"] == "precision" and record["rounds"] == 2 and not record["budget_hit"]
    assert all(p50_half_width(v) <= 0.03 for v in samples.values())


def test_interleaved_timing_on_a_noisy_stream_stops_at_the_cap_or_the_budget() -> None:
    now = [0.0]
    record: dict[str, Any] = {}
    runners = {"a": fake(iter(tight(1000)), now), "b": fake(iter(noisy(1000)), now)}
    capped = time_interleaved(
        runners, warmup=0, runs=60, block=10, min_runs=20, precision=0.01, clock=lambda: now[0], record=record
    )
    assert {n: len(v) for n, v in capped.items()} == {"a": 60, "b": 60}
    assert record["stopped_by"] == "max_runs" and record["rounds"] == 6
    assert p50_half_width(capped["b"]) > 0.01  # what the report then shows as achieved

    # a round of both takes 11 calls x (30 + about 31) ms: about 0.7 s; no round starts after 3 s: 4 or 5 rounds
    now[0] = 0.0
    runners = {"a": fake(iter(tight(1000)), now), "b": fake(iter(noisy(1000)), now)}
    budget = time_interleaved(
        runners,
        warmup=0,
        runs=300,
        block=10,
        min_runs=20,
        precision=0.01,
        time_budget_s=3.0,
        clock=lambda: now[0],
        record=record,
    )
    assert record["stopped_by"] == "budget" and record["budget_hit"]
    assert 40 <= len(budget["a"]) == len(budget["b"]) <= 50


def test_latency_spec_adaptive_forms_and_defaults() -> None:
    fixed = LatencySpec()
    assert (fixed.adaptive, fixed.target, fixed.cap, fixed.floor) == (False, None, 100, 5)
    auto = LatencySpec(runs="auto")
    assert (auto.adaptive, auto.target, auto.cap, auto.floor) == (
        True,
        DEFAULT_PRECISION,
        DEFAULT_MAX_RUNS,
        DEFAULT_MIN_RUNS,
    )
    capped = LatencySpec(runs=150, precision="2%", min_runs=30)  # type: ignore[arg-type]  # YAML gives strings
    assert (capped.adaptive, capped.target, capped.cap, capped.floor) == (True, 0.02, 150, 30)
    assert LatencySpec(runs="auto", max_runs=80).cap == 80
    assert LatencySpec(time_budget_s=10, min_runs=8).floor == 8  # a budget may stop early, so a floor applies


@pytest.mark.parametrize(
    ("latency", "match"),
    [
        ({"runs": "lots"}, r"evaluate\.latency\.runs: runs must be an integer \(5 or more\) or 'auto'; got 'lots'"),
        ({"runs": 4}, r"evaluate\.latency\.runs: runs must be 5 or more .* got 4"),
        ({"precision": 0}, r"evaluate\.latency\.precision: .*greater than 0"),
        ({"precision": 0.8}, r"evaluate\.latency\.precision: .*less than or equal to 0\.5"),
        ({"precision": "three%"}, r"precision must be a fraction \(0\.03\) or a percentage \('3%'\); got 'three%'"),
        ({"max_runs": 50}, r"evaluate\.latency: max_runs \(50\) applies to runs: auto; with runs: 100"),
        ({"min_runs": 10}, r"min_runs \(10\) only matters when timing can stop early"),
        ({"runs": "auto", "min_runs": 400}, r"min_runs \(400\) is more than the cap of 300 .*raise max_runs"),
        ({"runs": 30, "precision": 0.05, "min_runs": 40}, r"min_runs \(40\) is more than the cap of 30 .*raise runs"),
        ({"runs": "auto", "min_runs": 3}, r"evaluate\.latency\.min_runs: .*greater than or equal to 5"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_latency_spec_rejections_name_the_field_and_the_fix(
    recipe_dict: dict[str, Any], latency: dict[str, Any], match: str
) -> None:
    recipe_dict["evaluate"]["latency"] = latency
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(recipe_dict)


@pytest.mark.parametrize(
    ("skip", "extra", "match"),
    [
        (["fp32"], {}, r"evaluate\.latency\.skip names unknown variant 'fp32'; did you mean 'fp32-onnx'"),
        (["fp32-onnx"], {"reference": "fp32-onnx"}, r"'fp32-onnx' is evaluate\.reference, .*choose another reference"),
        (["int8-dynamic"], {"gate": 1.2}, r"report\.gates\.int8-dynamic\.min_speedup needs the speed of"),
    ],
    ids=["unknown", "reference", "speed-gate"],
)
def test_untimed_variants_are_checked_against_the_reference_and_the_speed_gates(
    schema_recipe_dict: dict[str, Any], skip: list[str], extra: dict[str, Any], match: str
) -> None:
    schema_recipe_dict["evaluate"]["latency"]["skip"] = skip
    if "reference" in extra:
        schema_recipe_dict["evaluate"]["reference"] = extra["reference"]
    if "gate" in extra:
        schema_recipe_dict["report"]["gates"]["int8-dynamic"]["min_speedup"] = extra["gate"]
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(schema_recipe_dict)
    schema_recipe_dict["evaluate"]["latency"]["skip"] = ["baseline"]  # the CI case: always allowed
    assert recipe_from_dict(schema_recipe_dict).evaluate.latency.skip == ["baseline"]


def test_bench_rows_say_what_ended_the_timing_and_share_one_memory_probe(exported: Artifact) -> None:
    """The harness end to end on the tiny model: a loose target (±50%) is met at the floor on any sane
    machine; a sub-millisecond model on a very busy one may still need the cap, and the row must say so."""
    report = bench_model(
        exported.onnx_file,
        shapes=[Shape(batch=1, seq=16), Shape(batch=2, seq=16)],
        latency=LatencySpec(warmup=2, runs=30, precision=0.5, min_runs=10, block=5, threads=1),
    )
    assert validate_report(report) == []
    for row in report["results"]:
        lat = row["latency"]
        assert (lat["precision_target"], lat["min_runs"], lat["max_runs"]) == (0.5, 10, 30)
        if lat["stopped_by"] == "precision":
            assert lat["runs"] == 10 and lat["rounds"] == 2 and lat["p50_ci95_half_width"] <= 0.5
        else:
            assert (lat["stopped_by"], lat["runs"], lat["rounds"]) == ("max_runs", 30, 6)
            assert lat["p50_ci95_half_width"] > 0.5
        assert row["memory"]["shapes_in_process"] == 2


def test_a_target_not_met_is_a_note_naming_the_widest_interval() -> None:
    def row(variant: str, half: float) -> dict[str, Any]:
        lat = {
            "stopped_by": "budget",
            "precision_target": 0.03,
            "max_runs": 300,
            "runs": 20,
            "p50_ci95_half_width": half,
        }
        return {"variant": variant, "provider": "cpu", "batch": 8, "seq": 128, "latency": lat}

    report = {"results": [row("fp32-onnx", 0.021), row("int8-static", 0.074)]}
    assert _unmet_precision_notes(report) == [
        "latency at cpu b8×s128: adaptive timing ended at the time budget after 20 runs per variant, before every "
        "median was known to ±3.0%: the widest interval is ±7.4% (int8-static). A quieter machine, or a larger "
        "time_budget_s / max_runs, narrows it."
    ]
    for r in report["results"]:
        r["latency"]["stopped_by"] = "precision"
    assert _unmet_precision_notes(report) == []


def test_markdown_detail_states_the_rule_and_each_rows_runs_and_width() -> None:
    from optkit.reports.markdown import _latency_detail

    stats = summarize(tight(20), batch=1) | {"stopped_by": "precision"}
    row = {"variant": "fp32-onnx", "provider": "cpu", "batch": 1, "seq": 128, "status": "measured", "latency": stats}
    latency = LatencySpec(runs="auto", time_budget_s=20).model_dump(mode="json")
    lines = _latency_detail({"recipe": {"evaluate": {"latency": latency}}, "results": [row]})
    assert lines[2].startswith(
        "Adaptive timing: rounds until every variant's median is known to ±3.0% (95% CI), at least 20 and at most "
        "300 timed runs per variant and shape (or until 20 s of timing per shape are spent), after 10 warm-up runs"
    )
    assert f"| {stats['p50_ci95_half_width']:.1%} | 20 | precision |" in lines[-2]


def test_the_ci_recipe_is_the_default_recipes_own_variants_timed_adaptively() -> None:
    """Same model, data, baseline and fixed shapes, and optkit's own variants built the same way (cache
    hits after `make run`); the peers' variants and the traffic replay stay in the full recipe."""
    root = Path(__file__).resolve().parents[2] / "recipes"
    full, ci = load_recipe(root / "bert-int8.yaml"), load_recipe(root / "bert-int8-ci.yaml")
    assert ci.evaluate.latency.adaptive and not full.evaluate.latency.adaptive
    assert (ci.evaluate.latency.target, ci.evaluate.latency.time_budget_s) == (0.03, 20)
    assert ci.evaluate.latency.skip == ["baseline"]
    same = {"name", "evaluate", "variants"}
    assert ci.model_dump(exclude=same) == full.model_dump(exclude=same)
    assert list(ci.variants) == ["fp32-onnx", "int8-dynamic", "int8-static"]
    assert all(ci.variants[n] == full.variants[n] for n in ci.variants)
    assert ci.evaluate.model_dump(exclude={"latency", "traffic"}) == full.evaluate.model_dump(
        exclude={"latency", "traffic"}
    )
    assert not ci.evaluate.traffic and full.evaluate.traffic


def test_bench_cli_takes_a_precision_target(exported: Artifact, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    args = ["bench", str(exported.onnx_file), "--batch", "1", "--seq", "8", "--threads", "1", "--no-memory"]
    ok = CliRunner().invoke(cli, [*args, "--runs", "20", "--precision", "50%", "--output", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    lat = json.loads((tmp_path / "report.json").read_text())["results"][0]["latency"]
    assert lat["precision_target"] == 0.5 and lat["max_runs"] == 20 and lat["stopped_by"] in ("precision", "max_runs")
    bad = CliRunner().invoke(cli, [*args, "--precision", "tight"])
    assert bad.exit_code == 2 and "latency.precision" in bad.output
