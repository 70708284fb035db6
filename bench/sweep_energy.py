"""Issue 20's figures: a thread sweep on a `quad` lab board (the scaling curve), and energy per
inference read from FAKE power rails.

1. Thread sweep. One `quad` lab board: a real sshd on loopback whose cgroup pins it to up to 4
   host cores with no CPU quota (orchestrator/lab/profiles.py). This host has 2 cores, so the
   board has 2 (its facts say so: `cpuset_cpus`, `cpu_cores_available`); the 4-thread point is
   4 threads sharing 2 cores, not a 4-core board. `farm bench --threads 1,2,4 --repeats R` of
   the demo yolo_timing (a conv net at 1x3x160x160) and of a 4-layer 1024-wide MLP at batch 8
   (`--batch 8`): each thread count is its own cell, the rounds interleave them (A B C, A B C,
   ...). Per point: median latency, FPS (images per second), speed-up over 1 thread, the worker's
   CPU % while measuring. The same sweep then runs on a local board (this script's own child
   processes, in the host's root cgroup) for comparison: under cgroup v1 a board's cgroup chain
   competes with the host's other runnable tasks as ONE task at the root (the lab's parent cgroup
   has the default cpu.shares), so on a busy host the lab board gets less CPU than a process
   outside it, whatever its thread count.
2. Energy. The local board with a FAKE sysfs tree (FARM_SYSFS_ROOT): an hwmon rail at a constant
   3 W, a Jetson-style INA3221 channel VDD_IN at 5 V x 1 A (with a sub-rail that must not be
   added), and a RAPL energy counter advanced at 4 W by a thread of this script. For each: the
   agent's mean power over the measured phase and its energy per inference against the fake
   power x the mean latency. These figures check farm's reading, windowing and arithmetic on
   known inputs; they are NOT the energy of any real board.

Run: python bench/sweep_energy.py [--repeats 3] [--min-seconds 2] [--write-results]
     (root, openssh-server, cgroup v1 for the lab board; the energy part needs neither)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

THREADS = (1, 2, 4)


def mlp(path: Path, width: int = 1024, layers: int = 4) -> Path:
    """A dynamic-batch MLP: layers of MatMul + Relu, [batch, width] in and out."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.random((width, width), dtype=np.float32) - 0.5) / 32, f"W{i}"))
        nodes += [helper.make_node("MatMul", [last, f"W{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        last = f"r{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", width])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def thread_sweep(tmp: Path, repeats: int, min_seconds: float) -> dict[str, Any]:
    """The sweep on the `quad` lab board, then the same on a local board (this script's own
    processes, in the host's root cgroup) in the same run, for comparison."""
    import yaml

    from orchestrator import lab as lab_mod
    from orchestrator.models import DEMO_DIR

    problems = lab_mod.missing_prerequisites()
    if problems:
        raise SystemExit("the thread sweep needs a lab: " + " ".join(problems))
    pid = os.getpid()
    lab_dir = Path(f"/var/lib/farm-lab-sweep-{pid}")
    models = (("yolo_timing", DEMO_DIR / "yolo_timing.onnx", None), ("mlp1024x4", mlp(tmp / "mlp1024x4.onnx"), 8))
    local = tmp / "local.yaml"
    local.write_text(yaml.safe_dump({"all": {"hosts": {"local-sweep": {
        "transport": "local", "python": sys.executable, "workdir": str(tmp / "local-board")}}}}))
    try:
        state = lab_mod.lab_up(lab_dir, ["quad"], 1, first_address=f"127.82.{pid % 250 + 1}.11",
                               venv_dir=Path("/var/lib/farm-lab-test-venv"))
        found: dict[str, Any] = {"limits_enforced": state.limits_enforced, "boards": {}}
        for board, inventory in (("quad", state.inventory_path), ("local", local)):
            found["boards"][board], facts = _sweep_board(tmp, inventory, models, repeats, min_seconds)
            found.setdefault("facts", facts)
        return found
    finally:
        lab_mod.lab_down(lab_dir, remove_files=True)


def _sweep_board(tmp: Path, inventory: Path, models: Any, repeats: int, min_seconds: float) -> tuple[dict, dict]:
    from orchestrator.request import BenchRequest, run_bench
    from orchestrator.settings import BenchSettings
    from orchestrator.store import open_store
    from orchestrator.sweep import Sweep

    db = f"sqlite:///{tmp / 'sweep.db'}"
    found: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    for name, model, batch in models:
        settings = BenchSettings(runs=50, min_seconds=min_seconds, warmup=5, repeats=repeats, threads=THREADS[0],
                                 batch=batch, sample_interval_s=0.25)
        request = BenchRequest(model_paths=[model], settings=settings, sweep=Sweep(threads=THREADS),
                               inventory=str(inventory), db_url=db, write_report=False)
        outcome = run_bench(request)
        with open_store(db) as store:
            records = store.export_records(outcome.run.run_id)
            facts = store.results(outcome.run.run_id)[0]["facts"]
        rows = sorted(records, key=lambda r: r["threads"])
        base = next(r for r in rows if r["threads"] == 1)
        found[name] = [{
            "threads": r["threads"], "batch": r["batch"], "p50_ms": r["latency_ms_p50"], "fps": r["fps"],
            "speedup": base["latency_ms_p50"] / r["latency_ms_p50"], "cpu_percent": r["cpu_percent_mean"],
            "process_spread": r["latency_ms_process_spread"], "noisy": r["noisy"], "status": r["status"],
        } for r in rows]
    return found, {k: facts.get(k) for k in ("cpu_model", "cpu_cores", "cpu_cores_available", "cgroup_limits")}


class Counter:
    """A FAKE RAPL zone whose energy_uj grows at `watts`, rewritten every 2 ms (atomically)."""

    def __init__(self, folder: Path, watts: float) -> None:
        folder.mkdir(parents=True)
        (folder / "name").write_text("package-0\n")
        (folder / "max_energy_range_uj").write_text("262143328850\n")
        self.folder, self.watts, self.started = folder, watts, time.monotonic()
        self.stop = threading.Event()
        self.write()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def write(self) -> None:
        tmp = self.folder / ".energy_uj.tmp"
        tmp.write_text(f"{int(self.watts * (time.monotonic() - self.started) * 1e6)}\n")
        os.replace(tmp, self.folder / "energy_uj")

    def run(self) -> None:
        while not self.stop.wait(0.002) and time.monotonic() - self.started < 600:
            self.write()


def energy(tmp: Path, min_seconds: float) -> list[dict[str, Any]]:
    from orchestrator.boards import Board
    from orchestrator.models import DEMO_DIR, load_model_file
    from orchestrator.plan import ModelTask, plan_cells
    from orchestrator.runner import BenchRunner
    from orchestrator.settings import BenchSettings
    from orchestrator.store import open_store

    def fake_tree(kind: str, model: str) -> tuple[Path, float, Any]:
        root = tmp / f"sysfs-{len(rows)}"
        if kind == "hwmon power1_input, constant":
            folder = root / "class/hwmon/hwmon0"
            folder.mkdir(parents=True)
            (folder / "name").write_text("ina219\n")
            (folder / "power1_input").write_text("3000000\n")
            return root, 3.0, None
        if kind == "INA3221 VDD_IN (5 V x 1 A) + a sub-rail":
            folder = root / "class/hwmon/hwmon0"
            folder.mkdir(parents=True)
            (folder / "name").write_text("ina3221\n")
            for n, label, ma in ((1, "VDD_IN", 1000), (2, "VDD_CPU_GPU_CV", 400)):
                (folder / f"in{n}_label").write_text(label + "\n")
                (folder / f"in{n}_input").write_text("5000\n")
                (folder / f"curr{n}_input").write_text(f"{ma}\n")
            return root, 5.0, None
        counter = Counter(root / "class/powercap/intel-rapl:0", 4.0)
        return root, 4.0, counter

    rows = []
    db = f"sqlite:///{tmp / 'energy.db'}"
    for kind in ("hwmon power1_input, constant", "INA3221 VDD_IN (5 V x 1 A) + a sub-rail",
                 "RAPL energy_uj, advancing at 4 W"):
        for model in ("yolo_timing.onnx", "digits_mlp.onnx"):
            root, watts, counter = fake_tree(kind, model)
            try:
                with open_store(db) as store:
                    cells = plan_cells([ModelTask(load_model_file(DEMO_DIR / model))], ["fp32"])
                    settings = BenchSettings(runs=50, min_seconds=min_seconds, warmup=5, threads=1, sample_interval_s=0.1,
                                             idle_power_s=0.5)
                    outcome = BenchRunner(store, [Board(name="fake-rail", env={"FARM_SYSFS_ROOT": str(root)},
                                                workdir=str(tmp / "board"))], cells,
                                          settings).run()
                    [record] = store.export_records(outcome.run_id)
                    if record["status"] != "ok":
                        raise SystemExit(f"{kind} {model}: {record['error_kind']}: {record['error_message']}")
            finally:
                if counter is not None:
                    counter.stop.set()
                    counter.thread.join(timeout=5)
            expected = watts * record["latency_ms_mean"]
            rows.append({"rail": kind, "model": model, "fake_w": watts, "power_w_mean": record["power_w_mean"],
                         "power_w_idle": record["power_w_idle"], "latency_ms_mean": record["latency_ms_mean"],
                         "energy_mj": record["energy_mj_per_inference"], "expected_mj": expected,
                         "ratio": record["energy_mj_per_inference"] / expected, "sources": record["power_sources"]})
    return rows


def render(sweep: dict[str, Any] | None, rails: list[dict[str, Any]]) -> str:
    parts = []
    if sweep is not None:
        facts = sweep["facts"]
        limits = facts.get("cgroup_limits") or {}
        parts.append(f"Board facts: {facts.get('cpu_cores_available')} cores available of the host's "
                     f"{facts.get('cpu_cores')} (cpuset {limits.get('cpuset_cpus', '?')}, no CPU quota), "
                     f"{facts.get('cpu_model')}; cgroup limits enforced: {sweep['limits_enforced']}.\n")
        names = list(next(iter(sweep["boards"].values())))
        for name in names:
            batch = sweep["boards"]["quad"][name][0]["batch"]
            parts.append(f"**{name}** (batch {batch}):\n\n| board | threads | p50 ms | FPS (images/s) | speed-up vs 1 | "
                         "worker CPU % | process spread |\n|---|---:|---:|---:|---:|---:|---:|")
            for board, models in sweep["boards"].items():
                for r in models[name]:
                    spread = "—" if r["process_spread"] is None else f"{r['process_spread'] * 100:.1f} %"
                    cpu = "—" if r["cpu_percent"] is None else f"{r['cpu_percent']:.0f}"
                    parts.append(f"| {board} | {r['threads']} | {r['p50_ms']:.3f} | {r['fps']:,.0f} | {r['speedup']:.2f}× "
                                 f"| {cpu} | {spread}{' (noisy)' if r['noisy'] else ''} |")
            parts.append("")
    parts.append("Energy from FAKE rails (files under FARM_SYSFS_ROOT; the RAPL counter advanced by this script): "
                 "what farm measured against the fake power × the mean latency.\n\n"
                 "| fake rail | model | fake W | measured W (idle) | mean latency ms | mJ/inference | expected mJ | "
                 "ratio |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rails:
        parts.append(f"| {r['rail']} | {r['model']} | {r['fake_w']:g} | {r['power_w_mean']:.3f} ({r['power_w_idle']:.3f}) "
                     f"| {r['latency_ms_mean']:.4f} | {r['energy_mj']:.4f} | {r['expected_mj']:.4f} | {r['ratio']:.4f} |")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--no-sweep", action="store_true", help="only the energy part (no lab needed)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="farm-sweep-bench-") as tmp_name:
        tmp = Path(tmp_name)
        sweep = None if args.no_sweep else thread_sweep(tmp, args.repeats, args.min_seconds)
        rails = energy(tmp, min(args.min_seconds, 1.5))
    summary = {"sweep": sweep, "energy": rails, "date": dt.date.today().isoformat(), "load_1min_at_start": round(load, 1),
               "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"}
    print(json.dumps(summary, indent=2))
    print(render(sweep, rails))
    if args.write_results:
        from results_md import record_section

        text = (f"## sweeps_energy\n\n`python bench/sweep_energy.py --repeats {args.repeats} --min-seconds "
                f"{args.min_seconds:g}{' --no-sweep' if args.no_sweep else ''}` — issue 20: a `--threads 1,2,4` sweep "
                "on one `quad` lab board (real sshd on loopback, pinned to the host's cores, no quota) and then on a "
                "local board (the script's own processes) in the same run; rounds interleave the points; medians over "
                "the processes' samples. Then energy per inference from FAKE power rails on the local board.\n\n"
                f"- Date: {summary['date']}\n- Machine: {summary['machine']}; 1-minute load average "
                f"{summary['load_1min_at_start']} at the start (shared with other sessions).\n\n" + render(sweep, rails))
        record_section(REPO / "bench" / "RESULTS.md", "sweeps_energy", text, keep_heading="### What the figures say")


if __name__ == "__main__":
    main()
