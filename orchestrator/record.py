"""The result record: what one measured (or failed) cell is, declared once.

The runner produces records (`measured_record`, `failed_record`); the store keeps them (its
`results` table, orchestrator.store.schema); the export, `orchestrator.results`, the report and
gating read them back as flat export records (`EXPORT_FIELDS` then `MEASURED_EXPORT_FIELDS`,
names that are a stable contract, see the README's "Exported fields").

A record has three parts:
* columns: identity (run, board, model, variant, settings hash), status, and the latency
  summary — what queries filter and sort on;
* `details`: everything else the job measured or knew (`export` below, the variant's manifest,
  the inputs fed, providers, phase marks, per-process figures), as JSON;
* `details["export"]`: the measured fields exported next to the columns.

`RECORD_FORMAT_VERSION` is written into every record's details (like pyperf's format version),
so a reader can tell which fields a stored record can have.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.agent_messages import strip_controls
from orchestrator.analysis import NOISY_CV, process_spread, summarize_latency

RECORD_FORMAT_VERSION = 1

# --- the columns (orchestrator.store's `results` table) -------------------------------------------

#: Exported columns, in export order. A contract: never rename, only append.
EXPORT_FIELDS = (
    "run_id", "board", "model", "variant", "status", "error_kind", "error_message", "runs",
    "latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "latency_ms_max", "latency_ms_stdev", "fps", "load_ms", "first_inference_ms",
    "peak_rss_bytes", "model_size_bytes", "model_sha256", "settings_hash", "created_at",
)
#: The latency summary columns a measured record fills from its samples.
SUMMARY_FIELDS = (
    "latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "latency_ms_max", "latency_ms_stdev", "fps",
)

# --- details["export"]: measured fields exported beside the columns -----------------------------

#: Memory, CPU and heat of the measured phase (sampled by the agent).
MEASUREMENT_EXPORT_FIELDS = (
    "peak_rss_load_bytes", "peak_rss_inference_bytes", "rss_steady_bytes", "cpu_percent_mean", "temp_c_max",
    "freq_drop", "throttled", "sample_interval_s",
)
#: What the variant's manifest adds (None: not measured).
VARIANT_EXPORT_FIELDS = ("model_gzip_bytes", "sparsity", "variant_fidelity_cosine")
#: Accuracy on the model's dataset, scored on the controller (None: no dataset).
ACCURACY_EXPORT_FIELDS = ("accuracy_metric", "accuracy", "accuracy_delta", "fidelity_cosine")
#: Which runtime and provider really ran the model, and at what precision.
RUNTIME_EXPORT_FIELDS = ("runtime", "runtime_version", "provider", "provider_fallback", "inference_precision")
#: How each call was made: images per call (FPS counts images) and intra-op threads (0: default).
CALL_EXPORT_FIELDS = ("batch", "threads")
#: What a cell ran on beyond board × model × variant: results that differ in any of these are
#: different cells for comparisons and history (None, in records stored before the field
#: existed, matches anything).
IDENTITY_EXPORT_FIELDS = ("runtime", "provider", "inference_precision", "batch", "threads")
#: The export field with each process's median latency (ms), what comparisons test.
PROCESS_P50_FIELD = "latency_ms_process_p50"
#: Statistics of the latency samples beyond the summary columns.
STATISTICS_EXPORT_FIELDS = (
    "latency_ms_cv", "latency_ms_robust_cv", "latency_ms_median_ci_low", "latency_ms_median_ci_high",
    "latency_ms_process_spread", "noisy", "truncated", "processes", PROCESS_P50_FIELD,
)
#: A cell measured side by side with its baseline's model file (`--paired`): the baseline
#: result it was paired with, and the baseline model's median in each interleaved round (the
#: cell's own are PROCESS_P50_FIELD, same rounds, same order).
PAIRED_BASE_FIELD = "paired_base_result_id"
PAIRED_BASE_P50_FIELD = "latency_ms_paired_base_p50"
PAIRED_EXPORT_FIELDS = (PAIRED_BASE_FIELD, PAIRED_BASE_P50_FIELD)
#: The profiling pass (`--profile`; None without one): inferences profiled, the pass's wall time
#: (s), that over the measured phase of the worker that ran it, and why a pass asked for gave no
#: profile. The per-operator figures are `details["profile"]` (long form: `farm runs export --ops`,
#: orchestrator.profiles).
PROFILE_EXPORT_FIELDS = ("profile_runs", "profile_wall_s", "profile_cost_ratio", "profile_error")
#: A sweep point (orchestrator.sweep): what sets the cell apart from the run's other points
#: (`threads=2, batch=8`; "" when nothing was swept), the input shapes fed
#: (`images=8x3x640x640`, inputs joined by "; "), and the latency per image (ms): a call's
#: latency divided by the batch (the latency columns are per call, FPS counts images).
SWEEP_EXPORT_FIELDS = ("sweep", "input_shapes", "latency_ms_per_image_p50", "latency_ms_per_image_mean")
#: Power and energy, where the board has power sensors (the agent reads them from sysfs, and a
#: Raspberry Pi 5's PMIC through vcgencmd; None elsewhere, and with sampling off):
#: `power_sources` names them (`hwmon:ina3221/VDD_IN, rapl:package-0`), `power_w_mean` is the
#: board's mean power over the measured phase (W), `power_w_idle` over --idle-power seconds
#: before the job; energy per inference (per call, mJ) = mean power × mean latency, also with
#: the idle power subtracted, and per image (÷ batch).
ENERGY_EXPORT_FIELDS = (
    "power_sources", "power_w_mean", "power_w_idle", "energy_mj_per_inference", "energy_mj_per_inference_above_idle",
    "energy_mj_per_image",
)
#: The field comparisons judge energy by (one number per result, like peak memory).
ENERGY_FIELD = "energy_mj_per_inference"
#: What computed: `gpu`, `npu` or `cpu` (from the provider or device that ran and its options;
#: None: farm cannot tell), and on a Jetson the GPU's mean load over the measured phase (%).
ACCELERATOR_EXPORT_FIELDS = ("accelerator", "gpu_load_pct_mean")
#: Every export field a record always carries (None when not measured), after EXPORT_FIELDS: a
#: failed record has the same keys as a measured one.
MEASURED_EXPORT_FIELDS = (
    MEASUREMENT_EXPORT_FIELDS + VARIANT_EXPORT_FIELDS + ACCURACY_EXPORT_FIELDS + RUNTIME_EXPORT_FIELDS
    + CALL_EXPORT_FIELDS + PAIRED_EXPORT_FIELDS + SWEEP_EXPORT_FIELDS + ENERGY_EXPORT_FIELDS
    + ACCELERATOR_EXPORT_FIELDS + PROFILE_EXPORT_FIELDS + STATISTICS_EXPORT_FIELDS
)


@dataclasses.dataclass(frozen=True)
class ResultRecord:
    """One cell's result to store: its `row` (columns, `facts`, `details`), its raw latencies (ms)
    and the sampler's time series."""

    row: Mapping[str, Any]
    latency_ms: Sequence[float] = ()
    timeseries: Sequence[Mapping[str, Any]] = ()


