"""Does `farm bench` over N boards take as long as its slowest board alone, or longer?

Brings up its own lab of 8 simulated boards (real sshd servers on loopback addresses
127.78.<n>.11-18, lab dir /var/lib/farm-lab-bench-<pid>, always taken down again, also on
Ctrl-C / SIGTERM) and measures, in one run of this script:

1. Fan-out: the same short bench (the demo digits model with its shipped test set, so the
   accuracy step runs too; --runs 20 --min-seconds 0 --warmup 2 --threads 1, no report, a
   temporary SQLite file) on 1, 4 and 8 boards with `forks` = number of boards, and every
   board alone (forks 1). Ratio = fan-out wall time / the slowest of those boards' alone
   times in the same round. Target: <= 1.3. Also shown: the ratio to the median alone time
   and to the N=1 run of the same round (N=1 vs board 1 alone is an A/A pair: its spread is
   the noise floor). Rounds run alone b1, N=1, alone b2-b4, N=4, alone b5-b8, N=8, and every
   second round in reverse, so drift of the shared machine hits alone and fan-out runs alike.
   A first run on the fresh boards (uploads agent, model, dataset) goes before the rounds.
2. Controller CPU: resource.getrusage(RUSAGE_SELF) user+sys seconds around run_bench,
   divided by the number of boards. RUSAGE_SELF counts every thread of this process (the
   runner's board threads, paramiko's transport threads, lease renewers, SQLite); the boards'
   sshd and agent processes are not our children and are not counted.
3. Re-run upload cost: bytes_sent stored for the first run on fresh boards vs a re-run
   (store.results(run_id)[i]["details"]["bytes_sent"]), and the time of
   SSHTransport.stage_file for the 2.9 MB demo yolo_timing.onnx under a fresh name
   (upload) and then again (already present: only the board-side sha256 check), on one
   board, with its CPU quota and with the quota lifted.

Why every board gets a CPU quota of 0.2 core (cpu.cfs_quota_us 20000 / 100000): this
machine has 2 cores. Eight `unlimited` boards would start eight agents (a Python process
importing numpy + onnxruntime, a worker doing it again, the accuracy step, the lease verb)
that fight for 2 cores, so 8 boards would take ~4x one board alone however well farm fans
out: the ratio would measure the host, not farm. With 0.2 core each, 8 boards demand 1.6
cores, which the host can give all of them at once, and 0.4 core stays for the controller
(paramiko, SQLite, scoring). A board alone then runs as fast as it does among 7 others
unless the controller serialises something, which is what the ratio should show; each
real board has its own CPU too. (The lab's fixed profiles cannot do this: 8 rpi4 boards
would put four 0.5-core boards on each pinned core.) With so small a quota a board is
CPU-bound all the time (it uses ~100 % of its quota alone), so the digits model's few ms of
inference are nothing next to SSH, agent start-up and model load: the run is orchestration.

The quota lives in cpu cgroups of this script (see BoardCpuGroups): each board weighs as
one ordinary process. In the lab's own cpu cgroups (`--cgroups lab`) all boards of all labs
on the machine share the single /farm-lab group's weight, and on a loaded host 4 boards
together got less than one process's share (N=4 ratios of 1.95 and 4.4 were seen that way).
Each board's CPU seconds are counted with cpuacct; "quota%" = CPU s / (0.2 x its wall
time) says whether a board got its quota (100 %) or was starved by the host (< 100 %).

Other processes may load the machine while this runs (the 1-minute load average is
printed); the ratios compare runs measured in the same round, and the per-phase table
shows where the time goes.

Run: python bench/fanout_wall.py [--quick] [--cgroups own|lab]
     (root, openssh-server, cgroup v1; full ~4 min, --quick ~1 min: 1 round, 1 and 4 boards)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import lab as lab_mod  # noqa: E402
from orchestrator.agent_client import file_sha256  # noqa: E402
from orchestrator.request import BenchRequest, resolve_boards, run_bench  # noqa: E402
from orchestrator.models import DEMO_DIR  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import Store, open_store  # noqa: E402
from orchestrator.transport.ssh import SSHTransport  # noqa: E402

BOARDS = 8
BOARD_CPU_QUOTA_CORES = 0.2
BOARD_VENV = Path("/var/lib/farm-lab-test-venv")  # shared with tests/integration: made once, reused
MODEL = DEMO_DIR / "digits_mlp.onnx"
STAGE_MODEL = DEMO_DIR / "yolo_timing.onnx"
SETTINGS = BenchSettings(runs=20, min_seconds=0.0, warmup=2, threads=1)
TARGET_RATIO = 1.3


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGHUP, turned into KeyboardInterrupt so the lab is taken down on the way out."""


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------------------------- lab


