"""Every message a board's agent may send, as a schema: what is checked before anything is kept.

A board is untrusted: its agent may be old, broken, or a liar (an inventory `python:` can point
at anything). So each line the controller reads is parsed and validated here, in one pass
(pydantic-core parses the JSON and checks the types together): the protocol version, a known
message type, every field's type (strict: no "12" for 12, no "lots" for a byte count), ranges
(counts and byte sizes non-negative and bounded, latencies positive), finite numbers only (no
NaN or Infinity), known failure kinds and phases, and bounded text. A line that fails becomes
an AgentError ("agent-error") that names the message type and the field, so the job it belongs
to fails and nothing invalid reaches the store.

Board-supplied text is stripped of control characters (escape sequences, carriage returns,
bidirectional overrides) here, before anything stores it or prints it on a terminal.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from agents.farm_common import FAILURE_KINDS, MESSAGE_TYPES, PROTOCOL_VERSION, RUNTIME_NAMES
from orchestrator.errors import AgentError

# C0/C1 controls (ESC included) but tab and newline, DEL, zero-width and bidirectional controls.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def strip_controls(text: str) -> str:
    """`text` without the characters a terminal would act on (see the module docstring)."""
    return _CONTROL_RE.sub("", text)


MAX_COUNT = 2**53  # the largest integer a JSON number carries exactly
MAX_BYTES = 2**53
MAX_MS = 1e9  # ~11.6 days: no single measured duration is longer

Text = Annotated[str, Field(max_length=1_000), AfterValidator(strip_controls)]
LongText = Annotated[str, Field(max_length=20_000), AfterValidator(strip_controls)]
TracebackText = Annotated[str, Field(max_length=100_000), AfterValidator(strip_controls)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Bytes = Annotated[int, Field(ge=0, le=MAX_BYTES)]
Pid = Annotated[int, Field(ge=1, le=2**31)]
Ms = Annotated[float, Field(ge=0, le=MAX_MS)]
LatencyMs = Annotated[float, Field(gt=0, le=MAX_MS)]
Seconds = Annotated[float, Field(ge=0, le=1e9)]
Celsius = Annotated[float, Field(ge=-273.15, le=1000)]
Percent = Annotated[float, Field(ge=0, le=1e6)]  # pidstat -u: more than 100 with several threads
KHz = Annotated[int, Field(ge=0, le=10**9)]
Epoch = Annotated[float, Field(ge=0, le=1e11)]
Phase = Literal["start", "load", "first_inference", "warmup", "measure", "done", "outputs", "profile"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
RequestId = Annotated[int, Field(ge=0, le=MAX_COUNT)]
SMALL = 4096  # most lists and maps (cores, zones, providers, inputs)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


# --------------------------------------------------------------------------------------- parts


class Throttle(_Model):
    source: Text
    raw: Annotated[int, Field(ge=0, le=2**32)]
    throttled: bool


class CgroupLimits(_Model):
    memory_limit_bytes: Optional[Bytes] = None
    cpu_quota_cores: Optional[Annotated[float, Field(ge=0, le=65536)]] = None
    cpuset_cpus: Optional[Text] = None


class ProcessIdentity(_Model):
    pid: Pid
    start: Optional[Count] = None
    boot: Optional[Text] = None
    session: Optional[Text] = None


class Holder(_Model):
    id: Text
    user: Text
    host: Text
    pid: Annotated[int, Field(ge=0, le=2**31)]
    run_id: Optional[Text] = None


class Lease(_Model):
    holder: Holder
    since: Epoch
    expires_at: Epoch
    expires_in_s: Optional[Annotated[float, Field(ge=-1e11, le=1e11)]] = None
    agent: Optional[ProcessIdentity] = None
    worker: Optional[ProcessIdentity] = None


Watts = Annotated[float, Field(ge=0, le=1e6)]
Hz = Annotated[int, Field(ge=0, le=10**13)]


class GpuState(_Model):
    """A Jetson's GPU from sysfs: load (% busy) and devfreq clocks (Hz)."""

    device: Optional[Text] = None
    load_pct: Optional[Annotated[float, Field(ge=0, le=100)]] = None
    freq_hz: Optional[Hz] = None
    min_freq_hz: Optional[Hz] = None
    max_freq_hz: Optional[Hz] = None
    governor: Optional[Text] = None


