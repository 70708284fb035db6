#!/usr/bin/env python3
"""farm board agent: one file, Python >= 3.8, stdlib (+ numpy and onnxruntime for inference).

The controller uploads this file to the board as ``agent-<sha256[:12]>.py`` and runs it with a
verb. Everything on stdout is protocol: one JSON object per line, each carrying the protocol
version ``v``. Logs go to stderr. Every error is a JSON object
``{"v": 1, "type": "error", "kind": ..., "message": ..., "traceback": ...}``.

Verbs
  facts                 what the board is: arch, CPU, RAM, OS, Python, runtimes, governor,
                        temperatures, throttle state, cgroup limits, free disk.
  bench  --model PATH [--weights BIN]
                        load the model in a worker child process, time load and first
                        inference, warm up, then measure at least --runs runs AND at least
                        --min-seconds seconds; sample the worker's memory/CPU and the board's
                        temperature/frequency meanwhile (pidstat -r/-u style, read from /proc).
  outputs --model PATH --dataset NPZ --out NPZ
                        run every input of a dataset through the model, save the outputs
                        for the controller to score (accuracy is scored on the controller).

Why a worker child: the parent can watch it from outside (/proc/<pid>), an OOM kill of the
worker is seen as SIGKILL (exit 137) instead of a dropped connection, and the sampler's own
memory and CPU stay out of the figures (the worker holds this module too: ~1 MiB of stdlib
imports besides the runtime and the model).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

# farm:common-begin -- the controller replaces this block with agents/farm_common.py itself when
# it uploads the agent (orchestrator.agent_bundle), so a board receives one file.
try:
    from farm_common import (LEASE_FILE, PROTOCOL_VERSION, RUNTIME_NAMES, STAGED_NAME_RE, first_line,
                             openvino_reason, ort_provider_name)
except ImportError:  # imported as agents.farm_agent (tests, bench scripts)
    from agents.farm_common import (LEASE_FILE, PROTOCOL_VERSION, RUNTIME_NAMES, STAGED_NAME_RE, first_line,
                                    openvino_reason, ort_provider_name)
# farm:common-end

AGENT_VERSION = "0.2.0"

# Tests point these at a fake sysfs/procfs tree to simulate a hot, throttling board.
SYSFS_ROOT = os.environ.get("FARM_SYSFS_ROOT", "/sys")
VCGENCMD = os.environ.get("FARM_VCGENCMD", "vcgencmd")


class AgentFailure(Exception):
    """An expected failure with a kind the controller records (model-error, input-error, ...)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


# ---------------------------------------------------------------------------------------------
# protocol

_emit_lock = threading.Lock()


def emit(message_type, **fields):
    message = {"v": PROTOCOL_VERSION, "type": message_type}
    message.update(fields)
    line = json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def emit_error(kind, message, tb=None):
    emit("error", kind=kind, message=message, traceback=tb)


def log(message):
    sys.stderr.write("farm-agent: %s\n" % message)
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# small readers (every path read defensively: absent means None)


