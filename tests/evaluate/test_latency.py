from __future__ import annotations

import pytest

from optkit.evaluate.latency import summarize, time_interleaved


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


def test_interleaving_rotates_blocks_and_times_each_call() -> None:
    order: list[str] = []
    now = [0.0]
    cost = {"a": 1.0, "b": 2.0, "c": 3.0}

    def runner(name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            order.append(name)
            now[0] += cost[name] / 1000  # seconds

        return run

    samples = time_interleaved({n: runner(n) for n in "abc"}, warmup=2, runs=5, block=2, clock=lambda: now[0])
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up first, per variant
    rounds = "".join(order[6:])
    # each turn is one settling run + the block; 3 rounds: 2 + 2 + 1 timed runs, start rotating
    assert rounds == "aaabbbccc" + "bbbcccaaa" + "ccaabb"
    assert {n: [round(x, 6) for x in v] for n, v in samples.items()} == {
        "a": [1.0] * 5,
        "b": [2.0] * 5,
        "c": [3.0] * 5,
    }
