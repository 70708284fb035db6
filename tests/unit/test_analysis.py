"""Unit tests for orchestrator.analysis: latency summaries and regression verdicts.

Every expected value is computed here from numpy / statistics / scipy or from
first principles (binomial sums with math.comb), never copied from the code's
own output. Randomness is seeded, so each test is deterministic.
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics

import numpy as np
import pytest
from scipy import stats

from orchestrator import analysis
from orchestrator.analysis import (
    NOISY_CV,
    Comparison,
    LatencySummary,
    compare_samples,
    compare_values,
    median_confidence_interval,
    summarize_latency,
)

SUMMARY_FIELDS = {
    "runs",
    "latency_ms_min",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "latency_ms_max",
    "latency_ms_stdev",
    "fps",
    "cv",
    "robust_cv",
    "median_ci_low_ms",
    "median_ci_high_ms",
    "noisy",
}


def lognormal_ms(rng: np.random.Generator, median_ms: float, sigma: float, n: int) -> np.ndarray:
    """Latency-like samples: right-skewed, with a known median (= median_ms)."""
    return rng.lognormal(mean=math.log(median_ms), sigma=sigma, size=n)


def reference_median_ci_rank(n: int, level: float = 0.95) -> int:
    """Largest 1-based rank j with P(B <= j-1) <= (1-level)/2, B ~ Bin(n, 1/2); 1 if none."""
    tail = (1 - level) / 2
    j, cumulative = 1, 0.0
    for i in range(n):
        cumulative += math.comb(n, i) / 2**n
        if cumulative > tail:
            break
        j = i + 1  # P(B <= i) <= tail, so rank j = i + 1 is allowed
    return j


# --- summarize_latency -------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 7, 500])
def test_summary_matches_numpy_and_statistics(n: int) -> None:
    samples = lognormal_ms(np.random.default_rng(n), 25.0, 0.2, n)
    summary = summarize_latency(list(samples))

    mean = statistics.fmean(samples)
    stdev = statistics.stdev(samples)
    p90, p99 = np.percentile(samples, [90, 99])
    assert summary.runs == n
    assert summary.latency_ms_min == min(samples)
    assert summary.latency_ms_max == max(samples)
    assert summary.latency_ms_mean == pytest.approx(mean, rel=1e-12)
    assert summary.latency_ms_p50 == pytest.approx(statistics.median(samples), rel=1e-12)
    assert summary.latency_ms_p90 == pytest.approx(p90, rel=1e-12)
    assert summary.latency_ms_p99 == pytest.approx(p99, rel=1e-12)
    assert summary.latency_ms_stdev == pytest.approx(stdev, rel=1e-12)
    assert summary.fps == pytest.approx(1000.0 / mean, rel=1e-12)
    assert summary.cv == pytest.approx(stdev / mean, rel=1e-12)


def test_percentiles_interpolate_linearly_between_ranks() -> None:
    # 0..100 ms, 101 samples: linear percentiles land exactly on the values; with
    # 1..10 ms, p90 = 9.1 ms lies between ranks (numpy's default 'linear' method).
    summary = summarize_latency(np.arange(1.0, 11.0))
    assert summary.latency_ms_p90 == pytest.approx(9.1)
    assert summary.latency_ms_p99 == pytest.approx(9.91)
    assert summary.latency_ms_p50 == pytest.approx(5.5)


def test_single_sample_has_zero_spread_and_degenerate_ci() -> None:
    summary = summarize_latency([12.5])
    assert summary.runs == 1
    assert summary.latency_ms_stdev == 0.0
    assert summary.cv == 0.0
    assert summary.noisy is False
    assert summary.fps == pytest.approx(80.0)
    assert (summary.median_ci_low_ms, summary.median_ci_high_ms) == (12.5, 12.5)


def test_empty_input_raises_value_error() -> None:
    with pytest.raises(ValueError):
        summarize_latency([])


@pytest.mark.parametrize(
    "bad", [[1.0, float("nan")], [1.0, float("inf")], [1.0, 0.0], [1.0, -2.0], [[1.0, 2.0]]]
)
def test_samples_that_are_not_latencies_raise(bad: list) -> None:
    with pytest.raises(ValueError):
        summarize_latency(bad)


def test_as_dict_has_exactly_the_fields_as_plain_json_values() -> None:
    summary = summarize_latency(lognormal_ms(np.random.default_rng(1), 10.0, 0.1, 50))
    as_dict = summary.as_dict()
    assert set(as_dict) == SUMMARY_FIELDS
    assert {f.name for f in dataclasses.fields(LatencySummary)} == SUMMARY_FIELDS
    for name, value in as_dict.items():
        assert value == getattr(summary, name)
        assert type(value) in (int, float, bool), (name, type(value))
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_summary_is_frozen() -> None:
    summary = summarize_latency([1.0, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.runs = 3  # type: ignore[misc]


# --- the median confidence interval ------------------------------------------------------


@pytest.mark.parametrize("n", [6, 7, 10, 30, 101, 1000])
def test_median_ci_is_the_binomial_order_statistic_interval(n: int) -> None:
    samples = lognormal_ms(np.random.default_rng(n), 5.0, 0.3, n)
    ordered = np.sort(samples)
    j = reference_median_ci_rank(n)
    assert j >= 1
    summary = summarize_latency(samples)
    assert summary.median_ci_low_ms == ordered[j - 1]
    assert summary.median_ci_high_ms == ordered[n - j]
    low, high, coverage = median_confidence_interval(samples)
    exact = 1 - 2 * sum(math.comb(n, i) for i in range(j)) / 2**n
    assert (low, high) == (ordered[j - 1], ordered[n - j])
    assert coverage == pytest.approx(exact, abs=1e-12)
    assert coverage >= 0.95
    # the next rank in would drop below 95 %: the interval is the tightest that qualifies
    assert 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2**n < 0.95


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_ci_for_tiny_samples_is_min_max(n: int) -> None:
    samples = lognormal_ms(np.random.default_rng(n), 5.0, 0.3, n)
    summary = summarize_latency(samples)
    assert (summary.median_ci_low_ms, summary.median_ci_high_ms) == (min(samples), max(samples))
    _, _, coverage = median_confidence_interval(samples)
    assert coverage == pytest.approx(1 - 2 * 0.5**n)
    assert coverage < 0.95


@pytest.mark.parametrize("n", [15, 60])
@pytest.mark.parametrize("distribution", ["lognormal", "exponential"])
def test_median_ci_covers_the_true_median(distribution: str, n: int) -> None:
    rng = np.random.default_rng(2024 + n)
    trials = 200
    covered = 0
    for _ in range(trials):
        if distribution == "lognormal":
            true_median = 20.0
            samples = lognormal_ms(rng, true_median, 0.5, n)
        else:
            scale_ms = 8.0
            true_median = scale_ms * math.log(2)
            samples = rng.exponential(scale_ms, n)
        summary = summarize_latency(samples)
        covered += summary.median_ci_low_ms <= true_median <= summary.median_ci_high_ms
    assert covered / trials >= 0.90


def test_median_ci_narrows_as_n_grows() -> None:
    rng = np.random.default_rng(7)

    def mean_width(n: int) -> float:
        widths = []
        for _ in range(50):
            summary = summarize_latency(lognormal_ms(rng, 20.0, 0.2, n))
            widths.append(summary.median_ci_high_ms - summary.median_ci_low_ms)
        return float(np.mean(widths))

    w20, w80, w320 = mean_width(20), mean_width(80), mean_width(320)
    # width ~ 1/sqrt(n): quadrupling n should roughly halve it
    assert w80 < 0.7 * w20
    assert w320 < 0.7 * w80


# --- the noisy flag ---------------------------------------------------------------------


def samples_with_cv(cv: float, n: int = 40) -> np.ndarray:
    """Samples with mean 100 ms and a sample stdev (ddof=1) of exactly cv * 100 ms."""
    z = np.random.default_rng(3).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return 100.0 + cv * 100.0 * z


def test_noisy_threshold_is_ten_percent_of_the_robust_spread() -> None:
    assert NOISY_CV == 0.10
    z = np.random.default_rng(3).standard_normal(4001)
    z = (z - np.median(z)) / (1.4826 * np.median(np.abs(z - np.median(z))))  # robust CV of 100 + s * z is s
    below = summarize_latency(100.0 + 9.5 * z)
    above = summarize_latency(100.0 + 10.5 * z)
    assert below.robust_cv == pytest.approx(0.095, rel=1e-3) and above.robust_cv == pytest.approx(0.105, rel=1e-3)
    assert below.noisy is False
    assert above.noisy is True


def test_a_long_tail_does_not_make_a_steady_run_noisy() -> None:
    # what an inference loop on a shared machine looks like: a tight bulk and a few 10x outliers
    rng = np.random.default_rng(5)
    steady = 2.4 * (1 + 0.03 * rng.standard_normal(4000))
    steady[rng.choice(4000, 40, replace=False)] *= 10
    summary = summarize_latency(steady)
    assert summary.cv > 0.3 and summary.noisy is False  # the plain CV would have flagged it


def test_process_spread_is_the_geometric_cv_of_process_medians() -> None:
    from orchestrator.analysis import process_spread

    assert process_spread([2.0, 2.0]) is None  # two processes say nothing of their spread
    assert process_spread([2.0, 2.0, 2.0]) == 0.0
    assert process_spread([2.0, 2.2, 2.42]) == pytest.approx(np.log(1.1), rel=1e-9)


def test_noisy_flag_on_realistic_samples() -> None:
    rng = np.random.default_rng(11)
    assert summarize_latency(lognormal_ms(rng, 30.0, 0.02, 300)).noisy is False
    assert summarize_latency(lognormal_ms(rng, 30.0, 0.30, 300)).noisy is True


# --- compare_samples ---------------------------------------------------------------------


def verdicts(shift: float, *, n: int, sigma: float, trials: int, seed: int, **kwargs) -> dict:
    """Count verdicts of `trials` comparisons: base median 20 ms, new median 20 * (1 + shift)."""
    rng = np.random.default_rng(seed)
    counts = {v: 0 for v in analysis.VERDICTS}
    for _ in range(trials):
        base = lognormal_ms(rng, 20.0, sigma, n)
        new = lognormal_ms(rng, 20.0 * (1 + shift), sigma, n)
        counts[compare_samples(base, new, **kwargs).verdict] += 1
    return counts


def test_comparison_reports_medians_change_and_mann_whitney_p() -> None:
    rng = np.random.default_rng(5)
    base = lognormal_ms(rng, 20.0, 0.1, 60)
    new = lognormal_ms(rng, 23.0, 0.1, 61)
    result = compare_samples(base, new)
    assert result.base_p50_ms == pytest.approx(np.median(base), rel=1e-12)
    assert result.new_p50_ms == pytest.approx(np.median(new), rel=1e-12)
    assert result.change_pct == pytest.approx(100 * (np.median(new) / np.median(base) - 1), rel=1e-9)
    expected_p = stats.mannwhitneyu(base, new, alternative="two-sided").pvalue
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    assert (result.base_runs, result.new_runs) == (60, 61)
    assert result.change_ci_low_pct < result.change_pct < result.change_ci_high_pct
    assert result.verdict in analysis.VERDICTS


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.10])
def test_aa_pairs_come_out_unchanged(sigma: float) -> None:
    counts = verdicts(0.0, n=200, sigma=sigma, trials=50, seed=100)
    assert counts["regressed"] + counts["improved"] <= 1, counts
    assert counts["unchanged"] >= 45, counts


def test_ten_percent_slowdown_is_regressed() -> None:
    counts = verdicts(0.10, n=200, sigma=0.05, trials=50, seed=200)
    assert counts["regressed"] >= 48, counts  # >= 95 % of 50
    assert counts["improved"] == 0, counts


def test_ten_percent_speedup_is_improved() -> None:
    counts = verdicts(-0.10, n=200, sigma=0.05, trials=50, seed=300)
    assert counts["improved"] >= 48, counts
    assert counts["regressed"] == 0, counts


def test_two_percent_shift_is_unchanged() -> None:
    counts = verdicts(0.02, n=200, sigma=0.05, trials=50, seed=400)
    assert counts["unchanged"] >= 48, counts
    assert counts["regressed"] == 0, counts


def test_significant_but_small_change_is_unchanged() -> None:
    rng = np.random.default_rng(9)
    base = lognormal_ms(rng, 20.0, 0.05, 5000)
    new = lognormal_ms(rng, 20.4, 0.05, 5000)  # +2 %: real, tiny p, below min_effect
    result = compare_samples(base, new)
    assert result.p_value < 1e-6
    assert result.verdict == "unchanged"


def test_min_effect_pct_is_the_threshold() -> None:
    rng = np.random.default_rng(10)
    base = lognormal_ms(rng, 20.0, 0.05, 200)
    new = lognormal_ms(rng, 22.0, 0.05, 200)  # +10 %
    assert compare_samples(base, new, min_effect_pct=5.0).verdict == "regressed"
    assert compare_samples(base, new, min_effect_pct=20.0).verdict == "unchanged"


def test_significant_change_whose_ci_straddles_the_threshold_is_inconclusive() -> None:
    rng = np.random.default_rng(2)
    base = lognormal_ms(rng, 20.0, 0.05, 100)
    new = lognormal_ms(rng, 20.0 * 1.055, 0.05, 100)  # +5.5 %: just past the 5 % threshold
    result = compare_samples(base, new)
    # the point estimate alone says "regressed", but its CI reaches below 5 %
    assert result.p_value < 0.01
    assert result.change_pct >= 5.0
    assert result.change_ci_low_pct < 5.0 < result.change_ci_high_pct
    assert result.verdict == "inconclusive"


def test_large_change_without_significance_is_inconclusive() -> None:
    rng = np.random.default_rng(12)
    base = lognormal_ms(rng, 20.0, 0.05, 200)
    new = lognormal_ms(rng, 22.0, 0.05, 200)
    result = compare_samples(base, new, alpha=1e-300)  # nothing can be significant
    assert result.p_value >= 1e-300
    assert result.change_ci_low_pct > 5.0
    assert result.verdict == "inconclusive"


@pytest.mark.parametrize("n_base, n_new", [(1, 200), (4, 200), (200, 4), (3, 3)])
def test_too_few_samples_is_inconclusive(n_base: int, n_new: int) -> None:
    rng = np.random.default_rng(13)
    base = lognormal_ms(rng, 10.0, 0.01, n_base)
    new = lognormal_ms(rng, 20.0, 0.01, n_new)  # twice as slow, no overlap
    result = compare_samples(base, new)
    assert result.verdict == "inconclusive"
    assert result.change_ci_low_pct is None and result.change_ci_high_pct is None
    assert result.change_pct == pytest.approx(100 * (np.median(new) / np.median(base) - 1))


def test_five_samples_each_are_enough_for_a_clear_change() -> None:
    base = [10.0, 10.1, 10.05, 9.95, 10.02]
    new = [20.0, 20.1, 20.05, 19.95, 20.02]
    result = compare_samples(base, new)
    # exact two-sided Mann-Whitney for 5 vs 5, fully separated: 2 / C(10, 5)
    assert result.p_value == pytest.approx(2 / math.comb(10, 5))
    assert result.verdict == "regressed"


def test_noisy_samples_are_inconclusive() -> None:
    # 10 runs at ~30 % scatter cannot tell a 5 % change from none
    counts = verdicts(0.0, n=10, sigma=0.3, trials=50, seed=500)
    assert counts["inconclusive"] >= 45, counts
    assert counts["regressed"] + counts["improved"] == 0, counts


def test_change_ci_covers_the_true_change_and_has_the_expected_width() -> None:
    rng = np.random.default_rng(600)
    n, sigma, shift = 50, 0.1, 0.10
    covered, log_widths = 0, []
    for _ in range(200):
        result = compare_samples(
            lognormal_ms(rng, 20.0, sigma, n), lognormal_ms(rng, 20.0 * (1 + shift), sigma, n)
        )
        covered += result.change_ci_low_pct <= 100 * shift <= result.change_ci_high_pct
        log_widths.append(
            math.log1p(result.change_ci_high_pct / 100) - math.log1p(result.change_ci_low_pct / 100)
        )
    assert covered / 200 >= 0.90
    # asymptotic 95 % width of log(median ratio) for lognormal samples:
    # se(log median) = sqrt(pi / 2) * sigma / sqrt(n) on each side
    expected = 2 * 1.96 * math.sqrt(2) * math.sqrt(math.pi / 2) * sigma / math.sqrt(n)
    assert float(np.median(log_widths)) == pytest.approx(expected, rel=0.3)


def test_identical_samples_are_unchanged() -> None:
    result = compare_samples([10.0] * 20, [10.0] * 20)
    assert result.change_pct == 0.0
    assert result.p_value == pytest.approx(1.0)
    assert result.verdict == "unchanged"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_ms": [], "new_ms": [1.0] * 10},
        {"base_ms": [1.0] * 10, "new_ms": []},
        {"base_ms": [1.0] * 9 + [float("nan")], "new_ms": [1.0] * 10},
        {"base_ms": [1.0] * 10, "new_ms": [1.0] * 10, "alpha": 0.0},
        {"base_ms": [1.0] * 10, "new_ms": [1.0] * 10, "alpha": 1.0},
        {"base_ms": [1.0] * 10, "new_ms": [1.0] * 10, "min_effect_pct": 0.0},
        {"base_ms": [1.0] * 10, "new_ms": [1.0] * 10, "min_effect_pct": -5.0},
    ],
)
def test_compare_samples_rejects_bad_input(kwargs: dict) -> None:
    base, new = kwargs.pop("base_ms"), kwargs.pop("new_ms")
    with pytest.raises(ValueError):
        compare_samples(base, new, **kwargs)


def test_comparison_is_frozen_and_json_serializable() -> None:
    rng = np.random.default_rng(14)
    result = compare_samples(lognormal_ms(rng, 20.0, 0.05, 30), lognormal_ms(rng, 20.0, 0.05, 30))
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.verdict = "regressed"  # type: ignore[misc]
    as_dict = result.as_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["verdict"] == result.verdict


# --- compare_values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, new, min_effect_pct, verdict",
    [
        (100, 106, 5.0, "regressed"),
        (100, 105, 5.0, "regressed"),  # exactly at the threshold counts
        (100, 104.9, 5.0, "unchanged"),
        (100, 95.1, 5.0, "unchanged"),
        (100, 95, 5.0, "improved"),
        (100, 50, 5.0, "improved"),
        (100, 106, 10.0, "unchanged"),
        (100, 111, 10.0, "regressed"),
        (100, 100, 5.0, "unchanged"),
        (9_000_000, 35_500_000, 5.0, "regressed"),  # int8 -> fp32 model size in bytes
    ],
)
def test_compare_values_thresholds(base: float, new: float, min_effect_pct: float, verdict: str) -> None:
    change_pct, got = compare_values(base, new, min_effect_pct=min_effect_pct)
    assert change_pct == pytest.approx(100 * (new - base) / base)
    assert got == verdict


@pytest.mark.parametrize("base, new", [(None, 5.0), (5.0, None), (None, None), (float("nan"), 5.0)])
def test_compare_values_missing_side_is_inconclusive(base, new) -> None:
    assert compare_values(base, new, min_effect_pct=5.0) == (None, "inconclusive")


def test_compare_values_zero_base() -> None:
    assert compare_values(0, 0, min_effect_pct=5.0) == (0.0, "unchanged")
    assert compare_values(0, 10, min_effect_pct=5.0) == (None, "regressed")


@pytest.mark.parametrize("kwargs", [{"min_effect_pct": 0.0}, {"min_effect_pct": -1.0}])
def test_compare_values_rejects_bad_threshold(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        compare_values(1.0, 2.0, **kwargs)


def test_compare_values_rejects_infinite_values() -> None:
    with pytest.raises(ValueError):
        compare_values(1.0, float("inf"), min_effect_pct=5.0)


# --- several fresh processes per cell (--repeats) ------------------------------------------

def _processes(rng: np.random.Generator, count: int, *, drift: float = 0.10, shift: float = 1.0,
               runs: int = 100) -> tuple[np.ndarray, list[float]]:
    """`count` processes whose medians scatter by `drift` (lognormal sigma) around 5 ms × shift,
    each with `runs` tight samples: what a fresh worker per process looks like on a shared VM."""
    per_process = [5.0 * shift * math.exp(rng.normal(0, drift)) * np.exp(rng.normal(0, 0.02, runs))
                   for _ in range(count)]
    return np.concatenate(per_process), [float(np.median(p)) for p in per_process]


def test_process_medians_keep_between_process_drift_out_of_false_alarms() -> None:
    rng = np.random.default_rng(11)
    pooled_alarms = process_alarms = 0
    for _ in range(50):
        (base, base_p50), (new, new_p50) = _processes(rng, 5), _processes(rng, 5)
        pooled_alarms += compare_samples(base, new).verdict in ("regressed", "improved")
        process_alarms += analysis.compare_process_medians(base_p50, new_p50).verdict in ("regressed", "improved")
    assert pooled_alarms >= 10, "the pooled samples cannot see the drift: many A/A pairs look changed"
    assert process_alarms <= 1


def test_process_medians_still_find_a_large_regression() -> None:
    rng = np.random.default_rng(12)
    found = sum(
        analysis.compare_process_medians(_processes(rng, 5)[1], _processes(rng, 5, shift=1.3)[1]).verdict == "regressed"
        for _ in range(50)
    )
    assert found >= 30


def test_process_comparison_needs_three_processes_a_side_and_says_so() -> None:
    result = analysis.compare_process_medians([5.0, 5.1], [7.0, 7.2, 7.1])
    assert result.verdict == "inconclusive" and "--repeats 3" in result.reason
    assert result.base_runs == 2 and result.new_runs == 3


def test_process_comparison_of_exact_medians_is_exact() -> None:
    same = analysis.compare_process_medians([5.0] * 3, [5.0] * 3)
    assert same.verdict == "unchanged" and same.change_ci_low_pct == same.change_ci_high_pct == 0.0
    slower = analysis.compare_process_medians([5.0] * 3, [6.0] * 3)
    assert slower.verdict == "regressed" and slower.change_pct == pytest.approx(20.0)


def test_process_comparison_ci_is_welchs_interval_on_log_medians() -> None:
    base, new = [4.8, 5.0, 5.3, 5.1], [5.9, 6.3, 6.0, 6.6, 6.1]
    result = analysis.compare_process_medians(base, new)
    welch = stats.ttest_ind(np.log(new), np.log(base), equal_var=False)
    assert result.p_value == pytest.approx(welch.pvalue)
    low, high = welch.confidence_interval(0.95)
    assert result.change_ci_low_pct == pytest.approx(100 * math.expm1(low))
    assert result.change_ci_high_pct == pytest.approx(100 * math.expm1(high))


def test_compare_latency_tests_processes_only_when_both_sides_have_several() -> None:
    rng = np.random.default_rng(13)
    (base, base_p50), (new, new_p50) = _processes(rng, 4), _processes(rng, 4)
    assert analysis.compare_latency(base, new, base_p50, new_p50).base_runs == 4  # processes
    assert analysis.compare_latency(base, new, base_p50, new_p50[:1]).base_runs == base.size  # samples
    # two processes a side cannot be tested as processes: the samples are, as with one
    assert analysis.compare_latency(base, new, base_p50[:2], new_p50[:2]).base_runs == base.size
    assert analysis.compare_latency(base, new).base_runs == base.size


# --- compare_paired: the baseline's model re-measured beside the new one, interleaved ------------


def interleaved(rng: np.random.Generator, shift: float, rounds: int, drift: float = 0.12,
                noise: float = 0.03, outliers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-round process medians of A then B: a slow machine drift hits both sides of a round
    alike (what pairing cancels), each process adds its own noise, a few processes land badly."""
    machine = 2.4 * np.exp(drift * rng.standard_normal(rounds))
    base = machine * np.exp(noise * rng.standard_normal(rounds))
    new = machine * shift * np.exp(noise * rng.standard_normal(rounds))
    new[rng.choice(rounds, outliers, replace=False)] *= 2.7
    return base, new


