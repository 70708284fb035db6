"""Results the database cannot take right now wait in a local file and are written when it answers.

Why: a measurement takes minutes of board time and cannot be repeated identically; a database
restart must not throw it away. Before this, a 5 s PostgreSQL restart in the middle of a
`farm bench` ended it with exit 6 and none of the rows measured so far or after were kept.

How: `ResultSpool.add_result` has the signature of `Store.add_result`. A write that fails for
a connection-level reason (the server restarting, a cut network, a SQLite lock held past its
timeout) is appended to a spool file — one JSON line per result, fsync'ed before the call
returns — and the run goes on measuring. Each later write first writes what is spooled, in
order. `drain()` (end of a run, end of a fleet job) retries with exponential backoff for at
most `FARM_SPOOL_WAIT_S` seconds (default 300) and then raises StoreError naming the file.

Never a duplicate: a result whose first write did commit although the connection broke
before the answer came is refused by the store on replay (`CellAlreadyStoredError`: the cell
already has an ok result) and dropped from the spool.

Crash safety: a spool file lives in `<data dir>/spool/<hash of the database URL>/` and is held
under an flock by the process writing it. A file whose writer died (its lock is free) is
adopted and written by the next farm process that drains a spool for the same database
(`recover_spooled`, which a fleet worker calls before it reads what a run has stored).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from orchestrator.errors import StoreError
from orchestrator.paths import farm_data_dir
from orchestrator.store.result_writes import CellAlreadyStoredError

SPOOL_FORMAT_VERSION = 1
DEFAULT_DRAIN_WAIT_S = 300.0
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 15.0


def is_connection_error(exc: BaseException) -> bool:
    """A StoreError caused by the database being unreachable or busy, not by what was written."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
                          sa.exc.TimeoutError)):
        return True
    return bool(getattr(cause, "connection_invalidated", False))


def drain_wait_s() -> float:
    """How long `drain` keeps retrying: FARM_SPOOL_WAIT_S (seconds), default 300."""
    text = os.environ.get("FARM_SPOOL_WAIT_S", "").strip()
    try:
        return max(0.0, float(text)) if text else DEFAULT_DRAIN_WAIT_S
    except ValueError:
        return DEFAULT_DRAIN_WAIT_S


def spool_dir_for(store: Any) -> Path:
    """Where spooled results for this database are kept on this machine."""
    digest = hashlib.sha256(store.safe_url.encode()).hexdigest()[:16]
    return farm_data_dir() / "spool" / digest


