"""What both ends of the agent protocol share: its version, message types, failure kinds, timing
defaults, the names of files the agent keeps on a board, and the reading of runtime errors.

Both sides import this one module instead of reaching into each other: the controller as
`agents.farm_common`, the agent (agents/farm_agent.py) beside it. A board still receives ONE
file: the controller inlines this module into the agent it uploads (orchestrator.agent_bundle),
so keep it stdlib-only, Python >= 3.8, free of `from __future__` imports and side effects.
"""
import re

# 2: the agent session (`serve`): requests and answers tagged by id, heartbeats both ways,
# results streamed in bounded chunks, stage checks in the session.
PROTOCOL_VERSION = 2

# Every message the agent may send (the controller refuses any other type).
MESSAGE_TYPES = (
    "hello", "heartbeat", "facts", "phase", "chunk", "result", "error", "outputs", "lease", "cleaned", "staged",
    "bye",
)

# Liveness and lease timing, in seconds: the defaults of the controller's settings
# (orchestrator.settings.BenchSettings: heartbeat_s, disconnect_after_s, lease_ttl_s) and of the
# agent's own options (serve --heartbeat-s / --controller-timeout-s, lease --ttl). Defined here,
# once, because the agent on a board reads them without the controller's packages.
# The agent and the controller send a heartbeat line every DEFAULT_HEARTBEAT_S.
DEFAULT_HEARTBEAT_S = 2.0
# A board silent this long (not even a heartbeat) is `disconnected`.
DEFAULT_DISCONNECT_AFTER_S = 10.0
# A lease expires this long after its last renewal; an agent that hears nothing from its
# controller for this long cleans up and exits.
DEFAULT_LEASE_TTL_S = 120.0

# The work-dir cleaner's policy (BenchSettings.workdir_max_bytes / workdir_max_age_days, and the
# agent's `clean --max-bytes / --max-age-days`): staged files kept, in bytes, and their age, in days.
DEFAULT_WORKDIR_MAX_BYTES = 2 << 30
DEFAULT_WORKDIR_MAX_AGE_DAYS = 14.0

# Streaming: one chunk message carries at most this many latency values / sampler rows / raw bytes,
# so every line stays far below the controller's line limit whatever the size of the result.
CHUNK_VALUES = 50000
CHUNK_ROWS = 2000
CHUNK_BYTES = 256 * 1024

# Every failed job is stored with exactly one of these kinds; an agent error naming another kind
# is recorded as "agent-error".
FAILURE_KINDS = (
    "unreachable",
    "auth",
    "host-key",
    "timeout",
    "disconnected",
    "oom-killed",
    "disk-full",
    "missing-runtime",
    "model-error",
    "input-error",
    "variant-error",
    "agent-error",
    "interrupted",
    "busy",
)

# The runtimes the agent can load a model with (orchestrator.runtimes describes each one).
RUNTIME_NAMES = ("onnxruntime", "openvino")

# Short onnxruntime execution-provider names users type (--providers CUDA,CPU), and the full
# names onnxruntime knows them by.
ORT_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider", "qnn": "QNNExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider", "armnn": "ArmNNExecutionProvider", "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider", "nnapi": "NnapiExecutionProvider", "dml": "DmlExecutionProvider",
}


# Names that pick a provider AND its options: Qualcomm's QNN execution provider runs a model on
# one QNN backend, the Hexagon NPU (HTP), the CPU or the GPU, chosen by the library it loads.
# Options the user gives for the provider (--provider-options '{"QNN": {...}}') win over these.
PROVIDER_PRESETS = {
    "qnn-htp": ("QNNExecutionProvider", {"backend_path": "libQnnHtp.so"}),
    "qnn-cpu": ("QNNExecutionProvider", {"backend_path": "libQnnCpu.so"}),
    "qnn-gpu": ("QNNExecutionProvider", {"backend_path": "libQnnGpu.so"}),
}

# Which kind of processor an execution provider / OpenVINO device computes on.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider",
                  "MIGraphXExecutionProvider", "DmlExecutionProvider", "WebGpuExecutionProvider")
