"""Latency timing: every variant at one shape, interleaved in rounds so machine drift hits all alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["LatencyStats", "summarize", "time_interleaved"]

LatencyStats = dict[str, float]


def summarize(samples_ms: Sequence[float], batch: int) -> LatencyStats:
    """p50/p90/p99 (nearest-rank, linear interpolation), mean, std, min, max and throughput."""
    xs = sorted(samples_ms)
    n = len(xs)
    if n == 0:
        raise ValueError("no latency samples")

    def pct(p: float) -> float:
        pos = (n - 1) * p / 100
        lo, hi = math.floor(pos), math.ceil(pos)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": xs[0],
        "max_ms": xs[-1],
        "cv": std / mean if mean else 0.0,
        "runs": n,
        "throughput_per_s": batch / (mean / 1000) if mean else 0.0,
    }


def time_interleaved(
    runners: dict[str, Callable[[], Any]],
    *,
    warmup: int,
    runs: int,
    on_round: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time each callable ``runs`` times in rounds A B C, B C A, C A B, ... and return ms samples.

    The start of each round rotates so no variant always runs right after the same neighbour
    (cache and frequency effects of the previous model fall on all of them alike).
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = runners[name]
            t0 = clock()
            fn()
            samples[name].append((clock() - t0) * 1000.0)
        if on_round:
            on_round(r + 1)
    return samples
