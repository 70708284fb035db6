"""The Store API on SQLite and PostgreSQL: results, resume, tags, listing, history, batches."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from orchestrator import store as store_mod
from orchestrator.errors import BadInputError, StoreError
from orchestrator.record import EXPORT_FIELDS, ResultRecord
from orchestrator.store import CellKey, open_store
from tests.store._support import failed_row, ok_row


@pytest.fixture
def store(db_url):
    opened = open_store(db_url)
    yield opened
    opened.close()


def set_created(store, run_id: str, when: str) -> None:
    """Date a run (and its results) in the past, as if it ran then."""
    with store.engine.begin() as conn:
        conn.execute(store_mod.runs.update().where(store_mod.runs.c.run_id == run_id).values(created_at=when))
        conn.execute(store_mod.results.update().where(store_mod.results.c.run_id == run_id).values(created_at=when))


def test_result_round_trip_keeps_keys_samples_and_series(store):
    run_id = store.create_run({"runs": 3}, {"hostname": "h"}, "0.1.0")
    result_id = store.add_result(run_id, ok_row(settings_hash="abc"), latency_ms=[1.0, 1.5, 2.0],
                                 timeseries=[{"t_s": 0.0, "rss_bytes": 7}])
    assert store.series(result_id) == ([1.0, 1.5, 2.0], [{"t_s": 0.0, "rss_bytes": 7}])
    [record] = store.export_records("latest")
    assert set(EXPORT_FIELDS) <= set(record)
    assert (record["run_id"], record["board"], record["model_sha256"], record["variant"], record["settings_hash"]) == (
        run_id, "local", "a" * 64, "fp32", "abc")
    assert record["cpu_percent_mean"] == 97.0 and record["noisy"] is False
    assert store.results(run_id)[0]["facts"] == {"arch": "x86_64"}


def test_an_ok_cell_cannot_be_written_twice_and_nothing_half_written(store):
    run_id = store.create_run({}, {}, "0.1.0")
    store.add_result(run_id, ok_row(), latency_ms=[1.0])
    with pytest.raises(StoreError, match="already has an ok result"):
        store.add_result(run_id, ok_row(), latency_ms=[2.0])
    assert store.count_results(run_id) == 1
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store_mod.result_series)).scalar() == 1


def test_resume_reruns_failed_cells_and_keeps_their_history(store):
    run_id = store.create_run({}, {}, "0.1.0")
    store.add_result(run_id, ok_row(board="a"), latency_ms=[1.0])
    store.add_result(run_id, failed_row(board="b", kind="unreachable", message="no route"))
    store.finish_run(run_id, "interrupted")
    assert store.get_run(run_id)["status"] == "interrupted"

    assert store.done_cells(run_id) == {CellKey("a", "m", "fp32", "s")}
    assert store.reopen_run(run_id[:10]) == run_id
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["finished_at"] is None and run["resumed_at"]

    store.add_result(run_id, failed_row(board="b", kind="timeout", message="took too long"))  # fails again
    new_id = store.add_result(run_id, ok_row(board="b"), latency_ms=[3.0, 4.0])  # then works
    store.finish_run(run_id, "finished")

    assert store.done_cells(run_id) == {CellKey("a", "m", "fp32", "s"), CellKey("b", "m", "fp32", "s")}
    assert store.count_results(run_id) == 2
    [b] = [r for r in store.results(run_id) if r["board"] == "b"]
    assert b["result_id"] == new_id and b["status"] == "ok"
    assert [(a["error_kind"], a["error_message"]) for a in b["details"]["previous_attempts"]] == [
        ("unreachable", "no route"), ("timeout", "took too long")]
    assert store.series(new_id)[0] == [3.0, 4.0]
    with store.engine.connect() as conn:  # the replaced rows' series went with them
        assert conn.execute(sa.select(sa.func.count()).select_from(store_mod.result_series)).scalar() == 2


def test_done_cells_distinguish_settings(store):
    run_id = store.create_run({}, {}, "0.1.0")
    store.add_result(run_id, ok_row(settings_hash="s1"))
    assert store.done_cells(run_id) == {CellKey("local", "m", "fp32", "s1")}
    store.add_result(run_id, ok_row(settings_hash="s2"))  # another settings hash is another cell
    assert len(store.done_cells(run_id)) == 2


def test_finish_run_rejects_unknown_statuses(store):
    run_id = store.create_run({}, {}, "0.1.0")
    with pytest.raises(ValueError):
        store.finish_run(run_id, "done")


def test_tags_name_one_run_and_move_when_reused(store):
    first = store.create_run({}, {}, "0.1.0")
    second = store.create_run({}, {}, "0.1.0")
    assert store.tag_run(first, "release-1.2") is None
    assert store.tag_run(first, "nightly") is None
    assert store.resolve_run_id("tag:release-1.2") == first
    assert store.tag_run(second, "release-1.2") == first  # moved
    assert store.resolve_run_id("tag:release-1.2") == second
    assert store.tag_run(second, "release-1.2") is None  # already there
    assert store.tags() == {"nightly": first, "release-1.2": second}
    assert store.get_run(first)["tags"] == ["nightly"]
    assert store.untag("nightly") == first
    with pytest.raises(BadInputError, match="no run is tagged 'nightly'"):
        store.resolve_run_id("tag:nightly")
    for bad in ("", "has space", "-dash", "a/b", "x" * 101):
        with pytest.raises(BadInputError, match="bad tag name"):
            store.tag_run(first, bad)
    with pytest.raises(BadInputError, match="no run"):
        store.tag_run("r1999", "x")


def test_run_ids_latest_prefix_unknown_ambiguous(store):
    with pytest.raises(BadInputError, match="no runs stored yet"):
        store.resolve_run_id("latest")
    first = store.create_run({}, {}, "0.1.0")
    set_created(store, first, "2026-01-01T00:00:00.000+00:00")
    second = store.create_run({}, {}, "0.1.0")
    assert store.resolve_run_id("latest") == second
    assert store.resolve_run_id(first) == first
    with pytest.raises(BadInputError, match="no run 'r1999'"):
        store.resolve_run_id("r1999")
    with pytest.raises(BadInputError, match="ambiguous"):
        store.resolve_run_id("r")


def test_list_runs_filters_by_board_model_and_date(store):
    old = store.create_run({}, {}, "0.1.0")
    store.add_result(old, ok_row(board="rpi4", model="yolo"))
    store.add_result(old, failed_row(board="jetson", model="yolo"))
    set_created(store, old, "2026-11-01T08:00:00.000+00:00")
    new = store.create_run({}, {}, "0.1.0")
    store.add_result(new, ok_row(board="jetson", model="resnet"))
    store.tag_run(old, "v1")

    runs = store.list_runs()
    assert [r["run_id"] for r in runs] == [new, old]
    assert (runs[1]["results"], runs[1]["failed"], runs[1]["tags"]) == (2, 1, ["v1"])
    assert [r["run_id"] for r in store.list_runs(board="rpi4")] == [old]
    assert [r["run_id"] for r in store.list_runs(board="jetson")] == [new, old]
    assert [r["run_id"] for r in store.list_runs(board="jetson", model="resnet")] == [new]
    assert [r["run_id"] for r in store.list_runs(since="2026-11-02")] == [new]
    assert [r["run_id"] for r in store.list_runs(since=dt.date(2026, 11, 1))] == [new, old]
    assert store.list_runs(limit=1)[0]["run_id"] == new


def test_history_oldest_first_with_variant_filter_and_last(store):
    ids = []
    for day, p50 in ((1, 10.0), (2, 11.0), (3, 12.0)):
        run_id = store.create_run({}, {}, "0.1.0")
        store.add_result(run_id, ok_row(board="rpi4", model="yolo", variant="fp32", latency_ms_p50=p50,
                                        peak_rss_bytes=int(p50 * 1e6)))
        store.add_result(run_id, ok_row(board="rpi4", model="yolo", variant="fp16", latency_ms_p50=p50 / 2))
        store.add_result(run_id, ok_row(board="other", model="yolo", variant="fp32"))
        set_created(store, run_id, f"2026-11-0{day}T00:00:00.000+00:00")
        ids.append(run_id)
    entries = store.history("rpi4", "yolo", "fp32")
    assert [e["run_id"] for e in entries] == ids
    assert [e["latency_ms_p50"] for e in entries] == [10.0, 11.0, 12.0]
    assert [e["peak_rss_bytes"] for e in entries] == [10_000_000, 11_000_000, 12_000_000]
    assert [e["run_id"] for e in store.history("rpi4", "yolo", "fp32", last=2)] == ids[1:]
    assert len(store.history("rpi4", "yolo")) == 6
    assert [e["run_id"] for e in store.history("rpi4", "yolo", "fp32", since="2026-11-02")] == ids[1:]
    assert store.history("rpi4", "nope") == []


def test_history_query_uses_the_index(tmp_path):
    store = open_store(str(tmp_path / "farm.db"))
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM results WHERE board='b' AND model='m' AND variant='v' "
            "ORDER BY created_at DESC").all()
    assert "ix_results_history" in " ".join(str(row) for row in plan)


def test_cell_history_serves_many_cells_up_to_a_run_and_the_last_runs(store):
    """The report's history: ok results with a median, of the newest N runs up to a run, for
    several boards × models at once, each entry naming its run's start and tags."""
    ids = []
    for day in (1, 2, 3, 4):
        run_id = store.create_run({}, {}, "0.1.0")
        store.add_result(run_id, ok_row(board="rpi4", model="yolo", latency_ms_p50=float(day)))
        store.add_result(run_id, ok_row(board="jetson", model="resnet", latency_ms_p50=None))
        store.add_result(run_id, failed_row(board="jetson", model="yolo"))
        set_created(store, run_id, f"2026-11-0{day}T00:00:00.000+00:00")
        ids.append(run_id)
    store.tag_run(ids[1], "v1")
    entries = store.cell_history(["rpi4", "jetson"], ["yolo", "resnet"], until="2026-11-03T00:00:00.000+00:00",
                                 last_runs=2, ok_only=True)
    assert [(e.run_id, e.board, e.latency_ms_p50) for e in entries] == [(ids[1], "rpi4", 2.0), (ids[2], "rpi4", 3.0)]
    assert entries[0].tags == ("v1",) and entries[0].run_created_at == "2026-11-02T00:00:00.000+00:00"
    everything = store.cell_history(["rpi4", "jetson"], ["yolo", "resnet"])
    assert len(everything) == 12 and {e.status for e in everything} == {"ok", "failed"}
    assert [e.run_id for e in store.cell_history("jetson", "yolo", last_results=1)] == [ids[3]]


