"""`farm runs wait RUN`: follow a submitted run from the store until it ends, then judge it like
`farm bench` does, for the same exit code (0 ok, 4 a job failed, 5 a regression; 130 cancelled).

The waiter LISTENs to `farm_fleet` (workers NOTIFY on every job and cell change) and re-reads
the run's jobs from the store on each notification, and at least every `poll_s` seconds, so a
lost notification or a database restart only delays it. It is bounded by `timeout_s`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from orchestrator.errors import ExitStatus, FarmError, StoreError
from orchestrator.fleet import state
from orchestrator.fleet.gate import GateOptions, evaluate
from orchestrator.fleet.manifest import FleetPlan, settings_of_run

DEFAULT_POLL_S = 2.0


class WaitTimeout(FarmError):
    """`--timeout` passed before the run ended: the comparison is incomplete, as when a job failed."""

    exit_status = ExitStatus.BOARD_FAILURE


@dataclasses.dataclass
class WaitOutcome:
    run_id: str
    status: str  # the run's final status
    rows: list[dict[str, Any]]  # its stored results
    missing: list[tuple[str, str, str]]  # (board, model, variant) planned but never stored
    gate: Any = None  # gating.GateResult when the submission (or the wait) asked to compare
    gating: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") != "ok"]

    @property
    def exit_status(self) -> ExitStatus:
        """As farm bench: gated runs BOARD_FAILURE, else REGRESSION, else OK; ungated BOARD_FAILURE
        or OK. A planned cell with no result is a failed job; a cancelled run is INTERRUPTED."""
        if self.status == "cancelled":
            return ExitStatus.INTERRUPTED
        if self.missing:
            return ExitStatus.BOARD_FAILURE
        if self.gate is not None and self.gating:
            return self.gate.exit_status
        return ExitStatus.BOARD_FAILURE if self.failed else ExitStatus.OK


class _Listener:
    """A LISTEN farm_fleet connection; `wait(s)` returns when a notification for the run came or
    s passed. Reconnects on the next wait when the database went away."""

    def __init__(self, store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.conn = None

    def _connect(self) -> None:
        if self.store.engine.dialect.name != "postgresql":
            return
        import psycopg

        from orchestrator.fleet.queue import conninfo_of

        self.conn = psycopg.connect(conninfo_of(self.store.engine.url.render_as_string(hide_password=False)),
                                    autocommit=True)
        self.conn.execute(f"LISTEN {state.NOTIFY_CHANNEL}")

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            if self.conn is None:
                self._connect()
            if self.conn is None:
                time.sleep(seconds)  # SQLite: nothing to listen to; poll
                return
            for note in self.conn.notifies(timeout=max(0.0, deadline - time.monotonic())):
                if note.payload == self.run_id:
                    return
                if time.monotonic() >= deadline:
                    return
        except Exception:  # noqa: BLE001 - the database away: reconnect next time, poll meanwhile
            self.close()
            remaining = deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None


def wait_until_ended(store, run_id: str, *, timeout_s: float, poll_s: float = DEFAULT_POLL_S,
                     on_progress: Callable[[list[state.JobView], str], None] = lambda jobs, status: None) -> str | None:
    """The run's status once it ended, or None when `timeout_s` passed first."""
    listener = _Listener(store, run_id)
    deadline = time.monotonic() + timeout_s
    last: Any = None
    status = None
    try:
        while True:
            try:
                jobs = state.run_jobs(store, run_id)
                status = store.get_run(run_id)["status"]
            except StoreError:
                jobs = None  # the database is away: keep waiting, bounded by the deadline
            if jobs is not None:
                view = [(j.board, j.state, j.stored, j.current_cell, j.worker) for j in jobs], status
                if view != last:
                    on_progress(jobs, status)
                    last = view
                if status in state.ENDED_RUN_STATUSES:
                    return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            listener.wait(min(poll_s, remaining))
    finally:
        listener.close()


def wait_for_run(store, run_id: str, *, timeout_s: float = 24 * 3600.0, poll_s: float = DEFAULT_POLL_S,
                 gate_overrides: dict[str, Any] | None = None,
                 on_progress: Callable[[list[state.JobView], str], None] = lambda jobs, status: None) -> WaitOutcome:
    """Follow `run_id` until it ends (at most `timeout_s`), then gate it as its submission asked."""
    fleet = state.load_fleet_run(store, run_id)
    run_id = fleet.run_id
    status = wait_until_ended(store, run_id, timeout_s=timeout_s, poll_s=poll_s, on_progress=on_progress)
    if status is None:
        raise WaitTimeout(
            f"run {run_id} has not ended after {timeout_s:g} s; it goes on in the fleet: farm runs wait {run_id} "
            f"again, or farm queue cancel {run_id}")
    rows = store.query_results(run_id)
    plan = FleetPlan.from_json(fleet.plan_json)
    stored = {(r["board"], r["model"], r["variant"], r["settings_hash"]) for r in rows}
    run_hash = settings_of_run(fleet.settings).settings_hash()
    missing = list(dict.fromkeys(
        (board, model, variant) for board in plan.board_names for model, variant, settings_hash in plan.cell_keys(run_hash)
        if (board, model, variant, settings_hash) not in stored))
    options = GateOptions.from_json(fleet.gate_json).overridden(**(gate_overrides or {}))
    gate = None
    if status != "cancelled":
        gate = evaluate(store, run_id, options)
    return WaitOutcome(run_id, status, rows, missing, gate, options.gating)


__all__ = ["WaitOutcome", "WaitTimeout", "wait_for_run", "wait_until_ended"]
