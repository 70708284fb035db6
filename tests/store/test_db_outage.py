"""A PostgreSQL restart in the middle of a run loses no measurement (orchestrator.result_spool).

The server is stopped as a crash would stop it (`pg_ctl -m immediate`) right after the run's
first result was stored, and started again once a result has been spooled to the local file:
every cell measured before, during and after the outage ends up in the database, once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.errors import ExitStatus
from orchestrator.result_spool import ResultSpool, recover_spooled, spool_dir_for
from orchestrator.store import open_store
from tests.store import _support
from tests.store.pgserver import PostgresServer, PostgresUnavailable

pytestmark = pytest.mark.postgres

FAST = ["--runs", "5", "--min-seconds", "0.4", "--warmup", "1", "--threads", "1", "--sample-interval", "0",
        "--no-report"]
VARIANTS = "fp32,fp16,int8-dynamic,optimized"


@pytest.fixture
def own_server():
    """A server of this test's own: stopping it must not disturb the other tests' server."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL server could not start: {exc}")
        pytest.skip(f"PostgreSQL server could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `condition` until it returns something truthy (a state, not a time), or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"farm exited {proc.returncode} while waiting for {what}: {err[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def count_results(url: str) -> int:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("results"):
                return 0
            return int(conn.execute(sa.text("SELECT count(*) FROM results")).scalar() or 0)
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def spooled_lines(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*.jsonl")) if folder.is_dir() else 0


def test_a_postgresql_restart_mid_bench_keeps_every_measured_result(own_server, tmp_path, digits_model, yolo_model):
    url = own_server.create_database("outage")
    with open_store(url) as store:
        folder = spool_dir_for(store)
    env = {**os.environ, "FARM_SPOOL_WAIT_S": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "bench", "--db", url, "-m", str(digits_model), "-m",
         str(yolo_model), "--variants", VARIANTS, *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: count_results(url) >= 1, 180, "the first stored result", proc)
        own_server.stop_server()  # a crash: connections cut, nothing answers
        wait_for(lambda: spooled_lines(folder) >= 1, 180, "a result spooled during the outage", proc)
        own_server.start_server()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == ExitStatus.OK, err[-3000:]
    with open_store(url) as store:
        (run,) = store.list_runs()
        rows = store.query_results(run["run_id"])
    assert run["status"] == "finished"
    cells = [(r["model"], r["variant"]) for r in rows]
    assert sorted(cells) == sorted({(m, v) for m in ("digits_mlp", "yolo_timing") for v in VARIANTS.split(",")})
    assert all(r["status"] == "ok" for r in rows)
    assert spooled_lines(folder) == 0 and not list(folder.glob("*.jsonl"))  # written, then removed


def test_a_spool_left_by_a_dead_process_is_written_by_the_next_one(own_server, tmp_path):
    url = own_server.create_database("left")
    store = open_store(url)
    run_id = store.create_run({}, {}, "test")
    own_server.stop_server()
    spool = ResultSpool(store)
    assert spool.add_result(run_id, _support.ok_row(model="m1"), [1.0, 2.0], [{"t_s": 0}]) is None
    assert spool.add_result(run_id, _support.ok_row(model="m2"), [3.0], []) is None
    assert spool.pending_count == 2
    (path,) = spool.folder.glob("*.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["row"]["model"] for e in entries] == ["m1", "m2"]
    with pytest.raises(Exception, match="kept in"):
        spool.drain(wait_s=0.5)  # still down: a clear error naming the file, nothing lost
    assert path.exists()

    # while its writer lives, nobody else takes the file
    other = ResultSpool(store)
    own_server.start_server()
    assert other.recover() == 0 and store.count_results(run_id) == 0
    other.close()

    spool.close()  # the writer goes away (as a process exit releases the lock)
    assert recover_spooled(store) == 0
    assert sorted(r["model"] for r in store.query_results(run_id)) == ["m1", "m2"]
    assert not path.exists()
    # written once: adopting again finds nothing to write
    assert recover_spooled(store) == 0 and store.count_results(run_id) == 2
    store.close()


def test_a_result_whose_write_committed_is_not_written_twice(own_server):
    url = own_server.create_database("twice")
    store = open_store(url)
    run_id = store.create_run({}, {}, "test")
    store.add_result(run_id, _support.ok_row(model="m1"), [1.0], [])
    spool = ResultSpool(store)
    own_server.stop_server()
    assert spool.add_result(run_id, _support.ok_row(model="m1"), [1.0], []) is None  # as if the answer was lost
    own_server.start_server()
    spool.drain(wait_s=30)
    assert store.count_results(run_id) == 1 and spool.pending_count == 0
    spool.close()
    store.close()


def test_a_failure_for_a_cell_another_attempt_measured_is_dropped_not_raised(own_server):
    url = own_server.create_database("superseded")
    store = open_store(url)
    run_id = store.create_run({}, {}, "test")
    store.add_result(run_id, _support.ok_row(model="m1"), [1.0], [])
    seen = []
    spool = ResultSpool(store, on_event=lambda kind, info: seen.append(kind))
    assert spool.add_result(run_id, _support.failed_row(model="m1", kind="busy"), [], []) is None
    assert seen == ["result_superseded"] and store.query_results(run_id)[0]["status"] == "ok"
    with pytest.raises(Exception, match="already has an ok result"):
        spool.add_result(run_id, _support.ok_row(model="m1"), [1.0], [])  # a second measurement is a bug: loud
    spool.close()
    store.close()
