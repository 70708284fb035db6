"""The report, `farm compare --json` and gating give the same verdicts on the same two runs.

They all call the one comparison engine (orchestrator.compare); this test proves it from the
outside: every cell kind (regressed, improved, unchanged, inconclusive, memory-only regression,
failed on either side, only in one run) is judged alike by the three.
"""
from __future__ import annotations

import json
import re

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.gating import evaluate_gate
from orchestrator.report import build_context, render_html
from orchestrator.store import open_store
from tests.store._support import failed_row, ok_row, samples

MB = 1 << 20

# variant -> (base cell, new cell): (row extras, median ms, spread) or "failed" or None (absent)
CELLS = {
    "slower": (({}, 10.0, 0.01), ({}, 13.0, 0.01)),
    "faster": (({}, 10.0, 0.01), ({}, 7.0, 0.01)),
    "same": (({}, 10.0, 0.01), ({}, 10.0, 0.01)),
    "noisy": (({}, 10.0, 0.15), ({}, 10.8, 0.15)),
    "fatter": (({"peak_rss_bytes": 100 * MB}, 10.0, 0.01), ({"peak_rss_bytes": 130 * MB}, 10.0, 0.01)),
    "broke": (({}, 10.0, 0.01), "failed"),
    "fixed": ("failed", ({}, 10.0, 0.01)),
    "dropped": (({}, 10.0, 0.01), None),
    "added": (None, ({}, 10.0, 0.01)),
}


def store_run(store, side: int) -> str:
    run_id = store.create_run({"runs": 100}, {}, "test")
    for index, (variant, pair) in enumerate(CELLS.items()):
        cell = pair[side]
        if cell is None:
            continue
        if cell == "failed":
            store.add_result(run_id, failed_row(board="rpi4", model="det", variant=variant, kind="timeout"))
            continue
        extra, median_ms, spread = cell
        row = ok_row(board="rpi4", model="det", variant=variant, **{"peak_rss_bytes": 50 * MB, **extra})
        store.add_result(run_id, row, samples(median_ms, 40, seed=index * 2 + side, spread=spread))
    store.finish_run(run_id, "finished")
    return run_id


@pytest.fixture
def two_runs(db_url):
    with open_store(db_url) as store:
        return store_run(store, 0), store_run(store, 1)


def test_report_compare_and_gating_agree_on_every_cell(db_url, two_runs, capsys):
    base, new = two_runs
    assert main(["compare", base, new, "--json", "--db", db_url]) == ExitStatus.OK
    cli = {cell["variant"]: cell for cell in json.loads(capsys.readouterr().out)["cells"]}
    verdicts = {variant: cell["verdict"] for variant, cell in cli.items()}
    assert verdicts == {"slower": "regressed", "faster": "improved", "same": "unchanged", "noisy": "inconclusive",
                        "fatter": "regressed", "broke": "failed", "fixed": "failed", "dropped": "only-base",
                        "added": "only-new"}

    with open_store(db_url) as store:
        gate = evaluate_gate(store, new, base, 5.0)
        context = build_context(store, new, compare_run_id=base, history=0)
    gated = {cell.variant: cell for cell in gate.cells}
    assert {v: c.comparison.verdict for v, c in gated.items()} == verdicts
    assert {v for v, c in gated.items() if c.outcome == "regressed"} == {"slower", "fatter"}
    assert {v for v, c in gated.items() if c.outcome == "failed"} == {"broke"}
    assert {v for v, c in gated.items() if c.outcome == "skipped"} == {"dropped", "added", "fixed"}

    report = {cell.variant: cell for cell in context["comparison"].cells}
    assert {v: c.verdict for v, c in report.items()} == verdicts
    for variant, cell in report.items():  # the figures' verdicts too, not only the cell's
        assert (cell.latency_verdict, cell.memory_verdict) == (
            (cli[variant]["latency"] or {}).get("verdict"), cli[variant]["memory_verdict"]), variant

    # what the page shows: each compared row's latency and memory verdict, and the row colours
    html = render_html(context)
    table = html[html.index('id="comparison-table"'):]
    for variant, cell in report.items():
        row = re.search(r"<tr>\s*<td class=\"text\">rpi4</td><td class=\"text\">det</td><td class=\"text\">"
                        + variant + r"</td>(.*?)</tr>", table, re.S)
        assert row, variant
        shown = re.findall(r'class="verdict verdict-([a-z-]+)"', row.group(1))
        if cell.compared:
            assert shown == [cell.latency_verdict, cell.memory_verdict], variant
        else:
            assert shown == [], variant
    tones = {"regressed": "worse", "improved": "better", "unchanged": "same", "inconclusive": "unknown"}
    for row in context["rows"]:
        if "p50" in row.vs_base:
            assert row.vs_base["p50"].tone == tones[report[row.variant].latency_verdict], row.variant
