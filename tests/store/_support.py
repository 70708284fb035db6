"""Rows and worker processes shared by the store tests (workers must be importable: spawn)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def ok_row(board: str = "local", model: str = "m", variant: str = "fp32", **extra: Any) -> dict[str, Any]:
    row = {
        "board": board, "model": model, "variant": variant, "settings_hash": "s", "status": "ok",
        "model_sha256": "a" * 64, "runs": 3, "latency_ms_p50": 1.5, "peak_rss_bytes": 123,
        "model_size_bytes": 10, "facts": {"arch": "x86_64"},
        "details": {"export": {"cpu_percent_mean": 97.0, "noisy": False}},
    }
    row.update(extra)
    return row


def failed_row(board: str = "local", model: str = "m", variant: str = "fp32", kind: str = "unreachable",
               message: str = "no route to host", **extra: Any) -> dict[str, Any]:
    row = {
        "board": board, "model": model, "variant": variant, "settings_hash": "s", "status": "failed",
        "error_kind": kind, "error_message": message, "model_sha256": "a" * 64, "facts": {}, "details": {},
    }
    row.update(extra)
    return row


def samples(median_ms: float, n: int = 60, seed: int = 0, spread: float = 0.01) -> list[float]:
    """Latencies around `median_ms` with a relative spread, deterministic per seed."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in median_ms * (1.0 + spread * rng.standard_normal(n))]


def expected_latencies(writer: int, index: int) -> list[float]:
    """What writer `writer` stores as sample series number `index` (checked after the race)."""
    return [writer * 1000.0 + index + k / 8 for k in range(25)]


# --------------------------------------------------------------------------- worker processes


def write_many(url: str, run_id: str, writer: int, count: int, barrier) -> None:
    """Open the store and write `count` results as board `w{writer}`, one transaction each."""
    from orchestrator.store import open_store

    store = open_store(url)
    try:
        barrier.wait(timeout=60)
        for index in range(count):
            row = ok_row(board=f"w{writer}", model=f"m{index}", latency_ms_p50=float(index))
            store.add_result(run_id, row, expected_latencies(writer, index), [{"t_s": index, "rss_bytes": writer}])
    finally:
        store.close()


def open_at_once(url: str, barrier) -> None:
    """Open (create + migrate) the store right after the other process is ready too."""
    from orchestrator.store import SCHEMA_VERSION, open_store

    barrier.wait(timeout=60)
    store = open_store(url)
    version = store.schema_version()
    store.close()
    if version != SCHEMA_VERSION:
        raise SystemExit(f"schema version {version} after open")


def open_and_close(url: str) -> None:
    from orchestrator.store import open_store

    open_store(url).close()


def migrate_holding_lock(url: str, inside, timeout_s: float = 30.0) -> None:
    """Migrate, but inside the last step's transaction wait until another backend is waiting
    for the migration lock: proves that lock is held while a step runs (PostgreSQL only)."""
    import psycopg
    import sqlalchemy as sa

    from orchestrator import store as store_mod

    version, real_step = store_mod.MIGRATIONS[-1]

    def step(conn) -> None:
        real_step(conn)
        inside.set()
        parts = sa.engine.make_url(url)
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(host=parts.host, port=parts.port, user=parts.username, dbname=parts.database,
                             autocommit=True) as watcher:
            while True:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]
                if waiting:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("no other process waited for the migration lock")
                time.sleep(0.02)  # polling a condition with a deadline, not timing the other process

    store_mod.MIGRATIONS[-1] = (version, step)
    store_mod.open_store(url).close()


def run_all(ctx, target, arglists: list[tuple], timeout_s: float = 120.0) -> list[int]:
    """Start one process per argument tuple, wait for all (bounded), return their exit codes."""
    procs = [ctx.Process(target=target, args=args) for args in arglists]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return [proc.exitcode for proc in procs]
