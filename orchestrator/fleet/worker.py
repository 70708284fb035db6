"""`farm worker`: a procrastinate worker that measures boards' jobs through farm's own runner.

A job is one board's cells of one submitted run. The worker resolves the board by name in ITS
inventory (its keys, its known_hosts: a submission carries none), fetches the run's files by
content hash, rebuilds the cells (orchestrator.fleet.manifest) and runs them with
`BenchRunner.run_board_of_run` — the code `farm bench` runs for a board: facts, the board
lease, cells in order, each result stored as it ends (spooled if the database is away), cells
already stored skipped. procrastinate gives the rest: a job's `lock` (the board's name) means
a board never runs two jobs, its `queue` (the board's site) means a worker only takes boards it
serves, LISTEN/NOTIFY wakes an idle worker at once, and `--concurrency N` boards run at once.

Worker death. Each worker heartbeats; every `--heartbeat` seconds every worker looks for jobs
whose worker has not beaten for `--stalled-after` seconds (procrastinate's
`get_stalled_jobs`) and puts them back in the queue (`retry_job`, procrastinate's documented
recipe, run on a timer rather than as a periodic job so that a worker whose slots are all
busy still recovers the others' jobs). The next worker to take the job waits for the board's
lease (the dead worker's expires after `--lease-ttl`), and measures only the cells not stored.
A job this process is still running is never "recovered" by it, and its heartbeat is kept
alive by farm's own loop while the database comes and goes.

Database outages. procrastinate's worker stops when it loses the database; jobs in flight go
on measuring (their results spool, orchestrator.result_spool) and finish; `farm worker` then
reconnects with backoff for at most `--outage-wait` seconds before it gives up (exit 6).

Stopping: SIGINT/SIGTERM stops the cells running on the boards (as Ctrl-C stops farm bench)
and puts their jobs back in the queue for another worker; cells already stored are kept.
`farm queue cancel` stops a job for good (`cancelled`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import faulthandler
import os
import platform
import secrets
import signal
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from orchestrator.boards import Board
from orchestrator.errors import AgentError, StoreError, TransportError
from orchestrator.fleet import state
from orchestrator.fleet.gate import GateOptions
from orchestrator.fleet.manifest import FleetPlan, materialize, materialize_pairs, settings_of_run
from orchestrator.fleet.queue import TASK_NAME, board_queue, check_queue_name, ensure_queue_schema, make_app, \
    require_postgresql
from orchestrator.result_spool import recover_spooled
from orchestrator.store import open_store

Event = Callable[[str, dict[str, Any]], None]
STOP_DIAGNOSIS_AFTER_S = 30  # SIGTERM to exit; past it the worker prints where it waits
MAX_ATTEMPTS = 20  # database errors and worker shutdowns retry a job; stalls are recovered apart
ABORT_POLL_S = 0.2  # how often a running job looks at procrastinate's in-memory abort flag
CELLS_CACHE_RUNS = 8  # runs whose rebuilt cells a worker keeps (several boards of a run share them)


class WorkerStopping(Exception):
    """The worker is stopping: the job goes back to the queue (procrastinate retries it)."""


@dataclasses.dataclass
class WorkerConfig:
    db_url: str
    inventory: str | None = None
    queues: Sequence[str] = ()  # empty: every queue the inventory's boards are in
    concurrency: int = 4  # boards measured at once
    name: str | None = None
    heartbeat_s: float = 10.0
    stalled_after_s: float = 60.0  # a worker silent this long is dead: its jobs go back in the queue
    outage_wait_s: float = 300.0  # how long a lost database is waited for before the worker exits
    poll_s: float = 5.0  # looks for jobs this often even when no NOTIFY came


class JobExecutor:
    """Runs board jobs (one per thread) and knows which are in flight, to stop or keep them alive."""

    def __init__(self, store, boards: Mapping[str, Board], inventory: str | None, name: str, on_event: Event) -> None:
        self.store = store
        self.boards = dict(boards)
        self.inventory = inventory
        self.name = name
        self.on_event = on_event
        self._lock = threading.Lock()
        self._in_flight: dict[int, dict[str, Any]] = {}  # procrastinate job id -> worker id, runner, stopping
        self._stopping = threading.Event()
        # run id -> its plan and materialized cells (a worker runs several boards of a run)
        self._cells: dict[str, tuple[FleetPlan, list]] = {}

    def in_flight(self) -> dict[int, int | None]:
        """Running job id -> the procrastinate worker id that fetched it."""
        with self._lock:
            return {job_id: entry["worker_id"] for job_id, entry in self._in_flight.items()}

    def stop_all(self) -> None:
        """The worker is stopping: stop every running job's cells (their jobs are re-queued)."""
        self._stopping.set()
        with self._lock:
            runners = [entry["runner"] for entry in self._in_flight.values() if entry["runner"] is not None]
        for runner in runners:
            runner.stop()

    def run(self, context, run_id: str, board_name: str) -> str:
        job = context.job
        with self._lock:
            self._in_flight[job.id] = {"worker_id": job.worker_id, "runner": None}
        try:
            return self._run(context, run_id, board_name)
        finally:
            with self._lock:
                self._in_flight.pop(job.id, None)

    def _run(self, context, run_id: str, board_name: str) -> str:
        from procrastinate.exceptions import JobAborted

        from orchestrator.runner import BenchRunner

        job = context.job
        attempt = int(job.attempts) + 1
        if self._stopping.is_set():
            raise WorkerStopping("the worker is stopping")
        recover_spooled(self.store)  # results a dead worker on this machine spooled: stored before we look
        if not state.start_job(self.store, run_id, board_name, self.name, attempt):
            self.on_event("job_skipped", {"run_id": run_id, "board": board_name})
            return "skipped: cancelled or already done"
        self.on_event("job_started", {"run_id": run_id, "board": board_name, "attempt": attempt})
        try:
            fleet = state.load_fleet_run(self.store, run_id)
            settings = settings_of_run(fleet.settings)
            plan, cells = self._cells_of(fleet)
            board = self.boards.get(board_name)
            runner = BenchRunner(self.store, [board or Board(name=board_name)], cells, settings, forks=1,
                                 on_event=self._progress(run_id, board_name), resume_run_id=run_id,
                                 done_cells=self.store.done_cells(run_id), inventory=self.inventory,
                                 pairs=materialize_pairs(self.store, plan, board_name),
                                 thresholds=GateOptions.from_json(fleet.gate_json).thresholds())
            if board is None:
                missing = TransportError(
                    f"worker {self.name} has no board named {board_name!r} in its inventory "
                    f"({self.inventory or 'the built-in local board'}); every worker serving queue "
                    f"{fleet_queue_of(fleet, board_name)!r} must list it", kind="unreachable")
                unknown = Board(name=board_name)
                try:
                    runner._fail_all(run_id, unknown, runner.cells_for(unknown), missing, {})  # noqa: SLF001
                    runner.results.drain()
                finally:
                    runner.results.close()
            else:
                self._measure(context, job.id, runner, run_id, board)
        except JobAborted:
            # if the database is away this raises StoreError: the job is retried, and its start sees the cancel
            state.end_job(self.store, run_id, board_name, "cancelled", "cancelled while running (farm queue cancel)")
            raise
        except WorkerStopping:
            self._end(run_id, board_name, "waiting", "the worker stopped: back in the queue")
            raise
        except StoreError as exc:
            self._end(run_id, board_name, "waiting" if attempt < MAX_ATTEMPTS else "failed", str(exc))
            self.on_event("job_failed", {"run_id": run_id, "board": board_name, "error": f"{exc} (retried)"})
            raise
        except Exception as exc:  # a bug: the job fails, the run ends as failed rather than hanging
            self._end(run_id, board_name, "failed", f"{type(exc).__name__}: {exc}")
            self.on_event("job_failed", {"run_id": run_id, "board": board_name, "error": f"{type(exc).__name__}: {exc}"})
            raise
        # not swallowed: a job whose end could not be recorded is retried (procrastinate) and ends on the retry,
        # with every cell already stored; otherwise its run would never end
        status = state.end_job(self.store, run_id, board_name, "done", None)
        self.on_event("job_done", {"run_id": run_id, "board": board_name, "run_status": status})
        return "done"

    def _cells_of(self, fleet: state.FleetRun) -> tuple[FleetPlan, list]:
        """The run's plan, read once, and its cells, materialized once per run on this worker."""
        with self._lock:
            cached = self._cells.get(fleet.run_id)
        if cached is None:
            plan = FleetPlan.from_json(fleet.plan_json)
            cached = (plan, materialize(self.store, plan))
            with self._lock:
                while len(self._cells) >= CELLS_CACHE_RUNS:
                    self._cells.pop(next(iter(self._cells)))
                self._cells[fleet.run_id] = cached
        return cached

    def _measure(self, context, job_id: int, runner, run_id: str, board: Board) -> None:
        """The board's cells; a cancel (procrastinate abort) or a stopping worker stops them."""
        from procrastinate.exceptions import JobAborted

        with self._lock:
            self._in_flight[job_id]["runner"] = runner
        if self._stopping.is_set():  # stop_all ran before the runner was registered
            raise WorkerStopping("the worker is stopping")
        ended = threading.Event()
        aborted = threading.Event()

        def watch() -> None:  # ends with the job: bounded by it
            while not ended.wait(ABORT_POLL_S):
                if context.should_abort():
                    aborted.set()
                    runner.stop()
                    return

        watcher = threading.Thread(target=watch, name=f"farm-abort-{board.name}", daemon=True)
        watcher.start()
        try:
            runner.run_board_of_run(run_id, board)
        except (TransportError, AgentError, StoreError, KeyboardInterrupt):
            # a stopped runner ends its board's work with KeyboardInterrupt, as Ctrl-C does in farm bench
            if not (aborted.is_set() or self._stopping.is_set()):
                raise
        finally:
            ended.set()
            watcher.join(timeout=10)
        if aborted.is_set():
            raise JobAborted("cancelled")
        if self._stopping.is_set():
            raise WorkerStopping("the worker is stopping")

    def _progress(self, run_id: str, board: str) -> Event:
        def on_event(kind: str, info: dict[str, Any]) -> None:
            try:
                if kind == "cell_started":
                    state.set_current_cell(self.store, run_id, board, f"{info['model']}/{info['variant']}")
                elif kind == "cell_phase":  # load, first_inference, warmup, measure, accuracy
                    text = f"{info['model']}/{info['variant']}: {info.get('phase')}"
                    state.set_current_cell(self.store, run_id, board, text, wake_waiters=False)
                elif kind in ("cell_finished", "cell_failed"):
                    state.set_current_cell(self.store, run_id, board, None)
            except StoreError:
                pass  # progress is best effort; results have their spool
            self.on_event(kind, {**info, "run_id": run_id})

        return on_event

    def _end(self, run_id: str, board: str, job_state: str, message: str | None) -> str | None:
        try:
            return state.end_job(self.store, run_id, board, job_state, message)
        except StoreError:
            return None  # the database is away: the job is retried (or recovered) and ends then


