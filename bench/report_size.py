"""How long does a big farm's report take to render, and how big is the file?

20 boards × 3 models × 6 variants (360 results) with 1,000 latency samples and 60 sampler
rows each, written through the real store into a temporary SQLite file; then
`write_report` (read the store, build the context, render, write) is timed.
Targets: < 5 s and < 8 MB.

Run: python bench/report_size.py [--rounds 3] [--samples 1000] [--keep PATH]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.report import write_report  # noqa: E402
from orchestrator.store import open_store  # noqa: E402
from tests.browser.synthetic import VARIANT_EFFECTS, add_run, matrix  # noqa: E402

BOARDS = [f"board-{i:02d}" for i in range(20)]
MODELS = ["yolov8n", "resnet18", "mobilenetv2"]
VARIANTS = list(VARIANT_EFFECTS)  # fp32, optimized, fp16, int8-dynamic, int8-static, prune-l1:0.5
TARGET_S = 5.0
TARGET_BYTES = 8_000_000  # 8 MB (decimal, the stricter reading)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="renders to time (the median is reported)")
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per result")
    parser.add_argument("--keep", type=Path, help="also copy the last report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="farm-bench-report-") as tmp:
        store = open_store(f"sqlite:///{tmp}/farm.db")
        cells = matrix(BOARDS, MODELS, VARIANTS)
        started = time.perf_counter()
        run_id = add_run(store, cells, samples_per_result=args.samples, timeseries_rows=60,
                         thermal_boards=BOARDS[::2], seed=1)
        fill_s = time.perf_counter() - started
        print(f"store: {len(cells)} results ({len(BOARDS)} boards × {len(MODELS)} models × {len(VARIANTS)} variants), "
              f"{args.samples} samples each, written in {fill_s:.1f} s")
        times = []
        path = Path(tmp) / "report.html"
        for _ in range(args.rounds):
            started = time.perf_counter()
            write_report(store, run_id, path)
            times.append(time.perf_counter() - started)
        size = path.stat().st_size
        if args.keep:
            args.keep.write_bytes(path.read_bytes())
        store.close()
    median_s = statistics.median(times)
    print(f"render: median {median_s:.2f} s over {args.rounds} round(s) (min {min(times):.2f}, max {max(times):.2f}); "
          f"target < {TARGET_S:g} s -> ratio {median_s / TARGET_S:.2f}")
    print(f"file:   {size / 1e6:.2f} MB ({size:,} bytes); target < {TARGET_BYTES / 1e6:g} MB -> "
          f"ratio {size / TARGET_BYTES:.2f}")
    return 0 if median_s < TARGET_S and size < TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
