"""Schema versions on SQLite and PostgreSQL: create, upgrade a real v1 database, refuse newer,
each step atomic, two controllers migrating at once."""
from __future__ import annotations

import importlib.util
import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator import store as store_mod
from orchestrator.errors import StoreError
from orchestrator.store import SCHEMA_VERSION, migrations, open_store
from tests.store import _support

V1_SOURCE = Path(__file__).parent / "fixtures" / "store_v1.py"


def load_v1_module():
    """The store module exactly as released with schema version 1."""
    spec = importlib.util.spec_from_file_location("farm_store_v1", V1_SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def versions(store) -> list[int]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(store_mod.schema_version.c.version).order_by("version")).scalars().all()


def test_new_database_gets_every_step_once(db_url):
    store = open_store(db_url)
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    assert store.migrate() == SCHEMA_VERSION
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    inspector = sa.inspect(store.engine)
    assert {"runs", "results", "result_series", "run_tags", "farm_schema"} <= set(inspector.get_table_names())
    assert "ix_results_history" in {ix["name"] for ix in inspector.get_indexes("results")}
    store.close()


def test_real_v1_database_is_upgraded_with_rows_intact(db_url):
    v1 = load_v1_module()
    assert v1.SCHEMA_VERSION == 1
    old = v1.open_store(db_url)
    run_id = old.create_run({"runs": 3}, {"hostname": "ci"}, "0.1.0")
    row = _support.ok_row(board="rpi4")
    row["details"]["export"].update(runtime="openvino", inference_precision="bf16")
    first = old.add_result(run_id, row, latency_ms=[1.0, 1.5, 2.0], timeseries=[{"t_s": 0.0, "rss_bytes": 5}])
    old.add_result(run_id, _support.failed_row(board="jetson"))
    old.finish_run(run_id, "finished")
    before = old.export_records(run_id)
    old.close()

    store = open_store(db_url)
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    assert store.export_records(run_id) == before
    assert store.series(first) == ([1.0, 1.5, 2.0], [{"t_s": 0.0, "rss_bytes": 5}])
    run = store.get_run(run_id)
    assert run["status"] == "finished" and run["settings"] == {"runs": 3} and run["resumed_at"] is None
    # what migration 2 added works on the upgraded database
    assert store.tag_run(run_id, "release-1.2") is None
    assert store.resolve_run_id("tag:release-1.2") == run_id
    assert store.done_cells(run_id) == {("rpi4", "m", "fp32", "s")}
    assert [e["run_id"] for e in store.history("rpi4", "m")] == [run_id]
    # migration 3 filled what each stored result ran on from its details (batch/threads unknown)
    [entry] = store.cell_history("rpi4", "m")
    assert (entry.runtime, entry.inference_precision, entry.batch, entry.threads) == ("openvino", "bf16", None, None)
    store.close()


def test_newer_database_is_refused_with_a_clear_message(db_url):
    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(store_mod.schema_version.insert().values(version=SCHEMA_VERSION + 1, applied_at="x"))
    store.close()
    with pytest.raises(StoreError) as info:
        open_store(db_url)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message and "newer" in message and "upgrade farm" in message


def test_a_failing_step_is_rolled_back_whole(db_url, monkeypatch):
    """DDL inside the transaction too: a step that fails half-way leaves no half schema."""
    open_store(db_url).close()

    def broken_step(conn):
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")  # fails: exists

    # patched where the migration runner reads them
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (SCHEMA_VERSION + 1, broken_step)])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot prepare"):
        open_store(db_url)
    monkeypatch.undo()
    store = open_store(db_url)
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    assert "half_done" not in sa.inspect(store.engine).get_table_names()
    store.close()


def test_upgrade_stops_at_a_target_version(db_url):
    engine_store = store_mod.Store(sa.create_engine(store_mod.normalize_db_url(db_url)))
    if engine_store.engine.dialect.name == "sqlite":
        sa.event.listen(engine_store.engine, "connect", store_mod._sqlite_connect)
        sa.event.listen(engine_store.engine, "begin", store_mod._sqlite_begin)
    assert engine_store.migrate(up_to=1) == 1
    assert "run_tags" not in sa.inspect(engine_store.engine).get_table_names()
    engine_store.close()
    store = open_store(db_url)
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_two_processes_migrating_a_new_database_at_once(db_url):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    assert _support.run_all(ctx, _support.open_at_once, [(db_url, barrier)] * 2) == [0, 0]
    store = open_store(db_url)
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    store.close()


@pytest.mark.postgres
def test_postgres_migration_steps_hold_the_advisory_lock(pg_url):
    """While one process is inside a step, a second one opening the database waits for it."""
    v1 = load_v1_module()
    v1.open_store(pg_url).close()  # a v1 database: the step to apply is migration 2
    ctx = multiprocessing.get_context("spawn")
    inside = ctx.Event()
    first = ctx.Process(target=_support.migrate_holding_lock, args=(pg_url, inside))
    first.start()
    try:
        assert inside.wait(timeout=60), "the first process never reached the migration step"
        assert _support.run_all(ctx, _support.open_and_close, [(pg_url,)]) == [0]
        first.join(timeout=120)
        assert first.exitcode == 0, "the first process saw nobody wait for the lock"
    finally:
        if first.is_alive():
            first.kill()
            first.join(timeout=10)
    store = open_store(pg_url)
    assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    store.close()
