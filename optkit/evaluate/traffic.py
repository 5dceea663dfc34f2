"""Latency on real traffic: eval rows replayed at their natural token lengths, one request at a time.

A fixed shape (batch 1 x 128 tokens) answers "how fast is the model on a full window"; a service
sees requests of the lengths its users write. Review snippets average about 25 tokens, so padded
to 128 every variant does five times the work a real request needs, and the int8 speed-up is
measured where matrix products dominate; at 25 tokens the fixed per-call cost (session overhead,
quantising activations, small kernels) weighs more. Both figures are true; they answer different
questions, so the report shows both.

Every variant replays the same requests in the same order, interleaved in rounds like the fixed
shapes (``time_interleaved``): each turn starts with one untimed settling run, then times a
block of consecutive requests. Because request *i* is the same rows for every variant, the
speed-up is also given paired: the median over requests of reference ms / variant ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from optkit.evaluate.latency import settle, summarize, warm_up
from optkit.evaluate.stats import bootstrap_median_ci, percentile

__all__ = [
    "RequestRunner",
    "TrafficFeeds",
    "length_distribution",
    "request_rows",
    "time_requests",
    "traffic_stats",
]

# Runs request ``i`` once (the index is taken modulo the number of requests).
RequestRunner = Callable[[int], Any]


@dataclass(frozen=True)
class TrafficFeeds:
    """The requests of a traffic shape for one model: ``feed(i)`` gives request ``i``'s model inputs
    (tokenising inside the call when the shape includes preprocessing, so that time is measured)."""

    count: int
    feed: Callable[[int], dict[str, Any]]
    lengths: list[int]  # real tokens of each row, after truncation
    padded: list[int]  # the padded length each row was run at (its request's longest row)
    max_length: int

    def describe(self) -> dict[str, Any]:
        return length_distribution(self.lengths, self.padded, self.max_length) | {"requests": self.count}


# Histogram edges of token lengths: where BERT-like models' cost changes shape.
_LENGTH_EDGES = (16, 32, 64, 128, 256, 512)


def request_rows(n_rows: int, batch: int, requests: int | None) -> list[list[int]]:
    """Row indices of each request: ``requests`` batches of ``batch`` rows spread evenly over ``n_rows``.

    Evenly spaced, not the first rows: a capped replay keeps the split's length distribution.
    """
    if n_rows < 1:
        raise ValueError("traffic replay needs at least one eval row")
    want = n_rows if requests is None else min(n_rows, requests * batch)
    rows = [i * n_rows // want for i in range(want)]
    return [rows[i : i + batch] for i in range(0, want, batch)]


def length_distribution(lengths: Sequence[int], padded: Sequence[int], max_length: int) -> dict[str, Any]:
    """Token lengths of the replayed rows (after truncation to ``max_length``) and what padding added.

    ``padded`` is the length each row was run at (its request's longest row); ``padding_overhead``
    is padded tokens over real tokens (1.0 at batch 1).
    """
    xs = sorted(lengths)
    if not xs:
        raise ValueError("no rows to describe")
    hist: dict[str, int] = {}
    lo = 0
    for edge in (*_LENGTH_EDGES, None):
        label = f"{lo + 1}-{edge}" if edge is not None else f">{lo}"
        count = sum(1 for x in xs if x > lo and (edge is None or x <= edge))
        if count:
            hist[label] = count
        if edge is None or edge >= max_length:
            break
        lo = edge
    return {
        "rows": len(xs),
        "mean": sum(xs) / len(xs),
        "p50": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "p99": percentile(xs, 99),
        "min": xs[0],
        "max": xs[-1],
        "truncated_rows": sum(1 for x in xs if x >= max_length),
        "max_length": max_length,
        "histogram": hist,
        "padding_overhead": sum(padded) / sum(xs) if len(padded) == len(xs) and sum(xs) else 1.0,
    }


def time_requests(
    runners: dict[str, RequestRunner],
    requests: int,
    *,
    warmup: int | str,
    block: int = 10,
    on_round: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    record: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Time every runner on requests ``0 .. requests-1`` once each, interleaved; ms per request, in order.

    Rounds rotate the order of the variants (A B C, B C A, ...); in a round each variant repeats an
    untimed settling request for ``SETTLE_S`` (the previous variant's worker threads are still
    spinning) and then runs the same block of requests as the others. Warm-up cycles through the first requests.
    """
    names = list(runners)
    warmups = {}
    for name in names:
        cursor = iter(range(10**9))
        warmups[name] = warm_up(lambda run=runners[name], c=cursor: run(next(c) % requests), warmup, clock=clock)
    samples: dict[str, list[float]] = {n: [] for n in names}
    done = rounds = 0
    while done < requests:
        count = min(block, requests - done)
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            run = runners[name]
            settle(lambda run=run, first=done: run(first), clock)  # untimed: the previous variant's threads idle
            for i in range(done, done + count):
                t0 = clock()
                run(i)
                samples[name].append((clock() - t0) * 1000.0)
        done += count
        rounds += 1
        if on_round:
            on_round(count)
    if record is not None:
        record.update(warmup_runs=warmups, rounds=rounds, stopped_by="requests", budget_hit=False)
    return samples


def traffic_stats(samples: dict[str, list[float]], reference: str | None, batch: int) -> dict[str, dict[str, Any]]:
    """Per-request latency of each variant and its speed-up over ``reference``: as a ratio of p50s, and
    paired (the median over requests of reference ms / variant ms, with its bootstrap 95% interval)."""
    out: dict[str, dict[str, Any]] = {}
    ref = samples.get(reference or "")
    for name, xs in samples.items():
        stats = summarize(xs, batch)
        # The spread here is mostly the spread of request lengths, not noise: no noise flag.
        stats.pop("noisy", None)
        row: dict[str, Any] = {"latency": stats, "speedup_vs_reference": None, "paired_speedup": None}
        if ref:
            row["speedup_vs_reference"] = summarize(ref, batch)["p50_ms"] / stats["p50_ms"]
            ratios = sorted(r / x for r, x in zip(ref, xs, strict=True) if x > 0)
            lo, hi = bootstrap_median_ci(ratios)
            row["paired_speedup"] = {"median": percentile(ratios, 50), "ci95": [lo, hi]}
        out[name] = row
    return out
