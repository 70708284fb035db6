"""Statistics on latency samples: per-run summaries and baseline comparisons.

Pure logic (numpy + scipy), no I/O: the runner, the store, the report and
``farm compare`` all call these functions, and so do the unit tests.

Two questions are answered here:

* *What did this run measure?*  :func:`summarize_latency` turns the raw
  per-inference latencies (ms) of one run into the figures a benchmark
  engineer expects (min/mean/median/p90/p99/max/stdev, FPS), a 95 %
  confidence interval for the median, and a ``noisy`` flag.
* *Did it get slower?*  :func:`compare_samples` compares a new run's samples
  with a baseline's (a rank test AND a minimum effect on the medians, with a
  confidence interval that says when the data cannot tell);
  :func:`compare_values` does the same threshold check for single numbers
  that have no samples (peak memory bytes, model size bytes).

Why medians and rank tests: latency distributions on a board are skewed with
a long right tail (scheduler preemption, page faults, thermal steps), so the
mean and t-tests are pulled around by a few slow runs. The median and the
Mann-Whitney U test only use the order of the samples and make no assumption
about their distribution.

What the statistics cannot see: they treat the samples of a run as
independent draws. Drift *between* runs (a shared 2-core CI machine drifts
5-15 % between back-to-back runs) is not in the samples of either run, so no
test on them can detect it. The guards against it are the minimum effect size
(``min_effect_pct``, default 5 %), measuring A and B interleaved in one
session (A B A B ...), which keeps A/A pairs within ~3 % on that machine, and
measuring each cell in several fresh processes (``farm bench --repeats N``):
then :func:`compare_process_medians` tests the process medians, which carry
the between-process drift, instead of the pooled samples.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from statistics import NormalDist

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_EFFECT_PCT",
    "MEDIAN_CI_LEVEL",
    "MIN_PROCESSES_TO_TEST",
    "MIN_SAMPLES_TO_TEST",
    "NOISY_CV",
    "VERDICTS",
    "Comparison",
    "LatencySummary",
    "Verdict",
    "compare_energy",
    "compare_latency",
    "compare_paired",
    "compare_process_medians",
    "compare_samples",
    "compare_values",
    "median_confidence_interval",
    "process_spread",
    "summarize_latency",
]

#: A run whose *robust* coefficient of variation (1.4826 x the median absolute
#: deviation / the median: the stdev of the bulk of the samples, blind to the long
#: tail every inference loop has) is above this is flagged ``noisy``; so is a cell
#: whose fresh worker processes' medians spread by more than this (the geometric
#: CV of the process medians, see `process_spread`). Why 10 %: single-stream
#: inference with a fixed input scatters by a few percent; a spread above 10 % is
#: twice the default 5 % regression threshold and in practice means something else
#: was going on (throttling, frequency scaling, another process, swapping, a
#: bimodal cache/allocator effect). Why robust: the plain CV of a steady run on this
#: 2-core VM was 0.49 (a few 10x outliers) with a robust CV of 0.067 — the plain CV
#: flagged every row of a normal run, which says nothing. Such a run is kept but
#: marked, so nobody reads its median without looking at the spread.
NOISY_CV = 0.10

#: Confidence level of the median interval and of the median-change interval.
MEDIAN_CI_LEVEL = 0.95

#: Smallest relative change of the median (percent) that counts as a
#: regression/improvement. 5 %: below that, run-to-run drift of the lab
#: machines (5-15 % back to back, ~3 % interleaved) makes the change
#: meaningless even when a test on the samples calls it significant.
DEFAULT_MIN_EFFECT_PCT = 5.0

#: Significance level of the two-sided Mann-Whitney U test. 1 % rather than
#: 5 %: nightly gating runs many board x variant cells, and each false alarm
#: costs a person's time.
DEFAULT_ALPHA = 0.01

#: Fewer samples than this on either side of a comparison gives
#: "inconclusive": with n < 5 the median CI cannot reach 95 % coverage even
#: at [min, max] (coverage 1 - 2**(1-n), 94 % at n = 5 and less below), and
#: the rank test has almost no power.
MIN_SAMPLES_TO_TEST = 5

#: Fewer interleaved rounds than this gives "inconclusive" in compare_paired: the
#: signed-rank test's smallest two-sided p-value is 2 / 2**n, below DEFAULT_ALPHA (1 %) only
#: from 8 rounds on (0.0078), and the order-statistic interval of the median ratio needs 6+.
MIN_PAIRS_TO_TEST = 8

#: Fewer fresh worker processes than this on either side gives "inconclusive" in
#: compare_process_medians: two process medians say nothing of their spread, three
#: barely do (the t quantile at 2-4 degrees of freedom makes the interval wide).
MIN_PROCESSES_TO_TEST = 3

Verdict = Literal["improved", "unchanged", "regressed", "inconclusive"]
VERDICTS: tuple[str, ...] = ("improved", "unchanged", "regressed", "inconclusive")


@dataclass(frozen=True)
class LatencySummary:
    """Summary of one run's per-inference latencies. Times in ms.

    ``fps`` is 1000 / mean latency: the throughput of *sequential,
    single-stream* inference (one request at a time, batch as measured). It is
    not the throughput of a pipelined or multi-stream server, which can be
    higher.

    ``median_ci_low_ms`` / ``median_ci_high_ms`` bound the median with 95 %
    confidence (see :func:`median_confidence_interval`); ``cv`` is stdev /
    mean, ``robust_cv`` 1.4826 x MAD / median, and ``noisy`` is
    ``robust_cv > NOISY_CV``.
    """

    runs: int
    latency_ms_min: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_max: float
    latency_ms_stdev: float
    fps: float
    cv: float
    robust_cv: float
    median_ci_low_ms: float
    median_ci_high_ms: float
    noisy: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        """The fields by name, as plain Python numbers (JSON-serializable)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a new run's latency samples with a baseline's.

    ``change_pct`` is the relative change of the median in percent, positive =
    the new run is slower. ``change_ci_low_pct`` / ``change_ci_high_pct`` are
    the 95 % confidence interval of that change (None when either side has
    fewer than ``MIN_SAMPLES_TO_TEST`` samples). ``reason`` is one sentence
    for people saying why the verdict came out as it did.
    """

    base_p50_ms: float
    new_p50_ms: float
    change_pct: float
    p_value: float
    verdict: Verdict
    base_runs: int
    new_runs: int
    change_ci_low_pct: float | None
    change_ci_high_pct: float | None
    min_effect_pct: float
    alpha: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        """The fields by name, as plain Python values (JSON-serializable)."""
        return dataclasses.asdict(self)


def _as_latencies(samples_ms: Sequence[float], what: str) -> np.ndarray:
    """Validate latency samples: a non-empty 1-D sequence of finite numbers > 0."""
    values = np.asarray(samples_ms, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{what}: expected a flat sequence of latencies, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what}: no latency samples")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what}: latency samples must be finite numbers (found NaN or inf)")
    if np.any(values <= 0):
        raise ValueError(f"{what}: latency samples must be > 0 ms (found {float(values.min())!r})")
    return values


def _median_ci_ranks(n: int, level: float) -> tuple[int, float]:
    """Rank j (1-based) of the order-statistic median interval, and its exact coverage.

    The interval is [x(j), x(n+1-j)]; j is the largest rank whose coverage
    1 - 2 * P(B <= j - 1), B ~ Binomial(n, 1/2), is still >= ``level``.
    When no j >= 1 reaches ``level`` (n <= 5 at 95 %) j = 1, i.e. [min, max].
    """
    tail = (1.0 - level) / 2.0
    cdf = _binomial_half_cdf(n)
    # P(B <= j-1) <= tail  <=>  j-1 <= the largest m with cdf(m) <= tail.
    m = int(np.searchsorted(cdf, tail, side="right")) - 1  # largest m with cdf(m) <= tail (-1: none)
    j = max(m + 1, 1)
    coverage = 1.0 - 2.0 * float(cdf[j - 1])
    return j, coverage


@functools.lru_cache(maxsize=256)
def _binomial_half_cdf(n: int) -> np.ndarray:
    """cdf[k] = P(B <= k) for B ~ Binomial(n, 1/2), k = 0..n, computed in log space.

    Done here with numpy instead of scipy.stats because importing scipy.stats costs ~1 s, and
    every `farm` command that summarises a run would pay it. Remembered per n (read-only): a
    report judges hundreds of cells, most with the same sample counts.
    """
    k = np.arange(n + 1)
    log_pmf = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k]) - n * math.log(2.0)
    cdf = np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)
    cdf.flags.writeable = False
    return cdf


def _order_statistic_interval(values: np.ndarray) -> tuple[float, float, float]:
    """median_confidence_interval for any finite values (log ratios may be <= 0)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    j, coverage = _median_ci_ranks(ordered.size, MEDIAN_CI_LEVEL)
    return float(ordered[j - 1]), float(ordered[ordered.size - j]), coverage