class _SpoolFile:
    """One JSON-lines file of pending results, held under an exclusive flock while open."""

    def __init__(self, path: Path, handle) -> None:
        self.path = path
        self.handle = handle
        self.pending: list[dict[str, Any]] = []

    @classmethod
    def create(cls, folder: Path) -> "_SpoolFile":
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{int(time.time())}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        handle = open(path, "a+", encoding="utf-8")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        return cls(path, handle)

    @classmethod
    def adopt(cls, path: Path) -> "_SpoolFile | None":
        """The file of a process that died (its lock is free), with its entries; None if live."""
        try:
            handle = open(path, "a+", encoding="utf-8")
        except OSError:
            return None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        if not path.exists():  # written out and removed between listing and locking
            handle.close()
            return None
        spool = cls(path, handle)
        handle.seek(0)
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-append: its result was never acknowledged
            if isinstance(entry, dict) and entry.get("v") == SPOOL_FORMAT_VERSION:
                spool.pending.append(entry)
        return spool

    def append(self, entry: dict[str, Any]) -> None:
        self.handle.write(json.dumps(entry, default=str) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.pending.append(entry)

    def rewrite(self) -> None:
        """Keep only the entries still pending (after some were written)."""
        self.handle.seek(0)
        self.handle.truncate()
        for entry in self.pending:
            self.handle.write(json.dumps(entry, default=str) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        self.handle.close()


class ResultSpool:
    """`add_result` like the store's, spooling what the database cannot take now (thread-safe)."""

    def __init__(self, store: Any, on_event: Callable[[str, dict[str, Any]], None] = lambda kind, info: None,
                 folder: Path | None = None) -> None:
        self.store = store
        self.on_event = on_event
        self.folder = folder or spool_dir_for(store)
        self._lock = threading.Lock()
        self._own: _SpoolFile | None = None
        self._adopted: list[_SpoolFile] = []

    @property
    def pending_count(self) -> int:
        with self._lock:
            return self._pending_count()

    def _pending_count(self) -> int:
        return sum(len(s.pending) for s in self._files())

    def _files(self) -> list[_SpoolFile]:
        return [*self._adopted, *([self._own] if self._own is not None else [])]

    def add_result(self, run_id: str, row: Mapping[str, Any], latency_ms: Iterable[float] = (),
                   timeseries: Iterable[Mapping[str, Any]] = ()) -> int | None:
        """Write one result (see Store.add_result); returns its result_id, or None when it was
        spooled. Errors other than connection-level ones are raised as the store raises them."""
        latency_ms, timeseries = list(latency_ms), list(timeseries)
        with self._lock:
            if self._pending_count() and not self._flush_once():
                self._spool(run_id, row, latency_ms, timeseries, "the database is still unreachable")
                return None
        try:
            return self.store.add_result(run_id, row, latency_ms, timeseries)
        except CellAlreadyStoredError:
            if row.get("status") == "ok":
                raise  # two measurements of one cell: a bug, never hidden
            # a failure for a cell that another attempt measured (a fleet job retried while its first
            # worker was cut off): the ok result stands
            self.on_event("result_superseded", {"board": row.get("board"), "model": row.get("model"),
                                                "variant": row.get("variant")})
            return None
        except StoreError as exc:
            if not is_connection_error(exc):
                raise
            with self._lock:
                self._spool(run_id, row, latency_ms, timeseries, str(exc))
            return None

    def _spool(self, run_id: str, row: Mapping[str, Any], latency_ms: list[float],
               timeseries: list[Any], reason: str) -> None:
        if self._own is None:
            self._own = _SpoolFile.create(self.folder)
        self._own.append({"v": SPOOL_FORMAT_VERSION, "run_id": run_id, "row": dict(row), "latency_ms": latency_ms,
                          "timeseries": timeseries, "spooled_at": time.time()})
        self.on_event("result_spooled", {"board": row.get("board"), "model": row.get("model"),
                                         "variant": row.get("variant"), "path": str(self._own.path),
                                         "pending": self._pending_count(), "reason": reason})

    def _flush_once(self) -> bool:
        """Write every pending entry in order (caller holds the lock); True when none is left."""
        for spool in self._files():
            written = 0
            try:
                for entry in spool.pending:
                    try:
                        self.store.add_result(entry["run_id"], entry["row"], entry["latency_ms"], entry["timeseries"])
                    except CellAlreadyStoredError:
                        pass  # its first write committed although the answer was lost: never a duplicate
                    written += 1
            except StoreError as exc:
                if not is_connection_error(exc):
                    raise
                return False
            finally:
                if written:
                    del spool.pending[:written]
                    spool.rewrite()
                    self.on_event("results_unspooled", {"written": written, "pending": self._pending_count()})
        for spool in self._files():
            if not spool.pending:
                spool.close(remove=True)
        self._adopted = [s for s in self._adopted if s.pending]
        if self._own is not None and not self._own.pending:
            self._own = None
        return True

    def recover(self) -> int:
        """Adopt the spool files of dead processes for this database and try to write them once.
        Returns how many results are still pending."""
        with self._lock:
            self._adopt_orphans()
            if self._pending_count():
                self._flush_once()
            return self._pending_count()

    def _adopt_orphans(self) -> None:
        if not self.folder.is_dir():
            return
        mine = {s.path for s in self._files()}
        for path in sorted(self.folder.glob("*.jsonl")):
            if path in mine:
                continue
            adopted = _SpoolFile.adopt(path)
            if adopted is not None:
                self._adopted.append(adopted)

    def drain(self, wait_s: float | None = None, cancel: threading.Event | None = None) -> None:
        """Write everything spooled, retrying with exponential backoff for at most `wait_s`
        (default FARM_SPOOL_WAIT_S); StoreError naming the spool file when that is not enough."""
        wait_s = drain_wait_s() if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        delay_s = FIRST_RETRY_S
        stop = cancel or threading.Event()
        with self._lock:
            self._adopt_orphans()
        while True:
            with self._lock:
                if not self._pending_count() or self._flush_once():
                    return
                left = self._pending_count()
                paths = ", ".join(str(s.path) for s in self._files())
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0 or stop.is_set():
                raise StoreError(
                    f"database {self.store.safe_url} did not come back within {wait_s:.0f} s: {left} measured "
                    f"result(s) are kept in {paths}; the next farm bench or farm worker on this machine for this "
                    "database writes them (FARM_SPOOL_WAIT_S sets how long to wait)")
            self.on_event("spool_retry", {"pending": left, "delay_s": min(delay_s, remaining_s)})
            stop.wait(min(delay_s, remaining_s))
            delay_s = min(delay_s * 2, MAX_RETRY_S)

    def close(self) -> None:
        """Release the spool files (what is still pending stays on disk for the next process)."""
        with self._lock:
            for spool in self._files():
                spool.close(remove=not spool.pending)
            self._own, self._adopted = None, []


def recover_spooled(store: Any) -> int:
    """Write the results that dead farm processes on this machine spooled for this database.
    Returns how many are still pending (the database may be away again)."""
    spool = ResultSpool(store)
    try:
        return spool.recover()
    finally:
        spool.close()


__all__ = ["CellAlreadyStoredError", "ResultSpool", "drain_wait_s", "is_connection_error", "recover_spooled",
           "spool_dir_for"]
