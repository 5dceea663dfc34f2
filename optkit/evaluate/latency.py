"""Latency timing: every variant at one shape, interleaved in rounds so machine drift hits all alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from optkit.evaluate.stats import summarize

__all__ = ["LatencyStats", "summarize", "time_interleaved", "warm_up"]

LatencyStats = dict[str, Any]

# Warm-up "auto": stop once the median of the last window is within this share of the window before.
_STABLE_WINDOW = 5
_STABLE_TOLERANCE = 0.05
_MAX_AUTO_WARMUP = 200


def warm_up(fn: Callable[[], Any], warmup: int | str, *, clock: Callable[[], float] = time.perf_counter) -> int:
    """Untimed runs before timing: a fixed count, or ``"auto"`` until two windows' medians agree.

    Returns the number of warm-up runs made. Auto exists because the first runs of an ORT
    session allocate its arena and (on GPU EPs) pick kernels; a fixed count is either wasted
    time on a small model or too short on a large one.
    """
    if warmup != "auto":
        for _ in range(int(warmup)):
            fn()
        return int(warmup)
    times: list[float] = []
    while len(times) < _MAX_AUTO_WARMUP:
        t0 = clock()
        fn()
        times.append(clock() - t0)
        if len(times) >= 2 * _STABLE_WINDOW:
            last = sorted(times[-_STABLE_WINDOW:])[_STABLE_WINDOW // 2]
            prev = sorted(times[-2 * _STABLE_WINDOW : -_STABLE_WINDOW])[_STABLE_WINDOW // 2]
            if prev > 0 and abs(last - prev) / prev <= _STABLE_TOLERANCE:
                break
    return len(times)


def time_interleaved(
    runners: dict[str, Callable[[], Any]],
    *,
    warmup: int | str,
    runs: int,
    block: int = 10,
    on_round: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    time_budget_s: float | None = None,
    min_runs: int = 5,
    record: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Time each callable ``runs`` times, interleaved in rounds, and return ms samples.

    Each round gives every variant one untimed settling run and then up to ``block`` timed
    runs; the order rotates from round to round (A B C, B C A, C A B, ...). Rounds spread
    machine drift over all variants alike. Blocks, and the settling run, keep one variant's
    thread pool (ONNX Runtime and OpenMP workers spin for a while after each run) from
    stealing the cores of the next: timed one call at a time, the same fp32 model measured
    anywhere from 36 to 81 ms on 2 cores depending on its neighbours.

    ``warmup`` is a count or ``"auto"`` (see ``warm_up``). With ``time_budget_s``, no new round
    starts once the budget is spent and every variant has ``min_runs`` samples, so ``runs`` is
    then an upper bound. ``record``, when given, receives the warm-up counts and whether the
    budget cut the timing short.
    """
    names = list(runners)
    warmups = {name: warm_up(runners[name], warmup, clock=clock) for name in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    rounds = math.ceil(runs / block)
    started = clock()
    budget_hit = False
    for r in range(rounds):
        done = min(len(v) for v in samples.values())
        if time_budget_s is not None and done >= min_runs and clock() - started > time_budget_s:
            budget_hit = True
            break
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
    if record is not None:
        record.update(warmup_runs=warmups, budget_hit=budget_hit)
    return samples
