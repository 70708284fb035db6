#!/usr/bin/env python3
"""farm board agent: one file, Python >= 3.8, stdlib (+ numpy and onnxruntime for inference).

The controller uploads this file to the board as ``agent-<sha256[:12]>.py``. Everything on
stdout is protocol: one JSON object per line, each carrying the protocol version ``v``. Logs go
to stderr. Every error is a JSON object
``{"v": 2, "type": "error", "kind": ..., "message": ..., "traceback": ...}``.

The session (what `farm bench` uses: one agent process per board per run)
  serve [--heartbeat-s S] [--controller-timeout-s T]
                        requests on stdin, one JSON object a line: {"id": N, "op": OP, ...};
                        OP is a verb below (with "args": its command-line arguments),
                        stage_check / stage_commit (files by content hash), cancel, beat, bye.
                        Every answer carries its request's "id"; a heartbeat line comes every S
                        seconds. On end-of-file, or T seconds without a controller line, the
                        agent kills its workers, frees its lease and exits (see Session).

Verbs (also runnable one at a time: `agent.py VERB ARGS`)
  facts                 what the board is: arch, CPU, RAM, OS, Python, runtimes, governor,
                        temperatures, throttle state, cgroup limits, free disk.
  bench  --model PATH [--weights BIN] [--dataset NPZ]
                        load the model in a fresh worker process, time load and first
                        inference, warm up, then measure at least --runs runs AND at least
                        --min-seconds seconds; sample the worker's memory/CPU and the board's
                        temperature/frequency meanwhile (pidstat -r/-u style, read from /proc).
                        Samples and time series come back in bounded `chunk` messages (at most
                        --max-samples / --max-series-rows of them, evenly spaced), then the
                        `result` with an exact summary of every run. With --dataset the same
                        worker runs the dataset afterwards and its outputs come back too.
                        With --profile-runs N it then profiles N inferences per operator on a
                        second, profiled session (never the timed one); the result carries the
                        compact `profile` (per op type, top nodes, nodes per provider, its cost).
  outputs --model PATH --dataset NPZ [--out NPZ]
                        run every input of a dataset through the model, save the outputs
                        (or stream them back) for the controller to score.
  lease acquire|renew|release --holder JSON --ttl S
                        who measures on this board (a file in the work dir, under an flock).
  clean                 drop interrupted uploads and old staged files (size/age policy).

Why a worker child: the parent can watch it from outside (/proc/<pid>), an OOM kill of the
worker is seen as SIGKILL (exit 137) instead of a dropped connection, and the sampler's own
memory and CPU stay out of the figures (the worker holds this module too: ~1 MiB of stdlib
imports besides the runtime and the model). Workers are started fresh (exec), not forked from
a parent that has the runtime imported: forking is ~3x faster to start but its peak RSS is
~10 % lower than a fresh process's (the parent's untouched library pages are not counted), so
it would not measure what a deployed process uses (bench/session_overhead.py measures both).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# farm:common-begin -- the controller replaces this block with agents/farm_common.py itself when
# it uploads the agent (orchestrator.agent_bundle), so a board receives one file.
try:
    from farm_common import (CHUNK_BYTES, CHUNK_ROWS, CHUNK_VALUES, DEFAULT_HEARTBEAT_S, DEFAULT_LEASE_TTL_S,
                             DEFAULT_WORKDIR_MAX_AGE_DAYS, DEFAULT_WORKDIR_MAX_BYTES, LEASE_FILE, PART_NAME_RE,
                             PROTOCOL_VERSION, RUNTIME_NAMES, STAGED_NAME_RE, accelerator_of, boot_id, first_line,
                             openvino_reason, ort_provider_name, process_start_ticks, provider_preset_options,
                             read_text)
except ImportError:  # imported as agents.farm_agent (tests, bench scripts)
    from agents.farm_common import (CHUNK_BYTES, CHUNK_ROWS, CHUNK_VALUES, DEFAULT_HEARTBEAT_S, DEFAULT_LEASE_TTL_S,
                                    DEFAULT_WORKDIR_MAX_AGE_DAYS, DEFAULT_WORKDIR_MAX_BYTES, LEASE_FILE,
                                    PART_NAME_RE, PROTOCOL_VERSION, RUNTIME_NAMES, STAGED_NAME_RE, accelerator_of, boot_id,
                                    first_line, openvino_reason, ort_provider_name, process_start_ticks,
                                    provider_preset_options, read_text)
# farm:common-end

AGENT_VERSION = "0.3.0"

# Tests point these at a fake sysfs/procfs tree to simulate a hot, throttling board (and its
# power rails, GPU clocks, nvpmodel mode: FARM_ROOTFS stands for / where /etc and /var are read).
SYSFS_ROOT = os.environ.get("FARM_SYSFS_ROOT", "/sys")
ROOTFS = os.environ.get("FARM_ROOTFS", "/")
VCGENCMD = os.environ.get("FARM_VCGENCMD", "vcgencmd")


class AgentFailure(Exception):
    """An expected failure with a kind the controller records (model-error, input-error, ...)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


# ---------------------------------------------------------------------------------------------
# protocol

_emit_lock = threading.Lock()
# The request an answer belongs to: set per thread by the session (None for one-shot verbs and
# for the heartbeat), added to every message as "id".
_request = threading.local()


class ControllerGone(Exception):
    """Writing to the controller failed: it is gone (the session cleans up and exits)."""


def emit(message_type, **fields):
    message = {"v": PROTOCOL_VERSION, "type": message_type}
    request_id = getattr(_request, "id", None)
    if request_id is not None and "id" not in fields:
        message["id"] = request_id
    message.update(fields)
    line = json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)
    with _emit_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise ControllerGone("stdout closed")


def emit_error(kind, message, tb=None):
    emit("error", kind=kind, message=message, traceback=tb)


def log(message):
    try:
        sys.stderr.write("farm-agent: %s\n" % message)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------------------------
# small readers (every path read defensively: absent means None)


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


# ---------------------------------------------------------------------------------------------
# power: the board's own sensors, read from sysfs (no vendor daemons), and the Raspberry Pi 5's
# PMIC through `vcgencmd pmic_read_adc` where that exists


class PowerSource(object):
    """One power sensor. `read()` gives watts now (None: unreadable at the moment). `total`: it
    measures the whole board or module (a Jetson's VDD_IN rail, RAPL's psys), so the board's
    power is the total sources alone; `part`: a share of another source (a RAPL subzone), never
    added to the board's power. A counter (RAPL) gives energy instead: see PowerMeter."""

    counter = False
    min_interval_s = 0.0

    def __init__(self, name, total=False, part=False):
        self.name = name
        self.total = total
        self.part = part

    def read(self):
        raise NotImplementedError


class FilePower(PowerSource):
    """A file holding power: hwmon `power*_input` (microwatts), iio `in_power*_input` (milliwatts)."""

    def __init__(self, name, path, watts_per_unit, total=False):
        PowerSource.__init__(self, name, total)
        self.path = path
        self.watts_per_unit = watts_per_unit

    def read(self):
        value = read_int(self.path)
        return None if value is None or value < 0 else value * self.watts_per_unit


class VoltCurrentPower(PowerSource):
    """A channel with bus voltage and current, INA3221-style: `in*_input` (mV) × `curr*_input` (mA)."""

    def __init__(self, name, volt_path, curr_path, total=False):
        PowerSource.__init__(self, name, total)
        self.volt_path = volt_path
        self.curr_path = curr_path

    def read(self):
        millivolts, milliamps = read_int(self.volt_path), read_int(self.curr_path)
        if millivolts is None or milliamps is None:
            return None
        return max(0.0, millivolts * milliamps / 1e6)


class EnergyCounter(PowerSource):
    """A RAPL zone: `energy_uj` counts microjoules and wraps at `max_energy_range_uj`."""

    counter = True

    def __init__(self, name, path, range_uj, total=False, part=False):
        PowerSource.__init__(self, name, total, part)
        self.path = path
        self.range_j = (range_uj or 0) / 1e6

    def energy_j(self):
        value = read_int(self.path)
        return None if value is None else value / 1e6


_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+\w+\(\d+\)=([0-9.eE+-]+)[AV]\s*$")


def pmic_rails(text):
    """`vcgencmd pmic_read_adc` output -> {rail: watts} for every rail with a current and a voltage."""
    amps, volts = {}, {}
    for line in text.splitlines():
        match = _PMIC_LINE.match(line)
        if match:
            try:
                (amps if match.group(2) == "A" else volts)[match.group(1)] = float(match.group(3))
            except ValueError:
                continue
    return dict((rail, amps[rail] * volts[rail]) for rail in amps if rail in volts)


