from __future__ import annotations

import math
import random

import numpy as np
import pytest

from optkit.errors import RecipeError
from optkit.evaluate.latency import time_interleaved, warm_up
from optkit.evaluate.stats import (
    _log_binomial_tail,
    bootstrap_median_ci,
    mcnemar_exact_p,
    paired_bootstrap_delta,
    resample_weights,
    summarize,
    verdict,
)
from optkit.recipe import EvaluateSpec, recipe_from_dict


def test_median_ci_contains_the_median_narrows_with_runs_and_is_reproducible() -> None:
    rng = random.Random(1)
    few = [30 + rng.gauss(0, 2) for _ in range(20)]
    many = [30 + rng.gauss(0, 2) for _ in range(400)]
    lo, hi = bootstrap_median_ci(few)
    assert lo <= summarize(few, 1)["p50_ms"] <= hi
    lo2, hi2 = bootstrap_median_ci(many)
    assert hi2 - lo2 < hi - lo
    assert bootstrap_median_ci(few) == (lo, hi)  # seeded


def test_noise_flag_uses_robust_cv_not_one_outlier() -> None:
    steady = [10.0 + 0.01 * (i % 7) for i in range(99)] + [200.0]  # one GC pause
    s = summarize(steady, batch=8)
    assert s["cv"] > 1.0 and s["robust_cv"] < 0.01 and not s["noisy"]
    noisy = summarize([10.0, 14.0, 8.0, 12.0, 16.0, 7.0, 11.0, 13.0, 9.0, 15.0], batch=1)
    assert noisy["noisy"] and noisy["robust_cv"] > 0.10
    assert s["throughput_p50_per_s"] == pytest.approx(8 / (s["p50_ms"] / 1000))


def test_auto_warm_up_runs_until_two_windows_agree() -> None:
    now = [0.0]
    costs = iter([50, 40, 30, 20, 15, 12, 11, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10] + [10] * 200)

    def fn() -> None:
        now[0] += next(costs) / 1000

    n = warm_up(fn, "auto", clock=lambda: now[0])
    # Windows of 5, compared from the 10th run on: the median of runs 6-10 (12 11 10 10 10) is 10 ms,
    # but the window before it is slower each time it slides (medians 30, 20, 15, 12, 11 ms after runs
    # 10-14: off by 9% and more). After run 15 both windows (12 11 10 10 10 | 10 10 10 10 10) have
    # a median of 10 ms: within 5%, so warm-up stops at exactly 15 runs, not one earlier or later.
    assert n == 15
    assert warm_up(lambda: None, 3) == 3


def test_time_budget_stops_after_min_runs() -> None:
    now = [0.0]

    def fn() -> None:
        now[0] += 1.0  # one second per call

    record: dict = {}
    samples = time_interleaved(
        {"a": fn}, warmup=0, runs=100, block=5, clock=lambda: now[0], time_budget_s=8, record=record
    )
    # Each round is one settling call and 5 timed ones: 6 s. Before round 2 the clock reads 12 s > 8 s
    # and 10 >= min_runs samples are in, so no third round starts: exactly 10 samples of 1000 ms.
    assert samples["a"] == [1000.0] * 10
    assert record == {"budget_hit": True, "stopped_by": "budget", "rounds": 2, "warmup_runs": {"a": 0}}
    # a budget spent before the first round still gets min_runs samples: one round of block=min_runs
    spent = time_interleaved({"a": fn}, warmup=0, runs=100, block=5, clock=lambda: now[0], time_budget_s=0)
    assert len(spent["a"]) == 5


def test_recipe_shape_grid_and_warmup_forms(schema_recipe_dict: dict) -> None:
    spec = EvaluateSpec.model_validate({"shapes": {"batch": [1, 8], "seq": [64, 128]}, "latency": {"warmup": "auto"}})
    assert [(s.batch, s.seq) for s in spec.shapes] == [(1, 64), (1, 128), (8, 64), (8, 128)]
    assert spec.latency.warmup == "auto"
    schema_recipe_dict["evaluate"]["latency"]["warmup"] = -1
    with pytest.raises(RecipeError, match="warmup"):
        recipe_from_dict(schema_recipe_dict)
    schema_recipe_dict["evaluate"]["latency"]["warmup"] = "soon"
    with pytest.raises(RecipeError, match="warmup"):
        recipe_from_dict(schema_recipe_dict)


