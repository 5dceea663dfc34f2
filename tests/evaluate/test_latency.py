from __future__ import annotations

import pytest

from optkit.evaluate.latency import SETTLE_S, settle, summarize, time_interleaved


def test_summary_statistics_on_known_samples() -> None:
    s = summarize([float(x) for x in range(1, 101)], batch=4)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5) and s["min_ms"] == 1 and s["max_ms"] == 100
    assert s["std_ms"] == pytest.approx(29.011, abs=1e-3)
    assert s["throughput_per_s"] == pytest.approx(4 / 0.0505)
    with pytest.raises(ValueError):
        summarize([], batch=1)


def test_interleaving_rotates_blocks_settles_each_turn_and_times_each_call() -> None:
    order: list[str] = []
    now = [0.0]
    cost = {"a": 0.03125, "b": 0.0625, "c": 0.125}  # seconds; powers of two, so the fake clock adds exactly

    def runner(name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            order.append(name)
            now[0] += cost[name]

        return run

    samples = time_interleaved({n: runner(n) for n in "abc"}, warmup=2, runs=5, block=2, clock=lambda: now[0])
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up first, per variant
    rounds = "".join(order[6:])
    # each turn: untimed runs until SETTLE_S (0.1 s) has passed, at least one (a: 4, b: 2, c: 1), then the
    # block; 3 rounds: 2 + 2 + 1 timed runs, the order rotating
    assert SETTLE_S == 0.1
    assert rounds == "aaaaaabbbbccc" + "bbbbcccaaaaaa" + "ccaaaaabbb"
    assert {n: [round(x, 6) for x in v] for n, v in samples.items()} == {
        "a": [31.25] * 5,
        "b": [62.5] * 5,
        "c": [125.0] * 5,
    }


def test_settling_stops_for_a_clock_that_never_advances() -> None:
    calls: list[int] = []
    assert settle(lambda: calls.append(1), clock=lambda: 0.0) == len(calls) == 200  # bounded, not endless