class NvpModel(_Model):
    """A Jetson's power mode (nvpmodel), from its files."""

    id: Optional[Annotated[int, Field(ge=0, le=1000)]] = None
    name: Optional[Text] = None
    source: Optional[Literal["status", "default"]] = None


class SocFacts(_Model):
    """What the SoC says it is (device tree, soc0, a Jetson's L4T release)."""

    model: Optional[Text] = None
    compatible: list[Text] = Field(default_factory=list, max_length=16)
    machine: Optional[Text] = None
    family: Optional[Text] = None
    soc_id: Optional[Text] = None
    revision: Optional[Text] = None
    l4t_release: Optional[Text] = None


class QnnFacts(_Model):
    """Qualcomm's QNN SDK and the onnxruntime-qnn execution provider, where present."""

    sdk_root: Optional[LongText] = None
    sdk_version: Optional[Text] = None
    ep_version: Optional[Text] = None
    backends: list[Text] = Field(default_factory=list, max_length=16)


class Facts(_Model):
    hostname: Text
    arch: Text
    cpu_model: Optional[Text] = None
    cpu_cores: Optional[Annotated[int, Field(ge=1, le=65536)]] = None
    cpu_cores_available: Optional[Annotated[int, Field(ge=1, le=65536)]] = None
    mem_total_bytes: Optional[Bytes] = None
    os: Optional[Text] = None
    kernel: Optional[Text] = None
    python_version: Text
    python_executable: Text
    governors: dict[Text, Text] = Field(default_factory=dict, max_length=SMALL)
    cpu_freq_khz: dict[Text, KHz] = Field(default_factory=dict, max_length=SMALL)
    cpu_max_freq_khz: dict[Text, KHz] = Field(default_factory=dict, max_length=SMALL)
    temperatures_c: dict[Text, Celsius] = Field(default_factory=dict, max_length=SMALL)
    throttle: Optional[Throttle] = None
    cgroup_limits: CgroupLimits = Field(default_factory=CgroupLimits)
    disk_free_bytes: Optional[Bytes] = None
    workdir: LongText
    lease: Optional[Lease] = None
    agent_version: Text
    numpy_version: Optional[Text] = None
    onnxruntime_version: Optional[Text] = None
    onnxruntime_providers: Optional[list[Text]] = Field(None, max_length=SMALL)
    openvino_version: Optional[Text] = None
    openvino_devices: Optional[list[Text]] = Field(None, max_length=SMALL)
    openvino_precision: Optional[dict[Text, Optional[Text]]] = Field(None, max_length=SMALL)
    openvino_error: Optional[LongText] = None
    runtimes: list[Literal[RUNTIME_NAMES]] = Field(default_factory=list)  # type: ignore[valid-type]
    gpu: Optional[GpuState] = None
    emc_freq_hz: Optional[Hz] = None
    nvpmodel: Optional[NvpModel] = None
    soc: SocFacts = Field(default_factory=SocFacts)
    qnn: Optional[QnnFacts] = None
    power_sources: list[Text] = Field(default_factory=list, max_length=256)