def test_a_reports_median_ci_can_be_recomputed_from_its_samples() -> None:
    """The interval is documented well enough to recompute: 2.5th/97.5th percentiles of the medians of
    2000 resamples drawn with numpy's default_rng(0). A reader checking a report gets the same numbers."""
    import numpy as np

    rng = random.Random(3)
    xs = [20 + rng.expovariate(0.5) for _ in range(30)]  # even: medians are means of pairs, many values
    draws = np.random.default_rng(0).integers(0, len(xs), size=(2000, len(xs)))
    medians = np.median(np.asarray(xs)[draws], axis=1)
    expected = (float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975)))
    assert bootstrap_median_ci(xs) == pytest.approx(expected, rel=1e-12)  # a last-digit rounding apart at most
    # summarize() resamples the samples sorted, so a report's interval is recomputed from sorted(samples_ms)
    assert summarize(xs, 1)["p50_ci95_ms"] == pytest.approx(list(bootstrap_median_ci(sorted(xs))), rel=1e-12)
    assert bootstrap_median_ci(xs, seed=1) != expected  # the seed matters, so it must be the documented one
    assert bootstrap_median_ci(xs, resamples=2001) != expected  # and so does the number of resamples


def test_median_ci_of_too_few_samples() -> None:
    """Two samples are still resampled; one sample is its own interval; none has no interval."""
    assert bootstrap_median_ci([1.0, 3.0]) == (1.0, 3.0)  # resampled medians 1, 2 or 3
    assert bootstrap_median_ci([5.0]) == (5.0, 5.0)
    lo, hi = bootstrap_median_ci([])
    assert math.isnan(lo) and math.isnan(hi)


def test_summary_figures_match_the_textbook_definitions() -> None:
    """Every figure in a latency row, against the statistics module and numpy on a small, hand-checkable set."""
    import statistics

    import numpy as np

    xs = [14.0, 10.0, 12.0, 13.0, 11.0]  # unsorted, as timed
    s = summarize(xs, batch=4)
    std = statistics.stdev(xs)  # sample standard deviation (n - 1): sqrt(10 / 4)
    mad = statistics.median(abs(x - 12.0) for x in xs)  # 2 0 1 2 1 -> 1
    assert (s["p50_ms"], s["mean_ms"], s["min_ms"], s["max_ms"], s["runs"]) == (12.0, 12.0, 10.0, 14.0, 5)
    assert s["p90_ms"] == pytest.approx(float(np.percentile(xs, 90))) == pytest.approx(13.6)
    assert s["p99_ms"] == pytest.approx(float(np.percentile(xs, 99))) == pytest.approx(13.96)
    assert s["std_ms"] == pytest.approx(std) and s["cv"] == pytest.approx(std / 12.0)
    assert mad == 1.0 and s["robust_cv"] == pytest.approx(1.4826 * mad / 12.0)
    assert s["throughput_per_s"] == pytest.approx(4 / 0.012) == s["throughput_p50_per_s"]
    two = summarize([10.0, 14.0], batch=1)
    assert two["std_ms"] == pytest.approx(statistics.stdev([10.0, 14.0])) and two["p50_ms"] == 12.0
    one = summarize([7.0], batch=1)
    assert (one["std_ms"], one["cv"], one["robust_cv"], one["p50_ci95_ms"]) == (0.0, 0.0, 0.0, [7.0, 7.0])
    zero = summarize([0.0, 0.0], batch=1)  # a clock too coarse to see the run: no division by zero
    assert (zero["cv"], zero["robust_cv"], zero["throughput_per_s"], zero["noisy"]) == (0.0, 0.0, 0.0, False)
    assert zero["throughput_p50_per_s"] == 0.0
    # noisy means robust CV *above* the limit: at the limit exactly it is not
    assert not summarize(xs, 4, noisy_cv=s["robust_cv"])["noisy"] and summarize(xs, 4, noisy_cv=0.12)["noisy"]
    with pytest.raises(ValueError, match=r"^no latency samples$"):
        summarize([], batch=1)


