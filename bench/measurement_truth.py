"""Does farm measure the truth? Each figure is a ratio measured in one run, interleaved.

1. Latency: the median farm reports vs an independent bare `session.run` loop (a fresh process,
   1 intra-op thread, the same inputs, runs, warm-up and minimum time), interleaved
   A B B A ... over several rounds, per demo model. Target: ratio <= 1.03.
2. Peak RSS: farm's `peak_rss_bytes` (and `peak_rss_load_bytes`) vs what the kernel says of an
   independent process that loads the same model with the same session options and runs the
   same number of inferences: its VmHWM (/proc/self/status at exit, never reset) and
   `getrusage(RUSAGE_CHILDREN).ru_maxrss` read by a thin launcher. Two explanatory probes:
   the same independent process after running the agent module's top level (what farm's
   worker carries besides the model), and farm's own worker under the launcher (farm's figure
   vs the kernel's ru_maxrss of that very process). Target: within 2 %.
3. Sampling overhead: farm's median with `sample_interval_s=0.01` vs sampling off (0),
   interleaved. Target: ratio <= 1.01. Also the sampler's own CPU cost per sample, measured
   on a process that holds an onnxruntime session (the PSS read walks its address space).
   3b. The same Sampler switched on and off every 0.5 s against ONE running session (off /
   sampler / sampler without the PSS read): free of the 10-50 % process-to-process variation that
   swamps a 1 % effect in 3 on this VM.
4. Verdicts: over N interleaved rounds of (A, A, B) or (B, A, A), where B is a MatMul chain
   with 10 % more layers (FLOPs) than A: `compare_samples` (min_effect 5 %) on the A/A pair
   (false regressions/improvements, target ~0) and on the adjacent A/B pair (detection rate of
   a ~10 % slowdown, target ~1). The true B/A ratio is measured with bare loops in the same run.

Why a thin launcher for ru_maxrss: a child's ru_maxrss includes the high-water mark of the
address space it had before exec, i.e. its parent's (subprocess forks or vforks the parent), so
read from this fat benchmark process it would report this process's own RSS, not the child's.

Every measurement also records how many cores other processes used meanwhile (/proc/stat minus
this benchmark's own CPU time), and each figure is also given over its quiet rounds alone.

Full mode took ~6 min on the 2-core VM with another job on the other core; when the machine is
slower than that, figure 4 stops at the time budget (--budget-s, default 450 s) and says after
how many rounds. --quick: ~1 min.

Run: python bench/measurement_truth.py [--pairs 20] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.farm_agent import Sampler
from orchestrator.analysis import compare_samples
from orchestrator.request import BenchRequest, run_bench
from orchestrator.models import DEMO_DIR, DEMO_MODELS
from orchestrator.settings import BenchSettings
from orchestrator.store import Store, open_store

MiB = 1024 * 1024
AGENT_FILE = REPO / "agents" / "farm_agent.py"
SUBPROCESS_TIMEOUT_S = 300

# An independent bare loop: the same session options, inputs, warm-up and stopping rule as farm's
# worker, written separately (it imports nothing from farm). Prints the median in ms.
BARE_LOOP = r"""
import sys, time, json, statistics, numpy as np, onnxruntime as ort
path, runs, min_s, warmup = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; o.log_severity_level = 3
s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = rng.random(shape, dtype=np.float32) if "float" in i.type else np.zeros(shape, dtype=np.int64)
def loop():  # locals only inside the timed window: nothing but session.run between the two clocks
    run, perf, samples = s.run, time.perf_counter_ns, []
    run(None, feeds)
    for _ in range(warmup): run(None, feeds)
    start = perf()
    while True:
        t0 = perf(); run(None, feeds); t1 = perf(); samples.append(t1 - t0)
        if len(samples) >= runs and t1 - start >= min_s * 1e9: return samples
samples = loop()
print(json.dumps({"p50_ms": statistics.median(samples) / 1e6, "runs": len(samples)}))
"""

# An independent memory probe: load, first inference, warm-up, `runs` inferences, exactly the
# options farm's worker uses. Reports its own VmHWM after load and at the end (never reset).
MEMORY_PROBE = r"""
import sys, json
if sys.argv[5]:  # explanation, not truth: first run the agent module's top level as its worker does
    import runpy
    agent = runpy.run_path(sys.argv[5], run_name="farm_agent_probe")
    agent["build_parser"]().parse_args(["_worker", "{}"])
