"""Latency timing: every variant at one shape, interleaved in rounds so machine drift hits all alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from optkit.evaluate.stats import bootstrap_median_ci, percentile, summarize

__all__ = ["LatencyStats", "p50_half_width", "stop_reason", "summarize", "time_interleaved", "warm_up"]

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


def p50_half_width(samples_ms: Sequence[float]) -> float:
    """The wider side of the median's 95% interval as a fraction of the median: ±this much.

    The same seeded bootstrap the report stores (``summarize``'s ``p50_ci95_half_width``), so the
    width a timing stopped at is the width the report shows. The wider side, not half the
    interval, because "within ±3%" must hold both ways.
    """
    if not samples_ms:
        return math.inf
    xs = sorted(samples_ms)
    p50 = percentile(xs, 50)
    lo, hi = bootstrap_median_ci(xs)
    return max(p50 - lo, hi - p50) / p50 if p50 > 0 else math.inf


def stop_reason(
    samples: dict[str, list[float]],
    *,
    runs: int,
    precision: float | None = None,
    min_runs: int = 5,
    elapsed_s: float = 0.0,
    time_budget_s: float | None = None,
) -> str | None:
    """Why timing ends now, or None to time another round; every variant must qualify, not most.

    ``"precision"``: each variant has ``min_runs`` samples and its median's 95% interval is within
    ±``precision`` of it. ``"runs"`` (fixed count) or ``"max_runs"`` (adaptive cap): each has
    ``runs`` samples. ``"budget"``: ``time_budget_s`` is spent and each has ``min_runs`` samples.
    Precision wins a tie, as it is the answer the caller wanted.
    """
    done = min((len(v) for v in samples.values()), default=0)
    if precision is not None and done >= min_runs and all(p50_half_width(v) <= precision for v in samples.values()):
        return "precision"
    if done >= runs:
        return "runs" if precision is None else "max_runs"
    if time_budget_s is not None and done >= min_runs and elapsed_s > time_budget_s:
        return "budget"
    return None


# How long a variant keeps running untimed after the switch to it, before its block is timed. ONNX
# Runtime's worker threads spin after each run: measured on the 2-core VM, a 2.7 ms int8 student timed
# right after the fp32 model (17 ms) took 8 ms for its first calls, a p50 of 4.9 ms over blocks of 10
# with one settling call; settling for 50 ms gave 2.8 ms and for 100 ms 2.7 ms, the same as alone.
SETTLE_S = 0.1
_SETTLE_MAX_CALLS = 200  # a bound for a clock that never advances (tests) or a no-op runner


def settle(fn: Callable[[], Any], clock: Callable[[], float], seconds: float = SETTLE_S) -> int:
    """Run ``fn`` untimed until ``seconds`` have passed (once at least): the previous variant's spinning
    worker threads go idle before this one is timed. Returns the calls made."""
    start, calls = clock(), 0
    while True:
        fn()
        calls += 1
        if clock() - start >= seconds or calls >= _SETTLE_MAX_CALLS:
            return calls


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
    precision: float | None = None,
    record: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Time each callable up to ``runs`` times, interleaved in rounds, and return ms samples.

    Each round gives every variant untimed settling runs for ``SETTLE_S`` (``settle``) and then up
    to ``block`` timed runs; the order rotates from round to round (A B C, B C A, C A B, ...).
    Rounds spread machine drift over all variants alike. Blocks, and the settling, keep one
    variant's thread pool (ONNX Runtime and OpenMP workers spin for a while after each run) from
    stealing the cores of the next: timed one call at a time, the same fp32 model measured
    anywhere from 36 to 81 ms on 2 cores depending on its neighbours.

    ``warmup`` is a count or ``"auto"`` (see ``warm_up``). Rounds go on until ``stop_reason``
    gives one: ``runs`` reached; with ``precision``, every variant's median known to within
    ±that fraction (after ``min_runs`` each), so ``runs`` is a cap; with ``time_budget_s``, the
    budget spent (after ``min_runs`` each). All variants stay in every round until the end, so
    the speed-ups compare medians taken over the same minutes. ``record``, when given, receives
    the warm-up counts, what stopped the timing, the rounds and whether the budget cut it short.
    """
    names = list(runners)
    warmups = {name: warm_up(runners[name], warmup, clock=clock) for name in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    started = clock()
    rounds = 0
    while True:
        reason = stop_reason(
            samples,
            runs=runs,
            precision=precision,
            min_runs=min_runs,
            elapsed_s=clock() - started,
            time_budget_s=time_budget_s,
        )
        if reason is not None:
            break
        shift = rounds % len(names)
        count = min(block, runs - min(len(v) for v in samples.values()))
        for name in names[shift:] + names[:shift]:
            fn = runners[name]
            settle(fn, clock)  # the previous variant's worker threads are still spinning
            for _ in range(count):
                t0 = clock()
                fn()
                samples[name].append((clock() - t0) * 1000.0)
        rounds += 1
        if on_round:
            on_round(count)
    if record is not None:
        record.update(warmup_runs=warmups, budget_hit=reason == "budget", stopped_by=reason, rounds=rounds)
    return samples
