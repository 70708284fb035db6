"""The plan (boards × models × variants × settings) and its execution.

Boards run in parallel (a bounded pool), one job at a time per board. Each job's result —
success or failure with a kind — is written to the store as soon as the job ends, so an
interrupted run keeps everything that finished. A failed board never stops the others.
"""
from __future__ import annotations

import dataclasses
import platform
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

import orchestrator
from orchestrator.accuracy.on_board import BoardAccuracy
from orchestrator.agent_bundle import agent_bundle_path
from orchestrator.agent_client import AgentClient, staged_file_name
from orchestrator.boards import Board
from orchestrator.errors import AgentError, TransportError
from orchestrator.fanout import fan_out
from orchestrator.lease import BoardLease, LeaseHolder, describe_lease
from orchestrator.plan import Cell
from orchestrator.record import CellIdentity, ResultRecord, failed_record, measured_record
from orchestrator.repeats import merge_process_results
from orchestrator.result_spool import ResultSpool
from orchestrator.settings import BenchSettings
from orchestrator.store import CellKey, Store
from orchestrator.transport import Transport, open_transport

# Failures of the connection, not of the measurement: worth a retry after a pause. A cell's own
# timeout is not retried (a hung model would hang again); connecting can time out and be retried.
CONNECT_RETRYABLE_KINDS = ("unreachable", "timeout", "disconnected")
CELL_RETRYABLE_KINDS = ("unreachable", "disconnected")


@dataclasses.dataclass
class CellOutcome:
    """One board × cell as stored: `row` is the stored record's row (orchestrator.record)."""

    board: str
    model: str
    variant: str
    status: str  # ok | failed
    row: dict[str, Any]
    result_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclasses.dataclass
class RunOutcome:
    run_id: str
    outcomes: list[CellOutcome]
    status: str  # finished | failed | interrupted

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if not o.ok]


Event = Callable[[str, dict[str, Any]], None]


def _no_event(kind: str, info: dict[str, Any]) -> None:
    pass


def controller_record() -> dict[str, Any]:
    return {
        "farm_version": orchestrator.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "argv": sys.argv[1:],
    }