class PmicPower(PowerSource):
    """The Raspberry Pi 5's PMIC: the sum over its rails of current × voltage. It does not see
    what the 5 V input feeds directly (USB devices), so it is not the board's total. Each read
    starts vcgencmd (tens of ms), so it is read at most every `min_interval_s`."""

    min_interval_s = 0.25

    def __init__(self, path):
        PowerSource.__init__(self, "vcgencmd:pmic_read_adc")
        self.path = path

    def read(self):
        try:
            out = subprocess.run([self.path, "pmic_read_adc"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=2, universal_newlines=True).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        rails = pmic_rails(out)
        return sum(rails.values()) if rails else None


def _total_rail(label):
    """A rail that feeds the whole module: VDD_IN (Jetson Orin Nano/NX, Xavier NX), POM_5V_IN
    (Nano/TX2). Not VIN_SYS_5V0: on a Jetson AGX Orin that is one rail beside VDD_GPU_SOC and
    VDD_CPU_CV, and the board's power is their sum."""
    text = label.upper()
    return text.endswith("_IN") or text in ("VIN", "IN")


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def power_sources():
    """Every power sensor this board exposes that can be read now, each named by where it is."""
    sources = []
    hwmon = sys_path("class", "hwmon")
    for entry in _listdir(hwmon):
        folder = os.path.join(hwmon, entry)
        chip = read_text(os.path.join(folder, "name")) or entry
        files = set(_listdir(folder))
        channels = set()
        for name in sorted(files):
            match = re.match(r"^power(\d+)_input$", name)
            if match:
                label = read_text(os.path.join(folder, "power%s_label" % match.group(1))) or "power" + match.group(1)
                sources.append(FilePower("hwmon:%s/%s" % (chip, label), os.path.join(folder, name), 1e-6,
                                         _total_rail(label)))
                channels.add(match.group(1))
        for name in sorted(files):
            match = re.match(r"^curr(\d+)_input$", name)
            if not match or match.group(1) in channels or "in%s_input" % match.group(1) not in files:
                continue
            n = match.group(1)
            label = (read_text(os.path.join(folder, "in%s_label" % n)) or
                     read_text(os.path.join(folder, "curr%s_label" % n)) or "channel" + n)
            sources.append(VoltCurrentPower("hwmon:%s/%s" % (chip, label), os.path.join(folder, "in%s_input" % n),
                                            os.path.join(folder, name), _total_rail(label)))
    # older Jetson kernels (L4T 32): the ina3221x driver's iio devices, milliwatts per rail
    drivers = sys_path("bus", "i2c", "drivers", "ina3221x")
    for device in _listdir(drivers):
        for iio in _listdir(os.path.join(drivers, device)):
            folder = os.path.join(drivers, device, iio)
            if not iio.startswith("iio:device"):
                continue
            for name in _listdir(folder):
                match = re.match(r"^in_power(\d+)_input$", name)
                if match:
                    label = read_text(os.path.join(folder, "rail_name_" + match.group(1))) or "rail" + match.group(1)
                    sources.append(FilePower("iio:ina3221x/%s" % label, os.path.join(folder, name), 1e-3,
                                             _total_rail(label)))
    powercap = sys_path("class", "powercap")
    for zone in _listdir(powercap):
        folder = os.path.join(powercap, zone)
        path = os.path.join(folder, "energy_uj")
        if not zone.startswith(("intel-rapl:", "amd-rapl:")) or read_int(path) is None:
            continue  # root-only on recent kernels: then not a source of ours
        label = read_text(os.path.join(folder, "name")) or zone
        sources.append(EnergyCounter("rapl:%s" % label, path, read_int(os.path.join(folder, "max_energy_range_uj")),
                                     total=label == "psys", part=zone.count(":") > 1))
    vcgencmd = vcgencmd_path()
    if vcgencmd and os.path.exists(vcgencmd):
        pmic = PmicPower(vcgencmd)
        if pmic.read() is not None:
            sources.append(pmic)
    return [source for source in sources if source.counter or source.read() is not None]


class PowerMeter(object):
    """Reads a board's power sources: `read()` -> (board watts or None, {source: watts}).

    A counter's watts are its energy since the previous read over the time between them (the
    exact mean over that interval); a sensor's are its value now. The board's power is its total
    sources' (a Jetson's VDD_IN) when it has one, else the sum of those that are no part of
    another."""

    def __init__(self, sources):
        self.sources = list(sources)
        self._last_energy = {}
        self._cached = {}

    @property
    def names(self):
        return [source.name for source in self.sources]

    def read(self):
        now = time.monotonic()
        watts = {}
        for source in self.sources:
            if source.counter:
                energy = source.energy_j()
                last = self._last_energy.get(source.name)
                if energy is None:
                    continue
                self._last_energy[source.name] = (now, energy)
                if last is None or now <= last[0]:
                    continue
                delta = energy - last[1]
                if delta < 0:  # the counter wrapped
                    if source.range_j <= 0:
                        continue
                    delta += source.range_j
                watts[source.name] = delta / (now - last[0])
                continue
            cached = self._cached.get(source.name)
            if cached is not None and now - cached[0] < source.min_interval_s:
                value = cached[1]
            else:
                value = source.read()
                self._cached[source.name] = (now, value)
            if value is not None:
                watts[source.name] = value
        return board_power(self.sources, watts), watts


def board_power(sources, watts):
    """The board's power (W) from its sources' readings: the total sources' when it has any."""
    totals = [s.name for s in sources if s.total]
    names = totals or [s.name for s in sources if not s.part]
    values = [watts[name] for name in names if name in watts]
    if not values or len(values) != len(names):
        return None
    return round(sum(values), 6)


def idle_power(meter, seconds):
    """The board's mean power (W) over `seconds` before the measured job, or None."""
    if meter is None or seconds <= 0:
        return None
    stop = current_job().cancelled
    step = max(0.05, seconds / 10.0)
    deadline = time.monotonic() + seconds
    meter.read()  # a counter's starting point
    values = []
    while not stop.is_set():
        stop.wait(min(step, max(0.0, deadline - time.monotonic())))
        value, _ = meter.read()
        if value is not None:
            values.append(value)
        if time.monotonic() >= deadline:
            break
    return round(sum(values) / len(values), 6) if values else None


def mean_power_w(samples, phase_marks):
    """The board's mean power (W) over the measured phase, from the sampler's rows: each row's
    power stands for the interval since the row before (a counter's exact mean; a sensor's value
    at the interval's end), weighted by how much of that interval lies between the `measure`
    and `done` marks."""
    marks = dict((m["phase"], m["t_s"]) for m in phase_marks)
    start, end = marks.get("measure"), marks.get("done")
    if start is None or end is None or end <= start:
        return None
    energy = covered = 0.0
    previous_t = None
    for sample in samples:
        t = sample["t_s"]
        power = sample.get("power_w")
        if previous_t is not None and power is not None:
            overlap = min(t, end) - max(previous_t, start)
            if overlap > 0:
                energy += power * overlap
                covered += overlap
        previous_t = t
    if covered <= 0:
        return None
    return round(energy / covered, 6)


# ---------------------------------------------------------------------------------------------
# accelerators: a Jetson's GPU and memory clocks and power mode, a SoC's name, Qualcomm's QNN SDK

_GPU_DEVFREQ = ("gpu", "gv11b", "ga10b", "gp10b", "gm20b", "gk20a")


def _devfreq(matches):
    """(name, folder) of the first devfreq device whose name contains one of `matches`."""
    base = sys_path("class", "devfreq")
    for entry in _listdir(base):
        if any(m in entry.lower() for m in matches):
            return entry, os.path.join(base, entry)
    return None, None


def gpu_state():
    """A Jetson's GPU: load (% busy, from per-mille) and clock (Hz) from sysfs; None elsewhere."""
    name, folder = _devfreq(_GPU_DEVFREQ)
    load = None
    for path in (sys_path("devices", "gpu.0", "load"), sys_path("devices", "platform", "gpu.0", "load"),
                 os.path.join(folder, "device", "load") if folder else None):
        if path:
            load = read_int(path)
            if load is not None:
                break
    if load is None and folder is None:
        return None
    state = {"device": name, "load_pct": None if load is None else round(load / 10.0, 1)}
    if folder is not None:
        state.update(freq_hz=read_int(os.path.join(folder, "cur_freq")),
                     min_freq_hz=read_int(os.path.join(folder, "min_freq")),
                     max_freq_hz=read_int(os.path.join(folder, "max_freq")),
                     governor=read_text(os.path.join(folder, "governor")))
    return state


def emc_freq_hz():
    """The memory controller's clock (Hz) on a Jetson: devfreq, else the bpmp/clk debugfs files."""
    _, folder = _devfreq(("emc",))
    if folder is not None:
        value = read_int(os.path.join(folder, "cur_freq"))
        if value is not None:
            return value
    for path in (sys_path("kernel", "debug", "bpmp", "debug", "clk", "emc", "rate"),
                 sys_path("kernel", "debug", "clk", "emc", "clk_rate")):
        value = read_int(path)
        if value is not None:
            return value
    return None


def rootfs_path(*parts):
    return os.path.join(ROOTFS, *parts)


def nvpmodel_mode():
    """The Jetson power mode (nvpmodel) from its files: the mode in /var/lib/nvpmodel/status (else
    the default in /etc/nvpmodel.conf) and its name there; None on other boards."""
    conf = read_text(rootfs_path("etc", "nvpmodel.conf"))
    status = read_text(rootfs_path("var", "lib", "nvpmodel", "status"))
    if conf is None and status is None:
        return None
    mode, source = None, None
    match = re.search(r"pmode:\s*(\d+)", status or "")
    if match:
        mode, source = int(match.group(1)), "status"
    elif conf:
        match = re.search(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>", conf)
        if match:
            mode, source = int(match.group(1)), "default"
    names = dict((int(m.group(1)), m.group(2)) for m in
                 re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>", conf or ""))
    return {"id": mode, "name": names.get(mode), "source": source}


def _device_tree_text(name):
    text = read_text(sys_path("firmware", "devicetree", "base", name))
    return None if text is None else text.strip("\x00").strip()


def soc_facts():
    """What the SoC says it is: the device-tree model and compatible list, soc0's ids (a Jetson's
    nv_tegra_release, a Snapdragon's soc_id); {} where none is readable."""
    facts = {}
    model = _device_tree_text("model")
    if model:
        facts["model"] = model
    compatible = _device_tree_text("compatible")
    if compatible:
        facts["compatible"] = [c for c in compatible.split("\x00") if c][:16]
    for field in ("machine", "family", "soc_id", "revision"):
        value = read_text(sys_path("devices", "soc0", field))
        if value:
            facts[field] = value
    release = read_text(rootfs_path("etc", "nv_tegra_release"))
    if release:
        facts["l4t_release"] = first_line(release)[:200]
    return facts


def qnn_facts():
    """Qualcomm's QNN: the SDK's version ($QNN_SDK_ROOT/sdk.yaml) and the onnxruntime-qnn package
    (the QNN execution provider) with the QNN backends it ships; None when neither is there."""
    facts = {}
    root = os.environ.get("QNN_SDK_ROOT")
    if root:
        facts["sdk_root"] = root
        match = re.search(r"^\s*version\s*:\s*['\"]?([^'\"\s]+)", read_text(os.path.join(root, "sdk.yaml")) or "",
                          re.MULTILINE)
        facts["sdk_version"] = match.group(1) if match else os.path.basename(os.path.normpath(root))
    try:
        from importlib import metadata

        distribution = metadata.distribution("onnxruntime-qnn")
        facts["ep_version"] = distribution.version
        facts["backends"] = sorted(set(re.sub(r"^libQnn(\w+)\.so$", r"\1", os.path.basename(str(f)))
                                       for f in (distribution.files or [])
                                       if re.match(r"^libQnn(Htp|Cpu|Gpu|Saver)\.so$", os.path.basename(str(f)))))
    except Exception:  # no importlib.metadata (3.7) or no such package
        pass
    return facts or None


def accelerator_facts():
    """The accelerator side of a board's facts (absent parts are None/{})."""
    return {
        "gpu": gpu_state(),
        "emc_freq_hz": emc_freq_hz(),
        "nvpmodel": nvpmodel_mode(),
        "soc": soc_facts(),
        "qnn": qnn_facts(),
        "power_sources": [source.name for source in power_sources()],
    }


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
    facts.update(accelerator_facts())
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

    profiler = "?"  # the name of its profiler (orchestrator.agent_messages.Profile.source)

    def release(self):
        """Let go of the timed session once everything it measured was sent (the profiling pass
        then holds one copy of the model, not two: a small board has the memory for it)."""

    def profile(self, feeds, runs, deadline_ns):
        """(ProfileAccumulator, wall ns of each profiled inference): `runs` inferences on a SECOND,
        profiled session of the loaded model (see profiled_runs), never the timed one."""
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
        self.model_path = model_path
        names = self.config.get("providers") or ["CPUExecutionProvider"]
        requested = [ort_provider_name(p) for p in names]
        self.requested = requested
        available = set(ort.get_available_providers())
        usable = [p for p in requested if p in available]
        if "CPUExecutionProvider" not in usable:
            usable.append("CPUExecutionProvider")
        # a preset's options (qnn-htp: QNN's HTP backend), then the user's for that provider
        options_by_provider = {}
        for name in names:
            options_by_provider.setdefault(ort_provider_name(name), {}).update(provider_preset_options(name))
        for key, value in (self.config.get("provider_options") or {}).items():
            options_by_provider.setdefault(ort_provider_name(key), {}).update(value)
        self.usable = usable
        self.provider_options = [dict((str(k), str(v)) for k, v in options_by_provider.get(p, {}).items())
                                 for p in usable]
        try:
            self.session = self.new_session(self.session_options())
        except Exception as exc:  # onnxruntime raises several unrelated types for bad models
            raise AgentFailure("model-error", "cannot load model %s: %s" % (model_path, first_line(exc)))
        self.actual = list(self.session.get_providers())
        self.options_used = dict(zip(usable, self.provider_options))
        self.check_fallback()

    def session_options(self):
        """The timed session's options; the profiling pass's session adds the profiler to the same."""
        options = self.ort.SessionOptions()
        if self.config.get("threads"):
            options.intra_op_num_threads = int(self.config["threads"])
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not self.config.get("cpu_arena", True):
            options.enable_cpu_mem_arena = False  # each run's buffers go back to the OS (true transient peaks)
        return options

    def new_session(self, options):
        return self.ort.InferenceSession(self.model_path, sess_options=options, providers=self.usable,
                                         provider_options=self.provider_options)

    profiler = "onnxruntime-profiler"

    def profile(self, feeds, runs, deadline_ns):
        """Per-node times from a SECOND session with onnxruntime's profiler on: profiling is set
        when a session is created and records every run it makes, so the timed session never
        has it. Returns (ProfileAccumulator, wall ns of each profiled inference). The trace is
        read one event at a time once the session is gone, then deleted: it never travels."""
        folder = tempfile.mkdtemp(prefix="farm-profile-")
        try:
            options = self.session_options()
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(folder, "ort")
            session = self.new_session(options)
            try:
                times_ns = profiled_runs(lambda: session.run(None, feeds), runs, deadline_ns)
            finally:
                trace = session.end_profiling()
                session = None
            return read_ort_trace(trace, PROFILE_WARMUP_RUNS), times_ns
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def release(self):
        self.session = None

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
        options = self.options_used.get(self.actual[0]) or {}
        return {
            "runtime": self.name,
            "runtime_version": self.ort.__version__,
            "provider": self.actual[0],
            "providers_requested": self.requested,
            "providers_active": self.actual,
            "provider_fallback": self.actual[0] != self.requested[0],
            "available_providers": list(self.ort.get_available_providers()),
            "inference_precision": None,  # the model's own types: onnxruntime does not lower precision
            "provider_options": options,  # what the provider that ran was given (TensorRT's engine cache...)
            "accelerator": accelerator_of(self.actual[0], options),
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
        self.core = core
        self.compile_config = config

    profiler = "openvino-perf-counters"

    def release(self):
        self.compiled = self.request = None

    def profile(self, feeds, runs, deadline_ns):
        """Per-layer times from a SECOND compiled model with PERF_COUNT on (the timed one has
        it off). OpenVINO's counters describe the request's last inference, so they are read
        after each profiled one and added up. Layers OpenVINO fused away or did not run are
        counted, not timed."""
        config = dict(self.compile_config)
        config["PERF_COUNT"] = "YES"
        compiled = self.core.compile_model(self.model, self.device, config)
        request = compiled.create_infer_request()
        found = ProfileAccumulator()
        outputs = list(compiled.outputs)

        def run():
            request.infer(feeds)
            return [request.get_tensor(port) for port in outputs]

        def after_run():
            records = []
            not_run = 0
            for info in request.get_profiling_info():
                if getattr(info.status, "name", str(info.status).rpartition(".")[2]) != "EXECUTED":
                    not_run += 1
                    continue
                records.append((info.node_name, info.node_name, info.node_type, self.device,
                                info.real_time.total_seconds() * 1e6, info.exec_type))
            found.add_run(records)
            found.not_run = not_run

        times_ns = profiled_runs(run, runs, deadline_ns, after_run)
        return found, times_ns

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
            "provider_options": {},
            "accelerator": accelerator_of(self.device),
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

    kept = decimate(samples_ns, config.get("max_samples"))
    for seq, start in enumerate(range(0, len(kept), CHUNK_VALUES)):
        emit("worker_chunk", field="latency_ms", seq=seq, values=[s / 1e6 for s in kept[start:start + CHUNK_VALUES]])
    result = dict(
        latency=latency_summary(np, samples_ns),
        latency_samples_total=len(samples_ns),
        latency_samples_kept=len(kept),
        load_ms=load_ns / 1e6,
        first_inference_ms=first_ns / 1e6,
        measure_s=measure_ns / 1e9,
        truncated=truncated,
        peak_rss_load_bytes=peak_rss_load_bytes,
        peak_rss_inference_bytes=peak_rss_inference_bytes,
        peak_rss_reset_supported=peak.reset_supported,
        worker_pid=os.getpid(),
        inputs=[{"name": name, "shape": list(value.shape), "dtype": str(value.dtype)} for name, value in feeds.items()],
        outputs_error=None,
    )
    result.update(runtime.describe())
    del samples_ns, kept
    if config.get("dataset"):
        # Accuracy on the same loaded model, after everything measured is taken (the peaks above are
        # final): no second process, no second model load.
        emit("phase", phase="outputs", t_ns=time.monotonic_ns())
        try:
            emit("worker_outputs", **write_outputs(np, runtime, config["dataset"], config["outputs_path"], 1))
        except AgentFailure as exc:
            result["outputs_error"] = "%s: %s" % (exc.kind, exc)
    emit("worker_result", **result)
    if int(config.get("profile_runs") or 0) > 0:
        # After everything measured was sent: a profiler that crashes the worker costs the profile only.
        emit("phase", phase="profile", t_ns=time.monotonic_ns())
        emit("worker_profile", **profile_pass(runtime, feeds, config, measure_ns))


def decimate(samples, limit):
    """At most `limit` of `samples`, evenly spaced (every k-th), or all of them."""
    if not limit or len(samples) <= limit:
        return samples
    step = -(-len(samples) // int(limit))
    return samples[::step]


def latency_summary(np, samples_ns):
    """The exact summary of every measured run (ms), whatever number of samples is sent back.

    Same definitions as the controller's orchestrator.analysis.summarize_latency: numpy's linear
    percentiles, the sample standard deviation (ddof 1; 0 for one run).
    """
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50.0, 90.0, 99.0]))
    return {
        "count": int(values.size),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
        "stdev_ms": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
    }


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
# the profiling pass: per-operator times, after (and apart from) the timed runs
#
# It runs in the same worker once the measured loop, its peaks and the dataset are done, on a
# second session (onnxruntime) or compiled model (OpenVINO) with the runtime's profiler on, so the
# profiler's own cost never reaches a timed figure. What comes back is compact whatever the
# model: per operator type (and provider) its time per inference and node count, the top nodes,
# the nodes per provider; the raw trace stays on the board and is deleted.

PROFILE_WARMUP_RUNS = 2  # the profiled session's first inferences (allocation, kernel choice) are not counted
PROFILE_TOP_NODES = 10
PROFILE_MAX_OPS = 512
PROFILE_MAX_PROVIDER_OPS = 64
PROFILE_NAME_CHARS = 200


class ProfileAccumulator(object):
    """Each node's time in every profiled inference (µs), then summarised per operator type.

    A node's figure is its median over the inferences (a node absent from one counts 0 there):
    one preempted or cgroup-throttled inference (a lab board's CPU quota stalls a process for
    tens of ms) must not land on whichever node was running. Sums are of these medians, so
    they compare with the timed runs' median."""

    def __init__(self):
        self.nodes = {}  # key -> [name, op_type, provider, kernel, [µs per inference]]
        self.runs = 0
        self.not_run = None  # OpenVINO: layers fused away or not executed (None: the runtime does not say)

    def add_run(self, records):
        """One inference's nodes: (key, name, op_type, provider, µs, kernel or None) each."""
        self.runs += 1
        for key, name, op_type, provider, micros, kernel in records:
            node = self.nodes.get(key)
            if node is None:
                node = self.nodes[key] = [name, op_type, provider, kernel, []]
            times = node[4]
            if len(times) < self.runs - 1:
                times.extend([0.0] * (self.runs - 1 - len(times)))  # absent from earlier inferences
            if len(times) == self.runs:
                times[-1] += float(micros)  # a node that ran twice in one inference (a loop body)
            else:
                times.append(float(micros))

    def node_times(self):
        """[(name, op_type, provider, kernel, median µs per inference)]."""
        found = []
        for name, op_type, provider, kernel, times in self.nodes.values():
            found.append((name, op_type, provider, kernel,
                          statistics.median(times + [0.0] * (self.runs - len(times))) if times else 0.0))
        return found

    def summary(self):
        ops = {}
        providers = {}
        nodes = self.node_times()
        for name, op_type, provider, kernel, micros in nodes:
            op = ops.setdefault((op_type, provider), {"us": 0.0, "nodes": 0, "kernels": {}})
            op["us"] += micros
            op["nodes"] += 1
            if kernel:
                op["kernels"][kernel] = op["kernels"].get(kernel, 0.0) + micros
            split = providers.setdefault(provider, {"us": 0.0, "nodes": 0, "ops": {}})
            split["us"] += micros
            split["nodes"] += 1
            split["ops"][op_type] = split["ops"].get(op_type, 0.0) + micros
        ranked = sorted(ops.items(), key=lambda item: -item[1]["us"])[:PROFILE_MAX_OPS]
        top = sorted(nodes, key=lambda node: -node[4])[:PROFILE_TOP_NODES]
        return {
            "nodes_executed": len(nodes),
            "nodes_not_run": self.not_run,
            "op_ms_per_run": sum(n[4] for n in nodes) / 1000.0,
            "ops": [{"op_type": clip(op_type), "provider": clip(provider), "us_per_run": op["us"],
                     "nodes": op["nodes"],
                     "kernels": [clip(k) for k, _ in sorted(op["kernels"].items(), key=lambda kv: -kv[1])[:4]]}
                    for (op_type, provider), op in ranked],
            "top_nodes": [{"name": clip(name), "op_type": clip(op_type), "provider": clip(provider),
                           "us_per_run": micros, "kernel": clip(kernel) if kernel else None}
                          for name, op_type, provider, kernel, micros in top],
            "providers": [{"provider": clip(provider), "nodes": split["nodes"], "us_per_run": split["us"],
                           "op_types": [clip(o) for o, _ in sorted(split["ops"].items(),
                                                                   key=lambda kv: -kv[1])[:PROFILE_MAX_PROVIDER_OPS]]}
                          for provider, split in sorted(providers.items(), key=lambda item: -item[1]["us"])],
        }


def clip(text):
    text = str(text)
    return text if len(text) <= PROFILE_NAME_CHARS else text[:PROFILE_NAME_CHARS - 3] + "..."


def profiled_runs(run, runs, deadline_ns, after_run=None):
    """PROFILE_WARMUP_RUNS uncounted inferences, then up to `runs` more, stopping early at
    `deadline_ns` (perf_counter_ns; at least one is run). Returns each counted one's wall ns."""
    perf = time.perf_counter_ns
    for _ in range(PROFILE_WARMUP_RUNS):
        run()
    times_ns = []
    while len(times_ns) < runs:
        started = perf()
        run()
        times_ns.append(perf() - started)
        if after_run is not None:
            after_run()
        if perf() >= deadline_ns:
            break
    return times_ns


def read_ort_trace(path, skip_runs):
    """onnxruntime's profile (Chrome trace JSON) -> a ProfileAccumulator of its runs after the
    first `skip_runs`. Node events (`cat` Node, `*_kernel_time`, args op_name/provider/node_index)
    come before the `model_run` event that ends their run; the file has one event a line, read
    one at a time so a long trace is never held whole (a whole-file parse is the fallback)."""
    try:
        with open(path) as handle:
            return _ort_runs(_ort_trace_lines(handle), skip_runs)
    except ValueError:
        with open(path) as handle:
            return _ort_runs(json.load(handle), skip_runs)


def _ort_trace_lines(handle):
    for line in handle:
        text = line.strip().rstrip(",")
        if text and text not in ("[", "]"):
            event = json.loads(text)
            if not isinstance(event, dict):
                raise ValueError("not one event a line")
            yield event


def _ort_runs(events, skip_runs):
    found = ProfileAccumulator()
    pending = []
    seen = 0
    for event in events:
        name = event.get("name") or ""
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            args = event.get("args") or {}
            node = name[:-len("_kernel_time")]
            key = args.get("node_index", node)
            # onnxruntime names the nodes its NCHWc layout transformer made `*_nchwc`: their kernels
            # work on channel-blocked tensors, its fast CPU path for convolutions and pooling.
            kernel = "NCHWc" if node.endswith("_nchwc") else None
            pending.append((key, node or "#%s" % key, args.get("op_name") or "?", args.get("provider") or "?",
                            event.get("dur") or 0, kernel))
        elif event.get("cat") == "Session" and name == "model_run":
            if seen >= skip_runs:
                found.add_run(pending)
            seen += 1
            pending = []
    return found


def profile_pass(runtime, feeds, config, measure_ns):
    """The profiling pass: its summary and cost, or {"error": why} (the measurement stands)."""
    runs = int(config["profile_runs"])
    started = time.perf_counter_ns()
    deadline_ns = started + int(float(config["profile_max_seconds"]) * 1e9)
    runtime.release()
    try:
        found, times_ns = runtime.profile(feeds, runs, deadline_ns)
    except Exception as exc:  # a runtime or provider without a profiler, a trace it could not write
        return {"error": "%s: %s" % (type(exc).__name__, first_line(exc))}
    if found.runs == 0 or not found.nodes:
        return {"error": "the %s recorded no node of any profiled inference" % runtime.profiler}
    wall_ns = time.perf_counter_ns() - started
    profile = found.summary()
    profile.update({
        "source": runtime.profiler,
        "runs": found.runs,
        "runs_asked": runs,
        "truncated": len(times_ns) < runs,
        "run_ms_p50": statistics.median(times_ns) / 1e6,
        "wall_s": wall_ns / 1e9,
        "cost_ratio": wall_ns / float(measure_ns) if measure_ns > 0 else None,
    })
    return {"profile": profile}


# ---------------------------------------------------------------------------------------------
# the parent: starts the worker, samples it and the board, forwards its messages


class Sampler(threading.Thread):
    """pidstat-style sampling of one process plus board telemetry, every `interval_s`.

    Each sample: t_s (since start), phase, rss/hwm/anon/file/pss bytes, minor/major faults,
    cpu_percent over the interval (utime+stime delta / wall delta, pidstat -u semantics; can
    exceed 100 with several threads), temperatures, per-core frequency and load average; on a
    board with power sensors (`meter`, a PowerMeter) the board's power (W, `power_w`) and each
    source's, and on a Jetson the GPU's load (%) and clock (MHz).
    """

    def __init__(self, pid, interval_s, meter=None):
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
        self.meter = meter
        self._gpu = gpu_state() is not None

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
        row = self.samples[-1]
        if self.meter is not None:
            row["power_w"], row["power_by_source_w"] = self.meter.read()
        if self._gpu:
            gpu = gpu_state() or {}
            row["gpu_load_pct"] = gpu.get("load_pct")
            row["gpu_freq_mhz"] = None if gpu.get("freq_hz") is None else round(gpu["freq_hz"] / 1e6, 1)


def cool_down(seconds, below_temp_c, max_seconds):
    """Wait a fixed time and/or until the hottest zone is below a threshold, capped. Returns facts.

    A cancelled job (the controller's cancel, or the controller gone) stops waiting at once.
    """
    stop = current_job().cancelled
    started = time.monotonic()
    if seconds > 0:
        stop.wait(seconds)
    hottest = None
    if below_temp_c is not None:
        deadline = started + max(max_seconds, seconds)
        while not stop.is_set():
            temps = thermal_zones_c()
            hottest = max(temps.values()) if temps else None
            if hottest is None or hottest < below_temp_c or time.monotonic() >= deadline:
                break
            stop.wait(0.5)
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
    result["power_w_mean"] = mean_power_w(samples, phase_marks)
    gpu = [s["gpu_load_pct"] for s in measured if s.get("gpu_load_pct") is not None]
    result["gpu_load_pct_mean"] = round(sum(gpu) / len(gpu), 1) if gpu else None
    return result


def check_model_files(args):
    """The model file (and an IR's weights file) must be on the board before a worker starts."""
    for path in [args.model] + ([args.weights] if args.weights else []):
        if not os.path.isfile(path):
            raise AgentFailure("model-error", "model file not found on the board: %s" % path)


# ---------------------------------------------------------------------------------------------
# jobs: what the session is doing now, so that a cancel (or the controller's death) can stop it


class Job:
    """One request being carried out. `cancelled` is set by the controller's cancel or by the
    session ending; `cancel_kind`/`cancel_message` say how the job is to be reported then."""

    def __init__(self, request_id=None):
        self.id = request_id
        self.cancelled = threading.Event()
        self.cancel_kind = "interrupted"
        self.cancel_message = "cancelled by the controller"

    def cancel(self, kind, message):
        self.cancel_kind = kind if kind in ("timeout", "interrupted") else "interrupted"
        self.cancel_message = str(message or self.cancel_message)[:500]
        self.cancelled.set()
        kill_children()

    def check(self):
        if self.cancelled.is_set():
            raise AgentFailure(self.cancel_kind, self.cancel_message)


_ONE_SHOT_JOB = Job()


def current_job():
    return getattr(_request, "job", None) or _ONE_SHOT_JOB


# Child processes (workers) running now: killed, with their process groups, when the job is
# cancelled or the controller is gone. Each worker leads its own process group.
_CHILDREN = set()
_CHILDREN_LOCK = threading.Lock()
# Called with the pid of a worker that starts (and None when it ends): the session writes it
# into the lease, so a controller taking over a dead holder's lease can stop it.
_on_worker = [lambda pid: None]


# A spare worker the session started ahead of the next job (see Session.prepare_worker), or None.
_spare = [lambda: None]


def start_child(argv, stdin=subprocess.DEVNULL):
    child = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, universal_newlines=True,
                             start_new_session=True)
    with _CHILDREN_LOCK:
        _CHILDREN.add(child)
    _on_worker[0](child.pid)
    if current_job().cancelled.is_set():
        kill_children()
    return child


def start_worker(config):
    """The cell's worker: the session's spare (already past its start-up, given its config on
    stdin) or a new one (config as its argument). Either is a fresh process used for one job."""
    worker = _spare[0]()
    if worker is not None:
        try:
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(config) + "\n")
            worker.stdin.close()
            _on_worker[0](worker.pid)
            return worker
        except (OSError, ValueError):
            end_child(worker)  # it died waiting: start a new one
    return start_child([sys.executable, os.path.abspath(__file__), "_worker", json.dumps(config)])


