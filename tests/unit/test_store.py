"""The SQLite store: versioned schema, runs and results, atomic writes, export names."""
from __future__ import annotations

import sqlalchemy as sa
import pytest

from orchestrator import store as store_mod
from orchestrator.errors import BadInputError, StoreError
from orchestrator.record import EXPORT_FIELDS
from orchestrator.store import SCHEMA_VERSION, open_store


def ok_row(board="local", model="m", variant="fp32", **extra):
    row = {
        "board": board, "model": model, "variant": variant, "settings_hash": "s", "status": "ok",
        "runs": 3, "latency_ms_p50": 1.5, "peak_rss_bytes": 123, "model_size_bytes": 10,
        "facts": {"arch": "x86_64"}, "details": {"export": {"cpu_percent_mean": 97.0}},
    }
    row.update(extra)
    return row


def test_new_database_gets_current_schema(db_url):
    store = open_store(db_url)
    with store.engine.connect() as conn:
        versions = conn.execute(sa.select(store_mod.schema_version.c.version)).scalars().all()
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert store.migrate() == SCHEMA_VERSION  # idempotent: nothing applied twice
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store_mod.schema_version)).scalar() == SCHEMA_VERSION


def test_newer_database_is_refused(db_url):
    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(store_mod.schema_version.insert().values(version=SCHEMA_VERSION + 1, applied_at="x"))
    store.close()
    with pytest.raises(StoreError) as info:
        open_store(db_url)
    assert "newer" in str(info.value) and "upgrade farm" in str(info.value)


def test_results_round_trip_and_export_names(db_url):
    store = open_store(db_url)
    run_id = store.create_run({"runs": 3}, {"host": "h"}, "0.1.0")
    result_id = store.add_result(run_id, ok_row(), latency_ms=[1.0, 1.5, 2.0], timeseries=[{"t_s": 0.0}])
    assert store.series(result_id) == ([1.0, 1.5, 2.0], [{"t_s": 0.0}])
    [record] = store.export_records("latest")
    assert set(EXPORT_FIELDS) <= set(record)
    assert record["run_id"] == run_id and record["latency_ms_p50"] == 1.5
    assert record["cpu_percent_mean"] == 97.0  # measurement fields from details reach the export
    assert store.results(run_id)[0]["facts"] == {"arch": "x86_64"}


def test_latest_prefix_and_unknown_run_ids(db_url):
    store = open_store(db_url)
    with pytest.raises(BadInputError, match="no runs stored yet"):
        store.resolve_run_id("latest")
    first = store.create_run({}, {}, "0.1.0")
    second = store.create_run({}, {}, "0.1.0")
    assert store.resolve_run_id("latest") in (first, second)
    assert store.resolve_run_id(first) == first
    assert store.resolve_run_id(first[:-2]) == first or first[:-2] == second[:-2]
    with pytest.raises(BadInputError, match="no run"):
        store.resolve_run_id("r1999")
    with pytest.raises(BadInputError, match="ambiguous"):
        store.resolve_run_id("r")


def test_a_failing_write_leaves_no_half_row(db_url):
    store = open_store(db_url)
    run_id = store.create_run({}, {}, "0.1.0")
    store.add_result(run_id, ok_row())
    with pytest.raises(StoreError):
        # the same cell twice violates the unique key: the whole transaction must roll back
        store.add_result(run_id, ok_row(), latency_ms=[1.0])
    assert store.count_results(run_id) == 1
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store_mod.result_series)).scalar() == 1


def test_unusable_database_url_is_a_store_error(tmp_path):
    with pytest.raises(StoreError):
        open_store("nosuchdialect://x")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{blocker}/sub/farm.db")


def test_urls_and_paths_are_normalized(tmp_path):
    from orchestrator.store import normalize_db_url

    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"


def test_since_accepts_dates_times_and_ages():
    import datetime as dt

    from orchestrator.store import since_iso

    assert since_iso(None) is None
    assert since_iso("2026-11-25") == "2026-11-25T00:00:00.000+00:00"
    assert since_iso(dt.date(2026, 11, 25)) == "2026-11-25T00:00:00.000+00:00"
    assert since_iso("2026-11-25T12:30") == "2026-11-25T12:30:00.000+00:00"  # naive = UTC
    assert since_iso("2026-11-25T14:30+02:00") == "2026-11-25T12:30:00.000+00:00"
    week_ago = dt.datetime.fromisoformat(since_iso("7d"))
    assert abs((dt.datetime.now(dt.timezone.utc) - week_ago) - dt.timedelta(days=7)) < dt.timedelta(minutes=1)
    with pytest.raises(BadInputError, match="cannot read the date"):
        since_iso("last tuesday")


@pytest.mark.parametrize("since", ["99999999d", "1000000000000d", "999999999999999999999999w",
                                   "9" * 5000 + "h", "0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00"])
def test_since_out_of_range_is_bad_input_not_an_overflow(since):
    from orchestrator.store import since_iso

    with pytest.raises(BadInputError, match="out of range: it must fall within years 1 to 9999"):
        since_iso(since)


def test_store_is_a_context_manager(db_url):
    with open_store(db_url) as store:
        store.create_run({}, {}, "0.1.0")
    with open_store(db_url) as store:
        assert len(store.list_runs()) == 1