def median_confidence_interval(
    samples: Sequence[float], level: float = MEDIAN_CI_LEVEL
) -> tuple[float, float, float]:
    """Distribution-free confidence interval for the median, from order statistics.

    Returns ``(low, high, coverage)``. Method: sort the n samples
    x(1) <= ... <= x(n). The number B of samples below the true median is
    Binomial(n, 1/2) whatever the distribution (only continuity is assumed),
    so [x(j), x(n+1-j)] contains the median with probability
    P(j <= B <= n - j) = 1 - 2 * P(B <= j - 1). The largest j whose coverage is
    still >= ``level`` is used, so the interval is exact-conservative: its
    true coverage (returned as ``coverage``, e.g. 0.957 at n = 30) is at
    least ``level``, with no normal approximation and no resampling.

    Tiny samples: for n <= 5 no pair of order statistics reaches 95 %; the
    interval is then [min, max] and ``coverage`` (1 - 2**(1-n): 0.94 at n = 5,
    0.5 at n = 2, 0 at n = 1 where min = max = the sample) says how little
    it is worth.
    """
    ordered = np.sort(np.asarray(samples, dtype=float))
    n = ordered.size
    if n == 0:
        raise ValueError("median_confidence_interval: no samples")
    if not 0.0 < level < 1.0:
        raise ValueError(f"median_confidence_interval: level must be in (0, 1), got {level!r}")
    j, coverage = _median_ci_ranks(n, level)
    return float(ordered[j - 1]), float(ordered[n - j]), coverage