import numpy as np, onnxruntime as ort
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1]) * 1024
path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[4]); o.inter_op_num_threads = 1
o.log_severity_level = 3
s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
load = hwm()
rng = np.random.default_rng(0)
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = rng.random(shape, dtype=np.float32) if "float" in i.type else np.zeros(shape, dtype=np.int64)
for _ in range(1 + warmup + runs): s.run(None, feeds)
print(json.dumps({"vmhwm_load_bytes": load, "vmhwm_bytes": hwm()}))
"""

# A thin launcher (stdlib only, ~10 MB) so RUSAGE_CHILDREN sees the probe, not this process.
LAUNCHER = r"""
import json, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True, timeout=300).stdout
record = json.loads(out)
record["ru_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps(record))
"""

# farm's own worker (agents/farm_agent.py _worker) under the same thin launcher: what farm reports
# for a process and what the kernel's ru_maxrss says of that very process.
WORKER_LAUNCHER = r"""
import json, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True, check=True, timeout=300).stdout
[result] = [m for m in map(json.loads, out.splitlines()) if m.get("type") == "worker_result"]
record = {key: result[key] for key in ("peak_rss_load_bytes", "peak_rss_inference_bytes")}
record["ru_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps(record))
"""


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much to measure: full (the default, <= ~8 min here) or quick (~1 min smoke run)."""

    latency_rounds: int = 7
    sampling_rounds: int = 5
    pairs: int = 20
    min_seconds: float = 1.0
    bare_check_rounds: int = 4
    rss_repeats: int = 3
    toggle_cycles: int = 16
    big_model_layers: int = 12  # 2048×2048 float32 weights, 16 MiB each

    @classmethod
    def quick(cls) -> Plan:
        return cls(latency_rounds=2, sampling_rounds=2, pairs=4, min_seconds=0.25, bare_check_rounds=2,
                   rss_repeats=1, big_model_layers=4, toggle_cycles=4)


def fmt_mib(value_bytes: float) -> str:
    return f"{value_bytes / MiB:.1f} MiB"


# --- models ------------------------------------------------------------------------------------


def save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def matmul_chain(path: Path, layers: int, width: int = 256, batch: int = 16) -> Path:
    """`layers` × (MatMul width×width + Relu) on a [batch, width] input.

    Weights come from one seeded stream, so a chain with more layers has exactly the shorter
    chain's layers first plus some more: its FLOPs are layers_b / layers_a times as many.
    Weights are uniform in [0, 2/width): activations stay ~0.5 (no denormals, no overflow).
    """
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.random((width, width), dtype=np.float32) * (2.0 / width), f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        prev = f"r{i}"
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [batch, width])], inits)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def big_weights_model(path: Path, layers: int, size: int = 2048) -> Path:
    """A memory-heavy, fast model: `layers` distinct size×size weights applied to a [1, size] row."""
    rng = np.random.default_rng(1)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.random((size, size), dtype=np.float32) * (1.0 / size), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    del inits, graph
    saved = save(model, path)
    del model
    gc.collect()
    return saved


# --- measuring ---------------------------------------------------------------------------------