def _paired_scores(n: int, lost: int, gained: int) -> tuple[list[float], list[float]]:
    """Baseline and variant 1/0 correctness on ``n`` rows: ``lost`` rows only the baseline gets right,
    ``gained`` only the variant; the rest agree (80% of them right for both)."""
    ref, cand = [], []
    for i in range(n):
        if i < lost:
            ref.append(1.0), cand.append(0.0)
        elif i < lost + gained:
            ref.append(0.0), cand.append(1.0)
        else:
            both = 1.0 if i % 5 else 0.0
            ref.append(both), cand.append(both)
    return ref, cand


def test_mcnemar_exact_p_matches_hand_computed_binomial_tails() -> None:
    # b=1, c=6: 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8 / 128
    assert mcnemar_exact_p(1, 6) == pytest.approx(0.125, abs=1e-15)
    assert mcnemar_exact_p(6, 1) == mcnemar_exact_p(1, 6)  # two-sided: symmetric
    # b=2, c=10: 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact_p(2, 10) == pytest.approx(158 / 4096, abs=1e-15)
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(0, 0) == 1.0 and mcnemar_exact_p(7, 7) == 1.0  # capped at 1
    # the log-space sum used past 20,000 discordant rows agrees with the exact integers, and joins them
    assert 2 * math.exp(_log_binomial_tail(1500, 700)) == pytest.approx(mcnemar_exact_p(700, 800), rel=1e-9)
    assert 2 * math.exp(_log_binomial_tail(20_000, 9_900)) == pytest.approx(mcnemar_exact_p(9_900, 10_100), rel=1e-9)
    assert 0 < mcnemar_exact_p(10_000, 10_500) < mcnemar_exact_p(10_100, 10_400) < 1
    with pytest.raises(ValueError, match="0 or more"):
        mcnemar_exact_p(-1, 3)


def test_the_issue_case_a_quarter_point_drop_on_2562_rows_is_within_noise() -> None:
    """Issue 11's case: 0.984 agreement on 2,562 rows (41 rows differ), -0.23 points: noise, not a loss.

    For 1/0 scores the paired delta's standard error is sqrt((d/n - delta^2) / n) with d the discordant
    rows; the percentile bootstrap must match the normal interval delta +- 1.96 SE to a few hundredths of a point.
    """
    n, lost, gained = 2562, 23, 17  # 40 discordant rows, 6 net losses: -0.234 points
    ref, cand = _paired_scores(n, lost, gained)
    delta = (gained - lost) / n
    se = math.sqrt(((lost + gained) / n - delta**2) / n)
    lo, hi = paired_bootstrap_delta(ref, cand, seed=42)
    assert lo == pytest.approx(delta - 1.96 * se, abs=0.0004) and hi == pytest.approx(delta + 1.96 * se, abs=0.0004)
    assert lo < 0 < hi and verdict((lo, hi)) == "within noise"
    assert mcnemar_exact_p(lost, gained) == pytest.approx(0.430, abs=0.001)
    assert paired_bootstrap_delta(ref, cand, seed=42) == (lo, hi)  # seeded: reproducible


def test_a_real_loss_is_beyond_noise_and_the_interval_narrows_with_rows() -> None:
    ref, cand = _paired_scores(2000, 60, 10)
    lo, hi = paired_bootstrap_delta(ref, cand, seed=1)
    assert lo < -50 / 2000 < hi < 0 and verdict((lo, hi)) == "a loss beyond noise"
    assert verdict((lo, hi), higher_is_better=False) == "a gain beyond noise"  # for an error metric
    big_ref, big_cand = _paired_scores(8000, 240, 40)  # same rates, 4x the rows: half the width
    blo, bhi = paired_bootstrap_delta(big_ref, big_cand, seed=1)
    assert (bhi - blo) == pytest.approx((hi - lo) / 2, rel=0.15)
    assert blo < -200 / 8000 < bhi


def test_resample_weights_draw_n_rows_each_and_chunk_identically() -> None:
    chunks = list(resample_weights(5000, resamples=2000, seed=3))
    assert len(chunks) > 1  # 10M cells: split to bound memory
    weights = np.concatenate(chunks)
    assert weights.shape == (2000, 5000) and (weights.sum(axis=1) == 5000).all()
    again = np.concatenate(list(resample_weights(5000, resamples=2000, seed=3)))
    assert (weights == again).all()
    assert paired_bootstrap_delta([1.0] * 10, [1.0] * 10) == (0.0, 0.0)
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_delta([1.0, 0.0], [1.0])
