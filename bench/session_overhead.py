"""The fixed cost of one board × one model: farm before and after the agent session, and its peers.

Issue 17's table, measured in one run of this script (whole processes: wall and CPU, medians of
`--rounds`, the arms interleaved and their order rotated each round so the machine's drift hits all
alike):

1. Local board, yolo_timing (~2–4 ms here), 100 runs: `farm bench` (a fresh CLI process, before and
   after) vs a bare Python onnxruntime loop (peer_fabric.BARE_LOOP, same runs and warm-up) and
   OpenVINO's `benchmark_app -niter 100 -nthreads 1 -api sync`. Goal: ≤ 1.5× both.
2. One SSH board, push + 20 runs: `farm bench -i INV -l BOARD --runs 20 --min-seconds 0 --warmup 2
   --threads 1 --sample-interval 0 --no-report` of a fresh copy of the model each time (so it is
   uploaded) vs `bench/peer_fabric.py` (fabric: put + run) as a process. Goal: ≤ 1.3×.
3. The same on 16 SSH boards at once (forks 16). Goal: ≤ 1.0×.
4. Controller CPU of (3): user+sys of the controller process (RUSAGE_CHILDREN; the boards' sshd and
   agents are not its children). Goal: ≤ 1.0 s.
5. (2) on one board with a 0.2-core CPU quota, where the fixed cost shows most.
6. SSH channels per board per run (paramiko's Transport.open_channel, counted in the controller) and
   agent Python starts per board (the board's `python` is a wrapper that logs each start; workers are
   started with the interpreter itself and not counted), for 1 and for 3 cells, before and after.
7. Worker start: exec (a fresh `python`, what farm does) vs fork from a parent with numpy and
   onnxruntime imported: time to a loaded model and 5 inferences, and the worker's VmHWM.
8. The floor (in the local row's rounds): a bare `python -c pass`, and importing the libraries a farm
   controller is built on (CONTROLLER_LIBRARIES); from them, the lowest ratio any controller built on
   them could reach in rows 1 and 2.

"Before" is commit 6d7d638 (the session's base) run from a worktree of it (`--base`, default
/work/wt/session-base: `git worktree add --detach /work/wt/session-base 6d7d638`); "after" is
this checkout. Both run against the same lab: 16 `unlimited` boards on 127.81.<n>.11–26 in
/var/lib/farm-lab-session-<pid>, taken down at the end (also on Ctrl-C / SIGTERM). Each board has
a cpu cgroup of this script (bench/fanout_wall.py's BoardCpuGroups): no quota, except board 1
during row 5.

Run: python bench/session_overhead.py [--rounds 5] [--quick] [--write-results]
     (root, openssh-server, cgroup v1, fabric, OpenVINO's benchmark_app; --quick: 2 rounds, no 16-board row)
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DEFAULT_BASE = Path("/work/wt/session-base")
BASE_COMMIT = "6d7d638"
BOARDS = 16
QUOTA_CORES = 0.2
MODEL_NAME = "yolo_timing.onnx"
# The fixed cost no farm controller can shed: a Python start, and importing the libraries the
# product card and DESIGN.md fix for it (typer + rich for the CLI, pydantic for validation,
# SQLAlchemy for the store; numpy for the statistics of every verdict).
CONTROLLER_LIBRARIES = ("typer", "rich.console", "rich.table", "pydantic", "sqlalchemy.orm", "numpy")
FLOOR_START = "floor: python start"
FLOOR_LIBRARIES = "floor: controller libraries"


# ------------------------------------------------------------------------------------ child modes

def count_channels_child(code_dir: str, counts_file: str, farm_args: list[str]) -> int:
    """`farm` from `code_dir`, counting the SSH channels it opens per board (host:port)."""
    sys.path.insert(0, code_dir)
    import paramiko

    counts: dict[str, list[str]] = {}
    original = paramiko.Transport.open_channel

    def open_channel(transport, kind, *args, **kwargs):  # noqa: ANN001, ANN202
        try:
            host, port = transport.getpeername()[:2]
        except (OSError, TypeError):
            host, port = "?", 0
        counts.setdefault(f"{host}:{port}", []).append(kind)
        return original(transport, kind, *args, **kwargs)

    paramiko.Transport.open_channel = open_channel
    atexit.register(lambda: Path(counts_file).write_text(json.dumps(counts)))
    from orchestrator.cli import main

    return main(farm_args)


WORKER_PROBE = r'''
import os, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
def load_and_run(model, t0):
    import numpy as np, onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
    s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
    for _ in range(5):
        s.run(None, {i.name: x})
    return time.time() - t0, hwm()
'''


def worker_start_child(model: str, reps: int) -> None:
    """Row 7, in a process of its own: exec and fork worker starts, interleaved; prints JSON."""
    namespace: dict[str, Any] = {}
    exec(WORKER_PROBE, namespace)  # noqa: S102 - our own probe code
    results: dict[str, list[tuple[float, int]]] = {"exec": [], "fork": []}
    import numpy  # noqa: F401 - the pre-imported parent a fork server would be
    import onnxruntime  # noqa: F401

    for _ in range(reps):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", WORKER_PROBE + "import json; print(json.dumps(load_and_run(%r, %r)))"
                              % (model, t0)], capture_output=True, text=True, check=True, timeout=120)
        results["exec"].append(tuple(json.loads(out.stdout)))
        read, write = os.pipe()
        t0 = time.time()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, json.dumps(namespace["load_and_run"](model, t0)).encode())
            os._exit(0)
        os.close(write)
        data = b""
        while chunk := os.read(read, 4096):
            data += chunk
        os.close(read)
        os.waitpid(pid, 0)
        results["fork"].append(tuple(json.loads(data)))
    print(json.dumps(results))


# ------------------------------------------------------------------------------------ measuring


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout_s: float = 600) -> tuple[float, float, str]:
    """Run a whole process: (wall s, CPU s of it and the children it waited for, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout_s)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Arms:
    """Named commands measured round by round, order rotated each round."""

    def __init__(self) -> None:
        self.arms: list[tuple[str, Callable[[], tuple[float, float, str]]]] = []
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def add(self, name: str, run: Callable[[], tuple[float, float, str]]) -> None:
        self.arms.append((name, run))
        self.wall[name], self.cpu[name] = [], []

    def round(self, index: int) -> None:
        shift = index % len(self.arms)
        for name, run in self.arms[shift:] + self.arms[:shift]:
            wall, cpu, _ = run()
            self.wall[name].append(wall)
            self.cpu[name].append(cpu)

    def ratio(self, name: str, peer: str) -> float:
        """Median of the per-round ratios (same round: same machine state)."""
        return median([a / b for a, b in zip(self.wall[name], self.wall[peer])])