class BenchRunner:
    """Runs one `farm bench`: stores a run, executes every cell, never loses a finished result."""

    def __init__(
        self,
        store: Store,
        boards: Sequence[Board],
        cells: Sequence[Cell],
        settings: BenchSettings,
        forks: int = 8,
        on_event: Event = _no_event,
        transport_factory: Callable[[Board], Transport] = open_transport,
        resume_run_id: str | None = None,
        done_cells: Iterable[CellKey] = (),
        inventory: str | None = None,
        plan: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.boards = list(boards)
        self.cells = list(cells)
        self.settings = settings
        self.forks = max(1, forks)
        self.on_event = on_event
        self.transport_factory = transport_factory
        self._cancel = threading.Event()
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self.inventory = inventory  # named in hints such as the provision command
        self.resume_run_id = resume_run_id
        self.done_cells = {CellKey(*cell) for cell in done_cells}
        self.plan = dict(plan or {})  # what `--resume RUN` continues (orchestrator.resume.plan_record)
        self.settings_hash = settings.settings_hash()
        self.results = ResultSpool(store, on_event)  # a result the database cannot take now waits in a file

    def cells_for(self, board: Board) -> list[Cell]:
        """The board's cells still to measure (all of them, unless resuming a run)."""
        return [c for c in self.cells
                if CellKey(board.name, c.model.name, c.variant, self.settings_hash) not in self.done_cells]

    def run(self) -> RunOutcome:
        settings_record = {
            **self.settings.record(),
            "boards": [b.name for b in self.boards],
            "models": list(dict.fromkeys(c.model.name for c in self.cells)),
            "variants": sorted({c.variant for c in self.cells}),
            "plan": self.plan,
        }
        if self.resume_run_id is not None:
            run_id = self.resume_run_id  # reopened by the caller; only missing cells are measured
        else:
            run_id = self.store.create_run(settings_record, controller_record(), orchestrator.__version__)
        self.on_event("run_started", {"run_id": run_id, "cells": sum(len(self.cells_for(b)) for b in self.boards)})
        try:
            by_board = fan_out(self.boards, lambda board: self._run_board(run_id, board), self.forks,
                               on_interrupt=self._stop_boards)
        except KeyboardInterrupt:
            self.store.finish_run(run_id, "interrupted")
            raise
        if by_board.failed:  # a bug in a board thread, not a board failure (those are stored)
            self.store.finish_run(run_id, "failed")
            raise next(iter(by_board.failed.values()))
        outcomes = [outcome for board_outcomes in by_board.values() for outcome in board_outcomes]
        status = "failed" if outcomes and all(not o.ok for o in outcomes) else "finished"
        self.results.drain()  # what a database outage spooled is written before the run is called done
        self.results.close()
        self.store.finish_run(run_id, status)
        self.on_event("run_finished", {"run_id": run_id, "status": status})
        return RunOutcome(run_id=run_id, outcomes=outcomes, status=status)

    def run_board_of_run(self, run_id: str, board: Board) -> list[CellOutcome]:
        """Fleet mode (orchestrator.fleet): ONE board's cells of a run that was created elsewhere
        (`farm submit`) and is finished elsewhere, through the same code as `run()`. Cells in
        `done_cells` are skipped; spooled results are written before it returns."""
        try:
            outcomes = self._run_board(run_id, board)
            self.results.drain(cancel=self._cancel)
            return outcomes
        finally:
            self.results.close()

    def stop(self) -> None:
        """Stop from another thread (a cancelled fleet job), as Ctrl-C stops `run()`."""
        self._stop_boards()

    def _stop_boards(self) -> None:
        """Ctrl-C: no new cell starts, and the command running on each board is stopped."""
        self._cancel.set()
        with self._lock:
            for transport in self._transports.values():
                transport.close()

    # --- one board ----------------------------------------------------------------------

    def _run_board(self, run_id: str, board: Board) -> list[CellOutcome]:
        outcomes: list[CellOutcome] = []
        cells = self.cells_for(board)
        if not cells:
            return outcomes
        transport = self.transport_factory(board)
        with self._lock:
            self._transports[board.name] = transport
        client = AgentClient(transport, python=board.python, inventory=self.inventory)
        try:
            try:
                self.on_event("board_connecting", {"board": board.name})
                facts = self._with_retries(
                    board, "connect", lambda: client.facts(timeout_s=max(60.0, board.connect_timeout_s * 3), quick=True),
                    CONNECT_RETRYABLE_KINDS)
            except (TransportError, AgentError) as exc:
                return self._fail_all(run_id, board, cells, exc, {})  # the board is unusable
            lease = BoardLease(
                client,
                lambda: AgentClient(self.transport_factory(board), python=board.python, inventory=self.inventory),
                LeaseHolder.for_this_process(run_id),
                ttl_s=self.settings.lease_ttl_s,
                wait_s=self.settings.lease_wait_s,
                cancel=self._cancel,
                on_wait=lambda held, waited_s: self.on_event(
                    "board_waiting", {"board": board.name, "lease": describe_lease(held), "waited_s": waited_s}),
            )
            try:
                lease.acquire()
            except (TransportError, AgentError) as exc:
                return self._fail_all(run_id, board, cells, exc, facts)  # busy, or lost on the way
            self.on_event("board_ready", {"board": board.name, "facts": facts})
            self._clean_workdir(client, cells)
            try:
                outcomes.extend(self._run_rounds(run_id, board, client, facts, cells, lease))
            finally:
                lease.release()
        finally:
            transport.close()
            with self._lock:
                self._transports.pop(board.name, None)
        return outcomes

    def _run_rounds(self, run_id: str, board: Board, client: AgentClient, facts: dict, cells: Sequence[Cell],
                    lease: BoardLease) -> list[CellOutcome]:
        """Every cell of the board, `repeats` rounds of one fresh worker process each (A B A B ...);
        a cell's result is stored after its last round, a failure as soon as it happens."""
        accuracy = BoardAccuracy(client, self.settings, board)
        outcomes: list[CellOutcome] = []
        measured: dict[int, list[tuple[dict[str, Any], int]]] = {index: [] for index in range(len(cells))}
        ended: set[int] = set()
        for _ in range(self.settings.repeats):
            for index, cell in enumerate(cells):
                if index in ended:
                    continue
                if self._cancel.is_set():
                    return outcomes
                if lease.lost.is_set():  # another controller took the board: measure nothing more
                    lost = AgentError(f"{board.name}: our lease on the board was taken over "
                                      "(renewals failed for a whole --lease-ttl)", kind="busy")
                    rest = [c for i, c in enumerate(cells) if i not in ended]
                    return outcomes + self._fail_all(run_id, board, rest, lost, facts)
                outcome = self._run_cell(run_id, board, client, facts, cell, accuracy, measured[index])
                if outcome is not None:
                    outcomes.append(outcome)
                    ended.add(index)
        return outcomes

    def _run_cell(
        self, run_id: str, board: Board, client: AgentClient, facts: dict, cell: Cell, accuracy: BoardAccuracy,
        measured: list[tuple[dict[str, Any], int]],
    ) -> CellOutcome | None:
        """One round of a cell: one fresh worker process. Returns the stored outcome when the cell
        ended (its last round measured, or a failure), None while rounds remain (`measured` grows)."""
        if cell.build_error is not None:
            return self._store_failure(run_id, board, cell, "variant-error", cell.build_error, facts)
        info = {"board": board.name, "model": cell.model.name, "variant": cell.variant,
                "round": len(measured) + 1, "rounds": self.settings.repeats}
        self.on_event("cell_started", info)

        def attempt():
            model_args, bytes_sent = client.stage_files(cell.files.uploads())
            self.on_event("cell_staged", {**info, "bytes_sent": bytes_sent})
            reply = client.call(
                "bench",
                self.settings.bench_args(model_args, board, cell.shapes, cell.runtime),
                timeout_s=self.settings.job_timeout_s,
                on_message=lambda m: self._on_agent_message(info, m),
            )
            return reply, bytes_sent

        try:
            # a cell cut by the connection is re-run from its start, never half-counted
            reply, bytes_sent = self._with_retries(board, f"{cell.model.name}/{cell.variant}", attempt)
        except (TransportError, AgentError) as exc:
            if self._cancel.is_set():
                raise
            return self._store_failure(run_id, board, cell, exc.kind, str(exc), facts)
        message = reply.first("result")
        if message is None or not isinstance(message.get("result"), dict):
            return self._store_failure(run_id, board, cell, "agent-error", "agent sent no result", facts)
        measured.append((message["result"], bytes_sent))
        if len(measured) < self.settings.repeats:
            return None
        try:
            merged = merge_process_results([result for result, _ in measured])
            record = measured_record(merged, self._identity(board, cell), facts, sum(sent for _, sent in measured),
                                     str(cell.model.path))
        except (KeyError, TypeError, ValueError) as exc:
            return self._store_failure(run_id, board, cell, "agent-error", f"malformed bench result: {exc}", facts)
        if cell.dataset is not None:
            self.on_event("cell_phase", {**info, "phase": "accuracy"})
            record.row["details"]["export"].update(accuracy.evaluate(cell))
        outcome = self._store(run_id, cell, record)
        self.on_event("cell_finished", {**info, "row": record.row})
        return outcome

    def _identity(self, board: Board, cell: Cell) -> CellIdentity:
        return CellIdentity(board.name, cell.model.name, cell.model.sha256, cell.variant, self.settings_hash,
                            cell.variant_details, cell.model.size_bytes, cell.batch, self.settings.threads)

    def _store(self, run_id: str, cell: Cell, record: ResultRecord) -> CellOutcome:
        result_id = self.results.add_result(run_id, record.row, record.latency_ms, record.timeseries)
        row = dict(record.row)
        return CellOutcome(row["board"], cell.model.name, cell.variant, row["status"], row, result_id)

    def _fail_all(self, run_id: str, board: Board, cells: Sequence[Cell], exc: TransportError | AgentError,
                  facts: dict) -> list[CellOutcome]:
        """Every cell of a board that cannot be used fails with the same kind and reason."""
        return [self._store_failure(run_id, board, cell, exc.kind, str(exc), facts) for cell in cells]

    def _clean_workdir(self, client: AgentClient, cells: Sequence[Cell]) -> None:
        """Under our lease: drop interrupted uploads and old staged files (size/age policy),
        keeping everything this run uses. Best effort: a board that cannot clean still runs."""
        keep = {agent_bundle_path().name}
        keep |= {staged_file_name(path, suffix) for cell in cells if cell.build_error is None
                 for _, path, suffix in cell.files.uploads()}
        keep |= {staged_file_name(cell.dataset.inputs_npz, ".npz") for cell in cells if cell.dataset is not None}
        args = ["--workdir", client.transport.workdir, "--max-bytes", str(self.settings.workdir_max_bytes),
                "--max-age-days", repr(self.settings.workdir_max_age_days)]
        for name in sorted(keep):
            args += ["--keep", name]
        try:
            client.call("clean", args, timeout_s=60)
        except (TransportError, AgentError):
            pass

    def _with_retries(self, board: Board, what: str, call: Callable[[], Any],
                      kinds: tuple[str, ...] = CELL_RETRYABLE_KINDS) -> Any:
        """Run `call`, retrying connection-level failures with exponential backoff (bounded)."""
        delay_s = self.settings.retry_backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return call()
            except TransportError as exc:
                retryable = exc.kind in kinds and attempt < self.settings.retries
                if not retryable or self._cancel.is_set():
                    raise
                self.on_event("board_retry", {"board": board.name, "what": what, "kind": exc.kind,
                                              "attempt": attempt + 1, "delay_s": delay_s})
                if self._cancel.wait(delay_s):
                    raise
                delay_s *= 2
        raise AssertionError("unreachable")

    def _on_agent_message(self, info: dict[str, Any], message: dict[str, Any]) -> None:
        if message["type"] == "phase":
            self.on_event("cell_phase", {**info, "phase": message.get("phase")})

    def _store_failure(self, run_id: str, board: Board, cell: Cell, kind: str, message: str,
                       facts: dict) -> CellOutcome:
        outcome = self._store(run_id, cell, failed_record(self._identity(board, cell), kind, message, facts))
        self.on_event("cell_failed", {"board": board.name, "model": cell.model.name, "variant": cell.variant,
                                      "kind": kind, "message": message})
        return outcome


__all__ = ["BenchRunner", "CellOutcome", "Event", "RunOutcome", "controller_record"]