def end_child(child):
    """Reap `child` (its whole process group is killed: nothing it started is left behind)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        pass
    returncode = child.wait()
    with _CHILDREN_LOCK:
        _CHILDREN.discard(child)
    _on_worker[0](None)
    return returncode


def kill_children():
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass


def bench_main(args):
    """Measure one cell in a fresh worker process; stream its samples and time series back in
    bounded chunks, then the result (and, with --dataset, the dataset's outputs)."""
    job = current_job()
    check_model_files(args)
    shapes = {}
    for text in args.shape or []:
        name, _, dims = text.rpartition("=")
        try:
            shapes[name] = [int(d) for d in dims.replace(",", "x").split("x")]
        except ValueError:
            raise AgentFailure("input-error", "bad --shape %r (expected NAME=1x3x224x224)" % text)
    if args.dataset and not os.path.isfile(args.dataset):
        raise AgentFailure("input-error", "dataset not found on the board: %s" % args.dataset)
    cooldown = cool_down(args.cooldown_s, args.cooldown_below_c, args.cooldown_max_s)
    job.check()
    # Power: the board's sensors, its idle power before the worker starts (after the cool-down),
    # then sampled beside the worker's memory (sampling off: no power either).
    sources = power_sources() if args.sample_interval > 0 else []
    meter = PowerMeter(sources) if sources else None
    power = {"power_sources": [source.name for source in sources],
             "power_w_idle": idle_power(meter, args.idle_power_s)}
    job.check()
    outputs_path = None
    if args.dataset:
        outputs_path = os.path.abspath("outputs-%s.npz" % binascii.hexlify(os.urandom(6)).decode())
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
        "max_samples": args.max_samples,
        "dataset": os.path.abspath(args.dataset) if args.dataset else None,
        "outputs_path": outputs_path,
        "profile_runs": args.profile_runs,
        "profile_max_seconds": args.profile_max_seconds,
    }
    config.update(runtime_config(args))
    freq_before = cpu_freqs_khz()
    worker = start_worker(config)
    try:
        return _watch_worker(args, worker, dict(cooldown, **power), freq_before, outputs_path, meter)
    finally:
        end_child(worker)
        if outputs_path:
            remove_quietly(outputs_path)


