"""Fleet mode on real sshd boards, a real PostgreSQL and real `farm worker` processes."""
from __future__ import annotations

import json
import signal
import subprocess

import pytest
import sqlalchemy as sa

from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests.fleet.conftest import FAST, board_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.fleet]


def stored_cells(db_url: str, run_id: str) -> list[tuple[str, str, str, str]]:
    with open_store(db_url) as store:
        return sorted((r["board"], r["model"], r["variant"], r["status"]) for r in store.query_results(run_id))


def fleet_jobs(db_url: str, run_id: str | None = None) -> list[dict]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = "SELECT * FROM fleet_jobs" + (" WHERE run_id = :run" if run_id else "") + " ORDER BY board"
            return [dict(r._mapping) for r in conn.execute(sa.text(query), {"run": run_id})]
    finally:
        engine.dispose()


def test_two_workers_and_two_submitters_measure_every_cell_exactly_once(fleet, fleet_inventory, fleet_lab,
                                                                          digits_model, yolo_model):
    workers = [fleet.worker("w1", fleet_inventory), fleet.worker("w2", fleet_inventory)]
    submitters = [
        subprocess.Popen(fleet.submit_args(fleet_inventory, *FAST, "-m", str(digits_model), "--variants",
                                           "fp32,int8-dynamic"), env=fleet.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True),
        subprocess.Popen(fleet.submit_args(fleet_inventory, *FAST, "-m", str(yolo_model), "--variants", "fp32,fp16"),
                         env=fleet.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]
    run_ids = []
    for proc in submitters:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        run_ids.append(out.strip())
    for run_id in run_ids:
        done = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
        assert done.returncode == ExitStatus.OK, done.stderr[-3000:] + fleet.log_of(workers[0])[-2000:]
    boards = sorted(b.name for b in fleet_lab.boards)
    expected = {run_ids[0]: [("digits_mlp", "fp32"), ("digits_mlp", "int8-dynamic")],
                run_ids[1]: [("yolo_timing", "fp16"), ("yolo_timing", "fp32")]}
    for run_id, cells in expected.items():
        assert stored_cells(fleet.db_url, run_id) == sorted((b, m, v, "ok") for b in boards for m, v in cells)
        with open_store(fleet.db_url) as store:
            assert store.get_run(run_id)["status"] == "finished"
            for row in store.query_results(run_id):  # measured once: no replaced attempt behind it
                assert not (row.get("details") or {}).get("previous_attempts")
            digits = [r for r in store.query_results(run_id) if r["model"] == "digits_mlp"]
            assert all(r["accuracy"] and r["accuracy"] > 0.9 for r in digits)  # the dataset travelled too
    jobs = fleet_jobs(fleet.db_url)
    assert len(jobs) == 2 * len(boards) and all(j["state"] == "done" for j in jobs)
    # the lock: a board never ran the two runs' jobs at the same time
    for board in boards:
        first, second = sorted((j for j in jobs if j["board"] == board), key=lambda j: j["started_at"])
        assert first["ended_at"] <= second["started_at"], (board, first, second)
    assert {j["worker"] for j in jobs} <= {"w1", "w2"}
    for proc in workers:
        assert fleet.stop(proc) == 0, fleet.log_of(proc)[-2000:]


def test_kill_9_of_a_worker_mid_job_finishes_the_job_on_the_other_worker(fleet, fleet_inventory, fleet_lab,
                                                                         digits_model):
    first, second = sorted(fleet_lab.boards, key=lambda b: b.name)[:2]
    doomed = fleet.worker("doomed", fleet_inventory, concurrency=1)
    run_id = fleet.submit(fleet_inventory, *FAST, "--min-seconds", "6", "-m", str(digits_model),
                          "--variants", "fp32,fp16", "-l", f"{first.name},{second.name}")
    # the doomed worker takes one board's job; only then does the survivor start (it takes the other).
    # It is killed in a cell's measure phase: the agent then prints nothing for --min-seconds.
    job = wait_for(lambda: next((j for j in fleet_jobs(fleet.db_url, run_id)
                                 if j["worker"] == "doomed" and (j["current_cell"] or "").endswith(": measure")),
                                None), 120, "the doomed worker measuring a cell", (doomed,))
    victim = next(b for b in fleet_lab.boards if b.name == job["board"])
    survivor = fleet.worker("survivor", fleet_inventory, concurrency=1)
    assert board_processes(victim.workdir, " _worker")  # the cell's fresh worker process, measuring
    doomed.send_signal(signal.SIGKILL)  # no handler runs
    doomed.wait(timeout=30)

    # no orphan: within 3 s the board has nothing of the dead worker running (its agent reads the end
    # of its channel and kills its worker; the survivor cannot have started there yet: the dead
    # worker's lease holds the board for --lease-ttl 6 s)
    wait_for(lambda: not board_processes(victim.workdir), 3, "the dead worker's cell to stop on the board")

    done = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
    assert done.returncode == ExitStatus.OK, done.stderr[-3000:] + fleet.log_of(survivor)[-3000:]
    assert stored_cells(fleet.db_url, run_id) == sorted(
        (b.name, "digits_mlp", v, "ok") for b in (first, second) for v in ("fp32", "fp16"))
    with open_store(fleet.db_url) as store:
        assert all(not (r.get("details") or {}).get("previous_attempts") for r in store.query_results(run_id))
    jobs = {j["board"]: j for j in fleet_jobs(fleet.db_url, run_id)}
    assert jobs[victim.name]["worker"] == "survivor" and jobs[victim.name]["attempts"] >= 2
    assert "recovered job" in fleet.log_of(survivor)
    assert not board_processes(victim.workdir)


def spooled_lines(data_home) -> int:
    return sum(len(p.read_text().splitlines()) for p in data_home.glob("farm/spool/*/*.jsonl"))


def test_a_postgresql_restart_mid_run_keeps_every_result_a_worker_measured(fleet_pg, fleet, fleet_inventory,
                                                                           fleet_lab, digits_model):
    worker = fleet.worker("w1", fleet_inventory, "--outage-wait", "120", concurrency=4)
    variants = "fp32,fp16,int8-dynamic,optimized"
    run_id = fleet.submit(fleet_inventory, *FAST, "--min-seconds", "0.5", "-m", str(digits_model),
                          "--variants", variants)
    wait_for(lambda: len(stored_cells(fleet.db_url, run_id)) >= 1, 120, "a first stored result", (worker,))
    fleet_pg.stop_server()  # a crash: every connection cut
    try:
        wait_for(lambda: spooled_lines(fleet.tmp_path / "w1" / "data") >= 1, 120,
                 "a result spooled by the worker during the outage", (worker,))
    finally:
        fleet_pg.start_server()
    done = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
    assert done.returncode == ExitStatus.OK, done.stderr[-3000:] + fleet.log_of(worker)[-3000:]
    boards = sorted(b.name for b in fleet_lab.boards)
    assert stored_cells(fleet.db_url, run_id) == sorted(
        (b, "digits_mlp", v, "ok") for b in boards for v in variants.split(","))
    assert spooled_lines(fleet.tmp_path / "w1" / "data") == 0
    log = fleet.log_of(worker)
    assert "database away" in log  # a result was spooled (and written later: checked above)
    # the worker reconnected and serves again: a new run goes through
    again = fleet.submit(fleet_inventory, *FAST, "-m", str(digits_model), "-l", boards[0])
    assert fleet.run("runs", "wait", again, "--db", fleet.db_url, "--timeout", "120").returncode == ExitStatus.OK
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]


