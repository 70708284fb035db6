"""`farm queue ls` and `farm queue cancel`: what is waiting and running, and stopping a run.

Cancelling marks the run (`fleet_runs.cancel_requested`, so a job a worker is just taking
cancels itself), cancels its waiting jobs in procrastinate and asks the running ones to abort
(procrastinate NOTIFYs their worker, which stops the cell on the board as Ctrl-C does and frees
the board's lease); cells already stored are kept. The run ends `cancelled` when its last job
stopped; `cancel_run` waits for that, bounded.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.fleet import state
from orchestrator.fleet.follow import wait_until_ended
from orchestrator.fleet.queue import make_app


@dataclasses.dataclass(frozen=True)
class CancelOutcome:
    run_id: str
    status: str | None  # the run's status at the end (None: still stopping when the wait ended)
    cancelled_waiting: list[str]  # boards whose job had not started
    stopping_running: list[str]  # boards whose running job was asked to stop
    already_ended: bool = False


def cancel_run(store, run_id: str, timeout_s: float = 120.0) -> CancelOutcome:
    from procrastinate.jobs import Status

    fleet = state.load_fleet_run(store, run_id)
    run_id = fleet.run_id
    if fleet.status in state.ENDED_RUN_STATUSES:
        return CancelOutcome(run_id, fleet.status, [], [], already_ended=True)
    state.request_cancel(store, run_id)
    waiting, running = [], []
    app = make_app(store.engine.url.render_as_string(hide_password=False), max_connections=2)
    app.open()
    try:
        for job in state.run_jobs(store, run_id):
            if job.state in state.ENDED_JOB_STATES:
                continue
            if job.job_id is not None:
                app.job_manager.cancel_job_by_id(job.job_id, abort=True)
                status = app.job_manager.get_job_status(job.job_id)
            else:
                status = Status.CANCELLED  # not queued yet: its start will see the cancel
            if status == Status.CANCELLED:
                state.cancel_waiting_job(store, run_id, job.board)
                waiting.append(job.board)
            elif status == Status.DOING:
                running.append(job.board)
    finally:
        app.close()
    final = wait_until_ended(store, run_id, timeout_s=timeout_s) if timeout_s > 0 else None
    return CancelOutcome(run_id, final, waiting, running)


@dataclasses.dataclass(frozen=True)
class QueueView:
    jobs: list[state.JobView]
    workers: list[state.WorkerView]
    ahead: dict[tuple[str, str], int]  # (run, board) of a waiting job -> jobs before it on that board


def queue_view(store) -> QueueView:
    jobs = state.active_jobs(store)
    ahead: dict[tuple[str, str], int] = {}
    by_board: dict[str, list[state.JobView]] = {}
    for job in jobs:
        by_board.setdefault(job.board, []).append(job)
    for board_jobs in by_board.values():  # procrastinate runs one lock's jobs in id order
        ordered = sorted(board_jobs, key=lambda j: (j.state != "running", j.job_id or 0))
        for position, job in enumerate(ordered):
            if job.state == "waiting":
                ahead[(job.run_id, job.board)] = position
    return QueueView(jobs, state.live_workers(store), ahead)


def queue_record(view: QueueView) -> dict[str, Any]:
    """`farm queue ls --json`."""
    return {
        "jobs": [{**dataclasses.asdict(j), "ahead": view.ahead.get((j.run_id, j.board))} for j in view.jobs],
        "workers": [dataclasses.asdict(w) for w in view.workers],
    }


__all__ = ["CancelOutcome", "QueueView", "cancel_run", "queue_record", "queue_view"]
