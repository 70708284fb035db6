"""What does the fleet queue cost? farm submit + farm worker against farm bench on one controller.

Part A, on a lab of 4 simulated boards (real sshd on 127.79.<n>.41-44, each board's sshd in a
cpu cgroup of its own with a 0.2-core quota, as bench/fanout_wall.py does, so the boards are
the bottleneck and 4 boards stay within the host's 2 cores), a throw-away PostgreSQL (fsync
on) holding the results and the queue, and real `farm worker` processes:

1. Latency, idle worker: `submit_run` of one board's run (the variant cached, its files
   already stored), then the time from the submission's commit to the worker taking the job
   (queue pickup: NOTIFY, fetch, the job's start row) and to its first `cell_started` (plus
   the board's connect, facts, lease and clean, which farm bench pays too). farm bench's own
   time from creating its run to its first `cell_started` is measured in the same round.
   Target: submit -> first cell <= 0.5 s.
2. Wall time of one suite (demo digits model, fp32 + fp16, 4 boards, --runs 20
   --min-seconds 1): farm bench (`run_bench`, forks 4) against submit + wait with 1, 2 and 4
   workers of concurrency 1 (so the workers, not a worker's slots, are the parallelism), in
   interleaved rounds. Target: 4 workers <= 1.1x farm bench.
3. Controller CPU per cell: farm bench's getrusage(RUSAGE_SELF) around run_bench; the
   workers' utime+stime from /proc (all their threads) and the submitter's getrusage.

Part B, a scheduler-only simulation (no boards, no SSH): 1,000 boards in 10 queues, 50
procrastinate workers (10 per process, 5 processes, concurrency 1 each), two runs over every
board (so every board's second job waits on its lock). Each job does farm's own database work
for a board job — start row (the run's row lock), per cell the current-cell updates a real
worker makes (one per agent phase) and the result row, end row (the run's row lock again) —
and the "board" only sleeps (--sim-cell-s per cell). It measures jobs/s and cells/s against
the ideal (workers busy all the time), how long jobs wait to be picked up, the gap a worker
spends between two jobs (fetch), and the run-row lock waits of start/end.

Run: python bench/fleet.py [--quick] [--no-sim] [--sim-only] [--record]
     (root, openssh-server, cgroup v1, PostgreSQL binaries; ~6 min, --quick ~2 min)
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

BOARDS = 4
BOARD_CPU_QUOTA_CORES = 0.2
BOARD_VENV = Path("/var/lib/farm-lab-test-venv")
SITE = "lab-bench"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ part A


class Lab:
    def __init__(self, tmp: Path) -> None:
        from fanout_wall import BoardCpuGroups

        from orchestrator import lab as lab_mod
        from tests.store.pgserver import PostgresServer

        problems = lab_mod.missing_prerequisites()
        if problems:
            raise SystemExit("the fleet benchmark needs a lab: " + " ".join(problems))
        self.tmp = tmp
        self.lab_dir = Path(f"/var/lib/farm-lab-bench-fleet-{os.getpid()}")
        self.pg = PostgresServer(fsync=True, max_connections=120).start()
        self.url = self.pg.create_database("fleet_bench")
        self.state = lab_mod.lab_up(self.lab_dir, ["unlimited"], BOARDS, first_address=f"127.79.{os.getpid() % 250 + 1}.41",
                                    venv_dir=BOARD_VENV)
        if not self.state.limits_enforced:
            raise SystemExit(f"the fleet benchmark needs cgroup v1 CPU quotas: {self.state.limits_note}")
        self.groups = BoardCpuGroups(self.state, "own")
        self.groups.setup(BOARD_CPU_QUOTA_CORES)
        self.inventory = write_inventory(tmp / "lab.yaml", self.state)
        self.boards = sorted(b.name for b in self.state.boards)
        self.workers: list[subprocess.Popen] = []

    def close(self) -> None:
        from orchestrator import lab as lab_mod

        self.stop_workers()
        try:
            lab_mod.lab_down(self.lab_dir, remove_files=True)
        finally:
            self.groups.remove()
            self.pg.stop()

    def start_workers(self, count: int, concurrency: int) -> list[subprocess.Popen]:
        import sqlalchemy as sa

        from orchestrator.store import open_store

        names = [f"bench-w{i + 1}-{int(time.time() * 1000) % 100000}" for i in range(count)]
        for name in names:
            env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(self.tmp / name / "cache"),
                   "XDG_DATA_HOME": str(self.tmp / name / "data")}
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "worker", "--db", self.url, "-i", str(self.inventory),
                 "--name", name, "--concurrency", str(concurrency), "--heartbeat", "2", "--stalled-after", "20"],
                env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"{name}.log", "w")))
        with open_store(self.url) as store:  # ready: registered with farm and with procrastinate
            deadline = time.monotonic() + 120
            while True:
                with store.engine.connect() as conn:
                    ours = conn.execute(sa.text("SELECT count(*) FROM fleet_workers WHERE name = ANY(:n)"),
                                        {"n": names}).scalar()
                    live = conn.execute(sa.text("SELECT count(*) FROM procrastinate_workers")).scalar() \
                        if conn.execute(sa.text("SELECT to_regclass('procrastinate_workers')")).scalar() else 0
                if ours == count and live >= count:
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.workers):
                    raise SystemExit("workers did not start: see " + str(self.tmp))
                time.sleep(0.1)
        return self.workers[-count:]

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.workers = []


def write_inventory(path: Path, state) -> Path:
    import yaml

    from orchestrator import lab as lab_mod

    hosts = {b.name: {"host": b.address, "port": b.port, "user": lab_mod.BOARD_USER,
                      "identity_file": str(state.identity_file), "known_hosts_file": str(state.known_hosts_path),
                      "python": b.python, "workdir": b.workdir} for b in state.boards}
    path.write_text(yaml.safe_dump({"all": {"vars": {"connect_timeout_s": 5.0, "tags": {"site": SITE}},
                                            "hosts": hosts}}))
    return path


def request_for(lab: Lab, boards: list[str], min_seconds: float, runs: int, variants: str):
    from orchestrator.models import DEMO_DIR
    from orchestrator.request import BenchRequest
    from orchestrator.settings import BenchSettings

    settings = BenchSettings(min_runs=runs, min_seconds=min_seconds, warmup=2, threads=1, sample_interval_s=0.5)
    return BenchRequest(model_paths=[DEMO_DIR / "digits_mlp.onnx"], settings=settings, inventory=str(lab.inventory),
                        limit=",".join(boards), forks=len(boards), db_url=lab.url, write_report=False,
                        variants=variants.split(","))


def timed_bench(lab: Lab, request) -> dict[str, Any]:
    from orchestrator.request import run_bench

    marks: dict[str, float] = {}

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind in ("run_started", "cell_started") and kind not in marks:
            marks[kind] = time.time()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    outcome = run_bench(request, on_event=on_event)
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cells = len(outcome.run.outcomes)
    assert not outcome.run.failed, [o.row.get("error_message") for o in outcome.run.failed]
    return {"wall_s": wall, "cells": cells,
            "cpu_s": (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime),
            "run_to_first_cell_s": marks["cell_started"] - marks["run_started"],
            "call_to_first_cell_s": marks["cell_started"] - started}


def timed_fleet(lab: Lab, request, workers: list[subprocess.Popen]) -> dict[str, Any]:
    """submit_run, then follow the run the way `farm runs wait` does; times from the store."""
    import sqlalchemy as sa

    from orchestrator.fleet import state
    from orchestrator.fleet.follow import wait_until_ended
    from orchestrator.fleet.submit import submit_run
    from orchestrator.store import open_store

    cpu_before = {p.pid: proc_cpu_s(p.pid) for p in workers}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    outcome = submit_run(request)
    committed = time.time()
    after_submit = resource.getrusage(resource.RUSAGE_SELF)
    first_cell = None
    with open_store(lab.url) as store:
        def on_progress(jobs, status) -> None:
            nonlocal first_cell
            if first_cell is None and any(j.current_cell for j in jobs):
                first_cell = time.time()

        status = wait_until_ended(store, outcome.run_id, timeout_s=900, poll_s=0.05, on_progress=on_progress)
        ended = time.time()
        jobs = state.run_jobs(store, outcome.run_id)
        rows = store.query_results(outcome.run_id)
        events = store.engine.connect()
        try:  # procrastinate's own event times: deferred (committed) and started (a worker took it)
            times = events.execute(sa.text(
                "SELECT type::text, extract(epoch FROM at) FROM procrastinate_events WHERE job_id = ANY(:ids) "
                "AND type IN ('deferred', 'started')"), {"ids": [j.job_id for j in jobs]}).all()
        finally:
            events.close()
    assert status == "finished" and all(r["status"] == "ok" for r in rows), (status, rows[:1])
    deferred = min(float(t) for kind, t in times if kind == "deferred")
    picked = min(float(t) for kind, t in times if kind == "started")
    return {"wall_s": ended - started, "cells": len(rows), "submit_s": committed - started,
            "submit_cpu_s": (after_submit.ru_utime + after_submit.ru_stime) - (usage.ru_utime + usage.ru_stime),
            "worker_cpu_s": sum(proc_cpu_s(p.pid) - cpu_before[p.pid] for p in workers),
            "pickup_s": picked - deferred, "commit_to_first_cell_s": (first_cell or ended) - deferred}


def part_a(args, tmp: Path) -> dict[str, Any]:
    lab = Lab(tmp)
    results: dict[str, Any] = {"latency": [], "walls": {}}
    try:
        suite = dict(min_seconds=1.0, runs=20, variants="fp32,fp16")
        # warm-up: fresh boards get the agent, the model and the dataset; variants are built and stored
        workers = lab.start_workers(1, BOARDS)
        timed_bench(lab, request_for(lab, lab.boards, 0, 5, suite["variants"]))
        timed_fleet(lab, request_for(lab, lab.boards, 0, 5, suite["variants"]), workers)
        # 1. latency: one board, idle worker (concurrency 4), bench in the same round
        for rep in range(2 if args.quick else 5):
            board = [lab.boards[rep % BOARDS]]
            bench = timed_bench(lab, request_for(lab, board, 0, 5, "fp32"))
            fleet = timed_fleet(lab, request_for(lab, board, 0, 5, "fp32"), workers)
            results["latency"].append({"bench": bench, "fleet": fleet})
            print(f"latency {rep}: pickup {fleet['pickup_s']:.3f} s, commit->first cell "
                  f"{fleet['commit_to_first_cell_s']:.3f} s, bench run->first cell {bench['run_to_first_cell_s']:.3f} s",
                  flush=True)
        lab.stop_workers()
        # 2./3. wall and CPU: bench vs 1, 2, 4 workers of concurrency 1, interleaved rounds
        configs = ["bench", 1, 2, 4]
        for round_index in range(1 if args.quick else 3):
            order = configs if round_index % 2 == 0 else list(reversed(configs))
            for config in order:
                request = request_for(lab, lab.boards, suite["min_seconds"], suite["runs"], suite["variants"])
                if config == "bench":
                    measured = timed_bench(lab, request)
                else:
                    workers = lab.start_workers(int(config), 1)
                    measured = timed_fleet(lab, request, workers)
                    lab.stop_workers()
                measured["load1"] = os.getloadavg()[0]
                results["walls"].setdefault(str(config), []).append(measured)
                print(f"round {round_index} {config}: wall {measured['wall_s']:.2f} s", flush=True)
    finally:
        lab.close()
    return results


# ------------------------------------------------------------------------------------ part B


def sim_worker_main(argv: list[str]) -> None:
    """One simulation process: `per_process` procrastinate workers sharing an app and a store."""
    import concurrent.futures

    from orchestrator.fleet import state
    from orchestrator.fleet.queue import TASK_NAME, make_app
    from orchestrator.store import open_store

    url, prefix, per_process, cells, phases, cell_s, out_path = argv
    per_process, cells, phases, cell_s = int(per_process), int(cells), int(phases), float(cell_s)
    store = open_store(url)
    app = make_app(url, max_connections=per_process + 4)
    out = open(out_path, "a")

    @app.task(name=TASK_NAME, pass_context=True)
    def run_board(context, run_id: str, board: str) -> str:
        t0 = time.time()
        state.start_job(store, run_id, board, context.worker_name, context.job.attempts + 1)
        t1 = time.time()
        for cell in range(cells):
            state.set_current_cell(store, run_id, board, f"m/v{cell}")  # as a real worker: cell start notifies,
            for phase in range(phases):  # the agent's phases update the row without NOTIFY
                state.set_current_cell(store, run_id, board, f"m/v{cell}: phase{phase}", wake_waiters=False)
            time.sleep(cell_s)  # the board: a transport that only sleeps
            store.add_result(run_id, {"board": board, "model": "m", "variant": f"v{cell}", "settings_hash": "sim",
                                      "status": "ok", "facts": {}, "details": {}}, [1.0], [])
            state.set_current_cell(store, run_id, board, None)  # cell end: notifies
        t2 = time.time()
        state.end_job(store, run_id, board, "done")
        t3 = time.time()
        out.write(json.dumps({"worker": context.worker_name, "job": context.job.id, "t0": t0, "start_s": t1 - t0,
                              "cells_s": t2 - t1, "end_s": t3 - t2, "t3": t3}) + "\n")
        out.flush()
        return "ok"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=per_process + 2))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with app.open_async():
            tasks = [asyncio.create_task(app.run_worker_async(
                queues=None, concurrency=1, name=f"{prefix}-{i}", install_signal_handlers=False,
                update_heartbeat_interval=5, stalled_worker_timeout=60, fetch_job_polling_interval=1.0,
                delete_jobs="never")) for i in range(per_process)]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(serve())


def part_b(args, tmp: Path) -> dict[str, Any]:
    import sqlalchemy as sa

    from orchestrator.fleet import state
    from orchestrator.fleet.manifest import FleetPlan, PlannedBoard
    from orchestrator.fleet.queue import defer_board_jobs, ensure_queue_schema, make_app
    from orchestrator.store import open_store
    from tests.store.pgserver import PostgresServer

    boards, workers, per_process = args.sim_boards, args.sim_workers, 10
    processes = workers // per_process
    runs, cells, phases, cell_s = 2, args.sim_cells, 5, args.sim_cell_s
    pg = PostgresServer(fsync=True, max_connections=workers * 3 + 60).start()
    try:
        url = pg.create_database("fleet_sim")
        store = open_store(url)
        ensure_queue_schema(store)
        names = [f"b{i:04d}" for i in range(boards)]
        queue_of = {name: f"site-{i % 10}" for i, name in enumerate(names)}
        plan = FleetPlan([PlannedBoard(n, queue_of[n]) for n in names], [], [])
        out_path = tmp / "sim-jobs.jsonl"
        procs = [subprocess.Popen([sys.executable, __file__, "--sim-worker", url, f"p{p}", str(per_process),
                                   str(cells), str(phases), str(cell_s), str(out_path)],
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=open(tmp / f"sim-{p}.log", "w"))
                 for p in range(processes)]
        deadline = time.monotonic() + 120
        while True:
            with store.engine.connect() as conn:
                live = conn.execute(sa.text("SELECT count(*) FROM procrastinate_workers")).scalar()
            if live >= workers:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"simulation workers did not start ({live}/{workers}): see {tmp}")
            time.sleep(0.2)
        app = make_app(url, max_connections=2)
        app.open()
        started = time.time()
        run_ids, defer_s = [], []
        for _ in range(runs):
            t = time.time()
            run_id = store.create_run({}, {}, "sim", status="queued")
            state.create_fleet_run(store, run_id, plan.to_json(), "{}", [(n, queue_of[n], cells) for n in names])
            ids = defer_board_jobs(app, run_id, [(name, queue_of[name]) for name in names])
            state.set_job_ids(store, run_id, dict(zip(names, ids, strict=True)))
            defer_s.append(time.time() - t)
            run_ids.append(run_id)
        app.close()
        deadline = time.monotonic() + args.sim_timeout
        while True:
            with store.engine.connect() as conn:
                ended = conn.execute(sa.text("SELECT count(*) FROM runs WHERE status = 'finished'")).scalar()
            if ended == runs:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the simulation did not finish in time")
            time.sleep(0.2)
        wall = time.time() - started
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        with store.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM results")).scalar()
            distinct = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT DISTINCT run_id, board, variant FROM results) x")).scalar()
            commits = conn.execute(sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar()
        store.close()
        jobs = [json.loads(line) for line in out_path.read_text().splitlines()]
        by_worker: dict[str, list[dict]] = {}
        for job in jobs:
            by_worker.setdefault(job["worker"], []).append(job)
        gaps = []
        for worker_jobs in by_worker.values():
            worker_jobs.sort(key=lambda j: j["t0"])
            gaps += [b["t0"] - a["t3"] for a, b in zip(worker_jobs, worker_jobs[1:])]
        busy = sum(j["start_s"] + j["cells_s"] + j["end_s"] for j in jobs)
        ideal = runs * boards * cells * cell_s / workers
        return {"boards": boards, "workers": workers, "processes": processes, "runs": runs, "cells": cells,
                "phases": phases, "cell_s": cell_s, "jobs": len(jobs), "results": stored, "distinct": distinct,
                "wall_s": wall, "ideal_wall_s": ideal, "defer_s": defer_s, "commits": commits,
                "jobs_per_s": len(jobs) / wall, "cells_per_s": stored / wall, "busy_fraction": busy / (workers * wall),
                "gap_p50_ms": 1000 * pct(gaps, 50), "gap_p99_ms": 1000 * pct(gaps, 99),
                "start_p50_ms": 1000 * pct([j["start_s"] for j in jobs], 50),
                "start_p99_ms": 1000 * pct([j["start_s"] for j in jobs], 99),
                "end_p50_ms": 1000 * pct([j["end_s"] for j in jobs], 50),
                "end_p99_ms": 1000 * pct([j["end_s"] for j in jobs], 99),
                "cell_db_ms": 1000 * median([(j["cells_s"] - cells * cell_s) / cells for j in jobs])}
    finally:
        pg.stop()


# ------------------------------------------------------------------------------------ report


def render(a: dict[str, Any] | None, b: dict[str, Any] | None, seconds: float) -> str:
    import onnxruntime
    import paramiko
    import procrastinate

    lines = ["## fleet", "",
             "`python bench/fleet.py` — fleet mode (farm submit + farm worker on procrastinate) against farm bench "
             "on one controller; the method is in the script's docstring. Whole script: "
             f"{seconds:.0f} s.", "",
             f"- Date: {dt.date.today().isoformat()}",
             f"- Machine: {os.cpu_count()}-core {platform.machine()} VM, {platform.platform(terse=True)}, Python "
             f"{platform.python_version()} (procrastinate {procrastinate.__version__}, paramiko {paramiko.__version__}, "
             f"onnxruntime {onnxruntime.__version__}); PostgreSQL local, fsync on. Other sessions were using the "
             "machine: 1-minute load averages are in the tables.", ""]
    if a:
        lat = a["latency"]
        pickup = [r["fleet"]["pickup_s"] for r in lat]
        to_cell = [r["fleet"]["commit_to_first_cell_s"] for r in lat]
        bench_cell = [r["bench"]["run_to_first_cell_s"] for r in lat]
        submit = [r["fleet"]["submit_s"] for r in lat]
        lines += ["### Latency: submit to first cell, idle worker (one board, medians of "
                  f"{len(lat)} interleaved pairs)", "",
                  "| step | fleet | farm bench | target |", "|---|---:|---:|---:|",
                  f"| submit_run (validate, plan, cached variant, files already stored, queue) | {median(submit):.3f} s | – | – |",
                  f"| job queued → a worker took it (procrastinate's deferred → started events) | {median(pickup):.3f} s "
                  f"(max {max(pickup):.3f}) | – | ≤ 0.5 s |",
                  f"| job queued / run created → first cell started | {median(to_cell):.3f} s | "
                  f"{median(bench_cell):.3f} s | ≤ 0.5 s |",
                  f"| ratio fleet / bench, same step | **{median(to_cell) / median(bench_cell):.2f}** | 1 | – |", ""]
        walls = a["walls"]
        bench_walls = [m["wall_s"] for m in walls["bench"]]
        lines += ["### Wall time of one suite (4 boards at 0.2 core, digits fp32+fp16, --runs 20 --min-seconds 1)", "",
                  "| controller | wall, median | range | vs farm bench | cells | CPU per cell (controller) | load1 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for key, label in (("bench", "farm bench, forks 4"), ("1", "1 worker"), ("2", "2 workers"), ("4", "4 workers")):
            runs = walls[key]
            w = [m["wall_s"] for m in runs]
            if key == "bench":
                cpu = median([m["cpu_s"] / m["cells"] for m in runs])
                cpu_text = f"{cpu * 1000:.0f} ms"
            else:
                cpu = median([m["worker_cpu_s"] / m["cells"] for m in runs])
                sub = median([m["submit_cpu_s"] / m["cells"] for m in runs])
                cpu_text = f"{cpu * 1000:.0f} ms workers + {sub * 1000:.0f} ms submitter"
            ratio = median(w) / median(bench_walls)
            bold = f"**{ratio:.2f}**" if key == "4" else f"{ratio:.2f}"
            lines.append(f"| {label} | {median(w):.2f} s | {min(w):.2f}–{max(w):.2f} | {bold} | {runs[0]['cells']} | "
                         f"{cpu_text} | {median([m['load1'] for m in runs]):.1f} |")
        lines += ["", "Target: 4 workers ≤ 1.1× farm bench. Workers run with --concurrency 1 here, so 1 and 2 workers "
                  "show the queue spreading 4 boards' jobs over fewer workers (~4× and ~2×).", ""]
    if b:
        lines += [f"### Scheduler-only simulation: {b['boards']:,} boards, {b['workers']} workers", "",
                  f"{b['workers']} procrastinate workers ({b['processes']} processes × 10, concurrency 1), {b['runs']} "
                  f"runs over every board ({b['jobs']:,} jobs, lock = board, 10 queues), {b['cells']} cells per job, "
                  f"per cell the worker's {b['phases'] + 2} current-cell updates (2 with NOTIFY) and 1 result row, the board a {b['cell_s']:g} s sleep per "
                  "cell.", "",
                  "| measure | value |", "|---|---:|",
                  f"| wall, first defer → both runs finished | {b['wall_s']:.1f} s |",
                  f"| ideal (workers never idle, no database time) | {b['ideal_wall_s']:.1f} s |",
                  f"| jobs / s; cells (result rows) / s | {b['jobs_per_s']:.1f}; {b['cells_per_s']:.0f} |",
                  f"| workers busy (time in jobs / (workers × wall)) | {100 * b['busy_fraction']:.0f} % |",
                  f"| gap between two jobs of a worker (fetch), p50 / p99 | {b['gap_p50_ms']:.0f} / {b['gap_p99_ms']:.0f} ms |",
                  f"| job start row (run-row lock), p50 / p99 | {b['start_p50_ms']:.0f} / {b['start_p99_ms']:.0f} ms |",
                  f"| job end row (run-row lock, run end check), p50 / p99 | {b['end_p50_ms']:.0f} / {b['end_p99_ms']:.0f} ms |",
                  f"| database time per cell (updates + result), median | {b['cell_db_ms']:.0f} ms |",
                  f"| queueing {b['boards']:,} jobs (one run) | {median(b['defer_s']):.1f} s |",
                  f"| results stored / distinct cells | {b['results']:,} / {b['distinct']:,} |",
                  f"| PostgreSQL transactions (xact_commit: reads, pings, polls too) | {b['commits']:,} |", ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sim-worker":
        sim_worker_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2 latency pairs, a smaller simulation")
    parser.add_argument("--no-sim", action="store_true", help="part A only")
    parser.add_argument("--sim-only", action="store_true", help="part B only")
    parser.add_argument("--sim-boards", type=int, default=1000)
    parser.add_argument("--sim-workers", type=int, default=50)
    parser.add_argument("--sim-cells", type=int, default=4)
    parser.add_argument("--sim-cell-s", type=float, default=0.5)
    parser.add_argument("--sim-timeout", type=float, default=900)
    parser.add_argument("--record", action="store_true", help="write the figures into bench/RESULTS.md (## fleet)")
    args = parser.parse_args()
    if args.quick and args.sim_boards == 1000:
        args.sim_boards, args.sim_workers = 200, 20
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="farm-fleet-bench-") as tmp:
        a = None if args.sim_only else part_a(args, Path(tmp))
        b = None if args.no_sim else part_b(args, Path(tmp))
    text = render(a, b, time.time() - started)
    print(text)
    print(json.dumps({"a": a, "b": b}, default=str)[:20000], file=sys.stderr)
    if args.record:
        from results_md import record_section

        # "### Reading the figures" (written by a person, from the figures) is kept under the new ones
        record_section(REPO / "bench" / "RESULTS.md", "fleet", text, keep_heading="### Reading the figures")


if __name__ == "__main__":
    main()