def test_queue_cancel_stops_a_waiting_and_a_running_run_cleanly(fleet, fleet_inventory, fleet_lab, digits_model):
    board = sorted(fleet_lab.boards, key=lambda b: b.name)[0]
    worker = fleet.worker("w1", fleet_inventory, concurrency=1)
    slow = [*FAST, "--min-seconds", "5", "-m", str(digits_model), "-l", board.name]
    running = fleet.submit(fleet_inventory, *slow, "--variants", "fp32,fp16,optimized")
    waiting = fleet.submit(fleet_inventory, *slow, "--variants", "fp32")
    wait_for(lambda: next((j for j in fleet_jobs(fleet.db_url, running) if (j["current_cell"] or "").endswith(
        ": measure")), None), 120, "the first run measuring", (worker,))

    listed = fleet.run("queue", "ls", "--db", fleet.db_url, "--json")
    assert listed.returncode == 0, listed.stderr
    queue = json.loads(listed.stdout)
    jobs = {j["run_id"]: j for j in queue["jobs"]}
    assert jobs[running]["state"] == "running" and jobs[running]["worker"] == "w1"
    assert jobs[waiting]["state"] == "waiting" and jobs[waiting]["ahead"] == 1  # behind the board's running job
    assert [w["name"] for w in queue["workers"]] == ["w1"]
    table = fleet.run("queue", "ls", "--db", fleet.db_url)
    assert board.name in table.stdout and "w1" in table.stdout and "1 job(s) ahead" in table.stdout

    cancelled = fleet.run("queue", "cancel", waiting, "--db", fleet.db_url, "--timeout", "30")
    assert cancelled.returncode == 0 and "1 waiting job(s) cancelled; cancelled" in cancelled.stdout, cancelled.stdout
    assert stored_cells(fleet.db_url, waiting) == []

    stopped = fleet.run("queue", "cancel", running, "--db", fleet.db_url, "--timeout", "60")
    assert stopped.returncode == 0 and "1 running job(s) stopped; cancelled" in stopped.stdout, stopped.stdout
    # cleanly: nothing left running on the board, its lease freed, what was stored kept, nothing more measured
    assert not board_processes(board.workdir)
    check = fleet.run("inventory", "check", "-i", str(fleet.tmp_path / "lab.yaml"), "-l", board.name, "--json")
    (facts,) = [c["facts"] for c in json.loads(check.stdout)]
    assert not facts.get("lease"), facts.get("lease")
    stored = stored_cells(fleet.db_url, running)
    assert len(stored) < 3 and all(status == "ok" for *_, status in stored)  # stopped early; no half cell
    waited = fleet.run("runs", "wait", running, "--db", fleet.db_url, "--timeout", "30")
    assert waited.returncode == ExitStatus.INTERRUPTED and "(cancelled)" in waited.stdout
    assert fleet.run("queue", "cancel", running, "--db", fleet.db_url).stderr.count("already ended") == 1
    # the worker is still serving
    after = fleet.submit(fleet_inventory, *FAST, "-m", str(digits_model), "-l", board.name)
    assert fleet.run("runs", "wait", after, "--db", fleet.db_url, "--timeout", "120").returncode == ExitStatus.OK
    assert stored_cells(fleet.db_url, running) == stored  # nothing measured for the cancelled run since
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]