_CPU_PROVIDERS = ("CPUExecutionProvider", "XnnpackExecutionProvider", "ACLExecutionProvider",
                  "ArmNNExecutionProvider", "DnnlExecutionProvider")


def ort_provider_name(name):
    """`cuda` -> `CUDAExecutionProvider`, `qnn-htp` -> `QNNExecutionProvider`; a full or unknown
    name as it is."""
    preset = PROVIDER_PRESETS.get(name.lower())
    if preset is not None:
        return preset[0]
    return ORT_PROVIDER_ALIASES.get(name.lower(), name)


def provider_preset_options(name):
    """The options a preset name brings (`qnn-htp`: QNN's HTP backend library), else {}."""
    preset = PROVIDER_PRESETS.get(name.lower())
    return dict(preset[1]) if preset else {}


def accelerator_of(provider, options=None):
    """`gpu`, `npu` or `cpu`: what a result computed on, from the provider (or OpenVINO device) that
    ran it and its options (QNN's backend library); None when farm cannot tell."""
    options = options or {}
    if provider in _GPU_PROVIDERS or provider == "GPU":
        return "gpu"
    if provider in _CPU_PROVIDERS or provider == "CPU":
        return "cpu"
    if provider == "NPU":
        return "npu"
    if provider == "QNNExecutionProvider":
        backend = str(options.get("backend_path") or options.get("backend_type") or "").lower()
        for key, kind in (("htp", "npu"), ("dsp", "npu"), ("cpu", "cpu"), ("gpu", "gpu")):
            if key in backend:
                return kind
        return None
    return None


# `farm inventory provision` makes <workdir>/venv from the board's `python` and writes that
# python's name to <workdir>/venv/farm-python; the agent runs in the venv when the two agree.
VENV_DIR_NAME = "venv"
PYTHON_MARKER_NAME = "farm-python"

# The board's lease (who is measuring on it), in its work dir.
LEASE_FILE = "lease.json"

# Files the controller stages in a board's work dir are named by their content: the first 16 hex
# digits of their sha256 and a suffix (an agent: agent-<12 hex digits>.py); dataset outputs the
# agent writes are outputs-<hex>.npz. The work-dir cleaner only ever removes names of this shape.
STAGED_NAME_RE = re.compile(
    r"^([0-9a-f]{16}\.(onnx|npz|xml|bin)|agent-[0-9a-f]{12}\.py|outputs-[0-9a-f]+\.npz)$"
)
# An upload in flight: a staged name plus `.part-<hex>` (renamed into place once its hash is right).
PART_NAME_RE = re.compile(r"^([0-9a-f]{16}\.(onnx|npz|xml|bin)|agent-[0-9a-f]{12}\.py)\.part-[0-9a-f]{6,32}$")


def staged_name(sha256_hex, suffix):
    """The work-dir name of a staged file whose sha256 is `sha256_hex`."""
    return "%s%s" % (sha256_hex[:16], suffix)


def agent_file_name(sha256_hex):
    """The work-dir name of an agent file whose sha256 is `sha256_hex`."""
    return "agent-%s.py" % sha256_hex[:12]


def first_line(exc):
    """A one-line reason: the message's lines joined (runtimes put the cause on later lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (" ".join(lines) if lines else type(exc).__name__)[:500]


def openvino_reason(exc):
    """OpenVINO's message without its C++ source-location lines ("Exception from src/...:84:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    meaningful = [line for line in lines if not re.match(r"^(Exception from |Check '.*' failed at )\S+:\d+:?$", line)]
    return first_line(" ".join(meaningful or lines) or type(exc).__name__)


# --- process identity, Linux: a pid plus its start time and the boot tell a live process from a
# reused pid or one from before a reboot (the agent's leases, the controller's run liveness).


def read_text(path):
    """A small file's text, stripped; None when it cannot be read."""
    try:
        with open(path, "r") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def boot_id():
    """This machine's boot id, or None."""
    return read_text("/proc/sys/kernel/random/boot_id")


def process_start_ticks(pid):
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    text = read_text("/proc/%d/stat" % pid)
    if text is None:
        return None
    try:
        return int(text[text.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None