def summarize_latency(samples_ms: Sequence[float]) -> LatencySummary:
    """Summarize one run's per-inference latencies (ms).

    Percentiles use numpy's default (linear interpolation between closest
    ranks), so p50 is the ordinary median. ``latency_ms_stdev`` is the sample
    standard deviation (ddof = 1), 0.0 for a single sample. See
    :class:`LatencySummary` for what ``fps``, ``cv``, the median interval and
    ``noisy`` mean; for n <= 5 the median interval is [min, max] (see
    :func:`median_confidence_interval`).

    Raises ValueError on empty input, or samples that are not finite and > 0.
    """
    values = _as_latencies(samples_ms, "summarize_latency")
    n = int(values.size)
    mean = float(np.mean(values))
    stdev = float(np.std(values, ddof=1)) if n > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50.0, 90.0, 99.0]))
    ci_low, ci_high, _ = median_confidence_interval(values)
    cv = stdev / mean
    robust_cv = 1.4826 * float(np.median(np.abs(values - p50))) / p50
    return LatencySummary(
        runs=n,
        latency_ms_min=float(np.min(values)),
        latency_ms_mean=mean,
        latency_ms_p50=p50,
        latency_ms_p90=p90,
        latency_ms_p99=p99,
        latency_ms_max=float(np.max(values)),
        latency_ms_stdev=stdev,
        fps=1000.0 / mean,
        cv=cv,
        robust_cv=robust_cv,
        median_ci_low_ms=ci_low,
        median_ci_high_ms=ci_high,
        noisy=bool(robust_cv > NOISY_CV),
    )


def process_spread(process_p50_ms: Sequence[float]) -> float | None:
    """The geometric coefficient of variation of process medians (the stdev of their logs):
    how far fresh worker processes of one cell disagree. None for fewer than 3 processes."""
    values = [float(v) for v in process_p50_ms if v is not None and float(v) > 0]
    if len(values) < MIN_PROCESSES_TO_TEST:
        return None
    return float(np.std(np.log(values), ddof=1))


def _log_median_se(values: np.ndarray) -> float:
    """Standard error of log(median), from the order-statistic median interval.

    McKean & Schrader (1984): the distance between the interval's order
    statistics is about 2 z standard errors; z is taken from the interval's
    exact binomial coverage rather than the nominal 95 % (the refinement of
    Price & Bonett 2002), which matters for small n where the interval
    over-covers.
    """
    low, high, coverage = median_confidence_interval(values)
    z = NormalDist().inv_cdf((1.0 + coverage) / 2.0)
    return (math.log(high) - math.log(low)) / (2.0 * z)