def empty_export() -> dict[str, Any]:
    """Every optional export field present, so CSV columns and JSON keys never depend on luck."""
    return {field: None for field in MEASURED_EXPORT_FIELDS}


def variant_export_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the variant's manifest adds to the export (sizes, sparsity, build fidelity)."""
    return {
        "model_gzip_bytes": manifest.get("gzip_bytes"),
        "sparsity": manifest.get("sparsity"),
        "variant_fidelity_cosine": (manifest.get("fidelity") or {}).get("cosine"),
    }


@dataclasses.dataclass(frozen=True)
class CellIdentity:
    """Who a record belongs to: board, model (name and weights), variant, settings hash, and the
    variant's manifest (its size is the record's model size)."""

    board: str
    model: str
    model_sha256: str
    variant: str
    settings_hash: str
    manifest: Mapping[str, Any]
    model_size_bytes: int | None
    batch: int = 1  # images per inference call: FPS counts images
    threads: int = 0  # intra-op threads asked for (0: the runtime's default)
    sweep: str = ""  # the sweep point's label (orchestrator.sweep); "" when nothing was swept

    def columns(self) -> dict[str, Any]:
        return {"board": self.board, "model": self.model, "model_sha256": self.model_sha256,
                "variant": self.variant, "settings_hash": self.settings_hash,
                "model_size_bytes": self.manifest.get("size_bytes", self.model_size_bytes)}


def failed_record(cell: CellIdentity, kind: str, message: str, facts: Mapping[str, Any]) -> ResultRecord:
    """The record of a cell that could not be measured: its failure kind and reason."""
    return ResultRecord({
        **cell.columns(),
        "status": "failed",
        "error_kind": kind,
        "error_message": strip_controls(message)[:2000],  # it may quote a board's stderr or banner
        "facts": dict(facts),
        "details": {"format_version": RECORD_FORMAT_VERSION, "variant": dict(cell.manifest),
                    "export": {**empty_export(), **variant_export_fields(cell.manifest), "batch": cell.batch,
                               "threads": cell.threads, "sweep": cell.sweep}},
    })