class SampleRow(_Model):
    """One sampler row (pidstat -r/-u style, plus board telemetry)."""

    t_s: Seconds
    phase: Phase
    rss_bytes: Optional[Bytes] = None
    hwm_bytes: Optional[Bytes] = None
    rss_anon_bytes: Optional[Bytes] = None
    rss_file_bytes: Optional[Bytes] = None
    pss_bytes: Optional[Bytes] = None
    minflt: Optional[Count] = None
    majflt: Optional[Count] = None
    cpu_percent: Optional[Percent] = None
    temps_c: dict[Text, Celsius] = Field(default_factory=dict, max_length=SMALL)
    freq_khz: dict[Text, KHz] = Field(default_factory=dict, max_length=SMALL)
    loadavg_1m: Optional[Annotated[float, Field(ge=0, le=1e6)]] = None
    throttled: Optional[bool] = None
    power_w: Optional[Watts] = None  # the board's power (W) over the interval ending here
    power_by_source_w: dict[Text, Watts] = Field(default_factory=dict, max_length=256)
    gpu_load_pct: Optional[Annotated[float, Field(ge=0, le=100)]] = None
    gpu_freq_mhz: Optional[Annotated[float, Field(ge=0, le=1e7)]] = None


class LatencySummary(_Model):
    """The agent's exact summary of every measured run (ms), whatever number of samples it sent."""

    count: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    min_ms: LatencyMs
    max_ms: LatencyMs
    mean_ms: LatencyMs
    stdev_ms: Ms
    p50_ms: LatencyMs
    p90_ms: LatencyMs
    p99_ms: LatencyMs

    @model_validator(mode="after")
    def _ordered(self) -> "LatencySummary":
        order = [self.min_ms, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms]
        slack = 1e-9 * self.max_ms
        if any(b < a - slack for a, b in zip(order, order[1:])) or not (
                self.min_ms - slack <= self.mean_ms <= self.max_ms + slack):
            raise ValueError("the latency summary is not ordered (min <= p50 <= p90 <= p99 <= max, min <= mean <= max)")
        return self


class InputSpec(_Model):
    name: Text
    shape: list[Annotated[int, Field(ge=0, le=2**40)]] = Field(max_length=64)
    dtype: Text


class PhaseMark(_Model):
    phase: Phase
    t_s: Seconds


class RuntimeInfo(_Model):
    runtime: Literal[RUNTIME_NAMES]  # type: ignore[valid-type]
    runtime_version: Text
    provider: Text
    providers_requested: list[Text] = Field(max_length=SMALL)
    providers_active: list[Text] = Field(max_length=SMALL)
    provider_fallback: bool
    available_providers: list[Text] = Field(max_length=SMALL)
    inference_precision: Optional[Text] = None
    provider_options: dict[Text, Text] = Field(default_factory=dict, max_length=SMALL)
    accelerator: Optional[Literal["gpu", "npu", "cpu"]] = None


Micros = Annotated[float, Field(ge=0, le=MAX_MS * 1000)]


class ProfileOp(_Model):
    """One operator type on one provider in the profiling pass: µs per inference, nodes executed,
    the runtime's kernels for it (OpenVINO exec types such as brgconv_avx512_f32, slowest first)."""

    op_type: Text
    provider: Text
    us_per_run: Micros
    nodes: Count
    kernels: list[Text] = Field(default_factory=list, max_length=16)


class ProfileNode(_Model):
    name: Text
    op_type: Text
    provider: Text
    us_per_run: Micros
    kernel: Optional[Text] = None


class ProfileProvider(_Model):
    """Nodes executed on one provider (a compiled subgraph counts as one), their time, op types."""

    provider: Text
    nodes: Count
    us_per_run: Micros
    op_types: list[Text] = Field(default_factory=list, max_length=256)


class Profile(_Model):
    """The profiling pass of a bench job: after the timed runs, on a second, profiled session.

    `runs` inferences were counted (of `runs_asked`; `truncated` when its time bound stopped it),
    `run_ms_p50` is their median wall time with the profiler on; every µs figure is a node's
    median over them, summed (`op_ms_per_run`: all nodes); `wall_s` the whole pass (session,
    runs, reading the trace) and `cost_ratio` that over the measured phase of the same worker."""

    source: Literal["onnxruntime-profiler", "openvino-perf-counters"]
    runs: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    runs_asked: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    truncated: bool
    run_ms_p50: Ms
    op_ms_per_run: Ms
    wall_s: Seconds
    cost_ratio: Optional[Annotated[float, Field(ge=0, le=1e12)]] = None
    nodes_executed: Count
    nodes_not_run: Optional[Count] = None
    ops: list[ProfileOp] = Field(max_length=1024)
    top_nodes: list[ProfileNode] = Field(max_length=64)
    providers: list[ProfileProvider] = Field(max_length=64)


