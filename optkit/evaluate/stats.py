"""Latency statistics: percentiles, spread, a bootstrap confidence interval of the median, noise flags.

A p50 alone cannot say whether two runs differ: on a shared 2-core machine the same model moves
by several percent from run to run. The 95% interval of the median (percentile bootstrap over the
timed runs, seeded so a report is reproducible from its samples) is what ``optkit compare`` uses
to tell a regression from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["NOISY_ROBUST_CV", "bootstrap_median_ci", "percentile", "summarize"]

# Robust CV (1.4826 * MAD / median) above this marks a run as noisy. MAD rather than std because
# one page fault or GC pause makes std large without moving the median that speed-ups use.
NOISY_ROBUST_CV = 0.10


def percentile(sorted_xs: Sequence[float], p: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    n = len(sorted_xs)
    pos = (n - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def bootstrap_median_ci(
    samples: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median; seeded, so the same samples give the same interval."""
    import numpy as np

    xs = np.asarray(samples, dtype=float)
    if xs.size < 2:
        return (float(xs[0]), float(xs[0])) if xs.size else (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    medians = np.median(xs[rng.integers(0, xs.size, size=(resamples, xs.size))], axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha))


def summarize(samples_ms: Sequence[float], batch: int, *, noisy_cv: float = NOISY_ROBUST_CV) -> dict[str, Any]:
    """p50/p90/p99, mean, std, min, max, CV, robust CV, the median's 95% CI (and its wider side as a fraction of
    the p50: the ± an adaptive timing stops on), throughput, a noise flag."""
    xs = sorted(samples_ms)
    n = len(xs)
    if n == 0:
        raise ValueError("no latency samples")
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    p50 = percentile(xs, 50)
    mad = percentile(sorted(abs(x - p50) for x in xs), 50)
    robust_cv = 1.4826 * mad / p50 if p50 else 0.0
    lo, hi = bootstrap_median_ci(xs)
    return {
        "p50_ms": p50,
        "p90_ms": percentile(xs, 90),
        "p99_ms": percentile(xs, 99),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": xs[0],
        "max_ms": xs[-1],
        "cv": std / mean if mean else 0.0,
        "robust_cv": robust_cv,
        "p50_ci95_ms": [lo, hi],
        "p50_ci95_half_width": max(p50 - lo, hi - p50) / p50 if p50 else 0.0,
        "noisy": robust_cv > noisy_cv,
        "runs": n,
        "throughput_per_s": batch / (mean / 1000) if mean else 0.0,
        "throughput_p50_per_s": batch / (p50 / 1000) if p50 else 0.0,
    }
