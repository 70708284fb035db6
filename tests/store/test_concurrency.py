"""Two controllers writing results into one database at the same moment lose nothing."""
from __future__ import annotations

import multiprocessing

import sqlalchemy as sa

from orchestrator import store as store_mod
from orchestrator.store import open_store
from tests.store import _support

WRITES = 200


def test_two_processes_writing_200_results_each(db_url):
    store = open_store(db_url)
    run_id = store.create_run({}, {}, "test")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    codes = _support.run_all(ctx, _support.write_many, [(db_url, run_id, w, WRITES, barrier) for w in (1, 2)],
                             timeout_s=240)
    assert codes == [0, 0]

    assert store.count_results(run_id) == 2 * WRITES
    records = store.query_results(run_id, with_result_id=True)
    cells = {(r["board"], r["model"]) for r in records}
    assert cells == {(f"w{w}", f"m{i}") for w in (1, 2) for i in range(WRITES)}
    stored = store.latency_samples([r["result_id"] for r in records])
    for record in records:
        writer, index = int(record["board"][1:]), int(record["model"][1:])
        assert record["latency_ms_p50"] == float(index)
        assert stored[record["result_id"]] == _support.expected_latencies(writer, index)
    with store.engine.connect() as conn:
        series_rows = conn.execute(sa.select(sa.func.count()).select_from(store_mod.result_series)).scalar()
        orphans = conn.execute(
            sa.select(sa.func.count()).select_from(
                store_mod.result_series.outerjoin(
                    store_mod.results, store_mod.results.c.result_id == store_mod.result_series.c.result_id))
            .where(store_mod.results.c.result_id.is_(None))
        ).scalar()
    assert series_rows == 2 * WRITES and orphans == 0
    store.close()
