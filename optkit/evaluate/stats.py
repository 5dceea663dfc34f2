"""Statistics behind every "is this change real?": latency spread and intervals, paired accuracy intervals.

A p50 alone cannot say whether two runs differ: on a shared 2-core machine the same model moves
by several percent from run to run. The 95% interval of the median (percentile bootstrap over the
timed runs, seeded so a report is reproducible from its samples) is what ``optkit compare`` uses
to tell a regression from noise.

An accuracy delta has the same problem: at 0.984 agreement on 2,562 eval rows about 41 predictions
differ, and a -0.23 point change is well inside what another sample of eval rows would give. The
paired bootstrap resamples eval *rows* (the same rows for both models, so the noise they share
cancels) and McNemar's exact test asks whether the rows only one model gets right lean one way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "NOISY_ROBUST_CV",
    "bootstrap_median_ci",
    "interval",
    "mcnemar_exact_p",
    "paired_bootstrap_delta",
    "percentile",
    "resample_weights",
    "summarize",
    "verdict",
]

# Robust CV (1.4826 * MAD / median) above this marks a run as noisy. MAD rather than std because
# one page fault or GC pause makes std large without moving the median that speed-ups use.
NOISY_ROBUST_CV = 0.10
# Resamples of the eval rows for paired intervals: the 2.5% and 97.5% quantiles of 2,000 deltas move by
# well under a tenth of the interval's width from seed to seed, at about 50 ms for 2,500 rows.
BOOTSTRAP_RESAMPLES = 2000
# Keep each chunk of the (resamples x rows) weight matrix near 32 MB of float64, whatever the eval size.
_CHUNK_CELLS = 4_000_000


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


def resample_weights(n: int, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Iterator[Any]:
    """Bootstrap resamples of ``n`` rows as multiplicity matrices, in chunks of at most ~4M cells.

    Each row of a chunk says how often each eval row was drawn (n draws with replacement), so any
    count a metric needs is one matrix product ``weights @ indicators``: every resample of every
    metric of every class at once, without a Python loop over resamples. The chunks, concatenated,
    are the same for the same ``(n, resamples, seed)``.
    """
    import numpy as np

    if n < 1:
        raise ValueError("no rows to resample")
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, step):
        r = min(step, resamples - start)
        draws = rng.integers(0, n, size=(r, n)) + (np.arange(r) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=r * n).reshape(r, n).astype(float)


def interval(values: Any, *, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap values (NaN resamples ignored)."""
    import numpy as np

    xs = np.asarray(values, dtype=float)
    xs = xs[~np.isnan(xs)]
    if xs.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    return float(np.quantile(xs, alpha)), float(np.quantile(xs, 1 - alpha))


def paired_bootstrap_delta(
    reference: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """95% interval of ``mean(candidate) - mean(reference)`` over per-row scores, resampling rows in pairs.

    Both lists score the same eval rows in the same order (1/0 correctness for accuracy); resampling
    the pairs keeps what the two models share (the hard rows stay hard for both), which makes the
    interval far narrower, and more honest, than two independent intervals.
    """
    import numpy as np

    ref = np.asarray(reference, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    if ref.shape != cand.shape or ref.ndim != 1:
        raise ValueError(f"paired scores must be two equal-length lists, got {ref.shape} and {cand.shape}")
    diff = cand - ref
    n = diff.size
    deltas = np.concatenate([w @ diff / n for w in resample_weights(n, resamples=resamples, seed=seed)])
    return interval(deltas, confidence=confidence)


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each of the ``b + c`` discordant rows
    (one model right, the other wrong) is a fair coin, so p = P(Binomial(b + c, 1/2) as far from the
    middle as min(b, c)), doubled and capped at 1. No discordant row gives p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be 0 or more, got {b} and {c}")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    if n <= 20_000:  # exact integers: correctly rounded, and fast at any realistic eval size
        term, tail = 1, 1  # C(n, 0); each next term from the last, not math.comb afresh
        for i in range(k):
            term = term * (n - i) // (i + 1)
            tail += term
        return min(1.0, 2 * tail / 2**n)
    return min(1.0, 2 * math.exp(_log_binomial_tail(n, k)))


def _log_binomial_tail(n: int, k: int) -> float:
    """log P(Binomial(n, 1/2) <= k), summed in log space: the exact integers grow slow past ~20,000 rows."""
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(log_terms)
    return top + math.log(sum(math.exp(t - top) for t in log_terms)) - n * math.log(2)


def verdict(ci: Sequence[float], *, higher_is_better: bool = True) -> str:
    """How to read a change whose 95% interval is ``ci``: inside the noise unless it excludes zero."""
    lo, hi = ci
    if math.isnan(lo) or math.isnan(hi):
        return "no interval"
    if lo <= 0 <= hi:
        return "within noise"
    better = (lo > 0) == higher_is_better
    return "a gain beyond noise" if better else "a loss beyond noise"