def _watch_worker(args, worker, cooldown, freq_before, outputs_path, meter=None):
    job = current_job()
    sampler = Sampler(worker.pid, args.sample_interval, meter) if args.sample_interval > 0 else None
    if sampler is not None:
        sampler.start()
    worker_result = worker_error = worker_outputs = worker_profile = None
    profiling = False
    assert worker.stdout is not None
    for line in worker.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            log("worker wrote a non-protocol line: %r" % line[:200])
            continue
        kind = message.get("type")
        if kind == "phase":
            if sampler is not None:
                sampler.mark(message["phase"])
            profiling = profiling or message["phase"] == "profile"
            emit("phase", phase=message["phase"])
        elif kind == "worker_chunk":
            emit("chunk", field=message["field"], seq=message["seq"], values=message["values"])
        elif kind == "worker_outputs":
            worker_outputs = message
        elif kind == "worker_result":
            worker_result = message
        elif kind == "worker_profile":
            worker_profile = message
        elif kind == "error":
            worker_error = message
    returncode = worker.wait()
    if sampler is not None:
        sampler.stop()
    job.check()
    if worker_error is not None:
        emit("error", kind=worker_error.get("kind", "agent-error"), message=worker_error.get("message"),
             traceback=worker_error.get("traceback"))
        return 1
    profile_error = (worker_profile or {}).get("error")
    if profiling and worker_result is not None and worker_profile is None and returncode != 0:
        # the profiling pass took the worker down after its result was sent: the measurement stands
        profile_error = "the profiling pass ended the worker (exit status %s%s)" % (
            returncode, ", SIGKILL: out of memory?" if returncode in (-signal.SIGKILL, 137) else "")
        returncode = 0
    if returncode == -signal.SIGKILL or returncode == 137:
        emit_error("oom-killed", "the worker was killed by SIGKILL (out of memory?) while running %s" % args.model)
        return 1
    if returncode != 0 or worker_result is None:
        emit_error("agent-error", "the worker exited with status %s and no result" % returncode)
        return 1
    samples = sampler.samples if sampler is not None else []
    marks = sampler.phase_marks if sampler is not None else []
    for key in ("type", "v"):
        worker_result.pop(key, None)
    loads = [worker_result["peak_rss_load_bytes"], worker_result["peak_rss_inference_bytes"]]
    result = dict(worker_result)
    result.update(cooldown)
    result["peak_rss_bytes"] = max(v for v in loads if v is not None) if any(v is not None for v in loads) else None
    result["sample_interval_s"] = args.sample_interval
    result["phase_marks"] = marks
    result.update(summarize_run(samples, marks, freq_before))
    kept = decimate(samples, args.max_series_rows)
    for seq, start in enumerate(range(0, len(kept), CHUNK_ROWS)):
        emit("chunk", field="samples", seq=seq, values=kept[start:start + CHUNK_ROWS])
    result["samples_total"] = len(samples)
    result["samples_kept"] = len(kept)
    result["profile"] = (worker_profile or {}).get("profile")
    result["profile_error"] = profile_error
    if worker_outputs is not None:
        stream_outputs(worker_outputs)
    emit("result", result=result)
    return 0


