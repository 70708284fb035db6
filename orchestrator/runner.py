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
from orchestrator.agent_client import staged_file_name
from orchestrator.agent_session import BenchReply
from orchestrator.board_link import BoardLink
from orchestrator.boards import Board
from orchestrator.errors import AgentError, FarmError, TransportError
from orchestrator.fanout import fan_out
from orchestrator.hashing import file_sha256
from orchestrator.lease import describe_lease
from orchestrator.pairing import PairedBaseline, PairKey
from orchestrator.plan import Cell, ModelFiles
from orchestrator.record import (
    CellIdentity,
    ResultRecord,
    failed_record,
    measured_record,
)
from orchestrator.repeats import merge_process_results
from orchestrator.result_spool import ResultSpool
from orchestrator.rounds import CellRounds, process_p50
from orchestrator.run_liveness import reap_abandoned_runs, this_controller
from orchestrator.settings import DEFAULT_MIN_EFFECT_PCT, BenchSettings
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
        pairs: Mapping[PairKey, PairedBaseline] | None = None,
        thresholds: Mapping[str, float] | None = None,
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
        self.pairs = dict(pairs or {})  # cells measured beside their baseline's file (orchestrator.pairing)
        # the gate's thresholds: a paired cell takes rounds until its verdict at these is decided
        self.thresholds = dict(thresholds or {})
        self.settings_hash = settings.settings_hash()
        self.results = ResultSpool(store, on_event)  # a result the database cannot take now waits in a file

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
        """We took a board over from a holder whose lease expired (or whose agent is gone): its
        run is abandoned, unless it is the run this controller continues (`--resume`)."""
        holder = (takeover.previous or {}).get("holder") or {}
        run_id = holder.get("run_id")
        abandoned = False
        if run_id and run_id != self.resume_run_id:
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
        """Every cell of the board in rounds of one fresh worker process each (A B A B ...): drift
        hits every cell alike. A cell takes `repeats` rounds; one paired with its baseline's file
        (orchestrator.pairing) measures that file too in each round, in alternating order, and takes
        rounds until the paired rounds decide (or the cap). A result is stored after its last
        round, a failure as soon as it happens."""
        accuracy = BoardAccuracy(link, self.settings, board)
        outcomes: list[CellOutcome] = []
        min_effect_pct = self.thresholds.get("min_effect_pct", DEFAULT_MIN_EFFECT_PCT)
        states = [CellRounds(cell, self.pairs.get((board.name, cell.model.name, cell.variant, cell.sweep)),
                             self.settings.repeats, min_effect_pct=min_effect_pct)
                  for cell in cells]
        round_index = 0
        while any(not state.ended for state in states):
            pending = [state for state in states if not state.ended]
            for position, state in enumerate(pending):
                if self._cancel.is_set():
                    return outcomes
                if link.lease_lost.is_set():  # another controller took the board: measure nothing more
                    lost = AgentError(f"{board.name}: our lease on the board was taken over by another holder",
                                      kind="busy")
                    rest = [s.cell for s in states if not s.ended]
                    return outcomes + self._fail_all(run_id, board, rest, lost, link.facts)
                more = position < len(pending) - 1 or len(state.measured) + 1 < state.most
                outcome = self._run_round(run_id, board, link, state, accuracy, round_index, more)
                if outcome is not None:
                    outcomes.append(outcome)
                    state.ended = True
            round_index += 1
        return outcomes

    def _run_round(self, run_id: str, board: Board, link: BoardLink, state: CellRounds,
                   accuracy: BoardAccuracy, round_index: int, more: bool) -> CellOutcome | None:
        """One round of a cell: its fresh worker process (and, paired, its baseline file's, first
        in even rounds). Returns the stored outcome when the cell ended (its last round measured,
        or a failure), None while rounds remain. `more`: another job follows on this board."""
        cell = state.cell
        if cell.build_error is not None:
            return self._store_failure(run_id, board, cell, "variant-error", cell.build_error, link.facts)
        info = {"board": board.name, "model": cell.model.name, "variant": cell.variant,
                "round": len(state.measured) + 1, "rounds": state.most, "paired": state.twin is not None}
        extras = state.runs_extras()
        with_dataset = extras and cell.dataset is not None and accuracy.can_share_worker(cell)
        self.on_event("cell_started", info)
        twin_first = state.twin is not None and round_index % 2 == 0
        if twin_first:
            self._measure_twin(board, link, state, info)
        try:
            # a cell cut by the connection is re-run from its start, never half-counted
            reply, bytes_sent = self._with_retries(
                board, f"{cell.model.name}/{cell.variant}",
                lambda: self._bench_once(board, link, cell, cell.files, info, with_dataset, more or bool(state.twin),
                                         profile_pass=extras))
        except FarmError as exc:
            if self._cancel.is_set():
                raise KeyboardInterrupt from exc
            _discard_outputs(state.measured)
            return self._store_failure(run_id, board, cell, _board_error(exc).kind, str(exc), link.facts)
        state.add_round(reply, bytes_sent, ran_extras=extras)
        if state.twin is not None and not twin_first:
            self._measure_twin(board, link, state, info)
        if not state.done():
            return None
        try:
            merged = merge_process_results([r.as_bench_result() for r, _ in state.measured])
            record = measured_record(merged, self._identity(board, cell), link.facts,
                                     sum(sent for _, sent in state.measured), str(cell.model.path))
            state.add_pairing(record)
        except (KeyError, TypeError, ValueError) as exc:
            _discard_outputs(state.measured)
            return self._store_failure(run_id, board, cell, "agent-error", f"malformed bench result: {exc}",
                                       link.facts)
        if cell.dataset is not None:
            self.on_event("cell_phase", {**info, "phase": "accuracy"})
            with_outputs = next((r for r, _ in state.measured if r.outputs is not None), state.measured[-1][0])
            try:
                record.row["details"]["export"].update(accuracy.evaluate(cell, with_outputs))
            finally:
                _discard_outputs(state.measured)
        outcome = self._store(run_id, cell, record)
        self.on_event("cell_finished", {**info, "row": record.row})
        return outcome

    def _bench_once(self, board: Board, link: BoardLink, cell: Cell, files: ModelFiles, info: dict[str, Any],
                    with_dataset: bool, more: bool, profile_pass: bool = False) -> tuple[BenchReply, int]:
        """One fresh worker process measuring `files` (the cell's, or its baseline's) on the board;
        `profile_pass`: this process also profiles per operator when --profile is on (one per cell)."""
        session = link.ensure()
        staged = _stage_list(files, cell.dataset.inputs_npz if with_dataset and cell.dataset is not None else None)
        paths, bytes_sent = session.stage(staged)
        self.on_event("cell_staged", {**info, "bytes_sent": bytes_sent})
        model_args = [arg for (option, _, _), path in zip(files.uploads(), paths) for arg in (option, path)]
        args = self._settings_of(cell).bench_args(model_args, board, cell.shapes, cell.runtime,
                                                  profile_pass=profile_pass)
        if with_dataset:
            args += ["--dataset", paths[-1]]
        reply = session.bench(
            args, timeout_s=self.settings.job_timeout_s, max_samples=self.settings.max_samples_kept,
            max_series_rows=self.settings.max_series_rows,
            on_phase=lambda phase: self.on_event("cell_phase", {**info, "phase": phase}), more=more,
        )
        return reply, bytes_sent

    def _measure_twin(self, board: Board, link: BoardLink, state: CellRounds, info: dict[str, Any]) -> None:
        """The baseline's file in its own fresh process, this round. If it cannot be measured the
        cell goes on unpaired (judged against the stored baseline), and its record says why."""
        assert state.twin is not None
        try:
            reply, _ = self._with_retries(
                board, f"{state.cell.model.name}/{state.cell.variant} (baseline's file)",
                lambda: self._bench_once(board, link, state.cell, state.twin.files, {**info, "twin": True},
                                         False, True))
        except FarmError as exc:
            if self._cancel.is_set():
                raise KeyboardInterrupt from exc
            state.unpair(f"the baseline's model file could not be measured beside it: {exc}")
            return
        state.twin_p50s.append(process_p50(reply))

    def _identity(self, board: Board, cell: Cell) -> CellIdentity:
        return CellIdentity(board.name, cell.model.name, cell.model.sha256, cell.variant, self._hash_of(cell),
                            cell.variant_details, cell.model.size_bytes, cell.batch,
                            self._settings_of(cell).threads, cell.sweep)

    def _store(self, run_id: str, cell: Cell, record: ResultRecord) -> CellOutcome:
        result_id = self.results.add_result(run_id, record.row, record.latency_ms, record.timeseries)
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


def _stage_list(files: ModelFiles, dataset_npz: Any = None) -> list[tuple[Any, str, str]]:
    """(local file, name on the board, sha256) of a model's file(s), then a dataset's inputs."""
    staged = [(path, staged_file_name(path, suffix), file_sha256(path.resolve())) for _, path, suffix in
              files.uploads()]
    if dataset_npz is not None:
        staged.append((dataset_npz, staged_file_name(dataset_npz, ".npz"), file_sha256(dataset_npz.resolve())))
    return staged



def _discard_outputs(measured: Sequence[tuple[BenchReply, int]]) -> None:
    for reply, _ in measured:
        if reply.outputs is not None:
            reply.outputs.discard()


__all__ = ["BenchRunner", "CellOutcome", "Event", "RunOutcome", "controller_record"]