def _check_test_settings(caller: str, alpha: float, min_effect_pct: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{caller}: alpha must be in (0, 1), got {alpha!r}")
    if not (math.isfinite(min_effect_pct) and min_effect_pct > 0.0):
        raise ValueError(f"{caller}: min_effect_pct must be > 0, got {min_effect_pct!r}")


def compare_samples(
    base_ms: Sequence[float],
    new_ms: Sequence[float],
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare a new run's latency samples (ms) with a baseline's.

    The effect is the relative change of the medians,
    ``change_pct = 100 * (median(new) / median(base) - 1)`` (positive =
    slower). Its 95 % confidence interval comes from the two medians' own
    distribution-free intervals, with no bootstrap: each interval gives a
    standard error of the log-median (:func:`_log_median_se`), the two are
    combined as for independent estimates, and
    ``exp(log ratio +/- 1.96 * sqrt(se_base**2 + se_new**2)) - 1`` bounds the
    change (Price & Bonett 2002, CI for a ratio of medians). The p-value is
    the two-sided Mann-Whitney U test on the raw samples.

    Verdict rules, in order (m = ``min_effect_pct``):

    1. fewer than ``MIN_SAMPLES_TO_TEST`` (5) samples on either side ->
       "inconclusive" (too few to test);
    2. p < alpha and the whole change CI is >= +m -> "regressed";
       p < alpha and the whole change CI is <= -m -> "improved";
    3. the whole change CI is inside (-m, +m) -> "unchanged" (whether or not
       the test is significant: a real but small change is not worth a flag);
    4. anything else -> "inconclusive": the CI straddles +m or -m, so the
       data cannot tell whether the change is bigger than m (too noisy, or
       too few samples for this noise), or the rank test and the medians
       disagree (large median change, not significant).

    This is "significant AND |change| >= m -> regressed/improved, otherwise
    unchanged", made honest about noise: a point estimate only counts when its
    interval is on one side of the threshold. An A/A pair (same distribution)
    has a change near 0 with a CI well inside +/-5 % once there are enough
    samples, so it comes out "unchanged".

    Raises ValueError on empty or invalid samples, alpha outside (0, 1), or
    min_effect_pct <= 0 (a zero threshold would leave "unchanged" unreachable).
    """
    _check_test_settings("compare_samples", alpha, min_effect_pct)
    base = _as_latencies(base_ms, "compare_samples(base)")
    new = _as_latencies(new_ms, "compare_samples(new)")
    base_p50 = float(np.median(base))
    new_p50 = float(np.median(new))
    change_pct = (new_p50 - base_p50) * 100.0 / base_p50
    from scipy import stats  # imported here: ~1 s, only comparisons need it

    p_value = float(stats.mannwhitneyu(base, new, alternative="two-sided").pvalue)
    if math.isnan(p_value):  # defensive: no information means no evidence of a change
        p_value = 1.0
    m = float(min_effect_pct)

    def result(verdict: Verdict, reason: str, ci: tuple[float, float] | None) -> Comparison:
        return Comparison(
            base_p50_ms=base_p50,
            new_p50_ms=new_p50,
            change_pct=change_pct,
            p_value=p_value,
            verdict=verdict,
            base_runs=int(base.size),
            new_runs=int(new.size),
            change_ci_low_pct=None if ci is None else ci[0],
            change_ci_high_pct=None if ci is None else ci[1],
            min_effect_pct=m,
            alpha=float(alpha),
            reason=reason,
        )

    if base.size < MIN_SAMPLES_TO_TEST or new.size < MIN_SAMPLES_TO_TEST:
        return result(
            "inconclusive",
            f"too few samples to test ({base.size} vs {new.size}; need >= {MIN_SAMPLES_TO_TEST} each)",
            None,
        )

    log_ratio = math.log(new_p50 / base_p50)
    se = math.hypot(_log_median_se(base), _log_median_se(new))
    z = NormalDist().inv_cdf((1.0 + MEDIAN_CI_LEVEL) / 2.0)
    ci_low = 100.0 * math.expm1(log_ratio - z * se)
    ci_high = 100.0 * math.expm1(log_ratio + z * se)
    ci = (ci_low, ci_high)
    where = f"median {change_pct:+.1f}% (95% CI {ci_low:+.1f}% to {ci_high:+.1f}%), p={p_value:.2g}"

    verdict, why = _verdict(change_pct, p_value, ci, m, alpha, "the rank test")
    return result(verdict, f"{where}: {why}", ci)


def _verdict(change_pct: float, p_value: float, ci: tuple[float, float], m: float, alpha: float,
             test: str) -> tuple[Verdict, str]:
    """The verdict rules 2-4 of compare_samples, shared by compare_process_medians."""
    ci_low, ci_high = ci
    significant = p_value < alpha
    if significant and ci_low >= m:
        return "regressed", f"slower by at least {m:g}%"
    if significant and ci_high <= -m:
        return "improved", f"faster by at least {m:g}%"
    if -m < ci_low and ci_high < m:
        return "unchanged", f"any change is smaller than {m:g}%"
    if not significant and abs(change_pct) >= m:
        return "inconclusive", f"medians differ by >= {m:g}% but {test} is not significant at {alpha:g}"
    return "inconclusive", f"too noisy to tell: the CI straddles {'+' if change_pct >= 0 else '-'}{m:g}%"


def compare_process_medians(
    base_p50_ms: Sequence[float],
    new_p50_ms: Sequence[float],
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare runs measured in several fresh worker processes each (`--repeats`), pyperf-style.

    The unit of evidence is one process's median latency (ms), not one inference: a fresh
    process lands on other memory, caches and cores, and on a shared machine its median moves
    5-15 % from the last one's, a drift no test on one process's samples can see (they would
    call such an A/A pair a regression). The effect is the ratio of the geometric means of the
    process medians; its 95 % CI and the p-value come from Welch's t-test on their logs
    (Welch-Satterthwaite degrees of freedom), so the between-process spread widens the
    interval exactly as much as it should. The verdict rules are compare_samples' (2-4);
    fewer than MIN_PROCESSES_TO_TEST processes on either side -> "inconclusive".
    `base_runs` / `new_runs` of the result count processes.
    """
    _check_test_settings("compare_process_medians", alpha, min_effect_pct)
    base = np.log(_as_latencies(base_p50_ms, "compare_process_medians(base)"))
    new = np.log(_as_latencies(new_p50_ms, "compare_process_medians(new)"))
    m = float(min_effect_pct)
    log_ratio = float(new.mean() - base.mean())
    change_pct = 100.0 * math.expm1(log_ratio)

    def result(verdict: Verdict, reason: str, p_value: float, ci: tuple[float, float] | None) -> Comparison:
        return Comparison(
            base_p50_ms=float(math.exp(base.mean())), new_p50_ms=float(math.exp(new.mean())),
            change_pct=change_pct, p_value=p_value, verdict=verdict, base_runs=int(base.size),
            new_runs=int(new.size), change_ci_low_pct=None if ci is None else ci[0],
            change_ci_high_pct=None if ci is None else ci[1], min_effect_pct=m, alpha=float(alpha), reason=reason,
        )

    if base.size < MIN_PROCESSES_TO_TEST or new.size < MIN_PROCESSES_TO_TEST:
        return result("inconclusive", f"too few processes to test ({base.size} vs {new.size}; need >= "
                      f"{MIN_PROCESSES_TO_TEST} each: --repeats {MIN_PROCESSES_TO_TEST})", 1.0, None)
    from scipy import stats  # imported here: ~1 s, only comparisons need it

    var_base, var_new = base.var(ddof=1) / base.size, new.var(ddof=1) / new.size
    se = math.sqrt(var_base + var_new)
    if se == 0.0:  # every process gave the same median on both sides: the change is exact
        p_value = 0.0 if log_ratio != 0.0 else 1.0
        half = 0.0
    else:
        df = (var_base + var_new) ** 2 / (var_base ** 2 / (base.size - 1) + var_new ** 2 / (new.size - 1))
        p_value = float(2.0 * stats.t.sf(abs(log_ratio) / se, df))
        half = float(stats.t.ppf((1.0 + MEDIAN_CI_LEVEL) / 2.0, df)) * se
    ci = (100.0 * math.expm1(log_ratio - half), 100.0 * math.expm1(log_ratio + half))
    where = (f"geometric mean of {new.size} vs {base.size} process medians {change_pct:+.1f}% "
             f"(95% CI {ci[0]:+.1f}% to {ci[1]:+.1f}%), p={p_value:.2g}")
    verdict, why = _verdict(change_pct, p_value, ci, m, alpha, "Welch's t-test")
    return result(verdict, f"{where}: {why}", p_value, ci)


def compare_paired(
    base_p50_ms: Sequence[float],
    new_p50_ms: Sequence[float],
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare two models measured side by side, interleaved: round i ran the baseline's model in
    a fresh process (median `base_p50_ms[i]`) and the new one in the next (`new_p50_ms[i]`),
    on the same board (Chromium's pinpoint A/B jobs, pyperf's compare_to workflow).

    Why: a model's median moves 10-15 % between fresh processes on a shared machine, mostly
    with the machine's load, which drifts slowly; two runs measured on different nights cannot
    resolve a 10 % change however many samples each has. Within one round both sides see the
    same drift, so the per-round ratio cancels it. The effect is the median of the per-round
    log ratios (robust to a process that lands badly: on this VM one process in 24 ran at 2.7x);
    its 95 % interval is the distribution-free order-statistic interval of that median, and the
    p-value the Wilcoxon signed-rank test on the log ratios. The verdict rules are
    compare_samples' (2-4); fewer than MIN_PAIRS_TO_TEST rounds -> "inconclusive".
    `base_runs` / `new_runs` of the result count rounds.
    """
    _check_test_settings("compare_paired", alpha, min_effect_pct)
    base = _as_latencies(base_p50_ms, "compare_paired(base)")
    new = _as_latencies(new_p50_ms, "compare_paired(new)")
    if base.size != new.size:
        raise ValueError(f"compare_paired: {base.size} baseline rounds but {new.size} new ones")
    ratios = np.log(new) - np.log(base)
    m = float(min_effect_pct)
    log_change = float(np.median(ratios))
    change_pct = 100.0 * math.expm1(log_change)

    def result(verdict: Verdict, reason: str, p_value: float, ci: tuple[float, float] | None) -> Comparison:
        return Comparison(
            base_p50_ms=float(np.median(base)), new_p50_ms=float(np.median(new)), change_pct=change_pct,
            p_value=p_value, verdict=verdict, base_runs=int(base.size), new_runs=int(new.size),
            change_ci_low_pct=None if ci is None else ci[0], change_ci_high_pct=None if ci is None else ci[1],
            min_effect_pct=m, alpha=float(alpha), reason=reason,
        )

    if ratios.size < MIN_PAIRS_TO_TEST:
        return result("inconclusive", f"too few interleaved rounds to test ({ratios.size}; need >= "
                      f"{MIN_PAIRS_TO_TEST})", 1.0, None)
    from scipy import stats  # imported here: ~1 s, only comparisons need it

    if np.all(ratios == 0.0):
        p_value = 1.0
    else:
        p_value = float(stats.wilcoxon(ratios, alternative="two-sided").pvalue)
    if math.isnan(p_value):
        p_value = 1.0
    low, high, _ = _order_statistic_interval(ratios)
    ci = (100.0 * math.expm1(low), 100.0 * math.expm1(high))
    where = (f"paired: median of {ratios.size} interleaved rounds {change_pct:+.1f}% "
             f"(95% CI {ci[0]:+.1f}% to {ci[1]:+.1f}%), p={p_value:.2g}")
    verdict, why = _verdict(change_pct, p_value, ci, m, alpha, "the signed-rank test")
    return result(verdict, f"{where}: {why}", p_value, ci)


def paired_decided(base_p50_ms: Sequence[float], new_p50_ms: Sequence[float], *,
                   min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT, alpha: float = DEFAULT_ALPHA) -> bool:
    """Whether the rounds so far decide (regressed, improved or unchanged): the runner stops
    adding rounds to a paired cell then, or at its cap."""
    return compare_paired(base_p50_ms, new_p50_ms, min_effect_pct=min_effect_pct,
                          alpha=alpha).verdict != "inconclusive"


def compare_energy(
    latency: Comparison | None,
    power_ratio: float | None,
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
) -> tuple[Verdict, str]:
    """Judge a change of energy per inference (power × time per inference) without crying wolf.

    Mean power is a mean of many sensor samples per result and moves little; the time per
    inference is what moves between processes and with outliers. So the verdict takes the
    latency comparison's 95 % interval of the median change (tested on process medians or paired
    rounds where there are some) and scales it by the ratio of mean power, new / base: regressed
    when the whole interval is at or above +min_effect_pct and the evidence holds — the latency
    change is significant in that direction (as a latency verdict needs), or the power alone
    moved by the threshold (one number per result, judged as memory is) — improved likewise
    below -min_effect_pct, unchanged when inside both, inconclusive otherwise or without an
    interval. Returns (verdict, reason)."""
    m = min_effect_pct
    if latency is None or latency.change_ci_low_pct is None or latency.change_ci_high_pct is None:
        return "inconclusive", "no latency interval to judge it on"
    if power_ratio is None or not (math.isfinite(power_ratio) and power_ratio > 0.0):
        return "inconclusive", "no mean power on both sides"
    low, high = (100.0 * ((1.0 + pct / 100.0) * power_ratio - 1.0)
                 for pct in (latency.change_ci_low_pct, latency.change_ci_high_pct))
    interval = f"power ×{power_ratio:.3f} × the latency median's interval: {low:+.1f}% to {high:+.1f}%"
    significant = latency.p_value < latency.alpha
    if low >= m and ((significant and latency.change_pct > 0) or power_ratio >= 1.0 + m / 100.0):
        return "regressed", f"{interval}, at least {m:g}% more"
    if high <= -m and ((significant and latency.change_pct < 0) or power_ratio <= 1.0 - m / 100.0):
        return "improved", f"{interval}, at least {m:g}% less"
    if -m < low and high < m:
        return "unchanged", f"{interval}, any change smaller than {m:g}%"
    if low >= m or high <= -m:
        return "inconclusive", f"{interval}, but the latency change is not significant at {latency.alpha:g}"
    return "inconclusive", f"{interval}, straddles {m:g}%"


def compare_values(
    base: float | None,
    new: float | None,
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
) -> tuple[float | None, Verdict]:
    """Compare two single numbers where bigger is worse (peak memory bytes, size bytes).

    Returns ``(change_pct, verdict)`` with ``change_pct = 100 * (new - base) / |base|``
    (positive = new is bigger). There are no samples, hence no test: "regressed"
    when the new value is bigger by >= ``min_effect_pct`` percent,
    "improved" when smaller by that much, else "unchanged". A missing value
    (None or NaN) on either side -> ``(None, "inconclusive")``. A zero base
    has no relative change: ``change_pct`` is None and the verdict is
    "unchanged" if new is also 0, else "regressed"/"improved" by its sign
    (any change from 0 is infinitely many percent).
    """
    if not (math.isfinite(min_effect_pct) and min_effect_pct > 0.0):
        raise ValueError(f"compare_values: min_effect_pct must be > 0, got {min_effect_pct!r}")
    if base is None or new is None or math.isnan(base) or math.isnan(new):
        return None, "inconclusive"
    base_f, new_f = float(base), float(new)
    if math.isinf(base_f) or math.isinf(new_f):
        raise ValueError(f"compare_values: values must be finite, got {base!r} and {new!r}")
    if base_f == 0.0:
        if new_f == 0.0:
            return 0.0, "unchanged"
        return None, "regressed" if new_f > 0.0 else "improved"
    change_pct = (new_f - base_f) * 100.0 / abs(base_f)
    if change_pct >= min_effect_pct:
        return change_pct, "regressed"
    if change_pct <= -min_effect_pct:
        return change_pct, "improved"
    return change_pct, "unchanged"


def compare_latency(
    base_ms: Sequence[float],
    new_ms: Sequence[float],
    base_process_p50_ms: Sequence[float] = (),
    new_process_p50_ms: Sequence[float] = (),
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """The latency comparison of one cell: of the process medians when both sides were measured
    in at least MIN_PROCESSES_TO_TEST fresh processes (`--repeats`), else of the raw samples (a
    weak verdict: samples of a few processes are not independent evidence; compare.py says so)."""
    if len(base_process_p50_ms) >= MIN_PROCESSES_TO_TEST and len(new_process_p50_ms) >= MIN_PROCESSES_TO_TEST:
        return compare_process_medians(base_process_p50_ms, new_process_p50_ms, min_effect_pct=min_effect_pct,
                                       alpha=alpha)
    return compare_samples(base_ms, new_ms, min_effect_pct=min_effect_pct, alpha=alpha)