class BenchResult(RuntimeInfo):
    """A bench job's result, without its streamed samples and time series."""

    latency: LatencySummary
    latency_samples_total: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    latency_samples_kept: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    load_ms: Ms
    first_inference_ms: Ms
    measure_s: Seconds
    truncated: bool
    peak_rss_load_bytes: Optional[Bytes] = None
    peak_rss_inference_bytes: Optional[Bytes] = None
    peak_rss_reset_supported: bool
    peak_rss_bytes: Optional[Bytes] = None
    worker_pid: Pid
    inputs: list[InputSpec] = Field(max_length=SMALL)
    outputs_error: Optional[LongText] = None
    cooldown_s: Seconds
    temp_c_after_cooldown: Optional[Celsius] = None
    sample_interval_s: Seconds
    phase_marks: list[PhaseMark] = Field(max_length=64)
    temp_c_max: Optional[Celsius] = None
    freq_drop: bool
    throttled: bool
    cpu_percent_mean: Optional[Percent] = None
    rss_steady_bytes: Optional[Bytes] = None
    power_sources: list[Text] = Field(default_factory=list, max_length=256)
    power_w_idle: Optional[Watts] = None
    power_w_mean: Optional[Watts] = None
    gpu_load_pct_mean: Optional[Annotated[float, Field(ge=0, le=100)]] = None
    samples_total: Count
    samples_kept: Count
    profile: Optional[Profile] = None  # --profile: the profiling pass, after the timed runs
    profile_error: Optional[LongText] = None  # why a profiling pass asked for has no profile

    @model_validator(mode="after")
    def _counts(self) -> "BenchResult":
        if self.latency.count != self.latency_samples_total:
            raise ValueError("latency.count differs from latency_samples_total")
        if self.latency_samples_kept > self.latency_samples_total or self.samples_kept > self.samples_total:
            raise ValueError("more samples kept than measured")
        return self


class StagedFile(_Model):
    name: Text
    present: bool


# --------------------------------------------------------------------------------------- messages


class _Message(_Model):
    v: Literal[PROTOCOL_VERSION]  # type: ignore[valid-type]
    id: Optional[RequestId] = None


class Hello(_Message):
    type: Literal["hello"]
    agent_version: Text
    session: Text
    pid: Pid
    workdir: LongText
    python_executable: LongText
    python_version: Text
    heartbeat_s: Annotated[float, Field(gt=0, le=3600)]
    controller_timeout_s: Annotated[float, Field(gt=0, le=1e6)]


class Heartbeat(_Message):
    type: Literal["heartbeat"]


class FactsMessage(_Message):
    type: Literal["facts"]
    facts: Facts


class PhaseMessage(_Message):
    type: Literal["phase"]
    phase: Phase


class LatencyChunk(_Message):
    type: Literal["chunk"]
    field: Literal["latency_ms"]
    seq: Count
    values: list[LatencyMs] = Field(max_length=100_000)


class SamplesChunk(_Message):
    type: Literal["chunk"]
    field: Literal["samples"]
    seq: Count
    values: list[SampleRow] = Field(max_length=10_000)


class OutputsChunk(_Message):
    type: Literal["chunk"]
    field: Literal["outputs_npz"]
    seq: Count
    data: Annotated[str, Field(max_length=2 * 1024 * 1024, pattern=r"^[A-Za-z0-9+/=]*$")]


Chunk = Annotated[Union[LatencyChunk, SamplesChunk, OutputsChunk], Field(discriminator="field")]


