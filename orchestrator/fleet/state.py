"""farm's side of the queue: submitted runs, their board jobs, workers — rows in farm's store.

procrastinate decides which worker runs which job and when (locks, queues, retries); these rows
say what farm needs on top: the run's plan and gate options (`fleet_runs`), each board job's
state, worker and current cell (`fleet_jobs`, what `farm queue ls` shows), the workers by name
(`fleet_workers`). A run ends when its last board job ends: `end_job` takes the run's row lock
(SELECT … FOR UPDATE), so two jobs ending at once cannot both miss being last.

Every change a waiter cares about is followed by `NOTIFY farm_fleet, '<run id>'` in the same
transaction, which `farm runs wait` listens to (it also re-reads on a timer, so a lost
notification only delays it).
"""
from __future__ import annotations

import dataclasses
import json
import platform
from typing import Any, Sequence

import sqlalchemy as sa

from orchestrator.errors import BadInputError
from orchestrator.store.schema import fleet_jobs, fleet_runs, fleet_workers, results, runs
from orchestrator.store.timestamps import now_iso

NOTIFY_CHANNEL = "farm_fleet"
ENDED_JOB_STATES = ("done", "failed", "cancelled")
ENDED_RUN_STATUSES = ("finished", "failed", "cancelled", "interrupted")


def notify(conn, run_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": run_id})


@dataclasses.dataclass(frozen=True)
class FleetRun:
    run_id: str
    status: str
    plan_json: str
    gate_json: str
    cancel_requested: bool
    settings: dict[str, Any]


def create_fleet_run(store, run_id: str, plan_json: str, gate_json: str, jobs: Sequence[tuple[str, str, int]]) -> None:
    """The run's fleet row and one `waiting` job row per (board, queue, cells)."""
    with store._begin() as conn:  # noqa: SLF001
        conn.execute(fleet_runs.insert().values(run_id=run_id, plan_json=plan_json, gate_json=gate_json,
                                                submitted_at=now_iso(), cancel_requested=False))
        conn.execute(fleet_jobs.insert(), [{"run_id": run_id, "board": board, "queue": queue, "state": "waiting",
                                            "cells": cells, "attempts": 0} for board, queue, cells in jobs])


def set_job_ids(store, run_id: str, job_ids: dict[str, int]) -> None:
    """Record each board's procrastinate job id (one transaction)."""
    if not job_ids:
        return
    with store._begin() as conn:  # noqa: SLF001
        conn.execute(fleet_jobs.update().where(fleet_jobs.c.run_id == run_id, fleet_jobs.c.board == sa.bindparam("b"))
                     .values(job_id=sa.bindparam("j")), [{"b": board, "j": job_id} for board, job_id in job_ids.items()])


def load_fleet_run(store, run_id: str) -> FleetRun:
    """The submitted run (id, prefix, latest, tag:NAME); BadInputError when it is not a fleet run."""
    run_id = store.resolve_run_id(run_id)
    with store._connect() as conn:  # noqa: SLF001
        row = conn.execute(sa.select(fleet_runs, runs.c.status, runs.c.settings_json)
                           .join(runs, runs.c.run_id == fleet_runs.c.run_id)
                           .where(fleet_runs.c.run_id == run_id)).first()
    if row is None:
        raise BadInputError(f"run {run_id} was not submitted to the fleet (farm submit); it ran under farm bench")
    return FleetRun(row.run_id, row.status, row.plan_json, row.gate_json, bool(row.cancel_requested),
                    json.loads(row.settings_json))


def start_job(store, run_id: str, board: str, worker: str, attempt: int) -> bool:
    """Mark the board's job running on `worker`; False (and the job cancelled) when the run's
    cancel was requested, or when the job already ended (a stale retry)."""
    with store._begin() as conn:  # noqa: SLF001
        run = _lock_run(conn, run_id)
        job = conn.execute(sa.select(fleet_jobs.c.state).where(fleet_jobs.c.run_id == run_id,
                                                               fleet_jobs.c.board == board)).first()
        if job is None or job.state in ("done", "cancelled"):
            return False
        if run.cancel_requested:
            _set_job(conn, run_id, board, state="cancelled", ended_at=now_iso(), current_cell=None,
                     message="cancelled before it started")
            _end_run_if_last(conn, run_id)
            return False
        _set_job(conn, run_id, board, state="running", worker=worker, attempts=attempt, started_at=now_iso(),
                 ended_at=None, message=None)
        if run.status == "queued":
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(status="running"))
        notify(conn, run_id)
    return True