class BoardCpuGroups:
    """Each board's sshd (so its sessions and agents) in cgroups of this script's own.

    cpu (mode "own"): /sys/fs/cgroup/cpu/farm-fanout-<pid>/<board>, quota 0.2 core, the parent
    weighing as many ordinary processes as there are boards (cpu.shares 1024 per board). Mode
    "lab" keeps the lab's cpu cgroups under /farm-lab and only sets their quota: every board
    of every lab on the machine then shares that one cpu.shares=1024 entity, so on a loaded
    host N busy boards together get the CPU share of ONE process, and the fan-out measures
    that rather than farm.
    cpuacct (both modes): /sys/fs/cgroup/cpuacct/farm-fanout-<pid>/<board>, to count the CPU
    seconds each board used. The lab's memory and cpuset cgroups are left alone, so
    `lab_down` still finds every process of the boards.
    """

    def __init__(self, state: lab_mod.LabState, mode: str) -> None:
        self.state = state
        self.mode = mode
        self.cpu_parent = lab_mod.CGROUP_ROOT / "cpu" / f"farm-fanout-{os.getpid()}"
        self.acct_parent = lab_mod.CGROUP_ROOT / "cpuacct" / f"farm-fanout-{os.getpid()}"
        self.cpu_paths: dict[str, Path] = {}
        self.acct_paths: dict[str, Path] = {}

    def setup(self, cores: float) -> None:
        self.acct_parent.mkdir()
        if self.mode == "own":
            self.cpu_parent.mkdir()
            (self.cpu_parent / "cpu.shares").write_text(str(1024 * len(self.state.boards)))
        for board in self.state.boards:
            self.acct_paths[board.name] = self.acct_parent / board.name
            self.acct_paths[board.name].mkdir()
            (self.acct_paths[board.name] / "cgroup.procs").write_text(str(board.pid))
            if self.mode == "own":
                self.cpu_paths[board.name] = self.cpu_parent / board.name
                self.cpu_paths[board.name].mkdir()
                (self.cpu_paths[board.name] / "cgroup.procs").write_text(str(board.pid))
            else:
                self.cpu_paths[board.name] = lab_mod.CGROUP_ROOT / "cpu" / board.cgroups["cpu"].lstrip("/")
            self.set_quota(board.name, cores)

    def set_quota(self, name: str, cores: float | None) -> None:
        """The board's CPU quota (None: no limit). The agent reports it from its cgroup."""
        quota_us = -1 if cores is None else int(cores * lab_mod.CPU_PERIOD_US)
        (self.cpu_paths[name] / "cpu.cfs_period_us").write_text(str(lab_mod.CPU_PERIOD_US))
        (self.cpu_paths[name] / "cpu.cfs_quota_us").write_text(str(quota_us))

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user+sys) each board's processes have used so far."""
        return {name: int((path / "cpuacct.usage").read_text()) / 1e9 for name, path in self.acct_paths.items()}

    def remove(self) -> None:
        """After lab_down: drop this script's cgroups, killing any board process still in them."""
        for parent in (self.cpu_parent, self.acct_parent):
            if not parent.is_dir():
                continue
            for path in [p for p in parent.iterdir() if p.is_dir()]:
                deadline = time.monotonic() + 5.0
                while True:
                    try:
                        path.rmdir()
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        for pid in (path / "cgroup.procs").read_text().split():
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(int(pid), signal.SIGKILL)
                        time.sleep(0.05)
            parent.rmdir()


