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
    block: int = 10,
    on_round: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time each callable ``runs`` times, interleaved in rounds, and return ms samples.

    Each round gives every variant one untimed settling run and then up to ``block`` timed
    runs; the order rotates from round to round (A B C, B C A, C A B, ...). Rounds spread
    machine drift over all variants alike. Blocks, and the settling run, keep one variant's
    thread pool (ONNX Runtime and OpenMP workers spin for a while after each run) from
    stealing the cores of the next: timed one call at a time, the same fp32 model measured
    anywhere from 36 to 81 ms on 2 cores depending on its neighbours.
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    rounds = math.ceil(runs / block)
    for r in range(rounds):
        shift = r % len(names)
        count = min(block, runs - r * block)
        for name in names[shift:] + names[:shift]:
            fn = runners[name]
            fn()  # settling run: the previous variant's worker threads are still spinning
            for _ in range(count):
                t0 = clock()
                fn()
                samples[name].append((clock() - t0) * 1000.0)
        if on_round:
            on_round(count)
    return samples
