"""The search rules of ``tune`` on made-up trials: no model, microseconds each."""

from __future__ import annotations

from typing import Any

import pytest

from optkit.errors import RecipeError
from optkit.passes.tune import TuneConfig, search_grid
from optkit.passes.tune_search import (
    Candidate,
    SearchState,
    Trial,
    choose,
    estimate_seconds,
    exclusion_candidates,
    grid_candidates,
    run_search,
)


def _grid(*rows: tuple[str, float, float]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, tuple[float, float]]]:
    """A grid of labels with made-up (accuracy, speed-up) figures."""
    space = [
        (label, {"mode": "dynamic", "per_channel": i % 2 == 0, "op_types": [label]})
        for i, (label, *_) in enumerate(rows)
    ]
    return space, {label: (acc, speed) for label, acc, speed in rows}


def _runner(figures: dict[str, tuple[float, float]], calls: list[str]):  # type: ignore[no-untyped-def]
    def run(candidate: Candidate, number: int) -> Trial:
        calls.append(candidate.label)
        acc, speed = figures[candidate.label]
        return Trial(candidate, acc, acc, speed, None, None, None, 1, 0.0)

    return run


def test_the_fastest_within_tolerance_wins_not_the_first_that_passes() -> None:
    space, figures = _grid(("a", 0.90, 1.20), ("b", 0.85, 1.90), ("c", 0.895, 1.50), ("d", 0.899, 1.40))
    state = SearchState(reference_accuracy=0.90, max_drop=0.01)
    calls: list[str] = []
    stopped = run_search(state, [grid_candidates(space)], _runner(figures, calls), max_trials=10, time_budget_s=60)
    assert stopped == "space_exhausted" and calls == ["a", "b", "c", "d"]  # it went on after 'a' passed
    choice = choose(state)
    assert choice.outcome == "within_tolerance"
    assert choice.chosen is not None and choice.chosen.candidate.label == "c"  # b is faster but 5 points worse
    assert choice.fastest is not None and choice.fastest.candidate.label == "b"


def test_a_drop_of_exactly_the_tolerance_passes_despite_float_rounding() -> None:
    space, figures = _grid(("a", 0.86, 1.3))
    state = SearchState(reference_accuracy=0.87, max_drop=0.01)  # 0.87 - 0.86 = 0.010000000000000009
    run_search(state, [grid_candidates(space)], _runner(figures, []), max_trials=5, time_budget_s=60)
    assert choose(state).outcome == "within_tolerance"


def test_max_trials_ends_the_search_and_the_best_so_far_is_chosen() -> None:
    space, figures = _grid(("a", 0.90, 1.1), ("b", 0.90, 1.3), ("c", 0.90, 9.9))
    state = SearchState(0.90, 0.01)
    calls: list[str] = []
    stopped = run_search(state, [grid_candidates(space)], _runner(figures, calls), max_trials=2, time_budget_s=60)
    assert stopped == "max_trials" and calls == ["a", "b"]
    assert choose(state).chosen.candidate.label == "b"  # type: ignore[union-attr]


def test_the_time_budget_ends_the_search_before_a_new_trial_starts() -> None:
    space, figures = _grid(("a", 0.9, 1.1), ("b", 0.9, 1.2), ("c", 0.9, 1.3))
    now = [0.0]
    calls: list[str] = []
    inner = _runner(figures, calls)

    def slow(candidate: Candidate, number: int) -> Trial:
        now[0] += 40.0  # each trial takes 40 s of the fake clock
        return inner(candidate, number)

    state = SearchState(0.9, 0.01)
    stopped = run_search(state, [grid_candidates(space)], slow, max_trials=10, time_budget_s=60, clock=lambda: now[0])
    assert stopped == "time_budget" and calls == ["a", "b"]  # b started at 40 s < 60 s and finished; c never


def test_when_nothing_passes_the_most_accurate_is_chosen_and_the_fastest_named() -> None:
    space, figures = _grid(("acc", 0.86, 1.1), ("fast", 0.70, 2.0), ("mid", 0.80, 1.5))
    state = SearchState(0.90, 0.01)
    run_search(state, [grid_candidates(space)], _runner(figures, []), max_trials=10, time_budget_s=60)
    choice = choose(state)
    assert choice.outcome == "nothing_passed"
    assert choice.chosen is choice.most_accurate and choice.chosen.candidate.label == "acc"  # type: ignore[union-attr]
    assert choice.fastest.candidate.label == "fast"  # type: ignore[union-attr]


def test_failed_builds_are_recorded_but_never_chosen() -> None:
    state = SearchState(0.9, 0.01)
    ok = Candidate("ok", ({"kind": "quantize", "mode": "dynamic"},))
    bad = Candidate("bad", ({"kind": "quantize", "mode": "static"},))
    state.trials = [
        Trial(bad, 0.0, 0.0, None, None, None, None, 0, 0.1, error="ORT failed"),
        Trial(ok, 0.895, 0.99, 1.2, None, None, None, 3, 1.0),
    ]
    choice = choose(state)
    assert choice.chosen is not None and choice.chosen.candidate.label == "ok"
    rec = state.trials[0].record(1, 0.9, 0.01)
    assert rec["within_tolerance"] is False and rec["error"] == "ORT failed"
    assert choose(SearchState(0.9, 0.01)).outcome == "no_trials"