# ---------------------------------------------------------------------------------- one bench


def timed_bench(store: Store, inventory: Path, names: list[str], groups: BoardCpuGroups) -> dict[str, Any]:
    """One run_bench over `names` with forks = len(names): wall s, controller CPU s, phase times,
    bytes sent and CPU s used per board, the host's 1-minute load average."""
    load_1min = os.getloadavg()[0]
    board_cpu_s = groups.cpu_s()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    events: list[tuple[float, str, dict[str, Any]]] = []

    def on_event(kind: str, info: dict[str, Any]) -> None:  # called from the board threads
        events.append((time.perf_counter() - started, kind, info))  # list.append is atomic

    outcome = run_bench(
        BenchRequest(model_paths=[MODEL], settings=SETTINGS, inventory=str(inventory), limit=",".join(names),
                     forks=len(names), write_report=False),
        on_event=on_event, store=store,
    )
    wall_s = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    board_cpu_after = groups.cpu_s()
    cpu_s = (usage_after.ru_utime - usage.ru_utime) + (usage_after.ru_stime - usage.ru_stime)
    failed = outcome.run.failed
    if failed or len(outcome.run.outcomes) != len(names):
        problems = "; ".join(f"{o.board}: {o.row.get('error_kind')} {o.row.get('error_message')}" for o in failed)
        raise SystemExit(f"bench on {names} did not succeed: {problems or 'missing results'}")
    bytes_sent = {r["board"]: r["details"].get("bytes_sent") for r in store.results(outcome.run.run_id)}
    return {"wall_s": wall_s, "cpu_s": cpu_s, "run_id": outcome.run.run_id, "phases": phases(events),
            "bytes_sent": bytes_sent, "load_1min": load_1min,
            "board_cpu_s": {name: board_cpu_after[name] - board_cpu_s[name] for name in names},
            "retries": sum(1 for _, kind, _ in events if kind in ("board_retry", "board_waiting"))}