def stream_outputs(message):
    """Send an outputs file back in chunks (base64), then its `outputs` message; remove the file."""
    path = message["path"]
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for seq in range(1 << 40):
            data = handle.read(CHUNK_BYTES)
            if not data:
                break
            digest.update(data)
            size += len(data)
            emit("chunk", field="outputs_npz", seq=seq, data=base64.b64encode(data).decode("ascii"))
    remove_quietly(path)
    emit("outputs", count=message["count"], output_names=message["output_names"], runtime=message["runtime"],
         size_bytes=size, sha256=digest.hexdigest())


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def forward_signals_to(_child):
    """SIGTERM/SIGINT/SIGHUP on a one-shot agent stop its workers too: no orphan left on the board."""

    def handler(signum, frame):
        kill_children()
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


def write_outputs(np, runtime, dataset, out, batch):
    """Run every input of `dataset` (.npz with `inputs`) through the loaded model, save the outputs
    as .npz at `out`; returns what the `outputs` message says about them."""
    try:
        data = np.load(dataset, allow_pickle=False)
        inputs = data["inputs"]
    except (OSError, KeyError, ValueError) as exc:
        raise AgentFailure("input-error", "cannot read dataset %s: %s" % (dataset, first_line(exc)))
    name, dtype, _ = runtime.input_specs()[0]
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
    tmp = out + ".tmp"
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, out)
    return {"path": os.path.abspath(out), "count": int(len(inputs)), "output_names": runtime.output_names(),
            "runtime": runtime.describe()}