def test_query_results_filters(store):
    run_id = store.create_run({}, {}, "0.1.0")
    store.add_result(run_id, ok_row(board="a", variant="fp32"))
    store.add_result(run_id, ok_row(board="b", variant="fp16"))
    store.add_result(run_id, failed_row(board="c", variant="fp16"))
    assert {r["board"] for r in store.query_results(variant="fp16")} == {"b", "c"}
    assert {r["board"] for r in store.query_results(board=["a", "c"])} == {"a", "c"}
    assert {r["board"] for r in store.query_results(run_id, status="ok")} == {"a", "b"}
    assert store.query_results(since="2999-01-01") == []
    with pytest.raises(BadInputError, match="cannot read the date"):
        store.query_results(since="yesterday")


def test_batch_write_is_one_transaction(store):
    run_id = store.create_run({}, {}, "0.1.0")
    ids = store.add_results(run_id, [ResultRecord(ok_row(board=f"b{i}"), [float(i + 1)] * 3) for i in range(5)])
    assert len(ids) == 5 and store.latency_samples(ids) == {rid: [float(i + 1)] * 3 for i, rid in enumerate(ids)}
    with pytest.raises(StoreError):
        store.add_results(run_id, [ResultRecord(ok_row(board="new")), ResultRecord(ok_row(board="b0"))])
    assert store.count_results(run_id) == 5  # the batch with a duplicate left nothing


