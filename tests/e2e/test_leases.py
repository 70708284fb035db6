"""Board leases: two controllers on one board see each other; a dead controller's lease expires."""
from __future__ import annotations

import json
import threading

from orchestrator.agent_client import AgentClient
from orchestrator.board_check import check_board
from orchestrator.boards import Board
from orchestrator.lease import LeaseHolder
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from orchestrator.transport import open_transport

BOARD = Board(name="shared-board")


def other_controller_takes(ttl_s: float) -> LeaseHolder:
    """Another controller (a different holder id) takes the board's lease and never renews it."""
    holder = LeaseHolder("someone-else", "alice", "laptop-7", 4242, "r-other")
    client = AgentClient(open_transport(BOARD), python=BOARD.python)
    reply = client.call("lease", ["acquire", "--workdir", client.transport.workdir, "--holder", holder.to_json(),
                                  "--ttl", str(ttl_s)], timeout_s=30)
    assert reply.first("lease")["acquired"] is True
    return holder


def bench(db_url: str, model, on_connect=None, **settings) -> dict:
    store = open_store(db_url)
    events = []

    def on_event(kind, info):
        events.append((kind, info))
        if kind == "board_connecting" and on_connect is not None:
            on_connect()

    runner = BenchRunner(store, [BOARD], plan_cells([ModelTask(load_model_file(model))], ["fp32"]),
                         BenchSettings(runs=2, min_seconds=0, warmup=0, threads=1, **settings), on_event=on_event)
    [job] = runner.run().outcomes
    return {"row": job.row, "events": events}


def test_a_busy_board_is_skipped_with_who_holds_it(db_url, digits_model):
    other_controller_takes(ttl_s=600)
    result = bench(db_url, digits_model, lease_wait_s=0.5)
    assert result["row"]["error_kind"] == "busy"
    assert "alice@laptop-7 (pid 4242, run r-other)" in result["row"]["error_message"]
    check = check_board(BOARD)
    assert check.facts["lease"]["holder"]["user"] == "alice"  # farm inventory check shows it


def test_a_dead_controllers_lease_expires_and_is_taken_over(db_url, digits_model):
    # the other controller takes the board just as ours connects, then dies (never renews)
    result = bench(db_url, digits_model, on_connect=lambda: other_controller_takes(ttl_s=5), lease_wait_s=60)
    assert result["row"]["status"] == "ok"
    waits = [info for kind, info in result["events"] if kind == "board_waiting"]
    assert waits and "alice@laptop-7" in waits[0]["lease"]  # it waited, with progress, then took over
    assert check_board(BOARD).facts["lease"] is None  # released after the run


def test_two_controllers_never_hold_a_board_at_once():
    client = AgentClient(open_transport(BOARD), python=BOARD.python)
    holders = [LeaseHolder.for_this_process() for _ in range(6)]
    wins = []
    barrier = threading.Barrier(len(holders))

    def race(holder: LeaseHolder) -> None:
        barrier.wait(timeout=30)
        reply = AgentClient(open_transport(BOARD), python=BOARD.python).call(
            "lease", ["acquire", "--workdir", client.transport.workdir, "--holder", holder.to_json(), "--ttl", "60"],
            timeout_s=60)
        if reply.first("lease")["acquired"]:
            wins.append(holder.id)

    threads = [threading.Thread(target=race, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1
    winner = next(h for h in holders if h.id == wins[0])
    reply = client.call("lease", ["release", "--workdir", client.transport.workdir, "--holder", winner.to_json()],
                        timeout_s=60)
    assert reply.first("lease")["released"] is True
    assert check_board(BOARD).facts["lease"] is None


def test_a_lease_taken_over_mid_run_stops_further_jobs_on_that_board(db_url, digits_model, yolo_model):
    from orchestrator.agent_client import AgentClient

    def take_over(kind, info):
        if kind == "cell_phase" and info["model"] == "digits_mlp" and info["phase"] == "measure":
            # as if our renewals had failed for a whole ttl and someone else took the board
            workdir = AgentClient(open_transport(BOARD)).transport.workdir
            lease_file = __import__("pathlib").Path(workdir) / "lease.json"
            lease = json.loads(lease_file.read_text())
            lease["holder"] = {"id": "usurper", "user": "bob", "host": "ci-9", "pid": 1}
            lease_file.write_text(json.dumps(lease))

    store = open_store(db_url)
    runner = BenchRunner(store, [BOARD], plan_cells([ModelTask(load_model_file(m)) for m in (digits_model, yolo_model)],
                                                   ["fp32"]),
                         BenchSettings(runs=2, min_seconds=2.5, warmup=0, threads=1, lease_ttl_s=5.0),
                         on_event=take_over)
    first, second = runner.run().outcomes
    assert first.ok  # the job that was running when the lease was lost is kept: it finished
    assert second.row["error_kind"] == "busy" and "taken over" in second.row["error_message"]


def test_a_lease_whose_agent_was_killed_is_taken_over_at_once(db_url, digits_model):
    """An agent killed before it could free its lease (kill -9, or its controller's Ctrl-C
    racing it) renews nothing: the board is not busy for the rest of the ttl."""
    import os
    import subprocess
    import time

    from agents.farm_common import LEASE_FILE, boot_id, process_start_ticks

    workdir = open_transport(BOARD).workdir
    os.makedirs(workdir, exist_ok=True)

    def leased_to(proc: subprocess.Popen) -> None:
        holder = LeaseHolder("gone-controller", "bob", "ci-9", 4343, "r-gone")
        agent = {"pid": proc.pid, "start": process_start_ticks(proc.pid), "boot": boot_id(), "session": "s-gone"}
        lease = {"holder": json.loads(holder.to_json()), "since": time.time(), "expires_at": time.time() + 600,
                 "agent": agent, "worker": None}
        with open(os.path.join(workdir, LEASE_FILE), "w") as handle:
            json.dump(lease, handle)

    alive = subprocess.Popen(["sleep", "60"])
    try:
        leased_to(alive)  # its agent is alive: the board is busy
        assert bench(db_url, digits_model, lease_wait_s=0.5)["row"]["error_kind"] == "busy"
    finally:
        alive.kill()
        alive.wait(timeout=10)
    leased_to(alive)  # the same lease, its agent now dead: taken over without waiting
    result = bench(db_url, digits_model, lease_wait_s=0.5)
    assert result["row"]["status"] == "ok"
    [takeover] = [info for kind, info in result["events"] if kind == "board_takeover"]
    assert "bob@ci-9" in takeover["previous"]