def measured_record(result: Mapping[str, Any], cell: CellIdentity, facts: Mapping[str, Any], bytes_sent: int,
                    model_path: str) -> ResultRecord:
    """The record of a measured cell, from the agent's bench result (processes merged).

    Raises KeyError/TypeError/ValueError when the result lacks what a record needs.
    """
    from orchestrator.repeats import process_summary

    latency_ms = [float(x) for x in result["latency_ms"]]
    processes = result.get("processes") or [process_summary(result)]
    summary = summarize_latency(latency_ms)
    stats = summary.as_dict()
    runs = summary.runs
    total = int(result.get("latency_samples_total") or len(latency_ms))
    exact = result.get("latency")
    if total != len(latency_ms) and exact:
        # The board kept an evenly spaced subset of the samples: the summary columns come from its
        # exact summary of every run; the interval and `noisy` from the samples kept.
        stats.update(latency_ms_min=exact["min_ms"], latency_ms_mean=exact["mean_ms"], latency_ms_p50=exact["p50_ms"],
                     latency_ms_p90=exact["p90_ms"], latency_ms_p99=exact["p99_ms"], latency_ms_max=exact["max_ms"],
                     latency_ms_stdev=exact["stdev_ms"], fps=1000.0 / exact["mean_ms"],
                     cv=exact["stdev_ms"] / exact["mean_ms"])
        runs = total
    export = empty_export()
    export.update({field: result.get(field) for field in MEASUREMENT_EXPORT_FIELDS})
    export.update(variant_export_fields(cell.manifest))
    export.update({field: result.get(field) for field in RUNTIME_EXPORT_FIELDS})
    export.update(batch=cell.batch, threads=cell.threads, sweep=cell.sweep,
                  input_shapes=inputs_text(result.get("inputs") or []),
                  latency_ms_per_image_p50=stats["latency_ms_p50"] / cell.batch,
                  latency_ms_per_image_mean=stats["latency_ms_mean"] / cell.batch)
    export.update(energy_fields(result, stats["latency_ms_mean"], cell.batch))
    export.update(accelerator=result.get("accelerator"), gpu_load_pct_mean=result.get("gpu_load_pct_mean"))
    spread = process_spread([p["latency_ms_p50"] for p in processes])
    export.update(
        latency_ms_cv=stats["cv"],
        latency_ms_robust_cv=stats["robust_cv"],
        latency_ms_median_ci_low=stats["median_ci_low_ms"],
        latency_ms_median_ci_high=stats["median_ci_high_ms"],
        latency_ms_process_spread=spread,
        noisy=stats["noisy"] or (spread is not None and spread > NOISY_CV),
        truncated=bool(result.get("truncated")),
        processes=len(processes),
    )
    export[PROCESS_P50_FIELD] = [p["latency_ms_p50"] for p in processes]
    profile = result.get("profile")
    if profile:
        export.update(profile_runs=profile.get("runs"), profile_wall_s=profile.get("wall_s"),
                      profile_cost_ratio=profile.get("cost_ratio"))
    export["profile_error"] = result.get("profile_error")
    details = {
        "format_version": RECORD_FORMAT_VERSION,
        "export": export,
        "variant": dict(cell.manifest),
        **{key: result.get(key) for key in (
            "inputs", "provider", "providers_requested", "providers_active", "available_providers", "provider_options",
            "phase_marks",
            "measure_s", "cooldown_s", "peak_rss_reset_supported")},
        "bytes_sent": bytes_sent,
        "model_path": model_path,
        "processes": processes,
        # What was kept of what was measured (orchestrator.settings: max_samples_kept, max_series_rows).
        "latency_samples_total": total,
        "latency_samples_kept": len(latency_ms),
        "latency_summary_exact": total == len(latency_ms) or bool(exact),
        "series_rows_total": int(result.get("samples_total") or len(result.get("samples") or [])),
        "series_rows_kept": len(result.get("samples") or []),
        "profile": profile or None,  # compact: per op type, top nodes, per provider (agent_messages.Profile)
    }
    row = {
        **cell.columns(),
        "status": "ok",
        "runs": runs,
        **{field: stats[field] for field in SUMMARY_FIELDS},
        "fps": stats["fps"] * cell.batch,  # images per second: batch × calls per second
        "load_ms": float(result["load_ms"]),
        "first_inference_ms": float(result["first_inference_ms"]),
        "peak_rss_bytes": result.get("peak_rss_bytes"),
        "facts": dict(facts),
        "details": details,
    }
    return ResultRecord(row, latency_ms, list(result.get("samples") or []))


def energy_fields(result: Mapping[str, Any], latency_ms_mean: float, batch: int) -> dict[str, Any]:
    """The power and energy export fields of a bench result: W × ms = mJ."""
    sources = result.get("power_sources") or []
    power, idle = result.get("power_w_mean"), result.get("power_w_idle")
    energy = None if power is None else float(power) * latency_ms_mean
    return {
        "power_sources": ", ".join(str(s) for s in sources) or None,
        "power_w_mean": power,
        "power_w_idle": idle,
        "energy_mj_per_inference": energy,
        "energy_mj_per_inference_above_idle": None if energy is None or idle is None
        else (float(power) - float(idle)) * latency_ms_mean,
        "energy_mj_per_image": None if energy is None else energy / batch,
    }