def phases(events: list[tuple[float, str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per board, seconds since run_bench was called: when it started and how long each step took.

    start: board_connecting; connect: SSH connect + agent facts + board lease; stage: model staging
    (hash check, upload if needed); bench: the agent's bench call; accuracy: the dataset step;
    end: job_finished (the lease release and closing come after it).
    """
    marks: dict[str, dict[str, float]] = {}
    for t, kind, info in events:
        board = info.get("board")
        if board is None:
            continue
        name = {"board_connecting": "connecting", "board_ready": "ready", "cell_started": "job",
                "cell_staged": "staged", "cell_finished": "finished"}.get(kind)
        if kind == "cell_phase" and info.get("phase") == "accuracy":
            name = "accuracy"
        if name:
            marks.setdefault(board, {})[name] = t
    out = {}
    for board, m in marks.items():
        accuracy = m.get("accuracy", m["finished"])
        out[board] = {"start": m["connecting"], "connect": m["ready"] - m["connecting"],
                      "stage": m["staged"] - m["job"], "bench": accuracy - m["staged"],
                      "accuracy": m["finished"] - accuracy, "end": m["finished"]}
    return out


# ---------------------------------------------------------------------------------- staging


def stage_times(inventory: Path, board: lab_mod.LabBoard, groups: BoardCpuGroups, reps: int) -> dict[str, list[float]]:
    """stage_file of the 2.9 MB model under a fresh name (upload), then again (already there).

    Alternates the board's quota (0.2 core / none) rep by rep. The connection and the SFTP
    session are opened first (an untimed pair), so no timed call pays for them.
    """
    [spec] = resolve_boards(str(inventory), board.name, False)
    sha = file_sha256(STAGE_MODEL.resolve())
    times: dict[str, list[float]] = {}
    transport = SSHTransport(spec)
    try:
        transport.workdir  # connect, make the work dir
        for rep in range(reps + 1):
            for label, cores in (("quota", BOARD_CPU_QUOTA_CORES), ("no quota", None)):
                groups.set_quota(board.name, cores)
                name = f"fanout-{secrets.token_hex(6)}.onnx"
                for attempt in ("first", "again"):
                    t0 = time.perf_counter()
                    path, sent = transport.stage_file(STAGE_MODEL, name, sha)
                    if rep > 0:  # rep 0 opens the SFTP session
                        times.setdefault(f"{label}/{attempt}", []).append(time.perf_counter() - t0)
                        times.setdefault(f"{label}/{attempt}/bytes", []).append(float(sent))
                transport.run(["rm", "-f", path], 30.0)
    finally:
        groups.set_quota(board.name, BOARD_CPU_QUOTA_CORES)
        transport.close()
    return times


# ---------------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 1 and 4 boards, ~1 minute")
    parser.add_argument("--cgroups", choices=("own", "lab"), default="own",
                        help="own: each board in a cpu cgroup of this script (default); lab: the lab's "
                             "cgroups under /farm-lab (all boards weigh as one process; see BoardCpuGroups)")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    fanouts = (1, 4) if args.quick else (1, 4, BOARDS)
    stage_reps = 2 if args.quick else 5

    with quota_lab("bench", max(fanouts), 78, BOARD_CPU_QUOTA_CORES, args.cgroups) as (state, groups):
        with tempfile.TemporaryDirectory(prefix="farm-fanout-") as tmp:
            store = open_store(f"sqlite:///{tmp}/bench.db")
            try:
                run(state, store, groups, rounds, fanouts, stage_reps)
            finally:
                store.close()


@contextlib.contextmanager
def quota_lab(name: str, boards: int, address_block: int, quota_cores: float,
              cgroups: str = "own") -> Iterator[tuple[lab_mod.LabState, BoardCpuGroups]]:
    """`boards` unlimited lab boards in /var/lib/farm-lab-<name>-<pid> on 127.<address_block>.<n>.11…,
    each in a cpu cgroup with a `quota_cores` quota (BoardCpuGroups, `cgroups` mode); taken down at
    the end, also on SIGTERM/SIGHUP (they raise Interrupted)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    problems = lab_mod.missing_prerequisites()
    if problems:
        raise SystemExit("this benchmark needs a lab: " + " ".join(problems))
    pid = os.getpid()
    lab_dir = Path(f"/var/lib/farm-lab-{name}-{pid}")
    groups: BoardCpuGroups | None = None
    try:
        state = lab_mod.lab_up(lab_dir, ["unlimited"], boards, first_address=f"127.{address_block}.{pid % 250 + 1}.11",
                               venv_dir=BOARD_VENV)
        if not state.limits_enforced:
            raise SystemExit(f"this benchmark needs cgroup v1 CPU quotas: {state.limits_note}")
        groups = BoardCpuGroups(state, cgroups)
        groups.setup(quota_cores)
        yield state, groups
    finally:
        try:
            lab_mod.lab_down(lab_dir, remove_files=True)
        finally:
            if groups is not None:
                groups.remove()


def run(state: lab_mod.LabState, store: Store, groups: BoardCpuGroups, rounds: int, fanouts: tuple[int, ...],
        stage_reps: int) -> None:
    names = [b.name for b in state.boards]
    inventory = state.inventory_path
    print(f"# fan-out: {len(names)} lab boards, {BOARD_CPU_QUOTA_CORES:g} core each ({groups.mode} cpu cgroups), "
          f"{os.cpu_count()} host cores; {MODEL.name} --runs {SETTINGS.min_runs} --min-seconds 0 "
          f"--warmup {SETTINGS.warmup} --threads 1")

    # First run on fresh boards: uploads the agent, the model and the dataset.
    first = timed_bench(store, inventory, names, groups)
    print(f"first run on fresh boards ({len(names)} boards): wall {first['wall_s']:.2f} s")

    steps: list[tuple[str, Any]] = []
    done = 0
    for n in fanouts:
        steps += [("alone", name) for name in names[done:n]] + [("fan", n)]
        done = n
    alone: dict[str, list[float]] = {name: [] for name in names}
    fan: dict[int, list[dict[str, Any]]] = {n: [] for n in fanouts}
    ratios: dict[int, list[float]] = {n: [] for n in fanouts}
    ratios_median: dict[int, list[float]] = {n: [] for n in fanouts}
    alone_runs: list[dict[str, Any]] = []
    for r in range(rounds):
        this_round: dict[str, float] = {}
        order = steps if r % 2 == 0 else steps[::-1]
        results: dict[int, dict[str, Any]] = {}
        for kind, what in order:
            if kind == "alone":
                result = timed_bench(store, inventory, [what], groups)
                alone[what].append(result["wall_s"])
                this_round[what] = result["wall_s"]
                alone_runs.append(result)
            else:
                results[what] = timed_bench(store, inventory, names[:what], groups)
        for n, result in results.items():
            fan[n].append(result)
            slowest = max(this_round[name] for name in names[:n])
            ratios[n].append(result["wall_s"] / slowest)
            ratios_median[n].append(result["wall_s"] / median([this_round[name] for name in names[:n]]))
        retries = sum(x["retries"] for x in [*results.values(), *alone_runs[-len(this_round):]])
        if retries:
            print(f"round {r + 1}: {retries} board retries/waits (board_retry, board_waiting events)")
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"N={n} {results[n]['wall_s']:.2f} s ({ratios[n][-1]:.2f}x)" for n in fanouts))

    print("\n# 1. fan-out wall time / slowest single board alone (same round); median over rounds")
    print("# vs median alone / vs N=1: the same wall time over the median alone time / the N=1 run, same round")
    print(f"{'boards':>6} {'wall s':>7} {'slowest alone s':>15} {'ratio':>6} {'range':>11} {'vs median alone':>15} "
          f"{'vs N=1':>6}")
    summary: dict[str, Any] = {"rounds": rounds, "fanout": {}}
    for n in fanouts:
        walls = [x["wall_s"] for x in fan[n]]
        slowest = [max(alone[name][r] for name in names[:n]) for r in range(rounds)]
        vs_one = median([x["wall_s"] / one["wall_s"] for x, one in zip(fan[n], fan[fanouts[0]])])
        print(f"{n:>6} {median(walls):>7.2f} {median(slowest):>15.2f} {median(ratios[n]):>6.2f} "
              f"{min(ratios[n]):>5.2f}-{max(ratios[n]):<5.2f} {median(ratios_median[n]):>15.2f} {vs_one:>6.2f}")
        summary["fanout"][n] = {"wall_s": round(median(walls), 3), "slowest_alone_s": round(median(slowest), 3),
                                "ratio": round(median(ratios[n]), 3),
                                "ratio_range": [round(min(ratios[n]), 3), round(max(ratios[n]), 3)],
                                "ratio_vs_median_alone": round(median(ratios_median[n]), 3),
                                "ratio_vs_n1": round(vs_one, 3)}
    print("alone s by board (each round): " + "; ".join(
        f"{name.split('-')[-1]}: " + "/".join(f"{t:.2f}" for t in alone[name]) for name in names))

    print("\n# per-board step times, s (median over boards and rounds); start = when the board's thread began")
    print("# spread = last board's end - first board's end; after = wall - last end (lease release, close,")
    print("# finish_run); cpu = CPU s a board used (cpuacct); quota% = cpu / (quota x (wall - start)):")
    print("# 100 % = the board got all its quota; load = the host's 1-minute load average")
    print(f"{'run':<8} {'start':>5} {'connect':>7} {'stage':>5} {'bench':>5} {'accuracy':>8} {'end':>5} "
          f"{'spread':>6} {'after':>5} {'cpu':>4} {'quota%':>6} {'load':>4}")

    def phase_row(label: str, results: list[dict[str, Any]]) -> dict[str, float]:
        per = [p for res in results for p in res["phases"].values()]
        spread = median([max(p["end"] for p in res["phases"].values()) - min(p["end"] for p in res["phases"].values())
                         for res in results])
        row = {k: median([p[k] for p in per]) for k in ("start", "connect", "stage", "bench", "accuracy", "end")}
        after = median([res["wall_s"] - max(p["end"] for p in res["phases"].values()) for res in results])
        load = median([res["load_1min"] for res in results])
        cpu = median([c for res in results for c in res["board_cpu_s"].values()])
        quota = median([res["board_cpu_s"][board] / (BOARD_CPU_QUOTA_CORES * (res["wall_s"] - p["start"]))
                        for res in results for board, p in res["phases"].items()])
        print(f"{label:<8} {row['start']:>5.2f} {row['connect']:>7.2f} {row['stage']:>5.2f} {row['bench']:>5.2f} "
              f"{row['accuracy']:>8.2f} {row['end']:>5.2f} {spread:>6.2f} {after:>5.2f} {cpu:>4.2f} "
              f"{100 * quota:>5.0f}% {load:>4.1f}")
        return {**{k: round(v, 3) for k, v in row.items()}, "end_spread": round(spread, 3),
                "after_last_end_s": round(after, 3), "board_cpu_s": round(cpu, 3), "quota_used": round(quota, 3),
                "load_1min": round(load, 2)}

    summary["phases"] = {"alone": phase_row("alone", alone_runs), "first": phase_row(f"1st N={len(names)}", [first])}
    for n in fanouts:
        summary["phases"][f"N={n}"] = phase_row(f"N={n}", fan[n])

    print("\n# 2. controller CPU (user+sys, all threads of this process) per board, s")
    alone_cpu = median([x["cpu_s"] for x in alone_runs])
    print(f"alone {alone_cpu:.3f}" + "".join(
        f", N={n} {median([x['cpu_s'] / n for x in fan[n]]):.3f}" for n in fanouts)
        + f"; first run N={len(names)} {first['cpu_s'] / len(names):.3f}")
    summary["controller_cpu_s_per_board"] = {
        "alone": round(alone_cpu, 3), "first": round(first["cpu_s"] / len(names), 3),
        **{f"N={n}": round(median([x["cpu_s"] / n for x in fan[n]]), 3) for n in fanouts}}

    print("\n# 3. upload step: first run vs re-run")
    rerun_bytes = sorted({b for res in fan[max(fanouts)] for b in res["bytes_sent"].values()})
    print(f"bytes_sent per board (stored): first run {sorted(set(first['bytes_sent'].values()))}, "
          f"re-runs {rerun_bytes}")
    print(f"stage step in the bench (job_started -> job_staged, median per board): first run "
          f"{summary['phases']['first']['stage']:.3f} s, re-run N={max(fanouts)} "
          f"{summary['phases'][f'N={max(fanouts)}']['stage']:.3f} s, alone {summary['phases']['alone']['stage']:.3f} s")
    times = stage_times(inventory, state.boards[0], groups, stage_reps)
    size = STAGE_MODEL.stat().st_size
    print(f"stage_file {STAGE_MODEL.name} ({size} bytes), median of {stage_reps}:")
    summary["stage_file_s"] = {}
    for label in ("quota", "no quota"):
        f, a = median(times[f"{label}/first"]), median(times[f"{label}/again"])
        sent_first, sent_again = median(times[f"{label}/first/bytes"]), median(times[f"{label}/again/bytes"])
        board_label = f"{BOARD_CPU_QUOTA_CORES:g} core" if label == "quota" else "no quota"
        print(f"  board {board_label:>8}: fresh {f:.3f} s ({sent_first:.0f} bytes), already there {a:.3f} s "
              f"({sent_again:.0f} bytes), ratio {a / f:.2f}")
        summary["stage_file_s"][label] = {"fresh_s": round(f, 4), "again_s": round(a, 4),
                                          "bytes_fresh": int(sent_first), "bytes_again": int(sent_again)}
    summary.update(first_run_wall_s=round(first["wall_s"], 3),
                   first_bytes_sent=sorted(set(first["bytes_sent"].values())), rerun_bytes_sent=rerun_bytes,
                   board_cpu_quota_cores=BOARD_CPU_QUOTA_CORES, target_ratio=TARGET_RATIO)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: lab taken down", file=sys.stderr)
        sys.exit(130)
