"""orchestrator.results: DataFrames for notebooks, on both databases; exports incl. Parquet."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from orchestrator import results
from orchestrator.errors import UsageError
from orchestrator.export import export_run, export_run_bytes
from orchestrator.record import EXPORT_FIELDS
from orchestrator.store import open_store
from tests.store._support import failed_row, ok_row


@pytest.fixture
def filled(db_url):
    """Two runs: rpi4 and jetson × fp32/fp16, one failed job in the second run."""
    store = open_store(db_url)
    first = store.create_run({}, {}, "0.1.0")
    for board in ("rpi4", "jetson"):
        for variant in ("fp32", "fp16"):
            store.add_result(first, ok_row(board=board, variant=variant, latency_ms_p50=2.0),
                             latency_ms=[1.0, 2.0, 3.0])
    second = store.create_run({}, {}, "0.1.0")
    store.add_result(second, ok_row(board="rpi4", variant="fp32", latency_ms_p50=4.0), latency_ms=[4.0, 5.0])
    store.add_result(second, failed_row(board="jetson", variant="fp32"))
    yield store, first, second
    store.close()


def test_load_gives_one_row_per_result_with_export_names(filled, db_url):
    store, first, second = filled
    frame = results.load(db_url)  # by URL, as a notebook would
    assert len(frame) == 6
    assert list(frame.columns[: len(EXPORT_FIELDS)]) == list(EXPORT_FIELDS)
    assert "cpu_percent_mean" in frame.columns
    assert list(frame["run_id"]) == [first] * 4 + [second] * 2  # oldest run first
    assert str(frame["created_at"].dtype).startswith("datetime64") and frame["created_at"].dt.tz is not None
    assert frame["latency_ms_p50"].dtype == float


def test_load_filters(filled):
    store, first, second = filled
    assert len(results.load(store, run_id="latest")) == 2
    assert set(results.load(store, run_id=first[:-1])["run_id"]) == {first}
    assert set(results.load(store, board="rpi4")["variant"]) == {"fp32", "fp16"}
    only = results.load(store, board="jetson", variant="fp32")
    assert list(only["status"]) == ["ok", "failed"]
    assert len(results.load(store, model="m", variant=["fp16"])) == 2
    assert results.load(store, since="2999-01-01").empty
    empty = results.load(store, board="nope")
    assert empty.empty and list(empty.columns)[: len(EXPORT_FIELDS)] == list(EXPORT_FIELDS)


def test_load_samples_long_format(filled):
    store, first, second = filled
    frame = results.load_samples(store, first)
    assert list(frame.columns) == list(results.SAMPLE_COLUMNS)
    assert len(frame) == 12
    assert frame.groupby(["board", "variant"])["latency_ms"].median().tolist() == [2.0] * 4
    assert list(frame[(frame.board == "rpi4") & (frame.variant == "fp32")]["sample"]) == [0, 1, 2]
    latest = results.load_samples(store, "latest")
    assert list(latest["latency_ms"]) == [4.0, 5.0]  # the failed job has no samples
    assert results.load_samples(store, first, board="nope").empty


def test_json_and_csv_exports_agree(filled):
    store, first, _ = filled
    records = json.loads(export_run(store, first, "json"))
    rows = list(csv.DictReader(io.StringIO(export_run(store, first, "csv"))))
    assert [r["board"] for r in rows] == [r["board"] for r in records]
    assert list(rows[0])[: len(EXPORT_FIELDS)] == list(EXPORT_FIELDS)
    assert export_run_bytes(store, first, "csv") == export_run(store, first, "csv").encode()
    with pytest.raises(UsageError, match="unknown export format"):
        export_run(store, first, "xml")


def test_parquet_export_round_trips(filled):
    pytest.importorskip("pyarrow")
    store, _, second = filled
    frame = pd.read_parquet(io.BytesIO(export_run_bytes(store, second, "parquet")))
    assert list(frame.columns)[: len(EXPORT_FIELDS)] == list(EXPORT_FIELDS)
    assert list(frame["status"]) == ["ok", "failed"]
    assert frame["latency_ms_p50"].iloc[0] == 4.0 and pd.isna(frame["latency_ms_p50"].iloc[1])
    assert frame["cpu_percent_mean"].dtype == float


def test_parquet_without_pyarrow_says_what_to_install(filled, monkeypatch):
    store, first, _ = filled
    monkeypatch.setattr("orchestrator.export.parquet_available", lambda: False)
    with pytest.raises(UsageError, match=r"needs pyarrow.*pip install 'farm\[parquet\]'"):
        export_run_bytes(store, first, "parquet")