def energy_of(record: Mapping[str, Any]) -> float | None:
    """A result's energy per inference (mJ), from a flat export record or a stored result."""
    value = record.get(ENERGY_FIELD, export_of(record).get(ENERGY_FIELD))
    return None if value is None else float(value)


def power_of(record: Mapping[str, Any]) -> float | None:
    """A result's mean board power over the measured phase (W), or None."""
    value = record.get("power_w_mean", export_of(record).get("power_w_mean"))
    return None if value is None else float(value)


def inputs_text(inputs: Sequence[Mapping[str, Any]]) -> str:
    """`images=8x3x640x640; mask=8x640x640`: the shapes the agent fed (its `inputs`)."""
    return "; ".join(f"{i.get('name')}={'x'.join(str(d) for d in i.get('shape') or [])}" for i in inputs)


def cell_label(variant: str, sweep: str) -> str:
    """`fp32 · threads=2`: a variant, and its sweep point when the run swept settings."""
    return f"{variant} · {sweep}" if sweep else variant


def sweep_of(record: Mapping[str, Any]) -> str:
    """A result's sweep point label ("" when its run swept nothing, or it was stored before sweeps)."""
    return str(record.get("sweep") or export_of(record).get("sweep") or "")


def export_of(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The measured export fields of a stored result (with details) or a flat export record."""
    details = record.get("details")
    if isinstance(details, Mapping):
        return details.get("export") or {}
    return record


def identity_of(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a result ran on (IDENTITY_EXPORT_FIELDS), from a flat export record or a stored result."""
    export = export_of(record)
    return tuple(record.get(field, export.get(field)) for field in IDENTITY_EXPORT_FIELDS)


def same_identity(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Two identities name the same cell: every field equal, or unknown (None) on either side."""
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def input_shapes_of(record: Mapping[str, Any]) -> str:
    """`images=8x3x640x640; mask=8x640x640`: what a result fed its model ("" when not recorded)."""
    return str(record.get("input_shapes") or export_of(record).get("input_shapes") or "")


def same_cell(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two results of one board × model × variant measured the same cell: they ran on the same
    identity (same_identity) and fed the same input shapes, or either does not say (the points of a
    `--shape` sweep are other cells though they share every identity field)."""
    return same_identity(identity_of(a), identity_of(b)) and same_shapes(input_shapes_of(a), input_shapes_of(b))


def same_shapes(a: str, b: str) -> bool:
    """Two `input_shapes` texts name the same point, or either is unknown ("")."""
    return not a or not b or a == b


def fed_shapes(record: Mapping[str, Any], shapes: Sequence[str]) -> bool:
    """The result fed every `NAME=1x3x64x64` of `shapes` (a planned cell's open inputs), or does
    not say what it fed."""
    fed = input_shapes_of(record)
    return not fed or set(shapes) <= set(fed.split("; "))


def identity_text(identity: Sequence[Any]) -> str:
    """`openvino bf16, batch 8, 4 threads`: what differs between cells of one board × model × variant."""
    values = dict(zip(IDENTITY_EXPORT_FIELDS, identity))
    parts = [" ".join(str(values[f]) for f in ("runtime", "inference_precision") if values.get(f))]
    if values.get("provider"):
        parts.append(str(values["provider"]).removesuffix("ExecutionProvider"))
    if values.get("batch") not in (None, 1):
        parts.append(f"batch {values['batch']}")
    if values.get("threads"):
        parts.append(f"{values['threads']} thread{'' if values['threads'] == 1 else 's'}")
    return ", ".join(p for p in parts if p)


def paired_base_p50s(record: Mapping[str, Any], base_result_id: int | None) -> list[float]:
    """The baseline model's per-round medians measured beside this record, when it was paired
    with the result `base_result_id`; [] otherwise."""
    export = export_of(record)
    paired_with = record.get(PAIRED_BASE_FIELD, export.get(PAIRED_BASE_FIELD))
    if paired_with is None or base_result_id is None or int(paired_with) != int(base_result_id):
        return []
    values = record.get(PAIRED_BASE_P50_FIELD, export.get(PAIRED_BASE_P50_FIELD))
    return [float(v) for v in values or [] if v is not None]


def process_p50s(record: Mapping[str, Any]) -> list[float]:
    """The median latency (ms) of each fresh worker process a stored result was measured in: from
    a flat export record or a result with details. One entry for one process; none for results
    stored before --repeats existed."""
    values = record.get(PROCESS_P50_FIELD)
    if values is None:
        values = export_of(record).get(PROCESS_P50_FIELD)
    return [float(v) for v in values or [] if v is not None]
