"""One cell measured in several fresh worker processes (`--repeats N`): merging their results.

Why several processes (pyperf's lesson): a fresh process lands on other memory, caches and
cores; on a shared machine its median moved up to 35 % from the previous process's, a drift that
no statistic on one process's samples can see. The runner measures every cell of a board once
per round, N rounds (A B C A B C ...: drift hits all cells alike), and merges each cell's N
bench results here into the one result the store keeps. The per-process figures stay in
`processes`, and comparisons of such runs test the process medians
(analysis.compare_process_medians; record.process_p50s reads them back).
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

# Per-process figures kept in the merged result's `processes` list.
PROCESS_FIELDS = ("load_ms", "first_inference_ms", "peak_rss_bytes", "worker_pid", "truncated")


def process_summary(result: dict[str, Any]) -> dict[str, Any]:
    """One process's runs and median (ms): the board's exact summary where it sent one (it may have
    kept only a subset of the samples), else the samples'."""
    exact = result.get("latency")
    if exact:
        runs, p50 = int(exact["count"]), float(exact["p50_ms"])
    else:
        latency_ms = [float(x) for x in result["latency_ms"]]
        runs, p50 = len(latency_ms), statistics.median(latency_ms)
    return {"runs": runs, "latency_ms_p50": p50, **{field: result.get(field) for field in PROCESS_FIELDS}}


def _largest(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def merge_process_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The agent's bench results of one cell, one per process, as one bench result.

    Latencies are concatenated in process order; load and first-inference times are the median
    over processes; peaks (memory, temperature) the largest; flags (truncated, freq_drop,
    throttled) set when any process set them; CPU % the mean; the measured phase's power the
    mean weighted by each process's measuring time, the idle power the mean. The time series and phase marks
    are the first process's (the others' are alike and would only repeat the chart). Runtime
    facts are the first process's: every process ran the same runtime on the same board.
    A single result is returned as it is, with its one-entry `processes`.
    """
    if not results:
        raise ValueError("merge_process_results: no results")
    first = results[0]
    merged = dict(first)
    merged["processes"] = [process_summary(r) for r in results]
    if len(results) == 1:
        return merged
    merged["latency_ms"] = [x for r in results for x in r["latency_ms"]]
    # Several processes: the summary columns come from the samples kept (exact when all were kept).
    merged["latency"] = None
    merged["latency_samples_total"] = sum(int(r.get("latency_samples_total") or len(r["latency_ms"])) for r in results)
    for field in ("load_ms", "first_inference_ms"):
        merged[field] = statistics.median(float(r[field]) for r in results)
    for field in ("peak_rss_bytes", "peak_rss_load_bytes", "peak_rss_inference_bytes", "rss_steady_bytes",
                  "temp_c_max"):
        merged[field] = _largest([r.get(field) for r in results])
    for field in ("truncated", "freq_drop", "throttled"):
        merged[field] = any(bool(r.get(field)) for r in results)
    cpu = [r["cpu_percent_mean"] for r in results if r.get("cpu_percent_mean") is not None]
    merged["cpu_percent_mean"] = round(sum(cpu) / len(cpu), 1) if cpu else None
    merged["measure_s"] = sum(float(r.get("measure_s") or 0.0) for r in results)
    # --profile: the last round's process profiled (orchestrator.settings.bench_args' profile_pass)
    for field in ("profile", "profile_error"):
        merged[field] = next((r[field] for r in reversed(results) if r.get(field) is not None), None)
    # power: the measured phases' mean weighted by their length; the idle power's mean
    timed = [(float(r["power_w_mean"]), float(r.get("measure_s") or 0.0)) for r in results
             if r.get("power_w_mean") is not None]
    weight = sum(t for _, t in timed)
    merged["power_w_mean"] = (sum(p * t for p, t in timed) / weight if weight > 0 else
                              sum(p for p, _ in timed) / len(timed)) if timed else None
    idle = [float(r["power_w_idle"]) for r in results if r.get("power_w_idle") is not None]
    merged["power_w_idle"] = sum(idle) / len(idle) if idle else None
    gpu = [float(r["gpu_load_pct_mean"]) for r in results if r.get("gpu_load_pct_mean") is not None]
    merged["gpu_load_pct_mean"] = round(sum(gpu) / len(gpu), 1) if gpu else None
    return merged