def test_latest_run_sharing_cells_skips_unfinished_and_unrelated_runs(store):
    base = store.create_run({}, {}, "0.1.0")
    store.add_result(base, ok_row(board="rpi4"))
    store.finish_run(base, "finished")
    set_created(store, base, "2026-11-01T00:00:00.000+00:00")
    unrelated = store.create_run({}, {}, "0.1.0")
    store.add_result(unrelated, ok_row(board="other"))
    store.finish_run(unrelated, "finished")
    set_created(store, unrelated, "2026-11-02T00:00:00.000+00:00")
    broken = store.create_run({}, {}, "0.1.0")
    store.add_result(broken, ok_row(board="rpi4"))
    store.finish_run(broken, "interrupted")
    set_created(store, broken, "2026-11-03T00:00:00.000+00:00")
    current = store.create_run({}, {}, "0.1.0")
    store.add_result(current, ok_row(board="rpi4"))
    assert store.latest_run_sharing_cells(current) == base
    assert store.latest_run_sharing_cells(current, statuses=("finished", "interrupted")) == broken


def test_settings_and_controller_are_kept(store):
    run_id = store.create_run({"runs": 7, "shapes": ["x=1"]}, {"hostname": "ci-1", "argv": ["bench"]}, "0.2.0")
    run = store.get_run("latest")
    assert (run["run_id"], run["settings"], run["controller"], run["farm_version"]) == (
        run_id, {"runs": 7, "shapes": ["x=1"]}, {"hostname": "ci-1", "argv": ["bench"]}, "0.2.0")
    json.dumps(run)  # plain data


def test_unreachable_postgres_is_a_store_error():
    with pytest.raises(StoreError, match="cannot prepare"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")