# ------------------------------------------------------------------------------------ the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds, no 16-board row")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help=f"a checkout of {BASE_COMMIT} (the 'before')")
    parser.add_argument("--write-results", action="store_true", help="record the figures in bench/RESULTS.md")
    parser.add_argument("--count-channels-child", nargs=2, metavar=("CODE_DIR", "COUNTS_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-start-child", nargs=2, metavar=("MODEL", "REPS"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.count_channels_child:
        sys.exit(count_channels_child(*args.count_channels_child, rest[1:] if rest[:1] == ["--"] else rest))
    if args.worker_start_child:
        worker_start_child(args.worker_start_child[0], int(args.worker_start_child[1]))
        return
    if not (args.base / "orchestrator").is_dir():
        raise SystemExit(f"{args.base} is not a checkout: git worktree add --detach {args.base} {BASE_COMMIT}")
    rounds = 2 if args.quick else args.rounds

    from fanout_wall import quota_lab

    with quota_lab("session", BOARDS, 81, QUOTA_CORES) as (state, groups):
        for board in state.boards:
            groups.set_quota(board.name, None)  # no quota but in row 5
        with tempfile.TemporaryDirectory(prefix="farm-session-bench-") as tmp:
            results = run(state, groups, Path(tmp), args.base, rounds, args.quick)
        print(json.dumps(results))
        if args.write_results:
            write_results(results, rounds, args.quick)


def run(state, groups, tmp: Path, base: Path, rounds: int, quick: bool) -> dict[str, Any]:  # noqa: ANN001
    from orchestrator.models import DEMO_DIR
    from peer_fabric import BARE_LOOP

    model = DEMO_DIR / MODEL_NAME
    names = [b.name for b in state.boards]
    inventory = str(state.inventory_path)
    env_common = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_DATA_HOME": str(tmp / "data"),
                  "FARM_INVENTORY": ""}
    env_common.pop("FARM_INVENTORY")
    code = {"before": base, "after": REPO}
    envs = {version: {**env_common, "PYTHONPATH": str(path)} for version, path in code.items()}
    dbs = {version: f"sqlite:///{tmp / f'{version}.db'}" for version in code}
    benchmark_app = _benchmark_app()
    fresh_counter = [0]

    def fresh_model(name: str = MODEL_NAME) -> Path:
        """A copy of the model with new bytes (its doc string): a board must receive it."""
        import onnx

        fresh_counter[0] += 1
        proto = onnx.load(str(model))
        proto.doc_string = f"session bench {os.getpid()} {fresh_counter[0]}"
        path = tmp / f"m{fresh_counter[0]}" / name
        path.parent.mkdir()
        onnx.save(proto, str(path))
        return path

    def farm(version: str, *farm_args: str) -> Callable[[], tuple[float, float, str]]:
        return lambda: timed([sys.executable, "-m", "orchestrator.cli", "bench", "--db", dbs[version], "--no-report",
                              *farm_args], env=envs[version], cwd=tmp)

    def farm_ssh(version: str, limit: str, forks: int) -> Callable[[], tuple[float, float, str]]:
        def go() -> tuple[float, float, str]:
            fresh = fresh_model()
            return farm(version, "-i", inventory, "-l", limit, "-f", str(forks), "-m", str(fresh), "--runs", "20",
                        "--min-seconds", "0", "--warmup", "2", "--threads", "1", "--sample-interval", "0")()
        return go

    def fabric(limit: str) -> Callable[[], tuple[float, float, str]]:
        def go() -> tuple[float, float, str]:
            fresh = fresh_model()
            return timed([sys.executable, str(REPO / "bench" / "peer_fabric.py"), "-i", inventory, "-l", limit,
                          "-m", str(fresh), "--runs", "20", "--warmup", "2"], env=envs["after"], cwd=tmp)
        return go

    load = os.getloadavg()[0]
    print(f"# session overhead: {MODEL_NAME}, {rounds} rounds, lab of {len(names)} boards, load {load:.1f}")
    # Warm every cache once (agent bundles, venvs, variant/check caches) so no arm pays a first time.
    for version in code:
        farm(version, "-m", str(model), "--runs", "5", "--min-seconds", "0", "--warmup", "0", "--threads", "1")()
        farm_ssh(version, ",".join(names), 16)()
    timed([benchmark_app, "-m", str(model), "-niter", "5", "-nthreads", "1", "-api", "sync", "-d", "CPU", "-hint",
           "none"], env=env_common, cwd=tmp)

    local = Arms()
    for version in code:
        local.add(f"farm {version}", farm(version, "-m", str(model), "--runs", "100", "--min-seconds", "0",
                                          "--warmup", "10", "--threads", "1"))
    local.add("bare loop", lambda: timed([sys.executable, "-c", BARE_LOOP, str(model), "100", "10"], env=env_common))
    local.add(FLOOR_START, lambda: timed([sys.executable, "-c", "pass"], env=env_common))
    local.add(FLOOR_LIBRARIES, lambda: timed([sys.executable, "-c", f"import {', '.join(CONTROLLER_LIBRARIES)}"],
                                             env=env_common))
    local.add("benchmark_app", lambda: timed([benchmark_app, "-m", str(model), "-niter", "100", "-nthreads", "1",
                                              "-api", "sync", "-d", "CPU", "-hint", "none"], env=env_common, cwd=tmp))
    one = Arms()
    for version in code:
        one.add(f"farm {version}", farm_ssh(version, names[0], 1))
    one.add("fabric", fabric(names[0]))
    many = Arms()
    if not quick:
        for version in code:
            many.add(f"farm {version}", farm_ssh(version, ",".join(names), len(names)))
        many.add("fabric", fabric(",".join(names)))
    quota = Arms()
    for version in code:
        quota.add(f"farm {version}", farm_ssh(version, names[0], 1))
    quota.add("fabric", fabric(names[0]))

    for index in range(rounds):
        local.round(index)
        one.round(index)
        if not quick:
            many.round(index)
        groups.set_quota(names[0], QUOTA_CORES)
        try:
            quota.round(index)
        finally:
            groups.set_quota(names[0], None)
        print(f"round {index + 1}/{rounds}: local after/bare {local.wall['farm after'][-1] / local.wall['bare loop'][-1]:.2f}, "
              f"1 board after/fabric {one.wall['farm after'][-1] / one.wall['fabric'][-1]:.2f}"
              + (f", 16 boards after/fabric {many.wall['farm after'][-1] / many.wall['fabric'][-1]:.2f}" if not quick
                 else ""), flush=True)

    counts = count_channels_and_starts(state, tmp, code, envs, dbs, fresh_model)
    workers = json.loads(timed([sys.executable, __file__, "--worker-start-child", str(model), str(max(rounds, 5))],
                               env=envs["after"])[2])
    return summarize(local, one, many, quota, counts, workers, rounds, load, quick)


def _benchmark_app() -> str:
    """OpenVINO's benchmark_app, not through a pyenv shim (a shell script that costs ~50 ms a start)."""
    candidate = Path(sys.executable).parent / "benchmark_app"
    found = str(candidate) if candidate.exists() else shutil.which("benchmark_app")
    if found is None:
        raise SystemExit("OpenVINO's benchmark_app is not on PATH (pip install openvino)")
    return found


def count_channels_and_starts(state, tmp: Path, code, envs, dbs, fresh_model) -> dict[str, Any]:  # noqa: ANN001
    """Row 6: one board, 1 cell and 3 cells (3 fresh models), before and after."""
    import yaml

    board = state.boards[0]
    log = tmp / "starts.log"
    wrapper = Path(state.lab_dir) / "counting-python"
    wrapper.write_text(f"#!/bin/sh\necho start >> {log}\nexec {board.python} \"$@\"\n")
    wrapper.chmod(0o755)
    inventory = yaml.safe_load(Path(state.inventory_path).read_text())
    _set_python(inventory, board.name, str(wrapper))
    counted_inventory = tmp / "counting-inventory.yaml"
    counted_inventory.write_text(yaml.safe_dump(inventory))
    found: dict[str, Any] = {}
    for version in code:
        for cells in (1, 3):
            log.write_text("")
            log.chmod(0o666)
            tmp.chmod(0o755)
            counts_file = tmp / f"channels-{version}-{cells}.json"
            models = [arg for cell in range(cells) for arg in ("-m", str(fresh_model(f"cell{cell}.onnx")))]
            timed([sys.executable, __file__, "--count-channels-child", str(code[version]), str(counts_file), "--",
                   "bench", "--db", dbs[version], "--no-report", "-i", str(counted_inventory), "-l", board.name,
                   *models, "--runs", "20", "--min-seconds", "0", "--warmup", "2", "--threads", "1",
                   "--sample-interval", "0"], env=envs[version], cwd=tmp)
            channels = json.loads(counts_file.read_text())
            sessions = [kinds for peer, kinds in channels.items() if peer.endswith(f":{board.port}")]
            found[f"{version}/{cells}"] = {
                "channels": sum(kinds.count("session") for kinds in sessions),
                "connections": len(sessions),
                "agent_starts": log.read_text().split().count("start"),
            }
    return found


def _set_python(inventory: dict, name: str, python: str) -> None:
    """Set `python` of host `name` wherever it is in an Ansible-style inventory."""
    for group in inventory.values():
        if isinstance(group, dict):
            hosts = group.get("hosts") or {}
            if name in hosts:
                hosts[name] = {**(hosts[name] or {}), "python": python}
            _set_python(group.get("children") or {}, name, python)


def summarize(local: Arms, one: Arms, many: Arms, quota: Arms, counts: dict, workers: dict, rounds: int,
              load: float, quick: bool) -> dict[str, Any]:
    rows = []

    def row(work: str, arms: Arms, peers: list[str], goal: str) -> None:
        entry = {"work": work, "goal": goal}
        for name in arms.wall:
            entry[name] = {"wall_s": round(median(arms.wall[name]), 3), "cpu_s": round(median(arms.cpu[name]), 3)}
        for version in ("before", "after"):
            entry[f"ratio_{version}"] = {peer: round(arms.ratio(f"farm {version}", peer), 2) for peer in peers}
        rows.append(entry)

    row("local board, yolo_timing, 100 runs", local, ["bare loop", "benchmark_app"], "≤ 1.5× both")
    row("1 SSH board, push + 20 runs", one, ["fabric"], "≤ 1.3×")
    if not quick:
        row(f"{BOARDS} SSH boards, push + 20 runs", many, ["fabric"], "≤ 1.0×")
    row(f"1 SSH board at {QUOTA_CORES:g} core, push + 20 runs", quota, ["fabric"], "—")
    start_s, libraries_s = median(local.wall[FLOOR_START]), median(local.wall[FLOOR_LIBRARIES])
    bare_s = median(local.wall["bare loop"])
    fabric_s = median(one.wall["fabric"])
    floor = {
        "python_start_s": round(start_s, 3), "controller_libraries_s": round(libraries_s, 3),
        # the worker does the bare loop's work; before it, a controller that imports its libraries
        # and an agent that starts (validation comes before any board is touched)
        "local_ratio_bound": round((bare_s + libraries_s + start_s) / bare_s, 2),
        # fabric imports paramiko too: farm adds its other libraries at least
        "ssh_ratio_bound": round((fabric_s + libraries_s - start_s) / fabric_s, 2),
    }
    exec_s = median([t for t, _ in workers["exec"]])
    fork_s = median([t for t, _ in workers["fork"]])
    exec_rss = median([r for _, r in workers["exec"]])
    fork_rss = median([r for _, r in workers["fork"]])
    summary = {
        "date": time.strftime("%Y-%m-%d"), "rounds": rounds, "load_1min_at_start": round(load, 1),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "rows": rows, "channels_and_starts": counts, "floor": floor,
        "worker_start": {"exec_s": round(exec_s, 3), "fork_s": round(fork_s, 3),
                         "exec_peak_rss_bytes": int(exec_rss), "fork_peak_rss_bytes": int(fork_rss)},
    }
    print("\n" + render(summary))
    return summary


def render(summary: dict[str, Any]) -> str:
    lines = ["| work | farm before | farm after | peer | ratio before | ratio after | goal |",
             "|---|---:|---:|---|---:|---:|---|"]
    for entry in summary["rows"]:
        peers = [name for name in entry if name not in ("work", "goal", "farm before", "farm after")
                 and not name.startswith(("ratio_", "floor: "))]
        peer_text = "; ".join(f"{p} {entry[p]['wall_s']:.2f} s" for p in peers)
        ratios = {v: " / ".join(f"{entry[f'ratio_{v}'][p]:.2f}×" for p in peers) for v in ("before", "after")}
        lines.append(f"| {entry['work']} | {entry['farm before']['wall_s']:.2f} s | {entry['farm after']['wall_s']:.2f} s | "
                     f"{peer_text} | {ratios['before']} | {ratios['after']} | {entry['goal']} |")
    many = next((e for e in summary["rows"] if e["work"].startswith(f"{BOARDS} ")), None)
    if many is not None:
        lines.append(f"| controller CPU, {BOARDS} boards | {many['farm before']['cpu_s']:.2f} s | "
                     f"{many['farm after']['cpu_s']:.2f} s | fabric {many['fabric']['cpu_s']:.2f} s | "
                     f"{many['farm before']['cpu_s'] / many['fabric']['cpu_s']:.2f}× | "
                     f"{many['farm after']['cpu_s'] / many['fabric']['cpu_s']:.2f}× | ≤ 1.0 s |")
    lines += ["", "| per board and run | before, 1 cell | before, 3 cells | after, 1 cell | after, 3 cells |",
              "|---|---:|---:|---:|---:|"]
    counts = summary["channels_and_starts"]
    for key, label in (("channels", "SSH channels"), ("agent_starts", "agent Python starts"),
                       ("connections", "SSH connections")):
        lines.append(f"| {label} | " + " | ".join(str(counts[f"{v}/{c}"][key]) for v in ("before", "after")
                                                  for c in (1, 3)) + " |")
    floor = summary["floor"]
    lines += ["", "| the fixed cost under every farm run | wall |", "|---|---:|",
              f"| Python start (`python -c pass`) | {floor['python_start_s']:.3f} s |",
              f"| controller libraries (`import {', '.join(CONTROLLER_LIBRARIES)}`) | "
              f"{floor['controller_libraries_s']:.3f} s |",
              f"| lowest possible local ratio: (bare loop + libraries + agent start) / bare loop | "
              f"{floor['local_ratio_bound']:.2f}× (goal ≤ 1.5×) |",
              f"| lowest possible 1-board ratio: (fabric + libraries − start) / fabric | "
              f"{floor['ssh_ratio_bound']:.2f}× (goal ≤ 1.3×) |"]
    w = summary["worker_start"]
    lines += ["", "| worker start (yolo_timing: load + 5 runs) | time | peak RSS (VmHWM) |", "|---|---:|---:|",
              f"| exec (fresh python; what farm does) | {w['exec_s']:.3f} s | {w['exec_peak_rss_bytes'] / 2**20:.1f} MiB |",
              f"| fork from a parent with numpy + onnxruntime imported | {w['fork_s']:.3f} s | "
              f"{w['fork_peak_rss_bytes'] / 2**20:.1f} MiB |"]
    return "\n".join(lines)


def write_results(summary: dict[str, Any], rounds: int, quick: bool) -> None:
    from results_md import record_section

    text = (f"## session_overhead\n\n`python bench/session_overhead.py --rounds {rounds}{' --quick' if quick else ''}` — "
            "issue 17's table: whole processes (wall; CPU where said), medians of the rounds, arms interleaved and "
            f"rotated; \"before\" is commit {BASE_COMMIT} run from a worktree, \"after\" this code; ratios are medians "
            "of per-round ratios. Lab: 16 `unlimited` boards on loopback (real sshd), no CPU quota except board 1 in the "
            f"{QUOTA_CORES:g}-core row.\n\n- Date: {summary['date']}\n- Machine: {summary['machine']}; 1-minute load "
            f"average {summary['load_1min_at_start']} at the start (shared with other sessions).\n\n"
            + render(summary) + "\n")
    record_section(REPO / "bench" / "RESULTS.md", "session_overhead", text, keep_heading="### What the figures say")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: lab taken down", file=sys.stderr)
        sys.exit(130)