def test_exclusion_keeps_the_most_sensitive_groups_in_float_until_the_tolerance_holds() -> None:
    """Accuracy recovers as sensitive groups go back to float; the search stops adding groups once it passes."""
    ranking = [("layer.5/ffn", ["n5"]), ("layer.0/attention", ["n0"]), ("head", ["h"]), ("layer.2/ffn", ["n2"])]
    asked: list[str] = []

    def rank(candidate: Candidate) -> list[tuple[str, list[str]]]:
        asked.append(candidate.label)
        return ranking

    def run(candidate: Candidate, number: int) -> Trial:
        excluded = set(candidate.steps[-1].get("nodes_to_exclude", []))
        acc = {"base": 0.86, "worse": 0.80}[candidate.label.split(" ")[0]] + 0.015 * len(excluded)
        return Trial(candidate, acc, acc, 1.5 - 0.1 * len(excluded), None, None, None, 1, 0.0)

    space = [("base", {"mode": "dynamic"}), ("worse", {"mode": "dynamic", "per_channel": False})]
    state = SearchState(0.90, 0.01)
    generators = [grid_candidates(space), exclusion_candidates(rank, max_groups=3, bases=1)]
    stopped = run_search(state, generators, run, max_trials=20, time_budget_s=60)
    assert stopped == "space_exhausted"
    assert asked == ["base"]  # only the most accurate failing configuration is ranked (bases=1)
    derived = [t for t in state.trials if t.candidate.origin == "exclusion"]
    # 0.86 + 0.015 = 0.875 fails; 0.86 + 0.03 = 0.89 passes: two trials, most sensitive group first
    assert [t.candidate.excluded_groups for t in derived] == [("layer.5/ffn",), ("layer.5/ffn", "layer.0/attention")]
    assert derived[-1].candidate.steps[-1]["nodes_to_exclude"] == ["n0", "n5"]
    assert choose(state).chosen is derived[-1]


def test_a_resumed_search_skips_nothing_and_repeats_nothing() -> None:
    """Trials read back from the cache count towards max_trials; a candidate is never tried twice."""
    space, figures = _grid(("a", 0.9, 1.1), ("b", 0.9, 1.2))
    state = SearchState(0.9, 0.01)
    calls: list[str] = []
    generators = [grid_candidates(space), grid_candidates(space)]  # the same candidates proposed twice
    run_search(state, generators, _runner(figures, calls), max_trials=10, time_budget_s=60)
    assert calls == ["a", "b"]


def test_the_grid_covers_the_asked_dimensions_without_duplicates() -> None:
    config = TuneConfig(
        modes=["dynamic", "static"],
        per_channel=[True, False],
        reduce_range=[False, True],
        op_types=[None, ["MatMul"]],
        calibration=["minmax", "percentile"],
        calibration_percentile=[99.99, 99.999],
    )
    grid = search_grid(config)
    dynamic = [o for _, o in grid if o["mode"] == "dynamic"]
    static = [o for _, o in grid if o["mode"] == "static"]
    assert len(dynamic) == 2 * 2 * 2
    # static: op_types None means MatMul, so the two op-type sets collapse; 3 calibrations each
    assert len(static) == 2 * 2 * 3 and all(o["op_types"] == ["MatMul"] for o in static)
    assert {o.get("calibration_percentile") for o in static} == {None, 99.99, 99.999}
    assert [o["mode"] for _, o in grid][: len(dynamic)] == ["dynamic"] * len(dynamic)  # cheap trials first


def test_a_bad_option_in_the_search_space_fails_when_the_recipe_is_read(schema_recipe_dict: dict) -> None:
    from optkit.recipe import recipe_from_dict

    schema_recipe_dict["variants"]["t"] = [{"export": {}}, {"tune": {"calibration_percentile": [50]}}]
    schema_recipe_dict["data"]["splits"]["validation"] = 0.5
    with pytest.raises(RecipeError, match="calibration_percentile"):
        recipe_from_dict(schema_recipe_dict)


def test_no_sensitivity_ranking_is_paid_for_once_the_budget_is_spent() -> None:
    """Ranking costs one quantisation per node group: not spent when no derived candidate could run."""
    asked: list[str] = []

    def rank(candidate: Candidate) -> list[tuple[str, list[str]]]:
        asked.append(candidate.label)
        return [("g", ["n"])]

    space, figures = _grid(("a", 0.80, 1.5), ("b", 0.70, 1.6))  # both fail the tolerance
    state = SearchState(0.9, 0.01)
    generators = [grid_candidates(space), exclusion_candidates(rank, max_groups=2, bases=2)]
    stopped = run_search(state, generators, _runner(figures, []), max_trials=2, time_budget_s=60)
    assert stopped == "max_trials" and asked == []


