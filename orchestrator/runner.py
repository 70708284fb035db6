"""The plan (boards × models × variants × settings) and its execution.

Boards run in parallel (a bounded pool), one job at a time per board. Each job's result —
success or failure with a kind — is written to the store as soon as the job ends, so an
interrupted run keeps everything that finished. A failed board never stops the others, and
neither does a board whose connection settings are wrong: its cells fail, the run goes on.

Each board is spoken to through one agent session (orchestrator.agent_session): the agent starts
once per board per run and does everything over one channel — facts, the lease (which it then
keeps renewed), the work-dir clean, stage checks, every cell, the dataset outputs, the release.
A session that dies (the connection dropped, heartbeats stopped) is started again for the next
attempt; the lease is ours, so the new agent takes it over, first killing what the old one left.
"""
from __future__ import annotations

import dataclasses
import platform
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

import orchestrator
from agents.farm_common import agent_file_name
from orchestrator.accuracy.on_board import BoardAccuracy
from orchestrator.agent_bundle import agent_bundle_sha256
from orchestrator.agent_client import provision_hint, staged_file_name
from orchestrator.agent_session import AgentSession, BenchReply
from orchestrator.boards import Board
from orchestrator.errors import AgentError, FarmError, TransportError
from orchestrator.fanout import fan_out
from orchestrator.hashing import file_sha256
from orchestrator.lease import BoardLease, LeaseHolder, describe_lease
from orchestrator.plan import Cell
from orchestrator.record import (
    CellIdentity,
    ResultRecord,
    failed_record,
    measured_record,
)
from orchestrator.repeats import merge_process_results
from orchestrator.run_liveness import reap_abandoned_runs, this_controller
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
        **this_controller(),  # pid, its start time, boot id: who can tell this controller died
    }


