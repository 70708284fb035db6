"""How farm measures and judges: ONE validated definition of every setting, its default, bounds,
unit and help text.

Everything else derives from these models instead of restating them:
* the command line: `farm bench`'s options take their defaults and help from the fields
  (orchestrator.cli.options), and a value out of bounds is refused by the same validation;
* suite files: `settings:` accepts the fields marked `suite=True`, each optional, with the same
  checks (`SuiteSettings`), and `thresholds:` is `Thresholds`;
* the agent: the controller always sends every measurement argument (`bench_args`), so the
  agent has no defaults of its own to drift apart. The few the agent must know by itself
  (heartbeat, lease ttl, the work-dir cleaner's policy) are defined in agents.farm_common, which
  the agent reads without farm's packages, and the fields here take their defaults from there.

A field marked `identity=True` changes what is measured: it is part of the settings hash that
identifies a result cell (timeouts and retries are not).
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Optional, Sequence

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic.fields import FieldInfo

from agents.farm_common import (
    DEFAULT_DISCONNECT_AFTER_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_WORKDIR_MAX_AGE_DAYS,
    DEFAULT_WORKDIR_MAX_BYTES,
)
from orchestrator.analysis import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT_PCT
from orchestrator.boards import Board
from orchestrator.runtimes import DEFAULT_RUNTIME, board_runtime, resolve_runtime, runtime_names_text

#: Fresh worker processes per cell when a run is compared with a baseline and --repeats is not
#: given: samples of one process are not independent evidence (a model's median moves 10-15 %
#: between processes here), so verdicts test process medians; with one process per cell an A/A
#: pair was flagged in 7 of 10 pairs, with five in 0 of 10 (bench/RESULTS.md, ## repeats).
GATE_REPEATS = 5

SHAPE_RE = re.compile(r"^[^=\s]+=[1-9]\d*(x[1-9]\d*)*$")  # NAME=1x3x224x224 (no dim of 0)
DIMS_RE = re.compile(r"^[1-9]\d*(x[1-9]\d*)*$")
MIN_SAMPLE_INTERVAL_S = 0.01
#: Upper bounds of the settings: generous, but finite, so a typo (or `inf`) is a usage error
#: naming the flag instead of an overflow in the middle of a run.
MAX_DURATION_S = 7 * 86_400.0  # any duration: a week
MAX_RUNS = 100_000_000
MAX_REPEATS = 1_000
MAX_THREADS = 1_024
MAX_BATCH = 1_000_000
#: Boards measured, checked or provisioned in parallel (--forks, a suite's `boards: {forks: N}`).
MAX_FORKS = 1_024


def setting(default: Any, description: str, *, cli: str | None = None, suite: bool = True, identity: bool = True,
            alias: str | None = None, **constraints: Any) -> Any:
    """A settings field: its default, help text, command-line flag, whether suite files may set
    it, and whether it is part of the cell identity (the settings hash)."""
    return Field(default, description=description, alias=alias,
                 json_schema_extra={"cli": cli, "suite": suite, "identity": identity}, **constraints)


def field_meta(info: FieldInfo) -> dict[str, Any]:
    return dict(info.json_schema_extra or {})  # type: ignore[arg-type]


def flag_of(field: str) -> str:
    """The command-line flag of a BenchSettings field (`--runs` for min_runs)."""
    info = BenchSettings.model_fields[field]
    return str(field_meta(info).get("cli") or "--" + field.replace("_", "-"))


# --- value checks shared by the command line and suite files --------------------------------------


def _sample_interval(value: float) -> float:
    if 0 < value < MIN_SAMPLE_INTERVAL_S:
        raise ValueError(f"must be 0 (sampling off) or at least {MIN_SAMPLE_INTERVAL_S:g} s")
    return value


def _shape(value: str) -> str:
    if not isinstance(value, str) or not SHAPE_RE.match(value):
        raise ValueError(f"has {value!r}; write NAME=1x3x224x224")
    return value


def _runtime(value: str | None) -> str | None:
    return None if value is None else resolve_runtime(value)


def _provider_list(value: Any) -> Any:
    """`CUDA,CPU` (the command line) or a list (suite files) -> a tuple of names."""
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    return tuple(value) if isinstance(value, list) else value


def parse_provider_options(text: str) -> dict[str, dict[str, Any]]:
    """`{"CUDA": {"device_id": "0"}}` -> the dict; ValueError saying what is wrong otherwise.

    Keys are onnxruntime provider names (CUDA, CUDAExecutionProvider, ...) or OpenVINO devices
    (CPU, GPU, NPU); values are that provider's options or that device's properties.
    """
    example = "e.g. '{\"CUDA\": {\"device_id\": \"0\"}}' or '{\"CPU\": {\"INFERENCE_PRECISION_HINT\": \"f32\"}}'"
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"is not JSON ({exc}); {example}") from None
    except RecursionError:
        raise ValueError(f"is nested too deeply; {example}") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"must be a JSON object of objects, {{provider: {{option: value}}}}; {example}")
    return options


def _provider_options(value: Any) -> Any:
    """A JSON text (command line) or a mapping (suite files) -> canonical JSON text."""
    if isinstance(value, dict):
        for options in value.values():
            if not isinstance(options, dict) or not all(
                    isinstance(v, (str, int, float, bool)) for v in options.values()):
                raise ValueError("must map each provider to {option: value} with plain values")
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str):
        parse_provider_options(value)
    return value


SampleInterval = Annotated[float, Field(ge=0, le=3600), AfterValidator(_sample_interval)]
Shapes = Annotated[tuple[Annotated[str, AfterValidator(_shape)], ...], BeforeValidator(
    lambda v: tuple(v) if isinstance(v, list) else v)]
RuntimeName = Annotated[Optional[str], AfterValidator(_runtime)]
Providers = Annotated[tuple[str, ...], BeforeValidator(_provider_list)]
ProviderOptions = Annotated[Optional[str], BeforeValidator(_provider_options)]


def check_joint_rules(min_seconds: float, max_seconds: float) -> None:
    """The rules between BenchSettings fields (a ValueError naming them)."""
    if min_seconds > max_seconds:
        raise ValueError("min_seconds must not exceed max_seconds")


class BenchSettings(BaseModel):
    """How each job measures. Units in the names; `threads=0` means the runtime's default."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)

    min_runs: int = setting(100, "Measure at least this many runs...", cli="--runs", alias="runs", ge=1, le=MAX_RUNS)
    min_seconds: float = setting(1.0, "...and at least this many seconds.", cli="--min-seconds", ge=0, le=MAX_DURATION_S)
    max_seconds: float = setting(
        300.0, "Stop measuring after this long even if --runs is not reached (marked truncated).",
        cli="--max-seconds", identity=False, gt=0, le=MAX_DURATION_S)
    warmup: int = setting(10, "Unmeasured runs after the first inference.", cli="--warmup", ge=0, le=MAX_RUNS)
    repeats: int = setting(
        1, "Measure each cell in this many fresh worker processes, in rounds across a board's cells; "
        "comparisons then test the process medians. A run compared with a baseline (--baseline, "
        f"--fail-on-regression, --junit, --markdown, a suite's thresholds) takes {GATE_REPEATS} unless given.",
        cli="--repeats", ge=1, le=MAX_REPEATS)
    threads: int = setting(0, "Intra-op threads on the board (0: the runtime's default).", cli="--threads", ge=0,
                         le=MAX_THREADS)
    batch: Optional[int] = setting(
        None, "Images per call: the leading (batch) dim of every input whose leading dim is symbolic (default 1, "
        "or what --shape says); a model that fixes its batch refuses it before measuring.", cli="--batch", ge=1,
        le=MAX_BATCH)
    sample_interval_s: SampleInterval = setting(
        1.0, "Memory/CPU/thermal sampling interval in seconds (0.01–; 0 turns sampling off).",
        cli="--sample-interval")
    cooldown_s: float = setting(0.0, "Seconds to rest the board before each job.", cli="--cooldown", ge=0,
                              le=MAX_DURATION_S)
    cooldown_below_c: Optional[float] = setting(
        None, "Also wait (capped) until the hottest thermal zone is below this °C.", cli="--cooldown-below",
        ge=-273.15, le=1000)
    cooldown_max_s: float = setting(60.0, "Longest wait for --cooldown-below, seconds.", identity=False, ge=0,
                                   le=MAX_DURATION_S)
    idle_power_s: float = setting(
        1.0, "On a board with power sensors, seconds of idle power sampled before each job (the baseline "
        "subtracted in energy_mj_per_inference_above_idle; 0: none).", cli="--idle-power", identity=False, ge=0,
        le=60)
    shapes: Shapes = setting((), "Input shape for dynamic dims, NAME=1x3x224x224 (repeatable).", cli="--shape",
                             suite=False)
    cpu_arena: bool = setting(
        True, "onnxruntime's CPU memory arena (off: buffers return to the OS after each run).", cli="--cpu-arena")
    runtime: RuntimeName = setting(
        None, f"{runtime_names_text()} (default: the board's inventory runtime, else {DEFAULT_RUNTIME}).",
        cli="--runtime")
    providers: Providers = setting(
        (), "Ordered execution providers (onnxruntime: CUDA,TensorRT,OpenVINO,QNN,XNNPACK,ACL,CPU…; QNN-HTP, "
        "QNN-CPU pick QNN's backend) or OpenVINO devices (CPU,GPU,NPU).", cli="--providers")
    provider_options: ProviderOptions = setting(
        None, 'JSON per provider, e.g. \'{"CUDA": {"device_id": "0"}}\'.', cli="--provider-options")
    strict: bool = setting(
        False, "Fail a job whose requested provider is not what ran (onnxruntime falls back to CPU silently).",
        cli="--strict")
    profile: bool = setting(
        False, "After each cell's timed runs, profile it per operator on a second, profiled session (the "
        "timed runs never carry the profiler); see farm ops.", cli="--profile", identity=False)
    profile_runs: int = setting(
        20, "Inferences the profiling pass counts (after two uncounted ones).", cli="--profile-runs", identity=False,
        ge=1, le=100_000)
    profile_max_seconds: float = setting(
        30.0, "Stop the profiling pass's inferences after this long (at least one is profiled).",
        cli="--profile-max-seconds", identity=False, gt=0, le=MAX_DURATION_S)
    lease_ttl_s: float = setting(
        DEFAULT_LEASE_TTL_S,
        "Our lease on a board expires this long after our last renewal (renewed every third of it).",
        cli="--lease-ttl", suite=False, identity=False, ge=5, le=86_400)
    lease_wait_s: float = setting(
        60.0, "Seconds to wait for a board another controller holds (0: skip it at once).", cli="--lease-wait",
        suite=False, identity=False, ge=0, le=MAX_DURATION_S)
    workdir_max_bytes: int = setting(DEFAULT_WORKDIR_MAX_BYTES, "Staged files kept on a board (LRU beyond this).",
                                     suite=False, identity=False, ge=0, le=1 << 50)
    workdir_max_age_days: float = setting(
        DEFAULT_WORKDIR_MAX_AGE_DAYS, "Staged files not used by this run and older than this go.", suite=False,
        identity=False, ge=0, le=36_500)
    retries: int = setting(2, "Retries of connection-level failures (never of a failed measurement).",
                           suite=False, identity=False, ge=0, le=20)
    retry_backoff_s: float = setting(1.0, "Pause before the first retry, doubled after each.", suite=False,
                                     identity=False, ge=0, le=600)
    load_timeout_s: float = setting(300.0, "Longest model load and first inference, seconds.", identity=False,
                                    gt=0, le=MAX_DURATION_S)
    heartbeat_s: float = setting(
        DEFAULT_HEARTBEAT_S, "The board's agent and the controller send a heartbeat line this often, seconds.",
        suite=False, identity=False, ge=0.1, le=60)
    disconnect_after_s: float = setting(
        DEFAULT_DISCONNECT_AFTER_S,
        "A board silent this long (no line, not even a heartbeat) is `disconnected`: a half-open link "
        "is found that way.", suite=False, identity=False, ge=1, le=600)
    max_samples_kept: int = setting(
        5_000_000, "Latency samples kept per job: beyond this the board sends an evenly spaced subset (the "
        "summary columns still cover every run, and the record says how many were kept).", suite=False,
        identity=False, ge=1000, le=50_000_000)
    max_series_rows: int = setting(
        100_000, "Sampler rows (memory/CPU/thermal time series) kept per job, evenly spaced beyond this.",
        suite=False, identity=False, ge=100, le=10_000_000)

    @model_validator(mode="after")
    def _joint_rules(self) -> "BenchSettings":
        check_joint_rules(self.min_seconds, self.max_seconds)
        return self

    def replace(self, **changes: Any) -> "BenchSettings":
        """A copy with `changes` (field names), validated like any new settings."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def record(self) -> dict[str, Any]:
        """The settings as stored with a run (the names suite files use)."""
        return self.model_dump(by_alias=True, mode="json")

    def settings_hash(self) -> str:
        """Identifies settings that change what is measured (not timeouts)."""
        measured = {
            (info.alias or name): value for name, info in type(self).model_fields.items()
            if field_meta(info).get("identity") for value in [getattr(self, name)]
        }
        if measured["repeats"] == 1:
            measured.pop("repeats")  # one process, as before --repeats existed: stored hashes stay valid
        if measured["batch"] is None:
            measured.pop("batch")  # the batch the shapes say, as before --batch existed
        text = json.dumps(measured, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def job_timeout_s(self) -> float:
        profiling_s = self.load_timeout_s + self.profile_max_seconds if self.profile else 0.0
        return (self.max_seconds + self.load_timeout_s + self.cooldown_s + self.cooldown_max_s + self.idle_power_s
                + profiling_s)

    def runtime_args(self, board: Board, variant_runtime: str | None = None) -> list[str]:
        """--runtime/--provider/--strict for a board: run settings first, then the inventory's.

        A variant whose format only one runtime reads (`variant_runtime`, an OpenVINO IR) runs on
        that runtime; the run's providers and provider options name another runtime's devices
        then, so that variant gets its runtime's default device.
        """
        run_runtime = self.runtime or board_runtime(board.tags)
        runtime = variant_runtime or run_runtime
        args = ["--runtime", runtime, "--threads", str(self.threads)]
        if runtime == run_runtime:
            for provider in self.providers or board.providers:
                args += ["--provider", provider]
            if self.provider_options:
                args += ["--provider-options", self.provider_options]
        if self.strict:
            args.append("--strict")
        return args

    def bench_args(self, model_args: Sequence[str], board: Board, shapes: Sequence[str] = (),
                   variant_runtime: str | None = None, profile_pass: bool = True) -> list[str]:
        """The agent's bench arguments: every measurement setting, always sent (the agent has no
        defaults). `model_args` are `--model PATH [--weights PATH]` on the board; `shapes` the
        cell's resolved input shapes (orchestrator.shapes; this run's --shape values are in them).
        `profile_pass`: this job is the one that profiles, when --profile is on (with --repeats,
        one process of the cell profiles, not every one)."""
        args = [
            *model_args,
            "--runs", str(self.min_runs),
            "--min-seconds", repr(self.min_seconds),
            "--max-seconds", repr(self.max_seconds),
            "--warmup", str(self.warmup),
            *self.runtime_args(board, variant_runtime),
            "--sample-interval", repr(self.sample_interval_s),
            "--cooldown-s", repr(self.cooldown_s),
            "--cooldown-max-s", repr(self.cooldown_max_s),
            "--profile-runs", str(self.profile_runs if self.profile and profile_pass else 0),
            "--profile-max-seconds", repr(self.profile_max_seconds),
            "--idle-power-s", repr(self.idle_power_s),
        ]
        if self.cooldown_below_c is not None:
            args += ["--cooldown-below-c", repr(self.cooldown_below_c)]
        for shape in shapes:
            args += ["--shape", shape]
        if not self.cpu_arena:
            args.append("--no-cpu-arena")
        return args


def _suite_settings_model() -> type[BaseModel]:
    """BenchSettings' suite fields, each optional (unset = the command line's value or farm's
    default), with the same types and checks."""
    fields: dict[str, Any] = {}
    for name, info in BenchSettings.model_fields.items():
        if not field_meta(info).get("suite"):
            continue
        inner = Annotated.__class_getitem__((info.annotation, *info.metadata)) if info.metadata else info.annotation
        fields[info.alias or name] = (Optional[inner], Field(None, description=info.description))
    return create_model("SuiteSettings", __config__=ConfigDict(extra="forbid", strict=True, frozen=True,
                                                                allow_inf_nan=False), **fields)


SuiteSettingsBase = _suite_settings_model()


class SuiteSettings(SuiteSettingsBase):  # type: ignore[valid-type, misc]
    """A suite file's `settings:`: any BenchSettings field a suite may set, by the name suites use."""

    @model_validator(mode="after")
    def _joint_rules(self) -> "SuiteSettings":
        """BenchSettings' rules between fields, over farm's defaults, so the suite's own line is
        named (with the command line's values they are checked again: suite.bench_settings)."""
        defaults = BenchSettings.model_fields
        check_joint_rules(*(getattr(self, name) if getattr(self, name) is not None else defaults[name].default
                            for name in ("min_seconds", "max_seconds")))
        return self

    def given(self) -> dict[str, Any]:
        """The settings the suite sets (the others keep the command line's), by field alias."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


#: The smallest threshold (%) farm accepts for a change to count, wherever one is given: a
#: suite's `thresholds:`, and `--fail-on-regression`, `--fail-on-memory-regression`, `--min-effect`
#: on the command line (orchestrator.cli.options.threshold_option). The comparison engine needs
#: a positive one.
MIN_THRESHOLD_PCT = 0.01
#: The largest: a change of 10,000 % is a hundredfold, well past any threshold that means something.
MAX_THRESHOLD_PCT = 10_000.0


class Thresholds(BaseModel):
    """Smallest changes (%) that count as a regression; see orchestrator.gating."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    latency_pct: float = Field(DEFAULT_MIN_EFFECT_PCT, ge=MIN_THRESHOLD_PCT, le=MAX_THRESHOLD_PCT,
                               description="Smallest median-latency change (%) that counts.")
    memory_pct: float = Field(DEFAULT_MIN_EFFECT_PCT, ge=MIN_THRESHOLD_PCT, le=MAX_THRESHOLD_PCT,
                              description="Smallest peak-memory change (%) that counts.")


__all__ = [
    "BenchSettings", "DEFAULT_ALPHA", "DEFAULT_MIN_EFFECT_PCT", "DEFAULT_RUNTIME", "MAX_FORKS", "MAX_THRESHOLD_PCT",
    "MIN_THRESHOLD_PCT", "SuiteSettings",
    "Thresholds", "parse_provider_options",
]
