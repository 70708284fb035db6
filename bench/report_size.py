"""How long does a big farm's report take to render, and how big is the file?

20 boards × 3 models × 6 variants (360 results) with 1,000 latency samples and 60 sampler
rows each, written through the real store into a temporary SQLite file; then
`write_report` (read the store, build the context, render, write) is timed, and the file is
taken apart: plotly.js, chart data, HTML. The plotly.js choices are measured in the same run:
the full bundle the plotly Python package ships, and the cartesian partial bundle the report
uses (orchestrator/report/vendor), each inlined as text and gzip+base64-packed.
Targets (issue #19): at most 2 MB and 1.5 s (it was 7.5 MB and 2.4-2.9 s).

Run: python bench/report_size.py [--rounds 5] [--samples 1000] [--keep PATH] [--record bench/RESULTS.md]
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import gzip
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from orchestrator.report import write_report  # noqa: E402
from orchestrator.report.render import PLOTLY_BUNDLE, figure_specs  # noqa: E402
from orchestrator.store import open_store  # noqa: E402
from results_md import record_section  # noqa: E402
from tests.browser.synthetic import VARIANT_EFFECTS, add_run, matrix  # noqa: E402

BOARDS = [f"board-{i:02d}" for i in range(20)]
MODELS = ["yolov8n", "resnet18", "mobilenetv2"]
VARIANTS = list(VARIANT_EFFECTS)  # fp32, optimized, fp16, int8-dynamic, int8-static, prune-l1:0.5
TARGET_S = 1.5
TARGET_BYTES = 2_000_000  # 2 MB (decimal, the stricter reading)
SECTION = "report"
#: A subsection of `## report` written by hand (figures of an older commit), kept by --record.
BEFORE_HEADING = "### before"


def packed_size(data: bytes) -> int:
    """Bytes of `data` as the report embeds it: gzip (level 9, the vendored file's) then base64."""
    return len(base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)))


def bundles() -> list[tuple[str, int, int]]:
    """(plotly.js choice, bytes inlined as text, bytes packed) for the full and cartesian bundles."""
    from plotly.offline import get_plotlyjs

    full = get_plotlyjs().encode("utf-8")
    cartesian = gzip.decompress(PLOTLY_BUNDLE.read_bytes())
    return [("full bundle (plotly Python package)", len(full), packed_size(full)),
            ("cartesian partial bundle (vendored)", len(cartesian), len(base64.b64encode(PLOTLY_BUNDLE.read_bytes())))]


def breakdown(html: str) -> dict[str, int]:
    """Where a report's bytes go: packed plotly.js, packed chart data (and its JSON size), HTML."""
    blocks = dict(re.findall(r'<script type="application/octet-stream" id="([^"]+)"[^>]*>([^<]*)</script>', html))
    rest = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    specs = figure_specs(html)
    by_kind: dict[str, int] = {}
    for spec in specs:
        kind = re.sub(r"-\d+$", "", spec["id"]).removeprefix("fig-")
        by_kind[kind] = by_kind.get(kind, 0) + len(json.dumps(spec, separators=(",", ":")))
    return {"plotly": len(blocks.get("farm-plotly", "")), "figures": len(blocks.get("farm-figures", "")),
            "html": len(rest.encode("utf-8")), **{f"json {k}": v for k, v in sorted(by_kind.items())}}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("plotly", "jinja2", "SQLAlchemy"))
    return (f"{os.cpu_count()}-core {cpu}, Python {platform.python_version()} ({versions}); "
            f"load average {load:.1f} when it started")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="renders to time (the median is reported)")
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per result")
    parser.add_argument("--keep", type=Path, help="also copy the last report here")
    parser.add_argument("--record", type=Path, help="RESULTS.md to update (only its ## report section)")
    args = parser.parse_args()
    where = machine()

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
        html = path.read_text(encoding="utf-8")
        if args.keep:
            args.keep.write_bytes(path.read_bytes())
        store.close()
    parts = breakdown(html)
    median_s = statistics.median(times)
    print(f"render: median {median_s:.2f} s over {args.rounds} round(s) (min {min(times):.2f}, max {max(times):.2f}; "
          f"the first pays the imports); target <= {TARGET_S:g} s -> ratio {median_s / TARGET_S:.2f}")
    print(f"file:   {size / 1e6:.2f} MB ({size:,} bytes); target <= {TARGET_BYTES / 1e6:g} MB -> "
          f"ratio {size / TARGET_BYTES:.2f}")
    print("parts:  " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in parts.items()))
    choices = bundles()
    for name, raw, packed in choices:
        print(f"plotly.js {name}: {raw / 1e6:.2f} MB as text, {packed / 1e6:.2f} MB packed")
    ok = median_s <= TARGET_S and size <= TARGET_BYTES
    if args.record:
        record_section(args.record, SECTION, section(args, median_s, times, size, parts, choices, where),
                       keep_heading=BEFORE_HEADING)
        print(f"updated the ## {SECTION} section of {args.record}")
    return 0 if ok else 1


def section(args, median_s, times, size, parts, choices, where) -> str:
    json_parts = {k.removeprefix("json "): v for k, v in parts.items() if k.startswith("json ")}
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/report_size.py --rounds {args.rounds}` — render the HTML report of a synthetic farm written "
        "through the real store into a temporary SQLite file: 20 boards × 3 models × 6 variants (fp32, optimized, "
        f"fp16, int8-dynamic, int8-static, prune-l1:0.5) = 360 results, {args.samples:,} latency samples and 60 "
        "sampler rows each (thermal sensors on half the boards). Timed: `write_report` end to end (read the store, "
        "build the context with the board × variant matrix and the engine's verdicts vs fp32, render, write).",
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {where}",
        "",
        "| figure | result | target | ratio |",
        "|---|---|---|---|",
        f"| render time, median of {args.rounds} (min–max) | {median_s:.2f} s ({min(times):.2f}–{max(times):.2f} s) "
        f"| ≤ {TARGET_S:g} s | {median_s / TARGET_S:.2f} |",
        f"| file size | {size / 1e6:.2f} MB ({size:,} bytes) | ≤ {TARGET_BYTES / 1e6:g} MB | {size / TARGET_BYTES:.2f} |",
        "",
        f"Where the bytes go: plotly.js {parts['plotly'] / 1e6:.2f} MB, chart data {parts['figures'] / 1e6:.2f} MB "
        "(both gzip + base64), HTML, tables and styles "
        f"{parts['html'] / 1e6:.2f} MB. The chart data unpacks to "
        + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in json_parts.items()) + " of JSON.",
        "",
        "plotly.js, measured in the same run:",
        "",
        "| plotly.js | inlined as text | packed (gzip + base64) |",
        "|---|---:|---:|",
        *[f"| {name} | {raw / 1e6:.2f} MB | {packed / 1e6:.2f} MB |" for name, raw, packed in choices],
        "",
        "The report uses the cartesian bundle, packed (it draws only scatter and box traces); the browser unpacks "
        "it and the chart data with DecompressionStream before drawing.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
