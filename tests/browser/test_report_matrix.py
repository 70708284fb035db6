"""The board × variant matrix and the charts' readability, in real headless Chromium.

A lab-sized farm (three boards, a 9 µs classifier and a 38 ms detector, nine variants, one of
them 7,000× slower than fp32; a fallback, a throttled and a truncated cell; a failed variant;
a baseline run) is written through the real store. The matrix must hold one cell per board ×
variant with the comparison engine's verdict as its class, and its badges; the charts must
keep their labels apart and their axes readable at 1,400 and 390 px. Screenshots of both
widths go to test-artifacts/ for people to look at.
"""
from __future__ import annotations

import pytest

from orchestrator.compare import compare_to_reference
from orchestrator.report import write_report
from orchestrator.store import open_store
from tests.browser.conftest import ARTIFACTS
from tests.browser.synthetic import HOSTILE, add_run, matrix

pytestmark = pytest.mark.browser

BOARDS = ["rpi4-01", "jetson-nano-1", HOSTILE]
MODELS = ["digits_mlp", "yolov8n"]
VARIANTS = ["fp32", "optimized", "fp16", "int8-dynamic", "int8-static", "prune-l1:0.5", "prune-l1-layerwise:0.5",
            "openvino-ir", "openvino-ir-fp16"]
OVERRIDES = {
    "rpi4-01|digits_mlp|openvino-ir": {"slowdown": 7000.0},  # 0.009 ms next to ~60 ms on one axis
    "rpi4-01|yolov8n|fp16": {"throttled": True},
    "jetson-nano-1|yolov8n|int8-dynamic": {"fallback": True},
    f"{HOSTILE}|yolov8n|optimized": {"truncated": True},
    "jetson-nano-1|digits_mlp|int8-static": {"fail_kind": "variant-error",
                                             "fail_message": "int8-static needs calibration data"},
}


@pytest.fixture(scope="module")
def lab_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    store = open_store(f"sqlite:///{tmp / 'lab.db'}")
    try:
        base = add_run(store, matrix(BOARDS, MODELS, VARIANTS), samples_per_result=200, seed=3,
                       thermal_boards=["rpi4-01"])
        new = add_run(store, matrix(BOARDS, MODELS, VARIANTS, **OVERRIDES), samples_per_result=200, seed=4,
                      thermal_boards=["rpi4-01"])
        path = write_report(store, new, tmp / "lab.html", compare_run_id=base)
        results = {(r["board"], r["model"], r["variant"]): r for r in store.results(new)}
        verdicts = {}
        for (board, model, variant), record in results.items():
            reference = results[(board, model, "fp32")]
            if record["status"] != "ok":
                verdicts[(board, model, variant)] = "failed"
            elif variant == "fp32":
                verdicts[(board, model, variant)] = "reference"
            else:
                cell = compare_to_reference(reference, record, lambda rid: store.series(rid)[0])
                verdicts[(board, model, variant)] = cell.latency_verdict
    finally:
        store.close()
    return path, verdicts


@pytest.fixture(scope="module")
def wide(open_page, lab_report):
    return open_page(lab_report[0], width=1400)


def _cells(page):
    return page.eval_on_selector_all("table.matrix", """tables => tables.map(t => ({
        model: t.closest('.table-wrap').previousElementSibling.textContent,
        boards: Array.from(t.tHead.rows[0].cells).filter(c => c.classList.contains('board')).map(c => c.textContent),
        cells: Array.from(t.querySelectorAll('td.cell')).map(td => ({
            variant: td.parentElement.cells[0].firstChild.textContent, board: td.dataset.board,
            verdict: Array.from(td.classList).find(c => c.startsWith('v-')).slice(2),
            badges: Array.from(td.querySelectorAll('.flag')).map(f => f.textContent), text: td.innerText})),
    }))""")