def test_paired_rounds_cancel_the_drift_that_hides_a_ten_percent_change() -> None:
    from orchestrator.analysis import compare_paired

    rng = np.random.default_rng(21)
    found = [compare_paired(*interleaved(rng, 1.10, 24)).verdict for _ in range(50)]
    assert found.count("regressed") >= 45
    a_a = [compare_paired(*interleaved(rng, 1.0, 24)).verdict for _ in range(50)]
    assert a_a.count("regressed") + a_a.count("improved") == 0 and a_a.count("unchanged") >= 45
    # the same drift without pairing: the process medians cannot see 10 %
    unpaired = [analysis.compare_process_medians(*interleaved(rng, 1.10, 24)).verdict for _ in range(50)]
    assert unpaired.count("regressed") < 10


def test_paired_comparison_shrugs_off_a_process_that_landed_badly() -> None:
    from orchestrator.analysis import compare_paired

    rng = np.random.default_rng(4)
    result = compare_paired(*interleaved(rng, 1.0, 16, outliers=1))
    assert result.verdict == "unchanged" and abs(result.change_pct) < 3.0


def test_paired_needs_eight_rounds_and_equal_sides() -> None:
    from orchestrator.analysis import MIN_PAIRS_TO_TEST, compare_paired

    assert MIN_PAIRS_TO_TEST == 8  # 2 / 2**8 < 1 %: the signed-rank test can be significant at alpha
    rng = np.random.default_rng(5)
    few = compare_paired(*interleaved(rng, 1.5, 7))
    assert few.verdict == "inconclusive" and few.change_ci_low_pct is None and few.base_runs == 7
    with pytest.raises(ValueError, match="3 baseline rounds but 2 new ones"):
        compare_paired([1.0, 1.0, 1.0], [1.0, 1.0])