class BoardLink:
    """A board's agent session and lease for one run, started again after the session dies.

    `open` starts the agent, reads the board's quick facts and takes the lease (waiting, as
    --lease-wait says, for another controller's); `ensure` checks the session is alive before a
    job and, after a drop, starts a new one and takes the lease again (it is ours: the new agent
    kills what the old one left, then holds it).
    """

    def __init__(self, runner: "BenchRunner", run_id: str, board: Board, transport: Transport) -> None:
        self.runner = runner
        self.run_id = run_id
        self.board = board
        self.transport = transport
        self.holder = LeaseHolder.for_this_process(run_id)
        self.session: AgentSession | None = None
        self.lease: BoardLease | None = None
        self.facts: dict[str, Any] = {}
        self.lease_lost = threading.Event()

    def _new_session(self) -> AgentSession:
        settings = self.runner.settings
        return AgentSession(
            self.transport, self.board.python, workdir=self.board.workdir,
            heartbeat_s=settings.heartbeat_s, dead_after_s=settings.disconnect_after_s,
            controller_timeout_s=settings.lease_ttl_s,
            provision_hint=lambda args: provision_hint(self.board, self.transport, self.runner.inventory, args),
            on_lease_lost=self.lease_lost.set,
        )

    def open(self, wait_s: float | None = None) -> dict[str, Any]:
        """Start the agent, read quick facts, take the lease; returns the facts."""
        settings = self.runner.settings
        self.discard()
        session = self._new_session()
        self.session = session
        session.start()
        self.facts = session.facts(quick=True)
        lease = BoardLease(
            session, self.holder, ttl_s=settings.lease_ttl_s,
            wait_s=settings.lease_wait_s if wait_s is None else wait_s, cancel=self.runner._cancel,
            on_wait=lambda held, waited_s: self.runner.on_event(
                "board_waiting", {"board": self.board.name, "lease": describe_lease(held), "waited_s": waited_s}),
        )
        takeover = lease.acquire()
        self.lease = lease
        if takeover.previous is not None or takeover.killed:
            self.runner._took_over(self.board, takeover)
        return self.facts

    def ensure(self) -> AgentSession:
        """The live session, started again (lease included) when the last one died."""
        if self.session is None or not self.session.alive:
            self.open(wait_s=min(self.runner.settings.lease_wait_s, 5.0))
        assert self.session is not None
        return self.session

    def discard(self) -> None:
        """Forget a dead session (making sure its command is gone)."""
        if self.session is not None:
            self.session.abort()
            self.session = None
            self.lease = None

    def close(self) -> None:
        """Release the lease and end the session (the agent frees the lease itself on bye)."""
        if self.session is not None:
            self.session.close()
            self.session = None


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
        self._links: dict[str, BoardLink] = {}
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self.inventory = inventory  # named in hints such as the provision command
        self.resume_run_id = resume_run_id
        self.done_cells = {CellKey(*cell) for cell in done_cells}
        self.plan = dict(plan or {})  # what `--resume RUN` continues (orchestrator.resume.plan_record)
        self.settings_hash = settings.settings_hash()

    def cells_for(self, board: Board) -> list[Cell]:
        """The board's cells still to measure (all of them, unless resuming a run)."""
        return [c for c in self.cells
                if CellKey(board.name, c.model.name, c.variant, self._hash_of(c)) not in self.done_cells]

    def _settings_of(self, cell: Cell) -> BenchSettings:
        """The settings a cell is measured with: its sweep point's (orchestrator.sweep), else the run's."""
        return cell.settings if cell.settings is not None else self.settings

    def _hash_of(self, cell: Cell) -> str:
        return self.settings_hash if cell.settings is None else cell.settings.settings_hash()

    def run(self) -> RunOutcome:
        for stale in reap_abandoned_runs(self.store):
            self.on_event("run_abandoned", {"run_id": stale, "why": "its controller is gone"})
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
        self.store.finish_run(run_id, status)
        self.on_event("run_finished", {"run_id": run_id, "status": status})
        return RunOutcome(run_id=run_id, outcomes=outcomes, status=status)

    def _stop_boards(self) -> None:
        """Ctrl-C: no new cell starts; every agent is told to stop (end of its input: it kills its
        worker and frees its lease), then whatever is still running on the boards is killed."""
        self._cancel.set()
        with self._lock:
            links = list(self._links.values())
            transports = list(self._transports.values())
        for link in links:
            if link.session is not None:
                link.session.begin_abort()
        for link in links:
            if link.session is not None:
                link.session.abort()
        for transport in transports:
            transport.close()

    def _took_over(self, board: Board, takeover) -> None:  # noqa: ANN001 - lease.Takeover
        """We took a board over from a holder whose lease expired: its run is abandoned."""
        holder = (takeover.previous or {}).get("holder") or {}
        run_id = holder.get("run_id")
        abandoned = False
        if run_id:
            try:
                abandoned = self.store.mark_abandoned(run_id)
            except FarmError:
                abandoned = False  # a run of another database: nothing to mark here
        self.on_event("board_takeover", {"board": board.name, "previous": describe_lease(takeover.previous),
                                         "killed": takeover.killed, "abandoned_run": run_id if abandoned else None})

    # --- one board ----------------------------------------------------------------------

    def _run_board(self, run_id: str, board: Board) -> list[CellOutcome]:
        cells = self.cells_for(board)
        if not cells:
            return []
        try:
            transport = self.transport_factory(board)
        except FarmError as exc:  # this board's settings cannot be used: its cells fail, not the run
            return self._fail_all(run_id, board, cells, _board_error(exc), {})
        link = BoardLink(self, run_id, board, transport)
        with self._lock:
            self._transports[board.name] = transport
            self._links[board.name] = link
        try:
            try:
                self.on_event("board_connecting", {"board": board.name})
                facts = self._with_retries(board, "connect", link.open, CONNECT_RETRYABLE_KINDS)
            except FarmError as exc:
                if self._cancel.is_set():
                    raise KeyboardInterrupt from exc
                return self._fail_all(run_id, board, cells, _board_error(exc), link.facts)
            self.on_event("board_ready", {"board": board.name, "facts": facts})
            self._clean_workdir(link, cells)
            return self._run_rounds(run_id, board, link, cells)
        finally:
            if not self._cancel.is_set():
                link.close()
            transport.close()
            with self._lock:
                self._transports.pop(board.name, None)
                self._links.pop(board.name, None)

    def _run_rounds(self, run_id: str, board: Board, link: BoardLink, cells: Sequence[Cell]) -> list[CellOutcome]:
        """Every cell of the board, `repeats` rounds of one fresh worker process each (A B A B ...);
        a cell's result is stored after its last round, a failure as soon as it happens."""
        accuracy = BoardAccuracy(link, self.settings, board)
        outcomes: list[CellOutcome] = []
        measured: dict[int, list[tuple[BenchReply, int]]] = {index: [] for index in range(len(cells))}
        ended: set[int] = set()
        last = (self.settings.repeats - 1, len(cells) - 1)
        for round_index in range(self.settings.repeats):
            for index, cell in enumerate(cells):
                if index in ended:
                    continue
                if self._cancel.is_set():
                    return outcomes
                if link.lease_lost.is_set():  # another controller took the board: measure nothing more
                    lost = AgentError(f"{board.name}: our lease on the board was taken over by another holder",
                                      kind="busy")
                    rest = [c for i, c in enumerate(cells) if i not in ended]
                    return outcomes + self._fail_all(run_id, board, rest, lost, link.facts)
                more = (round_index, index) != last
                outcome = self._run_cell(run_id, board, link, cell, accuracy, measured[index], more)
                if outcome is not None:
                    outcomes.append(outcome)
                    ended.add(index)
        return outcomes

    def _run_cell(
        self, run_id: str, board: Board, link: BoardLink, cell: Cell, accuracy: BoardAccuracy,
        measured: list[tuple[BenchReply, int]], more: bool = False,
    ) -> CellOutcome | None:
        """One round of a cell: one fresh worker process. Returns the stored outcome when the cell
        ended (its last round measured, or a failure), None while rounds remain (`measured` grows).
        `more`: another round or cell follows on this board."""
        if cell.build_error is not None:
            return self._store_failure(run_id, board, cell, "variant-error", cell.build_error, link.facts)
        info = {"board": board.name, "model": cell.model.name, "variant": cell.variant,
                "round": len(measured) + 1, "rounds": self.settings.repeats}
        last_round = len(measured) + 1 == self.settings.repeats
        # The dataset runs in the last round's worker, after it measured: no second process or load.
        with_dataset = last_round and cell.dataset is not None and accuracy.can_share_worker(cell)
        self.on_event("cell_started", info)

        def attempt() -> tuple[BenchReply, int]:
            session = link.ensure()
            files = _stage_list(cell, with_dataset)
            paths, bytes_sent = session.stage(files)
            self.on_event("cell_staged", {**info, "bytes_sent": bytes_sent})
            model_args = [arg for (option, _, _), path in zip(cell.files.uploads(), paths) for arg in (option, path)]
            args = self._settings_of(cell).bench_args(model_args, board, cell.shapes, cell.runtime)
            if with_dataset:
                args += ["--dataset", paths[-1]]
            reply = session.bench(
                args, timeout_s=self.settings.job_timeout_s, max_samples=self.settings.max_samples_kept,
                max_series_rows=self.settings.max_series_rows,
                on_phase=lambda phase: self.on_event("cell_phase", {**info, "phase": phase}), more=more,
            )
            return reply, bytes_sent

        try:
            # a cell cut by the connection is re-run from its start, never half-counted
            reply, bytes_sent = self._with_retries(board, f"{cell.model.name}/{cell.variant}", attempt)
        except FarmError as exc:
            if self._cancel.is_set():
                raise KeyboardInterrupt from exc
            return self._store_failure(run_id, board, cell, _board_error(exc).kind, str(exc), link.facts)
        measured.append((reply, bytes_sent))
        if not last_round:
            return None
        try:
            merged = merge_process_results([r.as_bench_result() for r, _ in measured])
            record = measured_record(merged, self._identity(board, cell), link.facts,
                                     sum(sent for _, sent in measured), str(cell.model.path))
        except (KeyError, TypeError, ValueError) as exc:
            _discard_outputs(measured)
            return self._store_failure(run_id, board, cell, "agent-error", f"malformed bench result: {exc}",
                                       link.facts)
        if cell.dataset is not None:
            self.on_event("cell_phase", {**info, "phase": "accuracy"})
            try:
                record.row["details"]["export"].update(accuracy.evaluate(cell, reply))
            finally:
                _discard_outputs(measured)
        outcome = self._store(run_id, cell, record)
        self.on_event("cell_finished", {**info, "row": record.row})
        return outcome

    def _identity(self, board: Board, cell: Cell) -> CellIdentity:
        return CellIdentity(board.name, cell.model.name, cell.model.sha256, cell.variant, self._hash_of(cell),
                            cell.variant_details, cell.model.size_bytes, cell.batch,
                            self._settings_of(cell).threads, cell.sweep)

    def _store(self, run_id: str, cell: Cell, record: ResultRecord) -> CellOutcome:
        result_id = self.store.add_result(run_id, record.row, record.latency_ms, record.timeseries)
        row = dict(record.row)
        return CellOutcome(row["board"], cell.model.name, cell.variant, row["status"], row, result_id)

    def _fail_all(self, run_id: str, board: Board, cells: Sequence[Cell], exc: TransportError | AgentError,
                  facts: dict) -> list[CellOutcome]:
        """Every cell of a board that cannot be used fails with the same kind and reason."""
        return [self._store_failure(run_id, board, cell, exc.kind, str(exc), facts) for cell in cells]

    def _clean_workdir(self, link: BoardLink, cells: Sequence[Cell]) -> None:
        """Under our lease: drop interrupted uploads and old staged files (size/age policy),
        keeping everything this run uses. Best effort: a board that cannot clean still runs."""
        keep = {agent_file_name(agent_bundle_sha256())}
        keep |= {staged_file_name(path, suffix) for cell in cells if cell.build_error is None
                 for _, path, suffix in cell.files.uploads()}
        keep |= {staged_file_name(cell.dataset.inputs_npz, ".npz") for cell in cells if cell.dataset is not None}
        args = ["--max-bytes", str(self.settings.workdir_max_bytes),
                "--max-age-days", repr(self.settings.workdir_max_age_days)]
        for name in sorted(keep):
            args += ["--keep", name]
        try:
            if link.session is not None:
                link.session.clean(args)
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
                                              "attempt": attempt + 1, "delay_s": delay_s, "message": str(exc)})
                if self._cancel.wait(delay_s):
                    raise
                delay_s *= 2
        raise AssertionError("unreachable")

    def _store_failure(self, run_id: str, board: Board, cell: Cell, kind: str, message: str,
                       facts: dict) -> CellOutcome:
        outcome = self._store(run_id, cell, failed_record(self._identity(board, cell), kind, message, facts))
        self.on_event("cell_failed", {"board": board.name, "model": cell.model.name, "variant": cell.variant,
                                      "kind": kind, "message": message})
        return outcome


def _board_error(exc: FarmError) -> TransportError | AgentError:
    """A board's failure with a kind: bad settings of that board (an ssh config that loops, a bad
    proxy jump) make it unreachable; transport and agent errors keep theirs."""
    if isinstance(exc, (TransportError, AgentError)):
        return exc
    return TransportError(str(exc), kind="unreachable")


def _stage_list(cell: Cell, with_dataset: bool) -> list[tuple[Any, str, str]]:
    """(local file, name on the board, sha256) of a cell's model files, then its dataset."""
    files = [(path, staged_file_name(path, suffix), file_sha256(path.resolve())) for _, path, suffix in
             cell.files.uploads()]
    if with_dataset:
        assert cell.dataset is not None
        data = cell.dataset.inputs_npz
        files.append((data, staged_file_name(data, ".npz"), file_sha256(data.resolve())))
    return files


def _discard_outputs(measured: Sequence[tuple[BenchReply, int]]) -> None:
    for reply, _ in measured:
        if reply.outputs is not None:
            reply.outputs.discard()


__all__ = ["BenchRunner", "BoardLink", "CellOutcome", "Event", "RunOutcome", "controller_record"]
