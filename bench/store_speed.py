"""How fast is the results store with a long history, on SQLite and on PostgreSQL?

Fills a fresh database with --rows results (default 100,000: --runs runs of boards × models ×
variants), each with --samples raw latencies (default 100) and a 10-row sampler time series,
then times what people and CI do with it:

* writing: a batch import (`add_results`, one transaction per run) and the per-job path of a live
  run (`add_result`, one transaction per result, as the runner writes);
* one run: export JSON/CSV/Parquet, `results.load`, `results.load_samples`, `done_cells`,
  `compare_runs` of two runs;
* the history: `results.load` of everything and of one board × model, `Store.history`,
  `farm runs ls --board`.

PostgreSQL: a throw-away local server (tests/store/pgserver.py, fsync on), or --pg-url.
Bounded: ~2-4 min on a 2-core VM with the defaults. Run: python bench/store_speed.py [--rows N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import results  # noqa: E402
from orchestrator.compare import compare_runs  # noqa: E402
from orchestrator.export import export_run, export_run_bytes, parquet_available  # noqa: E402
from orchestrator.record import ResultRecord
from orchestrator.store import Store, open_store  # noqa: E402

BOARDS = [f"board-{i:02d}" for i in range(10)]
VARIANTS = ["fp32", "fp16", "int8-dynamic", "prune-l1:0.5"]
FACTS = {
    "arch": "aarch64", "cpu_model": "Cortex-A72", "cores": 4, "ram_bytes": 8_000_000_000,
    "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-rpi7-rpi-v8", "python": "3.11.2",
    "onnxruntime": "1.17.1", "providers": ["CPUExecutionProvider"], "governor": "ondemand",
    "temperatures_c": {"cpu-thermal": 48.2}, "throttled": False, "cgroup": {"memory_max": None},
}


def make_rows(run_index: int, cells: list[tuple[str, str, str]], n_samples: int, rng) -> list[ResultRecord]:
    """Results as the runner writes them (summary row, facts, details, samples, time series)."""
    medians = np.array([5.0 + (sum(map(ord, "".join(cell))) % 100) for cell in cells])
    latencies = np.round(medians[:, None] * rng.lognormal(0.0, 0.03, (len(cells), n_samples)), 6)
    stats = np.percentile(latencies, [0, 50, 90, 99, 100], axis=1).T
    means, stdevs = latencies.mean(axis=1), latencies.std(axis=1, ddof=1)
    series = [{"t_s": t * 1.0, "rss_bytes": 80_000_000, "cpu_percent": 99.0, "temp_c": 50.0 + t / 10,
               "freq_mhz": [1800, 1800, 1800, 1800]} for t in range(10)]
    items = []
    for i, (board, model, variant) in enumerate(cells):
        row = {
            "board": board, "model": model, "variant": variant, "settings_hash": "0123456789abcdef",
            "status": "ok", "model_sha256": "ab" * 32, "runs": n_samples,
            "latency_ms_min": stats[i, 0], "latency_ms_p50": stats[i, 1], "latency_ms_p90": stats[i, 2],
            "latency_ms_p99": stats[i, 3], "latency_ms_max": stats[i, 4], "latency_ms_mean": means[i],
            "latency_ms_stdev": stdevs[i], "fps": 1000.0 / means[i],
            "load_ms": 120.0, "first_inference_ms": medians[i] * 3, "peak_rss_bytes": 80_000_000 + run_index,
            "model_size_bytes": 12_000_000, "facts": FACTS,
            "details": {"export": {"peak_rss_load_bytes": 60_000_000, "peak_rss_inference_bytes": 80_000_000,
                                   "cpu_percent_mean": 99.0, "temp_c_max": 55.0, "noisy": False, "truncated": False,
                                   "latency_ms_cv": 0.03}, "provider": "CPUExecutionProvider"},
        }
        row = {k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()}
        items.append(ResultRecord(row, latencies[i].tolist(), series))
    return items


def timed(label: str, fn, figures: dict, repeat: int = 1):
    best = None
    value = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    figures[label] = best
    print(f"  {label:<44} {best * 1000:10.1f} ms", flush=True)
    return value


def database_bytes(store: Store, sqlite_path: Path | None) -> int:
    if sqlite_path is not None:
        return sum(p.stat().st_size for p in sqlite_path.parent.glob(sqlite_path.name + "*"))
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())


def bench_one(name: str, url: str, args, sqlite_path: Path | None) -> dict:
    print(f"\n{name}: {url}", flush=True)
    figures: dict = {}
    store = open_store(url)
    rng = np.random.default_rng(0)
    per_run = args.rows // args.runs
    models = [f"model-{i:02d}" for i in range(max(1, per_run // (len(BOARDS) * len(VARIANTS))))]
    cells = [(b, m, v) for b in BOARDS for m in models for v in VARIANTS][:per_run]
    run_ids = []
    start = time.perf_counter()
    for index in range(args.runs):
        run_id = store.create_run({"runs": args.samples}, {"hostname": "bench"}, "bench")
        store.add_results(run_id, make_rows(index, cells, args.samples, rng))
        store.finish_run(run_id, "finished")
        run_ids.append(run_id)
    fill_s = time.perf_counter() - start
    total = store.count_results()
    figures["fill_s"] = fill_s
    figures["rows"] = total
    print(f"  filled {total:,} results × {args.samples} samples in {fill_s:.1f} s "
          f"({total / fill_s:,.0f} results/s, batch of {per_run} per transaction, incl. making the rows)", flush=True)

    live = store.create_run({}, {"hostname": "bench"}, "bench")
    live_rows = make_rows(0, [(b, f"live-{i}", "fp32") for i in range(args.live // len(BOARDS) + 1) for b in BOARDS][:args.live],
                          args.samples, rng)
    start = time.perf_counter()
    for item in live_rows:
        store.add_result(live, item.row, item.latency_ms, item.timeseries)
    live_s = time.perf_counter() - start
    figures["add_result_ms"] = live_s * 1000 / len(live_rows)
    print(f"  add_result (one transaction per job) {'':<8} {figures['add_result_ms']:10.2f} ms per result "
          f"({len(live_rows)} results)", flush=True)

    one, two = run_ids[-2], run_ids[-1]
    timed(f"export one run as JSON ({per_run} records)", lambda: export_run(store, two, "json"), figures, 3)
    timed("export one run as CSV", lambda: export_run(store, two, "csv"), figures, 3)
    if parquet_available():
        timed("export one run as Parquet", lambda: export_run_bytes(store, two, "parquet"), figures, 3)
    frame = timed("results.load(run_id=one run)", lambda: results.load(store, run_id=two), figures, 3)
    assert len(frame) == per_run
    samples = timed("results.load_samples(one run)", lambda: results.load_samples(store, two), figures, 3)
    assert len(samples) == per_run * args.samples
    timed("Store.done_cells(one run)", lambda: store.done_cells(two), figures, 3)
    comparison = timed(f"compare_runs (two runs, {per_run} cells)", lambda: compare_runs(store, one, two), figures, 1)
    assert len(comparison.cells) == per_run
    everything = timed(f"results.load() all {total + len(live_rows):,} rows", lambda: results.load(store), figures, 1)
    assert len(everything) == total + len(live_rows)
    board, model = BOARDS[3], models[0]
    some = timed("results.load(board=, model=) over history", lambda: results.load(store, board=board, model=model),
                 figures, 3)
    assert len(some) == args.runs * len(VARIANTS)
    hist = timed("Store.history(board, model, variant)", lambda: store.history(board, model, "fp16"), figures, 3)
    assert len(hist) == args.runs
    timed("Store.list_runs(board=) (farm runs ls)", lambda: store.list_runs(20, board=board), figures, 3)
    figures["db_bytes"] = database_bytes(store, sqlite_path)
    print(f"  database size {figures['db_bytes'] / 1048576:,.0f} MiB", flush=True)
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--live", type=int, default=300, help="results written one transaction each")
    parser.add_argument("--pg-url", help="use this PostgreSQL database instead of a throw-away server")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"farm store bench: {args.rows:,} results × {args.samples} samples, {args.runs} runs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    figures = {}
    with tempfile.TemporaryDirectory(prefix="farm-store-bench-") as folder:
        path = Path(folder) / "farm.db"
        figures["sqlite"] = bench_one("SQLite", f"sqlite:///{path}", args, path)
    if not args.no_postgres:
        server = None
        url = args.pg_url
        try:
            if url is None:
                from tests.store.pgserver import PostgresServer, PostgresUnavailable

                try:
                    server = PostgresServer(fsync=True).start()
                except PostgresUnavailable as exc:
                    print(f"\nPostgreSQL skipped: {exc}")
                    server = None
                url = server.create_database("farm_bench") if server else None
            if url:
                figures["postgresql"] = bench_one("PostgreSQL", url, args, None)
        finally:
            if server is not None:
                server.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