def test_matrix_has_one_cell_per_board_and_variant_coloured_by_the_engine(wide, lab_report):
    _, verdicts = lab_report
    tables = _cells(wide.page)
    assert [t["model"] for t in tables] == MODELS
    for table in tables:
        assert table["boards"] == [HOSTILE, "jetson-nano-1", "rpi4-01"]  # sorted by name, shown as text
        got = {(c["board"], c["variant"]): c for c in table["cells"]}
        assert len(table["cells"]) == len(got) == len(BOARDS) * len(VARIANTS)
        for (board, variant), cell in got.items():
            assert cell["verdict"] == verdicts[(board, table["model"], variant)], (board, variant, cell)
    seen = {c["verdict"] for t in tables for c in t["cells"]}
    assert {"reference", "improved", "failed"} <= seen and len(seen) >= 4  # the legend's colours are all used
    by_key = {(t["model"], c["board"], c["variant"]): c for t in tables for c in t["cells"]}
    assert by_key[("yolov8n", "rpi4-01", "fp16")]["badges"] == ["throttled", "clock drop"]
    assert by_key[("yolov8n", "jetson-nano-1", "int8-dynamic")]["badges"] == ["fallback"]
    assert by_key[("yolov8n", HOSTILE, "optimized")]["badges"] == ["truncated"]
    assert by_key[("digits_mlp", "jetson-nano-1", "int8-static")]["text"].startswith("failed")
    assert by_key[("digits_mlp", "rpi4-01", "fp32")]["text"].startswith("0.0088")  # 3 digits, never 0.009
    # the badges are also in the full table, beside the status
    status = wide.page.locator("#results tr", has=wide.page.locator("td", has_text="jetson-nano-1")) \
        .filter(has_text="int8-dynamic").filter(has_text="yolov8n").locator(".flag").all_inner_texts()
    assert "fallback" in status


def test_matrix_columns_sort_by_a_boards_latency(wide):
    page = wide.page
    table = page.locator("table.matrix").nth(1)
    table.locator("thead th.board", has_text="rpi4-01").locator("button").click()
    sorted_p50 = table.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).find(c => c.dataset.board === 'rpi4-01').dataset.sort)")
    numbers = [float(v) for v in sorted_p50 if v]
    assert numbers == sorted(numbers) and len(numbers) == len(VARIANTS)


def _overlaps(boxes):
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] - 1 and b["x"] < a["x"] + a["w"] - 1 and \
                    a["y"] < b["y"] + b["h"] - 1 and b["y"] < a["y"] + a["h"] - 1:
                found.append((a["t"], b["t"]))
    return found


TEXT_BOXES = """(div) => Array.from(div.querySelectorAll('%s')).filter(t => t.textContent && t.getBBox().width)
    .filter(t => getComputedStyle(t).visibility !== 'hidden')
    .map(t => { const r = t.getBoundingClientRect(); return {t: t.textContent, x: r.x, y: r.y, w: r.width, h: r.height}; })"""


def _check_charts(page, width):
    """Every chart's point labels and phase labels apart; its legend clear of the axis titles."""
    problems, named = {}, 0
    for chart in page.locator(".chart[data-drawn=true]").all():
        chart_id = chart.get_attribute("id")
        labels = chart.evaluate(TEXT_BOXES % ".textpoint text")
        named += len(labels) if chart_id.startswith("fig-tradeoff") else 0
        if _overlaps(labels):
            problems[chart_id] = _overlaps(labels)
        legend = chart.evaluate("""div => { const l = div.querySelector('.legend'); if (!l) return null;
            const r = l.getBoundingClientRect(); return {t: 'legend', x: r.x, y: r.y, w: r.width, h: r.height}; }""")
        titles = chart.evaluate(TEXT_BOXES % ".g-xtitle text, .g-x2title text")
        if legend and _overlaps([legend, *titles]):
            problems[f"{chart_id} legend"] = _overlaps([legend, *titles])
    assert problems == {}, f"overlapping text at {width} px: {problems}"
    assert named >= 3  # the trade-off charts still name variants (the Pareto-optimal ones at least)


def test_charts_are_readable_at_1400_px(wide):
    page = wide.page
    assert wide.errors == []
    _check_charts(page, 1400)
    latency = page.evaluate("window.farmReport.specs.find(s => s.id === 'fig-latency-0')")
    assert latency["layout"]["yaxis"]["type"] == "log"  # 0.009 ms beside 60 ms: a log axis, not a line at 0
    ticks = page.locator("#fig-latency-0 .ytick text").all_text_contents()
    assert ticks and all(len(t) <= 6 for t in ticks), ticks
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-matrix-1400px.png"), full_page=True)
    assert (ARTIFACTS / "report-matrix-1400px.png").stat().st_size > 50_000


def test_charts_and_matrix_are_readable_at_390_px(open_page, lab_report):
    opened = open_page(lab_report[0], width=390, height=844)
    page = opened.page
    page.evaluate("() => Promise.all(Array.from(document.querySelectorAll('.chart[data-drawn=true]'))"
                  ".map(div => window.Plotly.Plots.resize(div)))")
    assert opened.errors == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # only the tables' wrappers scroll
    _check_charts(page, 390)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#matrix").screenshot(path=str(ARTIFACTS / "report-matrix-390px.png"))
    page.screenshot(path=str(ARTIFACTS / "report-390px-full.png"), full_page=True)
    assert (ARTIFACTS / "report-matrix-390px.png").stat().st_size > 10_000