def set_current_cell(store, run_id: str, board: str, text: str | None, *, wake_waiters: bool = True) -> None:
    """What the board is doing now. `wake_waiters=False` for the agent's phases: PostgreSQL takes a
    database-wide lock to queue a NOTIFY at commit, so a fleet of boards notifying on every phase
    would serialise on it (bench/fleet.py's simulation); cell starts and ends still notify."""
    with store._begin() as conn:  # noqa: SLF001
        _set_job(conn, run_id, board, current_cell=(text or None) and text[:300])
        if wake_waiters:
            notify(conn, run_id)


def end_job(store, run_id: str, board: str, state: str, message: str | None = None) -> str | None:
    """Record how a board's job ended (done, failed, cancelled; or waiting: it goes back to the
    queue). Returns the run's final status when this was its last job, else None."""
    with store._begin() as conn:  # noqa: SLF001
        _lock_run(conn, run_id)
        values: dict[str, Any] = {"state": state, "current_cell": None, "message": message}
        if state in ENDED_JOB_STATES:
            values["ended_at"] = now_iso()
        _set_job(conn, run_id, board, **values)
        status = _end_run_if_last(conn, run_id) if state in ENDED_JOB_STATES else None
        notify(conn, run_id)
    return status


def request_cancel(store, run_id: str) -> None:
    with store._begin() as conn:  # noqa: SLF001
        _lock_run(conn, run_id)
        conn.execute(fleet_runs.update().where(fleet_runs.c.run_id == run_id).values(cancel_requested=True))
        notify(conn, run_id)


def cancel_waiting_job(store, run_id: str, board: str) -> str | None:
    """A job procrastinate cancelled before it started; returns the run's status if it ended."""
    return end_job(store, run_id, board, "cancelled", "cancelled before it started")


def _lock_run(conn, run_id: str):
    row = conn.execute(sa.select(fleet_runs.c.cancel_requested, runs.c.status)
                       .join(runs, runs.c.run_id == fleet_runs.c.run_id)
                       .where(fleet_runs.c.run_id == run_id).with_for_update(of=fleet_runs)).first()
    if row is None:
        raise BadInputError(f"run {run_id} was not submitted to the fleet")
    return row


def _set_job(conn, run_id: str, board: str, **values: Any) -> None:
    conn.execute(fleet_jobs.update().where(fleet_jobs.c.run_id == run_id, fleet_jobs.c.board == board).values(**values))


def _end_run_if_last(conn, run_id: str) -> str | None:
    """Finish the run when none of its jobs is waiting or running (caller holds the run's lock):
    cancelled if cancel was asked, failed if a job failed or every stored result failed (as
    `farm bench` says `failed`), else finished."""
    states = [s for (s,) in conn.execute(sa.select(fleet_jobs.c.state).where(fleet_jobs.c.run_id == run_id))]
    if any(s not in ENDED_JOB_STATES for s in states):
        return None
    cancel = conn.execute(sa.select(fleet_runs.c.cancel_requested).where(fleet_runs.c.run_id == run_id)).scalar()
    total, failed = conn.execute(sa.select(sa.func.count(), sa.func.sum(sa.case((results.c.status != "ok", 1), else_=0)))
                                 .where(results.c.run_id == run_id)).one()
    if cancel:
        status = "cancelled"
    elif "failed" in states or (total and int(failed or 0) == int(total)):
        status = "failed"
    else:
        status = "finished"
    conn.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status.in_(("queued", "running")))
                 .values(status=status, finished_at=now_iso()))
    return status


