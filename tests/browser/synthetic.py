"""Realistic stored runs for report tests and the report benchmark, written through the real store.

Rows have the shape `runner.result_row` gives them (summary columns from
`analysis.summarize_latency`, details.export with the measurement fields, phase marks) and
series the agent's sampler writes (rss/cpu/temps/freq per sample, a `phase` on each).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from orchestrator.analysis import summarize_latency
from orchestrator.store import Store

HOSTILE = "<script>alert(1)</script>"

# How a variant changes latency, size and accuracy relative to fp32 (typical of the studies).
VARIANT_EFFECTS = {
    "fp32": (1.00, 1.00, 0.0),
    "optimized": (0.86, 0.99, 0.0),
    "fp16": (0.93, 0.50, -0.001),
    "int8-dynamic": (0.62, 0.26, -0.012),
    "int8-static": (0.55, 0.26, -0.025),
    "prune-l1:0.5": (0.97, 1.00, -0.06),
}
MODEL_BASES = {  # model: (p50 ms on a board of speed 1, size bytes, fp32 accuracy or None, metric)
    "yolov8n": (38.0, 12_900_000, 0.366, "mAP50"),
    "resnet18": (21.0, 46_800_000, 0.697, "top1"),
    "mobilenetv2": (7.5, 14_000_000, None, None),
    "digits_mlp": (0.0088, 30_000, 0.974, "top1"),  # a 9 µs model: the report's axes must not flatten it
}
PHASES = ("start", "load", "first_inference", "warmup", "measure", "done")


@dataclasses.dataclass(frozen=True)
class Cell:
    board: str
    model: str
    variant: str
    slowdown: float = 1.0  # multiply this cell's latencies (a regression to find)
    fail_kind: str | None = None
    fail_message: str = ""
    accuracy_error: str | None = None
    throttled: bool = False
    processes: int = 1  # fresh worker processes (--repeats): their medians go into the export
    fallback: bool = False  # onnxruntime ran the model on CPU although CUDA was asked for
    truncated: bool = False  # stopped by --max-seconds


def board_facts(board: str, index: int, thermal: bool) -> dict[str, Any]:
    cores = 4 if index % 2 == 0 else 8
    return {
        "agent_version": "0.1.0", "arch": "aarch64" if index % 3 else "x86_64",
        "cpu_model": f"Cortex-A72 r0p3 ({board})", "cpu_cores": cores, "cpu_cores_available": cores,
        "mem_total_bytes": (4 + 4 * (index % 2)) * 1024 ** 3, "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.6.31+rpt-rpi-v8", "python_version": "3.11.2", "numpy_version": "1.26.4",
        "onnxruntime_version": "1.17.3", "onnxruntime_providers": ["CPUExecutionProvider"],
        "governors": {"cpu0": "ondemand"} if thermal else {}, "cgroup_limits": {},
        "temperatures_c": {"cpu-thermal": 48.2} if thermal else {}, "throttle": None, "hostname": board,
    }


def _samples(rng: np.random.Generator, count: int, p50_ms: float, slowdown: float, tail: bool) -> list[float]:
    values = p50_ms * slowdown * np.exp(rng.normal(0.0, 0.04, count))
    if tail:
        spikes = rng.random(count) < 0.01
        values[spikes] *= rng.uniform(1.1, 1.6, int(spikes.sum()))
    return [float(v) for v in values]


def _timeseries(rng: np.random.Generator, rows: int, peak_rss: int, thermal: bool, throttled: bool,
                measure_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    load_s, first_s, warm_s = 0.35, 0.9, 1.0
    marks = [{"phase": p, "t_s": t} for p, t in
             (("load", load_s), ("first_inference", first_s), ("warmup", warm_s), ("measure", 1.2),
              ("done", 1.2 + measure_s))]
    end = 1.2 + measure_s + 0.1
    samples = []
    for i, t in enumerate(np.linspace(0.05, end, rows)):
        phase = "start"
        for mark in marks:
            if t >= mark["t_s"]:
                phase = mark["phase"]
        grown = min(1.0, t / first_s)
        temp = 45.0 + 25.0 * (1 - math.exp(-t / max(end / 3, 0.1))) + float(rng.normal(0, 0.3))
        hot = throttled and phase == "measure" and i % 4 == 0
        samples.append({
            "t_s": round(float(t), 4), "phase": phase,
            "rss_bytes": int(peak_rss * (0.15 + 0.85 * grown) * (1 + float(rng.normal(0, 0.004)))),
            "hwm_bytes": int(peak_rss * (0.15 + 0.85 * grown)), "rss_anon_bytes": int(peak_rss * 0.6 * grown),
            "rss_file_bytes": int(peak_rss * 0.2), "pss_bytes": int(peak_rss * 0.7 * grown), "minflt": 1000 + i * 37,
            "majflt": 0, "cpu_percent": None if i == 0 else round(float(np.clip(rng.normal(
                95.0 if phase in ("measure", "warmup") else 40.0, 8.0), 0, 400)), 1),
            "temps_c": {"cpu-thermal": round(temp, 1), "gpu-thermal": round(temp - 3.0, 1)} if thermal else {},
            "freq_khz": ({"cpu0": 1_000_000 if hot else 1_800_000, "cpu1": 1_800_000} if thermal else {}),
            "loadavg_1m": 1.1, "throttled": (hot if thermal else None),
        })
    return samples, marks


def add_result(store: Store, run_id: str, cell: Cell, *, board_index: int, samples_per_result: int,
               timeseries_rows: int, thermal: bool, seed: int, board_speed: float = 1.0) -> int:
    """Write one realistic result (or failure) of `cell` and return its result_id."""
    rng = np.random.default_rng(seed)
    base_ms, base_size, base_acc, metric = MODEL_BASES.get(cell.model, (12.0, 5_000_000, None, None))
    lat_factor, size_factor, acc_delta = VARIANT_EFFECTS.get(cell.variant, (1.0, 1.0, 0.0))
    size = int(base_size * size_factor)
    facts = board_facts(cell.board, board_index, thermal)
    if cell.fail_kind:
        return store.add_result(run_id, {
            "board": cell.board, "model": cell.model, "variant": cell.variant, "settings_hash": "s1",
            "status": "failed", "error_kind": cell.fail_kind, "error_message": cell.fail_message,
            "model_size_bytes": size, "facts": {} if cell.fail_kind == "unreachable" else facts,
            "details": {"variant": {"size_bytes": size}},
        })
    latencies = _samples(rng, samples_per_result, base_ms * lat_factor * board_speed, cell.slowdown, tail=True)
    stats = summarize_latency(latencies).as_dict()
    peak_rss = int(60_000_000 + size * 1.6)
    measure_s = sum(latencies) / 1000.0
    series, marks = _timeseries(rng, timeseries_rows, peak_rss, thermal, cell.throttled, measure_s)
    export = {
        "peak_rss_load_bytes": int(peak_rss * 0.9), "peak_rss_inference_bytes": peak_rss,
        "rss_steady_bytes": int(peak_rss * 0.98), "cpu_percent_mean": 95.0,
        "temp_c_max": max((max(s["temps_c"].values()) for s in series if s["temps_c"]), default=None),
        "freq_drop": cell.throttled, "throttled": cell.throttled, "sample_interval_s": 0.05,
        "latency_ms_cv": stats["cv"], "latency_ms_median_ci_low": stats["median_ci_low_ms"],
        "latency_ms_median_ci_high": stats["median_ci_high_ms"], "noisy": stats["noisy"], "truncated": cell.truncated,
        "provider": "CPUExecutionProvider", "provider_fallback": cell.fallback,
        "model_gzip_bytes": int(size * 0.9), "sparsity": 0.5 if cell.variant.startswith("prune") else 0.0,
        "processes": cell.processes,
        "latency_ms_process_p50": [float(np.median(chunk)) for chunk in np.array_split(latencies, cell.processes)],
    }
    if base_acc is not None:
        if cell.accuracy_error:
            export.update(accuracy_metric=metric, accuracy=None, accuracy_error=cell.accuracy_error)
        else:
            export.update(accuracy_metric=metric, accuracy=round(base_acc + acc_delta, 4), accuracy_delta=acc_delta)
    row = {
        "board": cell.board, "model": cell.model, "model_sha256": "ab" * 32, "variant": cell.variant,
        "settings_hash": "s1", "status": "ok", "runs": len(latencies),
        **{k: stats[k] for k in ("latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90",
                                 "latency_ms_p99", "latency_ms_max", "latency_ms_stdev", "fps")},
        "load_ms": 350.0, "first_inference_ms": base_ms * 2.0, "peak_rss_bytes": peak_rss, "model_size_bytes": size,
        "facts": facts,
        "details": {
            "export": export, "provider": "CPUExecutionProvider", "onnxruntime_version": "1.17.3",
            "providers_requested": ["CUDAExecutionProvider", "CPUExecutionProvider"] if cell.fallback
            else ["CPUExecutionProvider"],
            "phase_marks": marks, "measure_s": measure_s, "cooldown_s": 0.0, "peak_rss_reset_supported": True,
            "bytes_sent": size, "model_path": f"/models/{cell.model}.onnx",
            "variant": {"size_bytes": size, "gzip_bytes": int(size * 0.9),
                        "sparsity": 0.5 if cell.variant.startswith("prune") else 0.0,
                        "actions": [] if cell.variant == "fp32" else [f"made {cell.variant} from fp32"],
                        "fidelity": None if cell.variant == "fp32" else {"cosine": 0.9991}},
        },
    }
    return store.add_result(run_id, row, latencies, series)


def add_run(store: Store, cells: Sequence[Cell], *, samples_per_result: int = 300, timeseries_rows: int = 40,
            thermal_boards: Sequence[str] = (), seed: int = 0, settings: dict[str, Any] | None = None) -> str:
    """A finished run holding `cells` (in order), as `farm bench` would have stored it."""
    boards = list(dict.fromkeys(c.board for c in cells))
    run_settings = {"runs": samples_per_result, "min_seconds": 0.0, "warmup": 5, "threads": 4,
                    "sample_interval_s": 0.05, "boards": boards,
                    "models": list(dict.fromkeys(c.model for c in cells)),
                    "variants": list(dict.fromkeys(c.variant for c in cells))}
    run_settings.update(settings or {})
    controller = {"farm_version": "0.1.0", "python": "3.11.7", "platform": "Linux-test", "hostname": "ci",
                  "argv": ["bench", "--runs", str(samples_per_result)]}
    run_id = store.create_run(run_settings, controller, "0.1.0")
    for i, cell in enumerate(cells):
        board_index = boards.index(cell.board)
        add_result(store, run_id, cell, board_index=board_index, samples_per_result=samples_per_result,
                   timeseries_rows=timeseries_rows, thermal=cell.board in thermal_boards, seed=seed * 100_003 + i,
                   board_speed=1.0 + 0.7 * board_index)
    store.finish_run(run_id, "finished" if not any(c.fail_kind for c in cells) else "failed")
    return run_id


def matrix(boards: Sequence[str], models: Sequence[str], variants: Sequence[str], **overrides: dict) -> list[Cell]:
    """Every board × model × variant; `overrides` maps "board|model|variant" to Cell fields."""
    cells = []
    for board in boards:
        for model in models:
            for variant in variants:
                extra = overrides.get(f"{board}|{model}|{variant}", {})
                cells.append(Cell(board, model, variant, **extra))
    return cells