def fleet_queue_of(fleet: state.FleetRun, board: str) -> str:
    plan = FleetPlan.from_json(fleet.plan_json)
    return next((b.queue for b in plan.boards if b.name == board), "?")


def run_worker(config: WorkerConfig, on_event: Event = lambda kind, info: None) -> None:
    """Serve the queues until SIGINT/SIGTERM (or a database lost for longer than outage_wait_s)."""
    from procrastinate import RetryStrategy

    from orchestrator.request import resolve_boards

    url = require_postgresql(config.db_url, "farm worker")
    boards = {board.name: board for board in resolve_boards(config.inventory, None, False)}
    served = {board_queue(b) for b in boards.values()}
    queues = [check_queue_name(q) for q in config.queues] or sorted(served)
    unknown = [q for q in queues if q not in served]
    if unknown:
        from orchestrator.errors import UsageError

        raise UsageError(f"--queue {', '.join(unknown)}: no board of {config.inventory or 'the built-in local board'} "
                         f"is in it (its boards' queues: {', '.join(sorted(served))}; a board's queue is its queue "
                         "tag, else its site tag, else 'default')")
    if config.stalled_after_s < 2 * config.heartbeat_s:
        from orchestrator.errors import UsageError

        raise UsageError(f"--stalled-after ({config.stalled_after_s:g} s) must be at least twice --heartbeat "
                         f"({config.heartbeat_s:g} s): a live worker would look dead")
    name = config.name or f"{platform.node()}:{os.getpid()}:{secrets.token_hex(2)}"
    store = open_store(url)
    try:
        ensure_queue_schema(store)
        state.register_worker(store, name, os.getpid(), queues, config.concurrency)
        executor = JobExecutor(store, boards, config.inventory, name, on_event)
        app = make_app(url, max_connections=config.concurrency + 4)

        @app.task(name=TASK_NAME, pass_context=True,
                  retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2,
                                      retry_exceptions={StoreError, WorkerStopping}))
        def run_board(context, run_id: str, board: str) -> str:
            return executor.run(context, run_id, board)

        warm_up()
        on_event("worker_started", {"name": name, "queues": queues, "boards": sorted(boards),
                                    "concurrency": config.concurrency})
        try:
            asyncio.run(_serve(app, store, executor, config, queues, name, on_event))
        finally:
            try:
                state.worker_seen(store, name, stopped=True)
            except StoreError:
                pass
    finally:
        store.close()