def test_steps_before_quantisation_are_a_search_dimension_and_chains_can_be_added() -> None:
    """Fusion on/off (or any ONNX -> ONNX pass) multiplies the grid; explicit chains (a preset) follow it."""
    from optkit.passes.tune import candidate_chains

    config = TuneConfig.model_validate(
        {
            "modes": ["dynamic"],
            "per_channel": [True],
            "op_types": [["MatMul"]],
            "before": [[], [{"quantize": {"mode": "dynamic", "op_types": ["Gather"]}}]],  # recipe step form
            "candidates": [[{"quantize": {"mode": "dynamic", "per_channel": False}}]],
        }
    )
    chains = candidate_chains(config)
    assert [len(steps) for _, steps in chains] == [1, 2, 1]
    assert chains[1][1][0] == {"kind": "quantize", "mode": "dynamic", "op_types": ["Gather"]}
    assert chains[1][0].startswith("quantize + dynamic per-channel")
    assert chains[2][1] == ({"kind": "quantize", "mode": "dynamic", "per_channel": False},)


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ([{"export": {}}], r"'export' is a torch -> onnx pass"),
        ([{"quantise": {}}], r"unknown pass 'quantise'"),
        ([{"quantize": {"mode": "sideways"}}], r"mode"),
    ],
    ids=["torch-pass", "typo", "bad-option"],
)
def test_a_chain_step_that_cannot_run_is_refused_at_load(chain: list, message: str) -> None:
    with pytest.raises((RecipeError, ValueError), match=message):
        TuneConfig.model_validate({"candidates": [chain]})


def test_exclusion_keeps_the_steps_before_quantisation() -> None:
    prefix = {"kind": "optimize", "model_type": "bert"}
    base = Candidate("fused", (prefix, {"kind": "quantize", "mode": "dynamic"}))
    state = SearchState(0.9, 0.01, trials=[Trial(base, 0.85, 0.9, 1.5, None, None, None, 1, 0.0)])
    gen = exclusion_candidates(lambda c: [("layer.0/ffn", ["a", "b"])], max_groups=1, bases=1)
    (derived,) = list(gen(state))
    assert derived.steps[0] == prefix and derived.steps[1]["nodes_to_exclude"] == ["a", "b"]
    assert derived.base == base.key


def test_a_candidate_whose_estimated_time_overruns_the_budget_is_skipped_and_a_cheaper_one_runs() -> None:
    # Two dynamic trials take 10 s each; the first static one takes 30 s; a second static one would
    # take 30 s more at 50 s of a 60 s budget, so it is skipped, and the dynamic one after it still fits.
    cost = {"dynamic": 10.0, "static": 30.0}
    now = [0.0]
    calls: list[str] = []

    def run(candidate: Candidate, number: int) -> Trial:
        mode = candidate.steps[-1]["mode"]
        now[0] += cost[mode]
        calls.append(candidate.label)
        return Trial(candidate, 0.9, 1.0, 1.2, None, None, None, 1, cost[mode])

    def q(label: str, mode: str, pc: bool) -> tuple[str, dict[str, Any]]:
        return label, {"mode": mode, "per_channel": pc, "calibration": "minmax" if mode == "static" else None}

    space = [q("d1", "dynamic", True), q("s1", "static", True), q("s2", "static", False), q("d2", "dynamic", False)]
    state = SearchState(0.9, 0.01)
    stopped = run_search(state, [grid_candidates(space)], run, max_trials=10, time_budget_s=60, clock=lambda: now[0])
    assert calls == ["d1", "s1", "d2"]  # s2 skipped: 40 s spent + 30 s estimated > 60 s; d2: 40 + 10 <= 60
    assert state.skipped == [("s2", 30.0)]
    assert stopped == "time_budget" and now[0] <= 60


def test_an_unseen_family_is_estimated_as_the_costliest_trial_so_far() -> None:
    state = SearchState(0.9, 0.01)
    dyn = Candidate("d", ({"kind": "quantize", "mode": "dynamic"},))
    state.trials.append(Trial(dyn, 0.9, 1.0, 1.2, None, None, None, 1, 12.0))
    state.trials.append(
        Trial(
            Candidate("d2", ({"kind": "quantize", "mode": "dynamic", "x": 1},)), 0.9, 1.0, 1.2, None, None, None, 1, 8.0
        )
    )
    static = Candidate("s", ({"kind": "quantize", "mode": "static", "calibration": "percentile"},))
    assert estimate_seconds(state, static) == 12.0
    assert estimate_seconds(state, Candidate("d3", ({"kind": "quantize", "mode": "dynamic", "y": 2},))) == 12.0
    assert estimate_seconds(SearchState(0.9, 0.01), static) is None  # nothing ran: no estimate, it starts