class ResultMessage(_Message):
    type: Literal["result"]
    result: BenchResult


class OutputsMessage(_Message):
    type: Literal["outputs"]
    count: Count
    output_names: list[Text] = Field(max_length=SMALL)
    runtime: RuntimeInfo
    path: Optional[LongText] = None
    size_bytes: Optional[Bytes] = None
    sha256: Optional[Sha256] = None


class LeaseMessage(_Message):
    type: Literal["lease"]
    acquired: bool
    lease: Optional[Lease] = None
    released: Optional[bool] = None
    lost: Optional[bool] = None
    killed: list[Pid] = Field(default_factory=list, max_length=SMALL)
    previous: Optional[Lease] = None  # the expired lease of another holder that an acquire replaced


class CleanedMessage(_Message):
    type: Literal["cleaned"]
    removed: list[Text] = Field(max_length=1_000_000)
    freed_bytes: Bytes


class StagedMessage(_Message):
    type: Literal["staged"]
    files: list[StagedFile] = Field(max_length=SMALL)


class ErrorMessage(_Message):
    type: Literal["error"]
    kind: Literal[FAILURE_KINDS]  # type: ignore[valid-type]
    message: Optional[LongText] = None
    traceback: Optional[TracebackText] = None


class Bye(_Message):
    type: Literal["bye"]


AgentMessage = Annotated[
    Union[Hello, Heartbeat, FactsMessage, PhaseMessage, Chunk, ResultMessage, OutputsMessage, LeaseMessage,
          CleanedMessage, StagedMessage, ErrorMessage, Bye],
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AgentMessage)
assert {m.model_fields["type"].annotation.__args__[0] for m in (  # type: ignore[union-attr]
    Hello, Heartbeat, FactsMessage, PhaseMessage, LatencyChunk, ResultMessage, OutputsMessage, LeaseMessage,
    CleanedMessage, StagedMessage, ErrorMessage, Bye)} == set(MESSAGE_TYPES)

QUOTE_CHARS = 80


def parse_agent_line(line: str | bytes) -> Any:
    """One protocol line -> its validated message model, or AgentError saying what is wrong."""
    try:
        return _ADAPTER.validate_json(line)
    except ValidationError as exc:
        raise AgentError(_diagnose(line, exc)) from None


def _quote(value: Any) -> str:
    return strip_controls(repr(value)[:QUOTE_CHARS])


def _diagnose(line: str | bytes, exc: ValidationError) -> str:
    """Why a line is not a valid message, in the words of the protocol (version, type, field)."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    try:
        message = json.loads(text)
    except ValueError:
        return f"agent answered something that is not protocol JSON: {_quote(text)}"
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return f"agent message without a type: {_quote(text)}"
    if message.get("v") != PROTOCOL_VERSION:
        return (f"agent speaks protocol {_quote(message.get('v'))}, this controller speaks {PROTOCOL_VERSION}: "
                "upgrade farm or the agent")
    if message["type"] not in MESSAGE_TYPES:
        return f"unknown agent message type {_quote(message['type'])}"
    error = exc.errors()[0]
    parts = list(error["loc"][1:])  # the first is the union's tag: the message type
    if message["type"] == "chunk" and parts and parts[0] in ("latency_ms", "samples", "outputs_npz"):
        parts = parts[1:]  # the chunk's own tag: its field
    where = ".".join(str(part) for part in parts) or "(message)"
    return (f"agent sent an invalid {message['type']} message: field {where}: {strip_controls(error['msg'])} "
            f"(got {_quote(error.get('input'))})")


__all__ = [
    "AgentMessage", "BenchResult", "Chunk", "ErrorMessage", "Facts", "Hello", "LatencyChunk", "Lease", "OutputsChunk",
    "OutputsMessage", "Profile", "SampleRow", "SamplesChunk", "parse_agent_line", "strip_controls",
]