def warm_up() -> None:
    """Import what a job needs before taking one: a fresh worker's first job should not pay for
    loading onnx, paramiko and the runner (about a second of CPU on a small machine)."""
    import orchestrator.accuracy.on_board  # noqa: F401
    import orchestrator.accuracy.task  # noqa: F401
    import orchestrator.runner  # noqa: F401
    import orchestrator.transport.ssh  # noqa: F401
    import procrastinate.worker  # noqa: F401


async def _serve(app, store, executor: JobExecutor, config: WorkerConfig, queues: list[str], name: str,
                 on_event: Event) -> None:
    loop = asyncio.get_running_loop()
    # procrastinate runs sync jobs in the loop's default executor: one thread per concurrent board
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=config.concurrency + 4,
                                                                    thread_name_prefix="farm-job"))
    stopping = asyncio.Event()

    def stop_requested() -> None:
        first = not stopping.is_set()
        stopping.set()
        if first:
            # A stop should take seconds; one that hangs (here, or joining threads as the process
            # exits) prints every thread's stack to stderr, the worker's log, so the wait can be
            # found. A stderr without a file descriptor cannot take it: the stop goes on without.
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                faulthandler.dump_traceback_later(STOP_DIAGNOSIS_AFTER_S, exit=False)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested)
    lost_since: float | None = None
    delay_s = 1.0
    while not stopping.is_set():  # one pass per procrastinate worker; bounded by outage_wait_s when it fails
        try:
            async with app.open_async():
                lost_since, delay_s = None, 1.0
                await _serve_once(app, store, executor, config, queues, name, stopping, on_event)
        except Exception as exc:  # noqa: BLE001 - the database went away: reconnect below, bounded
            on_event("worker_disconnected", {"error": f"{type(exc).__name__}: {exc}"})
        if stopping.is_set():
            break
        lost_since = lost_since or time.monotonic()
        if time.monotonic() - lost_since > config.outage_wait_s:
            raise StoreError(f"farm worker {name}: the database did not come back within "
                             f"{config.outage_wait_s:g} s (--outage-wait)")
        on_event("worker_reconnecting", {"delay_s": delay_s})
        try:
            await asyncio.wait_for(stopping.wait(), timeout=delay_s)
        except asyncio.TimeoutError:
            pass
        delay_s = min(delay_s * 2, 15.0)