def bare_p50_ms(model: Path, settings: BenchSettings) -> float:
    """Median latency (ms) of the independent bare loop, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, str(model), str(settings.min_runs), repr(settings.min_seconds), str(settings.warmup)],
        capture_output=True, text=True, check=True, timeout=SUBPROCESS_TIMEOUT_S,
    )
    return float(json.loads(out.stdout)["p50_ms"])


@dataclasses.dataclass
class FarmMeasurement:
    """One stored farm result: its p50 (ms), raw latencies (ms), sampler series and export row."""

    p50_ms: float
    latency_ms: list[float]
    timeseries: list[dict[str, Any]]
    row: dict[str, Any]


def farm_measure(store: Store, model: Path, settings: BenchSettings) -> FarmMeasurement:
    """One `farm bench` job through the core API (local board, temporary store)."""
    outcome = run_bench(BenchRequest(model_paths=[model], settings=settings, write_report=False), store=store)
    [job] = outcome.run.outcomes
    if not job.ok:
        raise RuntimeError(f"farm failed on {model.name}: {job.row.get('error_kind')}: {job.row.get('error_message')}")
    assert job.result_id is not None
    latency_ms, timeseries = store.series(job.result_id)
    return FarmMeasurement(float(job.row["latency_ms_p50"]), latency_ms, timeseries, job.row)


def memory_probe(model: Path, runs: int, warmup: int, threads: int, with_agent_module: bool) -> dict[str, int]:
    """VmHWM (after load, at exit) and ru_maxrss of an independent process, via a thin launcher.

    `with_agent_module` first executes agents/farm_agent.py's top level (its imports and
    definitions, and its argument parser) in the probe: what farm's worker carries besides the model.
    """
    probe = [sys.executable, "-c", MEMORY_PROBE, str(model), str(runs), str(warmup), str(threads),
             str(AGENT_FILE) if with_agent_module else ""]
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *probe], capture_output=True, text=True, check=True,
                         timeout=SUBPROCESS_TIMEOUT_S)
    return json.loads(out.stdout)


def worker_probe(model: Path, settings: BenchSettings) -> dict[str, int]:
    """farm's worker run directly (no agent parent): its own per-phase peaks and the kernel's ru_maxrss."""
    config = {"model": str(model), "runs": settings.min_runs, "min_seconds": settings.min_seconds,
              "max_seconds": settings.max_seconds, "warmup": settings.warmup, "threads": settings.threads,
              "shapes": {}, "cpu_arena": settings.cpu_arena}
    out = subprocess.run([sys.executable, "-c", WORKER_LAUNCHER, sys.executable, str(AGENT_FILE), "_worker",
                          json.dumps(config)], capture_output=True, text=True, check=True, timeout=SUBPROCESS_TIMEOUT_S)
    return json.loads(out.stdout)


#: A round counts as quiet when, during each of its measurements, other processes (everything
#: but this benchmark and its children) used less than this many cores, hypervisor steal included.
#: Why not PSI: on a 2-vCPU VM another single-threaded job on the other vCPU makes nobody wait, yet
#: it can double a run's latency here (shared core resources on the host); its CPU use shows it.
QUIET_OTHER_CORES = 0.15


@dataclasses.dataclass
class Timed:
    """A measurement and how busy the rest of the machine was while it ran (cores, steal included)."""

    value: Any
    other_cores: float | None


def machine_busy_s() -> float | None:
    """Seconds of CPU time used on all CPUs since boot (user..softirq, plus steal), from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for (and theirs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def with_load(measure) -> Timed:
    busy_before, own_before, started = machine_busy_s(), own_cpu_s(), time.monotonic()
    value = measure()
    busy_after, own_after, wall_s = machine_busy_s(), own_cpu_s(), time.monotonic() - started
    if busy_before is None or busy_after is None or wall_s <= 0:
        return Timed(value, None)
    others = ((busy_after - busy_before) - (own_after - own_before)) / wall_s
    return Timed(value, max(0.0, others))


def interleaved(rounds: int, a, b) -> tuple[list[Timed], list[Timed]]:
    """Call a() and b() `rounds` times in A B, B A, A B ... order (linear drift hits both alike)."""
    results_a, results_b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            results_a.append(with_load(a))
            results_b.append(with_load(b))
        else:
            results_b.append(with_load(b))
            results_a.append(with_load(a))
    return results_a, results_b


def round_load(*measurements: Timed) -> float:
    """The most other processes used (cores) during any of a round's measurements (0 where unknown)."""
    return max((m.other_cores or 0.0) for m in measurements)


def paired_ratio_line(new: Sequence[Timed], base: Sequence[Timed], key) -> tuple[float, str]:
    """Median of per-round ratios new/base, with the quiet rounds' figure and the load seen."""
    ratios = [key(n.value) / key(b.value) for n, b in zip(new, base)]
    loads = [round_load(n, b) for n, b in zip(new, base)]
    quiet = [r for r, load in zip(ratios, loads) if load < QUIET_OTHER_CORES]
    quiet_text = f"{statistics.median(quiet):.3f} over {len(quiet)} quiet rounds" if quiet else "no quiet round"
    ratio_of_medians = statistics.median(key(n.value) for n in new) / statistics.median(key(b.value) for b in base)
    return statistics.median(ratios), (
        f"{quiet_text}; ratio of medians {ratio_of_medians:.3f}; per-round {min(ratios):.3f}..{max(ratios):.3f}; "
        f"other processes used {statistics.median(loads):.2f} cores per round (median; max {max(loads):.2f})")


def spread_pct(values: Sequence[float]) -> float:
    """(max - min) / median of per-round values, in percent: how much the rounds disagree."""
    return 100.0 * (max(values) - min(values)) / statistics.median(values)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the figures -------------------------------------------------------------------------------


def figure_latency(store: Store, plan: Plan, summary: dict[str, Any]) -> None:
    settings = BenchSettings(runs=100, min_seconds=plan.min_seconds, warmup=10, threads=1, sample_interval_s=1.0)
    print(f"# 1. farm p50 vs independent bare loop, {plan.latency_rounds} interleaved rounds, "
          f"1 thread, >= 100 runs and >= {plan.min_seconds:g} s each (target ratio <= 1.03); load average {loadavg()}")
    for name in DEMO_MODELS:
        model = DEMO_DIR / name
        bare, farm = interleaved(plan.latency_rounds, lambda model=model: bare_p50_ms(model, settings),
                                 lambda model=model: farm_measure(store, model, settings).p50_ms)
        ratio, detail = paired_ratio_line(farm, bare, float)
        b, f = statistics.median(m.value for m in bare), statistics.median(m.value for m in farm)
        print(f"latency_vs_bare {model.stem:<12} ratio {ratio:.3f} (median of per-round farm/bare; {detail}) | "
              f"bare p50 {b:.4f} ms, farm p50 {f:.4f} ms; spread over rounds bare "
              f"{spread_pct([m.value for m in bare]):.0f} %, farm {spread_pct([m.value for m in farm]):.0f} %")
        summary[f"latency_ratio_{model.stem}"] = round(ratio, 4)


def figure_memory(store: Store, plan: Plan, big_model: Path, summary: dict[str, Any]) -> None:
    print(f"\n# 2. farm peak RSS vs the kernel's view of an independent process (same options, same "
          f"inference count), median of {plan.rss_repeats} interleaved repeats (target within 2 %); load average {loadavg()}")
    for model, runs in ((DEMO_DIR / "yolo_timing.onnx", 50), (big_model, 20)):
        settings = BenchSettings(runs=runs, min_seconds=0.0, warmup=10, threads=1, sample_interval_s=1.0)
        farm_rows, plain, with_agent, worker = [], [], [], []
        for _ in range(plan.rss_repeats):
            farm_rows.append(farm_measure(store, model, settings).row)
            plain.append(memory_probe(model, runs, settings.warmup, settings.threads, with_agent_module=False))
            with_agent.append(memory_probe(model, runs, settings.warmup, settings.threads, with_agent_module=True))
            worker.append(worker_probe(model, settings))
        peaks = [r["peak_rss_bytes"] for r in farm_rows]
        farm_peak = statistics.median(peaks)
        farm_load = statistics.median(r["details"]["export"]["peak_rss_load_bytes"] for r in farm_rows)
        farm_inf = statistics.median(r["details"]["export"]["peak_rss_inference_bytes"] for r in farm_rows)
        hwms = [p["vmhwm_bytes"] for p in plain]
        hwm = statistics.median(hwms)
        hwm_load = statistics.median(p["vmhwm_load_bytes"] for p in plain)
        maxrss = statistics.median(p["ru_maxrss_bytes"] for p in plain)
        hwm_agent = statistics.median(p["vmhwm_bytes"] for p in with_agent)
        # the same worker process: farm's max(load, inference) VmHWM vs the kernel's ru_maxrss of it
        self_ratio = statistics.median(
            max(w["peak_rss_load_bytes"], w["peak_rss_inference_bytes"]) / w["ru_maxrss_bytes"] for w in worker)
        print(f"peak_rss {model.stem:<12} farm/VmHWM {farm_peak / hwm:.3f}  farm/ru_maxrss {farm_peak / maxrss:.3f}  "
              f"load phase farm/VmHWM-after-load {farm_load / hwm_load:.3f}  same worker process: farm/ru_maxrss "
              f"{self_ratio:.3f} | farm peak {fmt_mib(farm_peak)} (load {fmt_mib(farm_load)}, inference "
              f"{fmt_mib(farm_inf)}; repeats {fmt_mib(min(peaks))}..{fmt_mib(max(peaks))}), bare VmHWM {fmt_mib(hwm)} "
              f"(repeats {fmt_mib(min(hwms))}..{fmt_mib(max(hwms))}; after load {fmt_mib(hwm_load)}), bare ru_maxrss "
              f"{fmt_mib(maxrss)}; file {fmt_mib(model.stat().st_size)}, {1 + settings.warmup + runs} inferences | "
              f"farm - bare {(farm_peak - hwm) / MiB:+.1f} MiB; the agent module run first in the bare probe adds "
              f"{(hwm_agent - hwm) / MiB:+.1f} MiB (farm/that {farm_peak / hwm_agent:.3f})")
        summary[f"peak_rss_ratio_vmhwm_{model.stem}"] = round(farm_peak / hwm, 4)
        summary[f"peak_rss_ratio_ru_maxrss_{model.stem}"] = round(farm_peak / maxrss, 4)
        summary[f"peak_rss_ratio_vmhwm_with_agent_module_{model.stem}"] = round(farm_peak / hwm_agent, 4)
        summary[f"peak_rss_ratio_same_worker_ru_maxrss_{model.stem}"] = round(self_ratio, 4)
        summary[f"peak_rss_farm_minus_bare_mib_{model.stem}"] = round((farm_peak - hwm) / MiB, 2)
        summary[f"peak_rss_repeat_range_mib_{model.stem}"] = [round(min(peaks) / MiB, 1), round(max(peaks) / MiB, 1),
                                                             round(min(hwms) / MiB, 1), round(max(hwms) / MiB, 1)]


SAMPLED_PROCESS = r"""
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], sess_options=o, providers=["CPUExecutionProvider"])
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
"""


def sampler_cost_ms(model: Path) -> tuple[float, float]:
    """CPU ms of one Sampler.sample_now() on a process that holds an ORT session, and the PSS share.

    The PSS read (/proc/PID/smaps_rollup) walks the target's whole address space, so it is
    measured on a realistic target (numpy + onnxruntime + a loaded model), not a bare sleeper.
    """
    from agents.farm_agent import proc_pss_bytes

    child = subprocess.Popen([sys.executable, "-c", SAMPLED_PROCESS, str(model)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the sampled process did not start")
        sampler = Sampler(child.pid, 0.01)
        sampler.sample_now()
        count = 200
        started = time.thread_time()
        for _ in range(count):
            sampler.sample_now()
        per_sample = (time.thread_time() - started) * 1000.0 / count
        started = time.thread_time()
        for _ in range(count):
            proc_pss_bytes(child.pid)
        pss = (time.thread_time() - started) * 1000.0 / count
        return per_sample, pss
    finally:
        child.kill()
        child.communicate(timeout=10)


def figure_sampling(store: Store, plan: Plan, summary: dict[str, Any]) -> None:
    print(f"\n# 3. farm p50 with sampling every 0.01 s vs sampling off, {plan.sampling_rounds} interleaved rounds "
          f"(target ratio <= 1.01); load average {loadavg()}")
    off = BenchSettings(runs=100, min_seconds=plan.min_seconds, warmup=10, threads=1, sample_interval_s=0.0)
    on = dataclasses.replace(off, sample_interval_s=0.01)
    for name in DEMO_MODELS:
        model = DEMO_DIR / name
        sampled, plain = interleaved(plan.sampling_rounds, lambda model=model: farm_measure(store, model, on),
                                     lambda model=model: farm_measure(store, model, off))
        ratio, detail = paired_ratio_line(sampled, plain, lambda m: m.p50_ms)
        rate = statistics.median(
            sum(1 for x in m.value.timeseries if x.get("phase") == "measure") / m.value.row["details"]["measure_s"]
            for m in sampled)
        print(f"sampling_overhead {model.stem:<12} ratio {ratio:.3f} (median of per-round 0.01 s/off; {detail}) | "
              f"off p50 {statistics.median(m.value.p50_ms for m in plain):.4f} ms, 0.01 s p50 "
              f"{statistics.median(m.value.p50_ms for m in sampled):.4f} ms; {rate:.0f} samples/s taken while measuring")
        summary[f"sampling_ratio_{model.stem}"] = round(ratio, 4)
    cost, pss = sampler_cost_ms(DEMO_DIR / "yolo_timing.onnx")
    print(f"sampler_cost one sample of a process holding an ORT session: {cost:.2f} ms CPU in the agent "
          f"({pss:.2f} ms of it reading smaps_rollup for PSS) = {cost / 10.0 * 100:.0f} % of a core at 0.01 s")
    summary["sampler_cost_ms"] = round(cost, 3)


# One session timing itself for a fixed schedule of windows; per-window median latency (ms).
TOGGLED_LOOP = r"""
import sys, time, json, statistics, numpy as np, onnxruntime as ort
path, t0, window_s, windows = sys.argv[1], None, float(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; o.log_severity_level = 3
s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {i.name: rng.random([d if isinstance(d, int) and d > 0 else 1 for d in i.shape], dtype=np.float32)
         for i in s.get_inputs()}
for _ in range(10): s.run(None, feeds)
print("ready", flush=True)
t0 = float(sys.stdin.readline())
def loop():
    run, perf, now, per_window = s.run, time.perf_counter_ns, time.monotonic, [[] for _ in range(windows)]
    end = t0 + window_s * windows
    while now() < t0: pass
    while True:
        t = now()
        if t >= end: return per_window
        k = int((t - t0) / window_s)
        if (t - t0) - k * window_s < 0.02: run(None, feeds); continue  # the sampler is starting or stopping
        a = perf(); run(None, feeds); b = perf(); per_window[k].append(b - a)
print(json.dumps([statistics.median(w) / 1e6 if w else None for w in loop()]))
"""


def figure_sampler_toggle(plan: Plan, summary: dict[str, Any]) -> None:
    """farm's Sampler switched on and off every window against ONE running session.

    Process-to-process variation on this VM (the same model's median differs by 10-50 % between
    fresh processes) swamps a 1 % effect in process-level A/B; inside one process it does not.
    Windows cycle off / Sampler(0.01 s) / Sampler(0.01 s) without the PSS read (smaps_rollup).
    """
    window_s, cycles = 0.5, plan.toggle_cycles
    print(f"\n# 3b. farm's Sampler at 0.01 s toggled against one running session: {cycles} cycles of off / "
          f"sampler / sampler without PSS, {window_s:g} s windows; load average {loadavg()}")
    for name in DEMO_MODELS:
        model = DEMO_DIR / name
        windows = 3 * cycles
        timed = with_load(functools.partial(toggled_session, model, window_s, windows))
        medians = timed.value
        triplets = [medians[i:i + 3] for i in range(0, windows, 3) if None not in medians[i:i + 3]]
        with_pss = statistics.median(on / off for off, on, _ in triplets)
        without_pss = statistics.median(on / off for off, _, on in triplets)
        print(f"sampler_toggle {model.stem:<12} sampler/off {with_pss:.3f}, sampler without PSS/off {without_pss:.3f} "
              f"(medians of {len(triplets)} per-cycle ratios) | off p50 {statistics.median(t[0] for t in triplets):.4f} ms; "
              f"other processes used {timed.other_cores or 0.0:.2f} cores")
        summary[f"sampler_toggle_ratio_{model.stem}"] = round(with_pss, 4)
        summary[f"sampler_toggle_ratio_no_pss_{model.stem}"] = round(without_pss, 4)


def toggled_session(model: Path, window_s: float, windows: int) -> list[float | None]:
    """Start the timed session, toggle farm's Sampler on it by the schedule, return per-window medians (ms)."""
    child = subprocess.Popen([sys.executable, "-c", TOGGLED_LOOP, str(model), repr(window_s), str(windows)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the timed session did not start")
        t0 = time.monotonic() + 0.2
        child.stdin.write(f"{t0!r}\n")
        child.stdin.flush()
        toggle_windows(child.pid, t0, window_s, windows)
        medians = json.loads(child.stdout.readline())
        child.wait(timeout=60)
        return medians
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def toggle_windows(pid: int, t0: float, window_s: float, windows: int) -> None:
    """Run farm's Sampler on `pid` during windows 1, 2 (mod 3); in windows 2 (mod 3) without PSS."""
    from agents import farm_agent

    real_pss = farm_agent.proc_pss_bytes
    for k in range(windows):
        start, end = t0 + k * window_s, t0 + (k + 1) * window_s
        time.sleep(max(0.0, start - time.monotonic()))
        mode = k % 3
        if mode == 0:
            continue
        farm_agent.proc_pss_bytes = real_pss if mode == 1 else (lambda _pid: None)
        sampler = farm_agent.Sampler(pid, 0.01)
        sampler.start()
        time.sleep(max(0.0, end - time.monotonic() - 0.005))
        sampler.stop()
    farm_agent.proc_pss_bytes = real_pss


def figure_verdicts(store: Store, plan: Plan, tmp: Path, deadline: float, summary: dict[str, Any]) -> None:
    layers_a = 30
    layers_b = 33  # +10 % layers and FLOPs
    model_a = matmul_chain(tmp / "chain_a.onnx", layers_a)
    model_b = matmul_chain(tmp / "chain_b.onnx", layers_b)
    settings = BenchSettings(runs=100, min_seconds=plan.min_seconds, warmup=10, threads=1, sample_interval_s=1.0)
    print(f"\n# 4. compare_samples verdicts (min_effect 5 %, alpha 0.01) over {plan.pairs} interleaved rounds "
          f"of (A, A, B) / (B, A, A); A = {layers_a}-layer MatMul chain, B = {layers_b} layers "
          f"(FLOPs x{layers_b / layers_a:.2f}); load average {loadavg()}")
    bare_a, bare_b = interleaved(plan.bare_check_rounds, lambda: bare_p50_ms(model_a, settings),
                                 lambda: bare_p50_ms(model_b, settings))
    true_ratio, detail = paired_ratio_line(bare_b, bare_a, float)
    print(f"injected_slowdown true B/A ratio {true_ratio:.3f} (median of per-round bare-loop p50 ratios; {detail}) | "
          f"bare p50 A {statistics.median(m.value for m in bare_a):.4f} ms, B {statistics.median(m.value for m in bare_b):.4f} ms")
    aa: list[tuple[Any, float]] = []  # (Comparison, most cores other processes used during the pair's jobs)
    ab: list[tuple[Any, float]] = []
    runs_per_job: list[int] = []

    def job(model: Path) -> Timed:
        return with_load(lambda: farm_measure(store, model, settings))

    for i in range(plan.pairs):
        if i >= 2 and time.monotonic() > deadline:  # a loaded machine: stop, and say so, rather than overrun
            print(f"# time budget reached: stopped after {i} of {plan.pairs} rounds")
            break
        if i % 2 == 0:
            first, second, b = job(model_a), job(model_a), job(model_b)
            adjacent = second
        else:
            b, first, second = job(model_b), job(model_a), job(model_a)
            adjacent = first
        runs_per_job += [len(m.value.latency_ms) for m in (first, second, b)]
        aa.append((compare_samples(first.value.latency_ms, second.value.latency_ms, min_effect_pct=5.0),
                   round_load(first, second)))
        ab.append((compare_samples(adjacent.value.latency_ms, b.value.latency_ms, min_effect_pct=5.0),
                   round_load(adjacent, b)))

    def verdicts(pairs: list[tuple[Any, float]]) -> str:
        counts = Counter(c.verdict for c, _ in pairs)
        return ", ".join(f"{v} {counts[v]}" for v in ("regressed", "improved", "unchanged", "inconclusive"))

    quiet_aa = [(c, load) for c, load in aa if load < QUIET_OTHER_CORES]
    quiet_ab = [(c, load) for c, load in ab if load < QUIET_OTHER_CORES]
    flagged = sum(1 for c, _ in aa if c.verdict in ("regressed", "improved"))
    flagged_quiet = sum(1 for c, _ in quiet_aa if c.verdict in ("regressed", "improved"))
    aa_changes = [abs(c.change_pct) for c, _ in aa]
    # In an A/A pair the true change is 0: a calibrated 95 % CI leaves 0 out in ~5 % of the pairs.
    zero_outside = sum(1 for c, _ in aa if c.change_ci_low_pct is not None and not c.change_ci_low_pct <= 0.0 <= c.change_ci_high_pct)
    half_widths = [(c.change_ci_high_pct - c.change_ci_low_pct) / 2 for c, _ in aa if c.change_ci_low_pct is not None]
    quiet_changes = [abs(c.change_pct) for c, _ in quiet_aa]
    print(f"aa_false_verdicts {flagged}/{len(aa)} pairs flagged ({verdicts(aa)}); quiet pairs (other processes < "
          f"{QUIET_OTHER_CORES:g} cores): {flagged_quiet}/{len(quiet_aa)} flagged"
          + (f", |change| median {statistics.median(quiet_changes):.2f} %" if quiet_changes else "")
          + f" | all pairs |change| median {statistics.median(aa_changes):.2f} %, max {max(aa_changes):.2f} %; "
          f"median {statistics.median(runs_per_job):.0f} runs per job; the change's 95 % CI (median half-width "
          f"{statistics.median(half_widths):.2f} %) leaves out the true 0 in {zero_outside}/{len(half_widths)} pairs")
    detected = sum(1 for c, _ in ab if c.verdict == "regressed")
    detected_quiet = sum(1 for c, _ in quiet_ab if c.verdict == "regressed")
    ab_changes = [c.change_pct for c, _ in ab]
    print(f"detection_rate_10pct {detected}/{len(ab)} = {detected / len(ab):.2f} regressed ({verdicts(ab)}); "
          f"quiet pairs {detected_quiet}/{len(quiet_ab)} | farm change median {statistics.median(ab_changes):+.2f} % "
          f"(min {min(ab_changes):+.2f}, max {max(ab_changes):+.2f}) vs true {100 * (true_ratio - 1):+.2f} %")
    summary.update(
        aa_pairs=len(aa), aa_false_flags=flagged, aa_quiet_pairs=len(quiet_aa), aa_quiet_false_flags=flagged_quiet,
        aa_abs_change_pct_median=round(statistics.median(aa_changes), 2), aa_ci_excludes_zero=zero_outside,
        detection_rate=round(detected / len(ab), 3),
        detection_rate_quiet=round(detected_quiet / len(quiet_ab), 3) if quiet_ab else None,
        true_slowdown_ratio=round(true_ratio, 4), farm_slowdown_pct_median=round(statistics.median(ab_changes), 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="A/A and A/B pairs for figure 4 (default 20; 4 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run with fewer rounds and shorter runs")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="figure 4 stops early past this many seconds since start (default 450; 80 with --quick)")
    args = parser.parse_args()
    plan = Plan.quick() if args.quick else Plan()
    budget_s = args.budget_s if args.budget_s is not None else (80.0 if args.quick else 450.0)
    if args.pairs is not None:
        plan = dataclasses.replace(plan, pairs=max(1, args.pairs))
    import onnxruntime

    started = time.monotonic()
    summary: dict[str, Any] = {"quick": args.quick}
    print(f"# measurement_truth: onnxruntime {onnxruntime.__version__}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load average at start {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="farm-truth-") as tmp_name:
        tmp = Path(tmp_name)
        big_model = big_weights_model(tmp / f"big_{plan.big_model_layers * 16}mib.onnx", plan.big_model_layers)
        store = open_store(f"sqlite:///{tmp}/truth.db")
        try:
            figure_latency(store, plan, summary)
            figure_memory(store, plan, big_model, summary)
            figure_sampling(store, plan, summary)
            figure_sampler_toggle(plan, summary)
            figure_verdicts(store, plan, tmp, started + budget_s, summary)
        finally:
            store.close()
    elapsed = time.monotonic() - started
    summary["elapsed_s"] = round(elapsed, 1)
    print(f"\n# done in {elapsed:.0f} s, load average at end {loadavg()}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