# --- workers ---------------------------------------------------------------------------------


def register_worker(store, name: str, pid: int, queues: Sequence[str], concurrency: int) -> None:
    now = now_iso()
    with store._begin() as conn:  # noqa: SLF001
        conn.execute(fleet_workers.insert().values(name=name, hostname=platform.node(), pid=pid,
                                                   queues_json=json.dumps(list(queues)), concurrency=concurrency,
                                                   started_at=now, last_seen_at=now))


def worker_seen(store, name: str, stopped: bool = False) -> None:
    values = {"last_seen_at": now_iso()}
    if stopped:
        values["stopped_at"] = values["last_seen_at"]
    with store._begin() as conn:  # noqa: SLF001
        conn.execute(fleet_workers.update().where(fleet_workers.c.name == name).values(**values))


# --- what is queued and running -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobView:
    run_id: str
    board: str
    queue: str
    state: str
    worker: str | None
    cells: int
    stored: int
    current_cell: str | None
    started_at: str | None
    submitted_at: str
    job_id: int | None
    attempts: int
    message: str | None = None


def run_jobs(store, run_id: str) -> list[JobView]:
    """Every board job of one run with how many of its cells are stored."""
    return _jobs(store, fleet_jobs.c.run_id == run_id)


def active_jobs(store) -> list[JobView]:
    """Every board job waiting or running, oldest submission first."""
    return _jobs(store, fleet_jobs.c.state.in_(("waiting", "running")))


def _jobs(store, where) -> list[JobView]:
    stored = (sa.select(results.c.run_id, results.c.board, sa.func.count().label("stored"))
              .where(results.c.run_id.in_(sa.select(fleet_jobs.c.run_id).where(where)))
              .group_by(results.c.run_id, results.c.board).subquery())
    query = (sa.select(fleet_jobs, fleet_runs.c.submitted_at, sa.func.coalesce(stored.c.stored, 0).label("stored"))
             .join(fleet_runs, fleet_runs.c.run_id == fleet_jobs.c.run_id)
             .outerjoin(stored, sa.and_(stored.c.run_id == fleet_jobs.c.run_id, stored.c.board == fleet_jobs.c.board))
             .where(where).order_by(fleet_runs.c.submitted_at, fleet_jobs.c.run_id, fleet_jobs.c.board))
    with store._connect() as conn:  # noqa: SLF001
        rows = conn.execute(query).all()
    return [JobView(r.run_id, r.board, r.queue, r.state, r.worker, int(r.cells), int(r.stored), r.current_cell,
                    r.started_at, r.submitted_at, r.job_id, int(r.attempts or 0), r.message) for r in rows]


@dataclasses.dataclass(frozen=True)
class WorkerView:
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: str
    last_seen_at: str


def live_workers(store) -> list[WorkerView]:
    with store._connect() as conn:  # noqa: SLF001
        rows = conn.execute(sa.select(fleet_workers).where(fleet_workers.c.stopped_at.is_(None))
                            .order_by(fleet_workers.c.started_at)).all()
    return [WorkerView(r.name, r.hostname, int(r.pid), json.loads(r.queues_json), int(r.concurrency), r.started_at,
                       r.last_seen_at) for r in rows]


__all__ = ["ENDED_JOB_STATES", "ENDED_RUN_STATUSES", "NOTIFY_CHANNEL", "FleetRun", "JobView", "WorkerView",
           "active_jobs", "create_fleet_run", "end_job", "live_workers", "load_fleet_run", "register_worker",
           "request_cancel", "run_jobs", "set_current_cell", "set_job_ids", "start_job", "worker_seen"]