async def _serve_once(app, store, executor: JobExecutor, config: WorkerConfig, queues: list[str], name: str,
                      stopping: asyncio.Event, on_event: Event) -> None:
    worker = asyncio.create_task(app.run_worker_async(
        queues=queues, concurrency=config.concurrency, name=name, install_signal_handlers=False,
        update_heartbeat_interval=config.heartbeat_s, stalled_worker_timeout=config.stalled_after_s,
        fetch_job_polling_interval=config.poll_s, abort_job_polling_interval=min(config.poll_s, 2.0),
        shutdown_graceful_timeout=None, listen_notify=True), name="farm-procrastinate-worker")
    keeper = asyncio.create_task(_keep_alive_and_recover(app, store, executor, config, name, on_event),
                                 name="farm-recovery")
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({worker, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            executor.stop_all()  # cells stop on the boards; their jobs go back to the queue
            worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise
    finally:
        for task in (keeper, stop):
            task.cancel()
        await asyncio.gather(keeper, stop, return_exceptions=True)


async def _keep_alive_and_recover(app, store, executor: JobExecutor, config: WorkerConfig, name: str,
                                  on_event: Event) -> None:
    """Every heartbeat: keep this process's in-flight jobs alive (their procrastinate worker may
    have stopped with a database outage), mark this worker seen, and put the jobs of dead
    workers back in the queue. Errors (the database away) are skipped until the next beat."""
    while True:
        await asyncio.sleep(config.heartbeat_s)  # a timer between checks, not a synchronisation
        mine = executor.in_flight()
        for worker_id in {w for w in mine.values() if w is not None}:
            try:
                await asyncio.wait_for(app.job_manager.update_heartbeat(worker_id), timeout=config.heartbeat_s)
            except Exception:  # noqa: BLE001 - retried next beat
                pass
        try:
            await asyncio.to_thread(state.worker_seen, store, name)
            stalled = await asyncio.wait_for(app.job_manager.get_stalled_jobs(
                task_name=TASK_NAME, seconds_since_heartbeat=config.stalled_after_s), timeout=config.heartbeat_s * 2)
        except Exception:  # noqa: BLE001 - retried next beat
            continue
        for job in stalled:
            if job.id in mine:
                continue  # ours and alive: never recovered by ourselves
            try:
                await app.job_manager.retry_job(job)
                on_event("job_recovered", {"job_id": job.id, "board": job.lock, "worker_id": job.worker_id})
            except Exception:  # noqa: BLE001 - another worker recovered it first
                pass


__all__ = ["JobExecutor", "WorkerConfig", "WorkerStopping", "run_worker", "settings_of_run"]