def read_text(path):
    try:
        with open(path, "r") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def read_int(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def sys_path(*parts):
    return os.path.join(SYSFS_ROOT, *parts)


def proc_status(pid):
    """Memory fields of /proc/<pid>/status in bytes (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    values = {}
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key.startswith("Vm") or key.startswith("Rss"):
                    parts = rest.split()
                    if len(parts) == 2 and parts[1] == "kB":
                        values[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        return None
    return values


def proc_pss_bytes(pid):
    """PSS from smaps_rollup (Linux >= 4.14); None where absent."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_stat_times(pid):
    """(utime_s, stime_s, minflt, majflt) of a process from /proc/<pid>/stat."""
    text = read_text("/proc/%d/stat" % pid)
    if text is None:
        return None
    try:
        fields = text[text.rindex(")") + 2:].split()
        ticks = os.sysconf("SC_CLK_TCK")
        # fields[0] is state (field 3); minflt=10, majflt=12, utime=14, stime=15 (1-based)
        minflt = int(fields[7])
        majflt = int(fields[9])
        utime = int(fields[11]) / float(ticks)
        stime = int(fields[12]) / float(ticks)
        return utime, stime, minflt, majflt
    except (ValueError, IndexError):
        return None


def per_cpu(relative, read):
    """{cpuN: read(<sysfs>/devices/system/cpu/cpuN/<relative>)} for every core that has the file."""
    base = sys_path("devices", "system", "cpu")
    values = {}
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return values
    for name in names:
        if name.startswith("cpu") and name[3:].isdigit():
            value = read(os.path.join(base, name, relative))
            if value is not None:
                values[name] = value
    return values


def cpu_freqs_khz():
    """Current frequency of each core in kHz; empty where cpufreq is absent."""
    return per_cpu(os.path.join("cpufreq", "scaling_cur_freq"), read_int)


def cpu_max_freqs_khz():
    return per_cpu(os.path.join("cpufreq", "cpuinfo_max_freq"), read_int)


def governors():
    return per_cpu(os.path.join("cpufreq", "scaling_governor"), read_text)


def thermal_zones_c():
    """{zone type (or name): degrees C} for every readable thermal zone."""
    base = sys_path("class", "thermal")
    temps = {}
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return temps
    for name in names:
        if not name.startswith("thermal_zone"):
            continue
        milli = read_int(os.path.join(base, name, "temp"))
        if milli is None:
            continue
        label = read_text(os.path.join(base, name, "type")) or name
        if label in temps:
            label = "%s-%s" % (label, name)
        temps[label] = milli / 1000.0
    return temps


_VCGENCMD_PATH = []


def vcgencmd_path():
    """Where vcgencmd is (looked up once: the sampler asks often)."""
    if not _VCGENCMD_PATH:
        _VCGENCMD_PATH.append(shutil.which(VCGENCMD) if os.path.basename(VCGENCMD) == VCGENCMD else VCGENCMD)
    return _VCGENCMD_PATH[0]


def throttle_state():
    """The board's own throttle indicator where it has one, else None.

    Raspberry Pi: `vcgencmd get_throttled` (bit 2 = currently throttled, bit 1 = capped,
    bit 0 = under-voltage). Others: a `throttle` file under the sysfs root (tests) — absent
    on ordinary machines.
    """
    path = vcgencmd_path()
    if path and os.path.exists(path):
        try:
            out = subprocess.run(
                [path, "get_throttled"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                timeout=2, universal_newlines=True,
            ).stdout
            value = int(out.strip().split("=")[-1], 16)
            return {"source": "vcgencmd", "raw": value, "throttled": bool(value & 0x6)}
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    value = read_int(sys_path("farm", "throttled"))
    if value is not None:
        return {"source": "sysfs", "raw": value, "throttled": bool(value)}
    return None


def cgroup_limits():
    """CPU and memory limits of this process's cgroup (v1 or v2); {} when unlimited/absent.

    Inside a cgroup `free` and /proc/cpuinfo show the host, so a board must report these.
    """
    limits = {}
    text = read_text("/proc/self/cgroup") or ""
    v1 = {}
    v2_path = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        for controller in parts[1].split(","):
            v1[controller] = parts[2]
    cg = os.path.join(SYSFS_ROOT, "fs", "cgroup")
    if "memory" in v1:
        limit = read_int(os.path.join(cg, "memory", v1["memory"].lstrip("/"), "memory.limit_in_bytes"))
        if limit is not None and limit < (1 << 60):
            limits["memory_limit_bytes"] = limit
    if "cpu" in v1:
        base = os.path.join(cg, "cpu", v1["cpu"].lstrip("/"))
        if not os.path.isdir(base):
            base = os.path.join(cg, "cpu,cpuacct", v1["cpu"].lstrip("/"))
        quota = read_int(os.path.join(base, "cpu.cfs_quota_us"))
        period = read_int(os.path.join(base, "cpu.cfs_period_us"))
        if quota is not None and period and quota > 0:
            limits["cpu_quota_cores"] = round(quota / float(period), 3)
    if "cpuset" in v1:
        cpus = read_text(os.path.join(cg, "cpuset", v1["cpuset"].lstrip("/"), "cpuset.cpus"))
        if cpus:
            limits["cpuset_cpus"] = cpus
    if v2_path is not None and not v1.get("memory"):
        base = os.path.join(cg, v2_path.lstrip("/"))
        mem = read_text(os.path.join(base, "memory.max"))
        if mem and mem != "max":
            limits["memory_limit_bytes"] = int(mem)
        cpu = read_text(os.path.join(base, "cpu.max"))
        if cpu and not cpu.startswith("max"):
            quota, period = cpu.split()
            limits["cpu_quota_cores"] = round(int(quota) / float(period), 3)
    return limits


def cpu_model():
    text = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or None


def os_name():
    text = read_text("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def mem_total_bytes():
    text = read_text("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def installed_version(distribution):
    """A package's version from its metadata, without importing it (fast)."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return None
    for name in (distribution, distribution + "-gpu", distribution + "-openvino", distribution + "-qnn"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def runtime_facts(quick=False):
    """Runtime versions and providers. `quick` reads versions from package metadata only.

    Importing numpy + onnxruntime costs ~0.3 s on a fast machine (seconds on a Pi); `farm bench`
    asks for quick facts because its worker reports the providers it really loaded anyway.
    """
    if quick:
        return {
            "numpy_version": installed_version("numpy"),
            "onnxruntime_version": installed_version("onnxruntime"),
            "onnxruntime_providers": None,
            "openvino_version": installed_version("openvino"),
            "openvino_devices": None,
            "openvino_precision": None,
            "runtimes": [name for name in RUNTIME_NAMES if installed_version(name)],
        }
    facts = {"numpy_version": None, "onnxruntime_version": None, "onnxruntime_providers": [],
             "openvino_version": None, "openvino_devices": [], "openvino_precision": {}, "runtimes": []}
    try:
        import numpy

        facts["numpy_version"] = numpy.__version__
    except ImportError:
        pass
    try:
        import onnxruntime

        facts["onnxruntime_version"] = onnxruntime.__version__
        facts["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
        facts["runtimes"].append("onnxruntime")
    except ImportError:
        pass
    try:
        import openvino

        core = openvino.Core()
        facts["openvino_version"] = openvino.get_version()
        facts["openvino_devices"] = list(core.available_devices)
        facts["openvino_precision"] = dict((d, default_precision(core, d)) for d in facts["openvino_devices"])
        facts["runtimes"].append("openvino")
    except ImportError:
        pass
    except Exception as exc:  # a broken OpenVINO install is a fact worth reporting, not a crash
        facts["openvino_error"] = first_line(exc)
    return facts


def default_precision(core, device):
    """The precision OpenVINO compiles float32 models to on `device` unless told (bf16 on CPUs with bf16)."""
    try:
        return core.get_property(device, "INFERENCE_PRECISION_HINT").get_type_name()
    except Exception:  # a plugin without the property
        return None


def collect_facts(workdir, quick=False):
    try:
        cores_available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores_available = os.cpu_count()
    disk_free = None
    try:
        disk_free = shutil.disk_usage(workdir).free
    except OSError:
        pass
    facts = {
        "hostname": platform.node(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_available": cores_available,
        "mem_total_bytes": mem_total_bytes(),
        "os": os_name(),
        "kernel": platform.release(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "governors": governors(),
        "cpu_freq_khz": cpu_freqs_khz(),
        "cpu_max_freq_khz": cpu_max_freqs_khz(),
        "temperatures_c": thermal_zones_c(),
        "throttle": throttle_state(),
        "cgroup_limits": cgroup_limits(),
        "disk_free_bytes": disk_free,
        "workdir": os.path.abspath(workdir),
        "lease": read_lease(workdir),
        "agent_version": AGENT_VERSION,
    }
    facts.update(runtime_facts(quick))
    return facts


# ---------------------------------------------------------------------------------------------
# the worker: runs in a child process, speaks the same JSON lines to the parent


# ---------------------------------------------------------------------------------------------
# runtimes: one small class each (load / inputs / run / describe), chosen by name


class Runtime(object):
    """What the worker needs from an inference runtime. Subclasses import their library lazily."""

    name = "?"

    def __init__(self, config):
        self.config = config

    def load(self, model_path, weights_path=None):
        """Load a model file; `weights_path` is a separate weights file (OpenVINO IR's .bin)."""
        raise NotImplementedError

    def input_specs(self):
        """[(name, numpy dtype name or None, [dim or None, ...])] of the model's inputs."""
        raise NotImplementedError

    def run(self, feeds):
        raise NotImplementedError

    def describe(self):
        """runtime, runtime_version, provider (what really ran), providers_requested, fallback."""
        raise NotImplementedError


class OnnxRuntime(Runtime):
    """onnxruntime with an ordered list of execution providers (CPU appended as the last resort).

    onnxruntime falls back to CPU silently when a provider is missing or cannot take the model;
    `describe` says which provider really ran, and `strict` turns a fallback into a failure.
    """

    name = "onnxruntime"

    def load(self, model_path, weights_path=None):
        if weights_path:
            raise AgentFailure("input-error", "onnxruntime reads one ONNX file; --weights is for OpenVINO IR models")
        try:
            import onnxruntime as ort
        except ImportError:
            raise AgentFailure("missing-runtime", "onnxruntime is not installed for %s" % sys.executable)
        self.ort = ort
        options = ort.SessionOptions()
        if self.config.get("threads"):
            options.intra_op_num_threads = int(self.config["threads"])
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not self.config.get("cpu_arena", True):
            options.enable_cpu_mem_arena = False  # each run's buffers go back to the OS (true transient peaks)
        requested = [ort_provider_name(p) for p in (self.config.get("providers") or ["CPUExecutionProvider"])]
        self.requested = requested
        available = set(ort.get_available_providers())
        usable = [p for p in requested if p in available]
        if "CPUExecutionProvider" not in usable:
            usable.append("CPUExecutionProvider")
        options_by_provider = {ort_provider_name(k): v for k, v in (self.config.get("provider_options") or {}).items()}
        provider_options = [options_by_provider.get(p, {}) for p in usable]
        try:
            self.session = ort.InferenceSession(model_path, sess_options=options, providers=usable,
                                                provider_options=provider_options)
        except Exception as exc:  # onnxruntime raises several unrelated types for bad models
            raise AgentFailure("model-error", "cannot load model %s: %s" % (model_path, first_line(exc)))
        self.actual = list(self.session.get_providers())
        self.check_fallback()

    def check_fallback(self):
        wanted = self.requested[0]
        if self.actual[0] != wanted and self.config.get("strict"):
            raise AgentFailure(
                "missing-runtime",
                "provider %s is not available here (running on %s instead; available: %s) and --strict forbids "
                "falling back" % (wanted, self.actual[0], ", ".join(self.ort.get_available_providers())),
            )

    def input_specs(self):
        return [(i.name, ORT_TYPES.get(i.type), list(i.shape or [])) for i in self.session.get_inputs()]

    def output_names(self):
        return [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        return self.session.run(None, feeds)

    def describe(self):
        return {
            "runtime": self.name,
            "runtime_version": self.ort.__version__,
            "provider": self.actual[0],
            "providers_requested": self.requested,
            "providers_active": self.actual,
            "provider_fallback": self.actual[0] != self.requested[0],
            "available_providers": list(self.ort.get_available_providers()),
            "inference_precision": None,  # the model's own types: onnxruntime does not lower precision
        }


class OpenVINORuntime(Runtime):
    """OpenVINO reading the same ONNX file or an IR (.xml + .bin); `providers` are device names (CPU, GPU, NPU).

    OpenVINO may run a float32 model at a lower precision: on a CPU with bf16 support its default
    INFERENCE_PRECISION_HINT is bf16. `describe` reports the precision the compiled model really
    uses; `--provider-options '{"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}'` sets it (any device
    property, keyed by device).
    """

    name = "openvino"

    def load(self, model_path, weights_path=None):
        try:
            import openvino as ov
        except ImportError:
            raise AgentFailure("missing-runtime", "openvino is not installed for %s" % sys.executable)
        self.ov = ov
        core = ov.Core()
        devices = list(core.available_devices)
        requested = [d.upper() for d in (self.config.get("providers") or ["CPU"])]
        self.requested = requested
        device = next((d for d in requested if d in devices), "CPU")
        if device != requested[0] and self.config.get("strict"):
            raise AgentFailure("missing-runtime", "OpenVINO device %s is not available (devices: %s) and --strict "
                               "forbids falling back" % (requested[0], ", ".join(devices)))
        config = {}
        if self.config.get("threads"):
            config["INFERENCE_NUM_THREADS"] = int(self.config["threads"])
        for key, options in (self.config.get("provider_options") or {}).items():
            if key.upper() == device and isinstance(options, dict):
                config.update({str(k): str(v) for k, v in options.items()})
        try:
            self.model = core.read_model(model_path, weights_path) if weights_path else core.read_model(model_path)
        except Exception as exc:
            raise AgentFailure("model-error", "OpenVINO cannot read %s: %s" % (model_path, openvino_reason(exc)))
        try:
            self.compiled = core.compile_model(self.model, device, config)
        except Exception as exc:
            raise AgentFailure("model-error", "OpenVINO cannot compile %s for %s: %s"
                               % (model_path, device, openvino_reason(exc)))
        self.request = self.compiled.create_infer_request()
        self.device = device
        self.devices = devices

    def input_specs(self):
        specs = []
        for port in self.model.inputs:
            dims = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
            dtype = port.get_element_type().to_dtype().name
            specs.append((port.get_any_name(), dtype, dims))
        return specs

    def output_names(self):
        return [port.get_any_name() for port in self.model.outputs]

    def run(self, feeds):
        result = self.request.infer(feeds)
        return [result[port] for port in self.compiled.outputs]

    def inference_precision(self):
        """The element type the compiled model computes in (f32, bf16, f16), or None if not told."""
        try:
            return self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception:  # a device without the property (some plugins) says nothing
            return None

    def describe(self):
        return {
            "runtime": self.name,
            "runtime_version": self.ov.get_version(),
            "provider": self.device,
            "providers_requested": self.requested,
            "providers_active": [self.device],
            "provider_fallback": self.device != self.requested[0],
            "available_providers": self.devices,
            "inference_precision": self.inference_precision(),
        }


RUNTIMES = {"onnxruntime": OnnxRuntime, "openvino": OpenVINORuntime}
assert tuple(RUNTIMES) == RUNTIME_NAMES


def make_runtime(config):
    name = config.get("runtime") or "onnxruntime"
    if name not in RUNTIMES:
        raise AgentFailure("missing-runtime", "unknown runtime %r (this agent knows: %s)" % (name, ", ".join(sorted(RUNTIMES))))
    return RUNTIMES[name](config)


def worker_main(config):
    """Load, first inference, warm-up, measure. Emits phase marks and a result."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("missing-runtime", "numpy is not installed for %s" % sys.executable)
    runtime = make_runtime(config)
    peak = PeakTracker()
    emit("phase", phase="load", t_ns=time.monotonic_ns())
    load_started_ns = time.perf_counter_ns()
    runtime.load(config["model"], config.get("weights"))
    load_ns = time.perf_counter_ns() - load_started_ns
    peak_rss_load_bytes = peak.end_phase()

    feeds = make_inputs(np, runtime.input_specs(), config.get("shapes") or {})
    run = runtime.run
    emit("phase", phase="first_inference", t_ns=time.monotonic_ns())
    started = time.perf_counter_ns()
    try:
        run(feeds)
    except Exception as exc:
        raise AgentFailure("model-error", "first inference failed: %s" % first_line(exc))
    first_ns = time.perf_counter_ns() - started

    emit("phase", phase="warmup", t_ns=time.monotonic_ns())
    for _ in range(int(config.get("warmup", 0))):
        run(feeds)

    runs = int(config["runs"])
    min_ns = int(float(config["min_seconds"]) * 1e9)
    max_ns = int(float(config["max_seconds"]) * 1e9)
    samples_ns = []
    append = samples_ns.append
    perf = time.perf_counter_ns
    emit("phase", phase="measure", t_ns=time.monotonic_ns())
    measure_started = perf()
    truncated = False
    while True:
        t0 = perf()
        run(feeds)
        t1 = perf()
        append(t1 - t0)
        elapsed = t1 - measure_started
        if len(samples_ns) >= runs and elapsed >= min_ns:
            break
        if elapsed >= max_ns:
            truncated = True
            break
    measure_ns = perf() - measure_started
    emit("phase", phase="done", t_ns=time.monotonic_ns())
    peak_rss_inference_bytes = peak.end_phase()

    result = dict(
        latency_ms=[s / 1e6 for s in samples_ns],
        load_ms=load_ns / 1e6,
        first_inference_ms=first_ns / 1e6,
        measure_s=measure_ns / 1e9,
        truncated=truncated,
        peak_rss_load_bytes=peak_rss_load_bytes,
        peak_rss_inference_bytes=peak_rss_inference_bytes,
        peak_rss_reset_supported=peak.reset_supported,
        worker_pid=os.getpid(),
        inputs=[{"name": name, "shape": list(value.shape), "dtype": str(value.dtype)} for name, value in feeds.items()],
    )
    result.update(runtime.describe())
    emit("worker_result", **result)


class PeakTracker:
    """Exact peak RSS per phase from the kernel's VmHWM.

    Writing "5" to /proc/self/clear_refs resets VmHWM (Linux >= 4.0), so the peak of each phase
    can be told apart (load vs inference). Where the reset is not allowed, later phases report
    the running peak and `reset_supported` is False.
    """

    def __init__(self):
        self.reset_supported = True

    def end_phase(self):
        status = proc_status(os.getpid()) or {}
        value = status.get("VmHWM")
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            self.reset_supported = False
        return value


ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
}


def make_inputs(np, specs, shapes):
    """Synthesise one input per model input from its spec, before the timed loop.

    The controller sends the shape of every input with an open dim (`--shape name=1x3x224x224`,
    orchestrator.shapes); a leading open dim without one is a batch of 1, any other open dim is
    an input-error (never a silent 1x3x1x1). Floats are uniform in [0, 1) from a fixed seed;
    integers and bools are zeros.
    """
    rng = np.random.default_rng(0)
    feeds = {}
    for name, dtype, dims in specs:
        if dtype is None:
            raise AgentFailure("input-error", "cannot synthesise input %r (only numeric tensors are supported)" % name)
        if name in shapes:
            shape = [int(d) for d in shapes[name]]
        else:
            open_dims = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
            if any(i != 0 for i in open_dims):
                raise AgentFailure("input-error", "input %r has symbolic dims %s and no --shape for them"
                                   % (name, [d if isinstance(d, int) and d > 0 else "?" for d in dims]))
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in dims]
        if dtype.startswith("float"):
            feeds[name] = rng.random(shape, dtype=np.float32).astype(dtype)
        else:
            feeds[name] = np.zeros(shape, dtype=dtype)
    return feeds


# ---------------------------------------------------------------------------------------------
# the parent: starts the worker, samples it and the board, forwards its messages


class Sampler(threading.Thread):
    """pidstat-style sampling of one process plus board telemetry, every `interval_s`.

    Each sample: t_s (since start), phase, rss/hwm/anon/file/pss bytes, minor/major faults,
    cpu_percent over the interval (utime+stime delta / wall delta, pidstat -u semantics; can
    exceed 100 with several threads), temperatures, per-core frequency and load average.
    """

    def __init__(self, pid, interval_s):
        threading.Thread.__init__(self, daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.phase = "start"
        self.samples = []
        self.phase_marks = []
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()
        self._last = None
        self._slow_read_at = -1e9
        self._pss = None
        self._throttle = None

    def mark(self, phase):
        self.phase = phase
        self.phase_marks.append({"phase": phase, "t_s": round(time.monotonic() - self._t0, 4)})
        self._slow_read_at = -1e9  # every phase gets a full reading (PSS, throttle) at its start
        self.sample_now()

    # PSS (smaps_rollup walks the whole address space: ms of CPU) and the throttle indicator
    # (a vcgencmd process on a Pi) are read at most this often, so a 10 ms interval does not
    # slow the model it watches; the cheap /proc/<pid>/status and stat are read every time.
    SLOW_READ_INTERVAL_S = 1.0

    def run(self):
        deadline = time.monotonic() + self.interval_s
        while not self._stop_event.wait(max(0.0, deadline - time.monotonic())):
            self.sample_now()
            deadline += self.interval_s
            if deadline < time.monotonic():  # fell behind (a slow board): skip, don't burst
                deadline = time.monotonic() + self.interval_s

    def stop(self):
        self._stop_event.set()
        self.join(timeout=5)

    def sample_now(self):
        now = time.monotonic()
        status = proc_status(self.pid)
        times = proc_stat_times(self.pid)
        if not status or "VmRSS" not in status or times is None:
            return  # gone, or a zombie that has already released its memory
        cpu_percent = None
        if self._last is not None:
            wall = now - self._last[0]
            if wall > 0:
                cpu_percent = round(100.0 * ((times[0] + times[1]) - (self._last[1][0] + self._last[1][1])) / wall, 1)
        self._last = (now, times)
        freqs = cpu_freqs_khz()
        if now - self._slow_read_at >= self.SLOW_READ_INTERVAL_S:
            self._slow_read_at = now
            self._pss = proc_pss_bytes(self.pid)
            self._throttle = throttle_state()
        throttle = self._throttle
        self.samples.append({
            "t_s": round(now - self._t0, 4),
            "phase": self.phase,
            "rss_bytes": status.get("VmRSS"),
            "hwm_bytes": status.get("VmHWM"),
            "rss_anon_bytes": status.get("RssAnon"),
            "rss_file_bytes": status.get("RssFile"),
            "pss_bytes": self._pss,
            "minflt": times[2],
            "majflt": times[3],
            "cpu_percent": cpu_percent,
            "temps_c": thermal_zones_c(),
            "freq_khz": freqs,
            "loadavg_1m": os.getloadavg()[0],
            "throttled": throttle["throttled"] if throttle else None,
        })


def cool_down(seconds, below_temp_c, max_seconds):
    """Wait a fixed time and/or until the hottest zone is below a threshold, capped. Returns facts."""
    started = time.monotonic()
    if seconds > 0:
        time.sleep(seconds)
    hottest = None
    if below_temp_c is not None:
        deadline = started + max(max_seconds, seconds)
        while True:
            temps = thermal_zones_c()
            hottest = max(temps.values()) if temps else None
            if hottest is None or hottest < below_temp_c or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    return {"cooldown_s": round(time.monotonic() - started, 3), "temp_c_after_cooldown": hottest}


def summarize_run(samples, phase_marks, freq_before):
    """Derived flags: a frequency drop or throttling during the measured phase."""
    measured = [s for s in samples if s["phase"] == "measure"]
    temps = [max(s["temps_c"].values()) for s in samples if s["temps_c"]]
    result = {
        "temp_c_max": max(temps) if temps else None,
        "freq_drop": False,
        "throttled": any(s["throttled"] for s in measured if s["throttled"] is not None),
    }
    reference = {}
    for source in [freq_before] + [s["freq_khz"] for s in samples if s["phase"] in ("start", "load", "first_inference", "warmup")]:
        for cpu, khz in source.items():
            reference[cpu] = max(reference.get(cpu, 0), khz)
    for sample in measured:
        for cpu, khz in sample["freq_khz"].items():
            if cpu in reference and khz < 0.9 * reference[cpu]:
                result["freq_drop"] = True
    cpu = [s["cpu_percent"] for s in measured if s["cpu_percent"] is not None]
    rss = [s["rss_bytes"] for s in measured if s["rss_bytes"] is not None]
    result["cpu_percent_mean"] = round(sum(cpu) / len(cpu), 1) if cpu else None
    result["rss_steady_bytes"] = sorted(rss)[len(rss) // 2] if rss else None
    return result


def check_model_files(args):
    """The model file (and an IR's weights file) must be on the board before a worker starts."""
    for path in [args.model] + ([args.weights] if args.weights else []):
        if not os.path.isfile(path):
            raise AgentFailure("model-error", "model file not found on the board: %s" % path)


def bench_main(args):
    check_model_files(args)
    shapes = {}
    for text in args.shape or []:
        name, _, dims = text.rpartition("=")
        try:
            shapes[name] = [int(d) for d in dims.replace(",", "x").split("x")]
        except ValueError:
            raise AgentFailure("input-error", "bad --shape %r (expected NAME=1x3x224x224)" % text)
    cooldown = cool_down(args.cooldown_s, args.cooldown_below_c, args.cooldown_max_s)
    config = {
        "model": os.path.abspath(args.model),
        "weights": os.path.abspath(args.weights) if args.weights else None,
        "runs": args.runs,
        "min_seconds": args.min_seconds,
        "max_seconds": args.max_seconds,
        "warmup": args.warmup,
        "threads": args.threads,
        "shapes": shapes,
        "cpu_arena": not args.no_cpu_arena,
    }
    config.update(runtime_config(args))
    freq_before = cpu_freqs_khz()
    worker = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "_worker", json.dumps(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    forward_signals_to(worker)
    sampler = Sampler(worker.pid, args.sample_interval) if args.sample_interval > 0 else None
    if sampler is not None:
        sampler.start()
    worker_result = None
    worker_error = None
    assert worker.stdout is not None
    for line in worker.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            log("worker wrote a non-protocol line: %r" % line[:200])
            continue
        if message.get("type") == "phase":
            if sampler is not None:
                sampler.mark(message["phase"])
            emit("phase", phase=message["phase"])
        elif message.get("type") == "worker_result":
            worker_result = message
        elif message.get("type") == "error":
            worker_error = message
    returncode = worker.wait()
    if sampler is not None:
        sampler.stop()
    if worker_error is not None:
        emit("error", kind=worker_error.get("kind", "agent-error"), message=worker_error.get("message"),
             traceback=worker_error.get("traceback"))
        return 1
    if returncode == -signal.SIGKILL or returncode == 137:
        emit_error("oom-killed", "the worker was killed by SIGKILL (out of memory?) while running %s" % args.model)
        return 1
    if returncode != 0 or worker_result is None:
        emit_error("agent-error", "the worker exited with status %s and no result" % returncode)
        return 1
    samples = sampler.samples if sampler is not None else []
    marks = sampler.phase_marks if sampler is not None else []
    worker_result.pop("type", None)
    worker_result.pop("v", None)
    loads = [worker_result["peak_rss_load_bytes"], worker_result["peak_rss_inference_bytes"]]
    result = dict(worker_result)
    result.update(cooldown)
    result["peak_rss_bytes"] = max(v for v in loads if v is not None) if any(v is not None for v in loads) else None
    result["sample_interval_s"] = args.sample_interval
    result["samples"] = samples
    result["phase_marks"] = marks
    result.update(summarize_run(samples, marks, freq_before))
    emit("result", result=result)
    return 0


def forward_signals_to(child):
    """SIGTERM/SIGINT/SIGHUP on the agent stop its worker too: no orphan left on the board."""

    def handler(signum, frame):
        try:
            child.kill()
        except OSError:
            pass
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)


def runtime_config(args):
    """The runtime part of a worker config, from the common command-line options."""
    provider_options = {}
    if getattr(args, "provider_options", None):
        try:
            provider_options = dict(json.loads(args.provider_options).items())  # keys as typed: runtimes map them
        except (ValueError, AttributeError):
            raise AgentFailure("input-error", "--provider-options must be a JSON object {provider: {key: value}}")
    return {
        "runtime": args.runtime,
        "providers": args.provider or None,
        "provider_options": provider_options,
        "strict": args.strict,
        "threads": args.threads,
    }


def outputs_main(args):
    """Run every input of a dataset through the model and save the outputs as .npz."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("missing-runtime", "numpy is not installed for %s" % sys.executable)
    check_model_files(args)
    runtime = make_runtime(runtime_config(args))
    runtime.load(args.model, args.weights)
    try:
        data = np.load(args.dataset, allow_pickle=False)
        inputs = data["inputs"]
    except (OSError, KeyError, ValueError) as exc:
        raise AgentFailure("input-error", "cannot read dataset %s: %s" % (args.dataset, first_line(exc)))
    name, dtype, _ = runtime.input_specs()[0]
    batch = args.batch
    outputs = None
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch].astype(dtype or "float32")
        try:
            result = runtime.run({name: chunk})
        except Exception as exc:
            raise AgentFailure("model-error", "inference on the dataset failed: %s" % first_line(exc))
        if outputs is None:
            outputs = [[] for _ in result]
        for index, value in enumerate(result):
            outputs[index].append(np.asarray(value))
    arrays = {"output_%d" % i: np.concatenate(parts) for i, parts in enumerate(outputs or [])}
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, args.out)
    emit("outputs", path=os.path.abspath(args.out), count=int(len(inputs)), output_names=runtime.output_names(),
         runtime=runtime.describe())
    return 0


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# leases: who is using this board, recorded on the board so every controller sees it

def read_lease(workdir):
    """The current lease, or None when there is none or it has expired (board clock)."""
    try:
        with open(os.path.join(workdir, LEASE_FILE)) as handle:
            lease = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(lease, dict) or float(lease.get("expires_at", 0)) <= time.time():
        return None
    lease["expires_in_s"] = round(float(lease["expires_at"]) - time.time(), 1)
    return lease


def lease_main(args):
    """acquire / renew / release, atomic under an flock so two controllers never both win."""
    import fcntl

    if not os.path.isdir(args.workdir):
        os.makedirs(args.workdir)
    holder = json.loads(args.holder)
    with open(os.path.join(args.workdir, "lease.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_lease(args.workdir)
        mine = current is not None and current.get("holder", {}).get("id") == holder.get("id")
        if args.action == "release":
            if mine:
                os.remove(os.path.join(args.workdir, LEASE_FILE))
            emit("lease", acquired=False, released=mine, lease=None if mine else current)
            return 0
        if current is not None and not mine:
            emit("lease", acquired=False, lease=current)
            return 0
        if args.action == "renew" and not mine:
            emit("lease", acquired=False, lease=None, lost=True)
            return 0
        now = time.time()
        lease = {"holder": holder, "since": current["since"] if mine else now, "expires_at": now + args.ttl}
        tmp = os.path.join(args.workdir, LEASE_FILE + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(lease, handle)
        os.replace(tmp, os.path.join(args.workdir, LEASE_FILE))
        emit("lease", acquired=True, lease=lease)
    return 0


# ---------------------------------------------------------------------------------------------
# the work dir: staged models, datasets and agents accumulate; a size/age policy keeps it small

def clean_main(args):
    """Remove interrupted uploads, then staged files not in --keep that are older than the age
    limit, then the oldest others until the staged files fit in --max-bytes.

    Called by a controller that holds the board's lease, so no upload of anyone else is in flight.
    """
    keep = set(args.keep or [])
    now = time.time()
    removed = []
    freed = 0
    staged = []
    for name in os.listdir(args.workdir):
        path = os.path.join(args.workdir, name)
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if ".part-" in name or name.endswith(".tmp"):
            staged.append((0.0, name, stat.st_size))  # interrupted uploads go first, whatever their age
        elif STAGED_NAME_RE.match(name) and name not in keep:
            staged.append((stat.st_mtime, name, stat.st_size))
    total = sum(size for _, _, size in staged)
    for mtime, name, size in sorted(staged):
        too_old = now - mtime > args.max_age_days * 86400
        if mtime == 0.0 or too_old or total > args.max_bytes:
            try:
                os.remove(os.path.join(args.workdir, name))
            except OSError:
                continue
            removed.append(name)
            freed += size
            total -= size
    emit("cleaned", removed=removed, freed_bytes=freed)
    return 0


def add_runtime_options(parser):
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runtime", required=True, choices=RUNTIME_NAMES)
    parser.add_argument("--provider", action="append", help="execution provider / device, in order (repeatable)")
    parser.add_argument("--provider-options", help="JSON {provider: {option: value}}")
    parser.add_argument("--strict", action="store_true", help="fail instead of falling back to another provider")


def build_parser():
    parser = argparse.ArgumentParser(prog="farm-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version="farm-agent %s (protocol %d)" % (AGENT_VERSION, PROTOCOL_VERSION))
    verbs = parser.add_subparsers(dest="verb")
    facts = verbs.add_parser("facts")
    facts.add_argument("--workdir", default=".")
    facts.add_argument("--quick", action="store_true", help="skip importing the runtimes (versions from metadata)")
    bench = verbs.add_parser("bench")
    bench.add_argument("--model", required=True)
    bench.add_argument("--weights", help="the weights file of a two-file model (OpenVINO IR .bin)")
    # No defaults: the controller sends every setting (orchestrator.settings.BenchSettings.bench_args),
    # so the one definition of each default is the controller's.
    bench.add_argument("--runs", type=int, required=True)
    bench.add_argument("--min-seconds", type=float, required=True)
    bench.add_argument("--max-seconds", type=float, required=True)
    bench.add_argument("--warmup", type=int, required=True)
    add_runtime_options(bench)
    bench.add_argument("--shape", action="append")
    bench.add_argument("--no-cpu-arena", action="store_true", help="disable onnxruntime's CPU memory arena")
    bench.add_argument("--sample-interval", type=float, required=True)
    bench.add_argument("--cooldown-s", type=float, required=True)
    bench.add_argument("--cooldown-below-c", type=float, default=None)
    bench.add_argument("--cooldown-max-s", type=float, required=True)
    lease = verbs.add_parser("lease")
    lease.add_argument("action", choices=["acquire", "renew", "release"])
    lease.add_argument("--workdir", default=".")
    lease.add_argument("--holder", required=True, help="JSON: {id, user, host, pid, run_id}")
    lease.add_argument("--ttl", type=float, default=120.0, help="seconds until the lease expires unless renewed")
    clean = verbs.add_parser("clean")
    clean.add_argument("--workdir", default=".")
    clean.add_argument("--keep", action="append", help="a staged file name to keep (repeatable)")
    clean.add_argument("--max-bytes", type=int, default=2 << 30)
    clean.add_argument("--max-age-days", type=float, default=14.0)
    outputs = verbs.add_parser("outputs")
    outputs.add_argument("--model", required=True)
    outputs.add_argument("--weights", help="the weights file of a two-file model (OpenVINO IR .bin)")
    outputs.add_argument("--dataset", required=True)
    outputs.add_argument("--out", required=True)
    add_runtime_options(outputs)
    outputs.add_argument("--batch", type=int, default=1)
    worker = verbs.add_parser("_worker")
    worker.add_argument("config")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.verb == "facts":
            emit("facts", facts=collect_facts(args.workdir, quick=args.quick))
            return 0
        if args.verb == "bench":
            return bench_main(args)
        if args.verb == "outputs":
            return outputs_main(args)
        if args.verb == "lease":
            return lease_main(args)
        if args.verb == "clean":
            return clean_main(args)
        if args.verb == "_worker":
            worker_main(json.loads(args.config))
            return 0
        emit_error("agent-error", "no verb given (facts, bench, outputs)")
        return 2
    except AgentFailure as exc:
        emit_error(exc.kind, str(exc))
        return 1
    except MemoryError:
        emit_error("oom-killed", "out of memory (MemoryError)", traceback.format_exc())
        return 1
    except Exception as exc:  # the agent must answer in protocol, whatever happens
        emit_error("agent-error", "%s: %s" % (type(exc).__name__, first_line(exc)), traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())