def outputs_main(args):
    """Run every input of a dataset through the model and save the outputs as .npz (--out), or,
    without --out, stream them back (base64 chunks) and keep nothing on the board."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("missing-runtime", "numpy is not installed for %s" % sys.executable)
    check_model_files(args)
    runtime = make_runtime(runtime_config(args))
    runtime.load(args.model, args.weights)
    if args.out:
        info = write_outputs(np, runtime, args.dataset, args.out, args.batch)
        emit("outputs", path=info["path"], count=info["count"], output_names=info["output_names"],
             runtime=info["runtime"])
        return 0
    out = os.path.abspath("outputs-%s.npz" % binascii.hexlify(os.urandom(6)).decode())
    try:
        stream_outputs(write_outputs(np, runtime, args.dataset, out, args.batch))
    finally:
        remove_quietly(out)
    return 0


def outputs_in_child(argv):
    """The session's `outputs`: the outputs verb in a fresh process (a runtime crash cannot take
    the session down), its messages forwarded."""
    child = start_child([sys.executable, os.path.abspath(__file__), "outputs"] + list(argv))
    try:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            for key in ("v", "id"):
                message.pop(key, None)
            emit(message.pop("type", "error"), **message)
        returncode = child.wait()
    finally:
        end_child(child)
    current_job().check()
    if returncode not in (0, 1):
        emit_error("oom-killed" if returncode in (-signal.SIGKILL, 137) else "agent-error",
                   "the outputs process exited with status %s" % returncode)
    return returncode


# ---------------------------------------------------------------------------------------------
# leases: who is using this board, recorded on the board so every controller sees it
#
# A lease also names the agent process that holds it and its running worker (pid, start time,
# boot id): a controller taking over an expired lease, or ours from a session that went away,
# first kills what that holder left running, so nothing measures beside the new holder.


def process_identity(pid):
    return {"pid": pid, "start": process_start_ticks(pid), "boot": boot_id()}


def same_process(identity):
    """`identity` (a lease's record of a process) names a process alive now (not a reused pid)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int) or identity["pid"] <= 1:
        return False
    if identity.get("boot") != boot_id() or identity.get("start") is None:
        return False
    return process_start_ticks(identity["pid"]) == identity["start"]


def holder_gone(lease):
    """The agent session that holds `lease` ran on this machine since its last boot and has ended
    (killed before it could free the lease): nobody renews it, so it is as good as expired."""
    agent = lease.get("agent")
    if not isinstance(agent, dict) or agent.get("boot") is None or agent.get("boot") != boot_id():
        return False  # a one-shot holder, or one this board cannot see: its ttl decides
    return agent.get("pid") != os.getpid() and not same_process(agent)


def read_lease_file(workdir):
    try:
        with open(os.path.join(workdir, LEASE_FILE)) as handle:
            lease = json.load(handle)
    except (OSError, ValueError):
        return None
    return lease if isinstance(lease, dict) else None


def lease_expired(lease):
    try:
        return float(lease.get("expires_at", 0)) <= time.time()
    except (TypeError, ValueError):
        return True


def read_lease(workdir):
    """The current lease, or None when there is none or it has expired (board clock)."""
    lease = read_lease_file(workdir)
    if lease is None or lease_expired(lease) or holder_gone(lease):
        return None
    lease["expires_in_s"] = round(float(lease["expires_at"]) - time.time(), 1)
    return lease


def write_lease(workdir, lease):
    tmp = os.path.join(workdir, LEASE_FILE + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(lease, handle)
    os.replace(tmp, os.path.join(workdir, LEASE_FILE))


class LeaseLock:
    """The flock that makes every lease change atomic between agents on the board."""

    def __init__(self, workdir):
        self.workdir = workdir

    def __enter__(self):
        import fcntl

        if not os.path.isdir(self.workdir):
            os.makedirs(self.workdir)
        self.handle = open(os.path.join(self.workdir, "lease.lock"), "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def kill_leftovers(lease):
    """Kill the worker and the agent a lease names, where they are still those processes."""
    killed = []
    worker = lease.get("worker")
    if same_process(worker) and worker["pid"] != os.getpid():
        try:
            os.killpg(worker["pid"], signal.SIGKILL)
            killed.append(worker["pid"])
        except OSError:
            pass
    agent = lease.get("agent")
    if same_process(agent) and agent["pid"] != os.getpid():
        try:
            os.kill(agent["pid"], signal.SIGKILL)
            killed.append(agent["pid"])
        except OSError:
            pass
    if killed:
        log("killed what the previous holder left running: %s" % killed)
    return killed


def lease_main(args, session=None):
    """acquire / renew / release, atomic under an flock so two controllers never both win.

    `session`: the agent session asking (its identity goes into the lease, and it renews the
    lease itself while its controller is alive); None for the one-shot `lease` verb.
    """
    holder = json.loads(args.holder)
    answer = lease_change(args.workdir, args.action, holder, args.ttl, session)
    emit("lease", **answer)
    return 0


def lease_change(workdir, action, holder, ttl, session=None):
    with LeaseLock(workdir):
        raw = read_lease_file(workdir)
        current = raw if raw is not None and not lease_expired(raw) and not holder_gone(raw) else None
        mine = current is not None and (current.get("holder") or {}).get("id") == holder.get("id")
        same_session = session is None or (current or {}).get("agent", {}) is None or \
            ((current or {}).get("agent") or {}).get("session") == session.id
        if action == "release":
            released = mine and same_session
            if released:
                os.remove(os.path.join(workdir, LEASE_FILE))
            return {"acquired": False, "released": released, "lease": None if mine else current}
        if current is not None and not mine:
            return {"acquired": False, "lease": current}
        if action == "renew" and not mine:
            return {"acquired": False, "lease": None, "lost": True}
        killed, previous = [], None
        if action == "acquire" and raw is not None and (current is None or not same_session):
            killed = kill_leftovers(raw)  # an expired holder's, or ours from a session that went away
            if current is None and (raw.get("holder") or {}).get("id") != holder.get("id"):
                previous = raw  # we take over another holder's expired lease: the controller says whose
        now = time.time()
        lease = {"holder": holder, "since": current["since"] if mine else now, "expires_at": now + ttl,
                 "agent": session.identity() if session is not None else None,
                 "worker": current.get("worker") if (mine and same_session and session is not None) else None}
        write_lease(workdir, lease)
        return {"acquired": True, "lease": lease, "killed": killed, "previous": previous}


def note_worker(workdir, session, pid):
    """Record the session's running worker (None: none) in its lease, if it still holds it."""
    with LeaseLock(workdir):
        lease = read_lease_file(workdir)
        if lease is None or ((lease.get("agent") or {}).get("session") != session.id):
            return
        lease["worker"] = process_identity(pid) if pid else None
        write_lease(workdir, lease)


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


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# the session: one agent process per board per run, requests in, answers out, both on one channel


MAX_REQUEST_BYTES = 1 << 20


class Session:
    """`serve`: the agent the controller starts once per board per run (labgrid's agent model).

    stdin carries the controller's requests, one JSON object a line ({"id", "op", ...}); stdout
    carries the answers, each tagged with its request's id, and a heartbeat line every
    `heartbeat_s`. Requests run one at a time in a job thread; the reading thread stays free for
    `cancel`, `beat` and `bye`. The agent owns its cleanup: on end-of-file on stdin, or when no
    controller line came for `controller_timeout_s` (a half-open link), or on SIGTERM/SIGHUP, it
    kills its workers' process groups, frees its lease and exits. While the controller is alive
    it renews its lease itself (every third of the lease's ttl), so no second connection is needed.
    """

    def __init__(self, args):
        self.workdir = os.getcwd()
        self.heartbeat_s = max(0.1, float(args.heartbeat_s))
        self.controller_timeout_s = max(2.0 * self.heartbeat_s, float(args.controller_timeout_s))
        self.id = binascii.hexlify(os.urandom(8)).decode()
        self.last_heard = time.monotonic()
        self.lease_holder = None
        self.lease_ttl = None
        self.lease_renewed_at = 0.0
        self.lease_lost = False
        self.jobs = queue.Queue()
        self.current = None
        self.spare = None
        self.hash_cache = {}
        self._ending = threading.Lock()
        self._wake = threading.Event()  # never set: the watchdog's clock
        self._beat_now = threading.Event()  # a heartbeat (and the news it carries) is due now

    def identity(self):
        identity = process_identity(os.getpid())
        identity["session"] = self.id
        return identity

    # -- the threads

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: self.end("signal %d" % signum))
        _on_worker[0] = lambda pid: self.note_worker(pid)
        try:
            emit("hello", agent_version=AGENT_VERSION, session=self.id, pid=os.getpid(), workdir=self.workdir,
                 python_executable=sys.executable, python_version=platform.python_version(),
                 heartbeat_s=self.heartbeat_s, controller_timeout_s=self.controller_timeout_s)
        except ControllerGone:
            self.end("stdout closed before hello")
        _spare[0] = self.take_spare_worker
        self.prepare_worker()
        for target in (self.heartbeat_loop, self.watchdog_loop, self.job_loop):
            threading.Thread(target=target, daemon=True).start()
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline(MAX_REQUEST_BYTES)
            if not line:
                self.end("the controller closed the channel (end of file)")
            self.last_heard = time.monotonic()
            if not line.endswith(b"\n"):
                log("a request line over %d bytes: ignored" % MAX_REQUEST_BYTES)
                while line and not line.endswith(b"\n"):
                    line = stdin.readline(MAX_REQUEST_BYTES)
                continue
            try:
                request = json.loads(line)
                op = request["op"]
            except (ValueError, KeyError, TypeError):
                log("not a request: %r" % line[:200])
                continue
            if op == "beat":
                continue
            if op == "cancel":
                job = self.current
                if job is not None and job.id == request.get("target"):
                    job.cancel(request.get("kind"), request.get("message"))
                continue
            if op == "bye":
                self.end("the controller said bye", request.get("id"))
            self.jobs.put(request)

    def heartbeat_loop(self):
        while True:
            self._beat_now.wait(self.heartbeat_s)
            self._beat_now.clear()
            try:
                if self.lease_lost:
                    self.lease_lost = False
                    emit("lease", id=None, acquired=False, lease=read_lease(self.workdir), lost=True)
                emit("heartbeat", id=None)
            except ControllerGone:
                self.end("stdout closed")

    def watchdog_loop(self):
        """Liveness of the controller, and lease renewal. Never writes to stdout (a stalled link
        can block a write for ever; this thread must still notice the silence and clean up)."""
        while not self._wake.wait(min(1.0, self.heartbeat_s)):
            silent_s = time.monotonic() - self.last_heard
            if silent_s > self.controller_timeout_s:
                self.end("no word from the controller for %.0f s" % silent_s)
            if self.lease_holder is not None and time.monotonic() - self.lease_renewed_at >= self.lease_ttl / 3.0:
                self.renew_lease()

    def job_loop(self):
        while True:
            request = self.jobs.get()
            job = Job(request.get("id"))
            self.current = job
            _request.id = job.id
            _request.job = job
            try:
                self.handle(request)
            except AgentFailure as exc:
                self.answer_error(exc.kind, str(exc))
            except ControllerGone:
                self.end("stdout closed")
            except MemoryError:
                self.answer_error("oom-killed", "out of memory (MemoryError)", traceback.format_exc())
            except Exception as exc:  # the agent must answer in protocol, whatever happens
                self.answer_error("agent-error", "%s: %s" % (type(exc).__name__, first_line(exc)),
                                  traceback.format_exc())
            finally:
                self.current = None
                _request.id = None
                _request.job = None
            if request.get("op") == "bench" and request.get("more"):
                self.prepare_worker()  # the controller said another bench job follows

    def answer_error(self, kind, message, tb=None):
        try:
            emit_error(kind, message, tb)
        except ControllerGone:
            self.end("stdout closed")

    # -- requests

    def handle(self, request):
        op = request.get("op")
        if op == "stage_check":
            return self.stage_check(request.get("files") or [])
        if op == "stage_commit":
            return self.stage_commit(request.get("files") or [])
        if op not in ("facts", "lease", "clean", "bench", "outputs"):
            raise AgentFailure("agent-error", "unknown request %r" % (op,))
        argv = request.get("args") or []
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise AgentFailure("input-error", "request %r: args must be a list of strings" % op)
        if op in ("bench", "outputs"):
            self.check_lease()
        if op == "outputs":
            return outputs_in_child(argv)
        args = build_parser(SessionParser).parse_args([op] + argv)
        args.workdir = self.workdir
        if op == "facts":
            emit("facts", facts=collect_facts(self.workdir, quick=args.quick))
        elif op == "lease":
            holder = json.loads(args.holder)
            answer = lease_change(self.workdir, args.action, holder, args.ttl, self)
            if args.action == "release" and answer.get("released"):
                self.lease_holder = None
            elif answer.get("acquired"):
                self.lease_holder, self.lease_ttl = holder, args.ttl
                self.lease_renewed_at = time.monotonic()
            emit("lease", **answer)
        elif op == "clean":
            clean_main(args)
        else:
            bench_main(args)

    def staged_path(self, name, pattern):
        if not isinstance(name, str) or not pattern.match(name):
            raise AgentFailure("input-error", "not a staged file name: %r" % (name,))
        return os.path.join(self.workdir, name)

    def hash_of(self, path):
        """sha256 of a file, remembered for the session while its size and mtime stay the same."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = (stat.st_size, stat.st_mtime_ns)
        cached = self.hash_cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = file_sha256(path)
        self.hash_cache[path] = (key, digest)
        return digest

    def stage_check(self, files):
        """Which of the files ({name, sha256}) the work dir has with that content."""
        answer = []
        for item in files:
            path = self.staged_path(item.get("name"), STAGED_NAME_RE)
            answer.append({"name": item["name"], "present": self.hash_of(path) == item.get("sha256")})
        emit("staged", files=answer)

    def stage_commit(self, files):
        """Uploads ({part, name, sha256}) that arrived under a temporary name: each is hashed and
        renamed into place, or removed when its content is not what was sent."""
        answer = []
        for item in files:
            part = self.staged_path(item.get("part"), PART_NAME_RE)
            path = self.staged_path(item.get("name"), STAGED_NAME_RE)
            got = file_sha256(part) if os.path.isfile(part) else None
            if got != item.get("sha256"):
                remove_quietly(part)
                raise AgentFailure("agent-error", "the upload of %s arrived as %s, not %s (the board's copy was "
                                   "removed)" % (item["name"], got or "nothing", item.get("sha256")))
            os.replace(part, path)
            answer.append({"name": item["name"], "present": True})
        emit("staged", files=answer)

    # -- the next job's worker, started ahead

    def prepare_worker(self):
        """Start a spare worker for the next bench job, so that its Python start-up and numpy
        import overlap the controller's round trips and uploads. It is the same fresh process a
        job would start (it does the same work before its config, which it then reads from stdin),
        so every figure it measures is the same: nothing runtime-specific is imported ahead."""
        if self.spare is None or self.spare.poll() is not None:
            try:
                self.spare = start_child([sys.executable, os.path.abspath(__file__), "_worker"],
                                         stdin=subprocess.PIPE)
            except OSError as exc:
                log("cannot start a spare worker: %s" % exc)
                self.spare = None

    def take_spare_worker(self):
        spare, self.spare = self.spare, None
        if spare is not None and spare.poll() is not None:
            end_child(spare)
            return None
        return spare

    # -- the lease, kept by the agent while its controller is alive

    def renew_lease(self):
        holder = self.lease_holder
        if holder is None:
            return
        try:
            answer = lease_change(self.workdir, "renew", holder, self.lease_ttl, self)
        except (OSError, ValueError) as exc:
            log("cannot renew the lease: %s" % exc)
            return
        if answer.get("acquired"):
            self.lease_renewed_at = time.monotonic()
        else:
            self.lease_holder = None
            self.lease_lost = True  # reported by the heartbeat thread; the controller starts no new job
            self._beat_now.set()

    def check_lease(self):
        """Before a job: the lease this session took must still be ours (renewed now), or the job
        fails as `busy` — nothing is measured beside another holder."""
        if self.lease_ttl is None:
            return  # no lease was taken in this session (a tool, not `farm bench`)
        if self.lease_holder is not None:
            self.renew_lease()
        if self.lease_holder is None:
            holder = (read_lease(self.workdir) or {}).get("holder") or {}
            raise AgentFailure("busy", "our lease on the board was taken over (now held by %s@%s, pid %s)"
                               % (holder.get("user"), holder.get("host"), holder.get("pid")))

    def note_worker(self, pid):
        if self.lease_holder is not None:
            try:
                note_worker(self.workdir, self, pid)
            except (OSError, ValueError) as exc:
                log("cannot note the worker in the lease: %s" % exc)

    def end(self, reason, bye_id=None):
        """Kill the workers, free the lease, exit. Safe from any thread; runs once."""
        if not self._ending.acquire(False):
            if threading.current_thread() is threading.main_thread():
                self._wake.wait(10)
            return
        log("session ends: %s" % reason)
        job = self.current
        if job is not None:
            job.cancelled.set()
        kill_children()
        holder = self.lease_holder
        if holder is not None:
            self.lease_holder = None
            try:
                lease_change(self.workdir, "release", holder, self.lease_ttl, self)
            except (OSError, ValueError) as exc:
                log("cannot release the lease: %s" % exc)
        if bye_id is not None:
            try:
                emit("bye", id=bye_id)
            except ControllerGone:
                pass
        os._exit(0)


class SessionParser(argparse.ArgumentParser):
    """The verbs' parser inside a session: a bad request is an answer, never an exit."""

    def error(self, message):
        raise AgentFailure("input-error", "bad request arguments: %s" % message)

    def exit(self, status=0, message=None):
        raise AgentFailure("input-error", "bad request arguments: %s" % (message or "exit %s" % status))


def serve_main(args):
    Session(args).run()
    return 0


def add_runtime_options(parser):
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runtime", required=True, choices=RUNTIME_NAMES)
    parser.add_argument("--provider", action="append", help="execution provider / device, in order (repeatable)")
    parser.add_argument("--provider-options", help="JSON {provider: {option: value}}")
    parser.add_argument("--strict", action="store_true", help="fail instead of falling back to another provider")


def build_parser(parser_class=argparse.ArgumentParser):
    parser = parser_class(prog="farm-agent", description=__doc__.split("\n")[0])
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
    bench.add_argument("--idle-power-s", type=float, required=True,
                       help="on a board with power sensors, sample its idle power this long before the job")
    bench.add_argument("--max-samples", type=int, default=None,
                       help="send at most this many latency samples (evenly spaced); the summary covers all")
    bench.add_argument("--max-series-rows", type=int, default=None, help="send at most this many sampler rows")
    bench.add_argument("--dataset", help="after measuring, run this dataset (.npz) and send its outputs back")
    bench.add_argument("--profile-runs", type=int, required=True,
                       help="after everything measured, profile this many inferences per operator in a second, "
                            "profiled session (0: no profiling pass)")
    bench.add_argument("--profile-max-seconds", type=float, required=True,
                       help="stop the profiling pass's inferences after this long (at least one is profiled)")
    lease = verbs.add_parser("lease")
    lease.add_argument("action", choices=["acquire", "renew", "release"])
    lease.add_argument("--workdir", default=".")
    lease.add_argument("--holder", required=True, help="JSON: {id, user, host, pid, run_id}")
    lease.add_argument("--ttl", type=float, default=DEFAULT_LEASE_TTL_S,
                       help="seconds until the lease expires unless renewed")
    clean = verbs.add_parser("clean")
    clean.add_argument("--workdir", default=".")
    clean.add_argument("--keep", action="append", help="a staged file name to keep (repeatable)")
    clean.add_argument("--max-bytes", type=int, default=DEFAULT_WORKDIR_MAX_BYTES)
    clean.add_argument("--max-age-days", type=float, default=DEFAULT_WORKDIR_MAX_AGE_DAYS)
    outputs = verbs.add_parser("outputs")
    outputs.add_argument("--model", required=True)
    outputs.add_argument("--weights", help="the weights file of a two-file model (OpenVINO IR .bin)")
    outputs.add_argument("--dataset", required=True)
    outputs.add_argument("--out", help="where to save the outputs (default: stream them back, keep nothing)")
    add_runtime_options(outputs)
    outputs.add_argument("--batch", type=int, default=1)
    serve = verbs.add_parser("serve", help="the agent session: requests on stdin, answers on stdout")
    serve.add_argument("--heartbeat-s", type=float, default=DEFAULT_HEARTBEAT_S)
    serve.add_argument("--controller-timeout-s", type=float, default=DEFAULT_LEASE_TTL_S,
                       help="end the session (kill the workers, free the lease) after this long without a "
                            "line from the controller")
    worker = verbs.add_parser("_worker")
    worker.add_argument("config", nargs="?", help="JSON; without it, one line of stdin (a spare worker)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.verb == "facts":
            emit("facts", facts=collect_facts(args.workdir, quick=args.quick))
            return 0
        if args.verb == "bench":
            forward_signals_to(None)
            return bench_main(args)
        if args.verb == "serve":
            return serve_main(args)
        if args.verb == "outputs":
            return outputs_main(args)
        if args.verb == "lease":
            return lease_main(args)
        if args.verb == "clean":
            return clean_main(args)
        if args.verb == "_worker":
            if args.config is not None:
                worker_main(json.loads(args.config))
                return 0
            try:  # a spare worker: what every worker does before its config, done while it waits
                import numpy  # noqa: F401
            except ImportError:
                pass  # worker_main reports it as missing-runtime once there is a job
            line = sys.stdin.readline()
            if line.strip():
                worker_main(json.loads(line))
            return 0
        emit_error("agent-error", "no verb given (serve, facts, bench, outputs, lease, clean)")
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
