"""The HTML report in real headless Chromium: offline, charts drawn, sortable, safe, responsive.

Two reports: a synthetic farm written through the real store (two boards and two models,
one of each named `<script>alert(1)</script>`, three variants, a failed board, thermal
sensors on one board, compared with a baseline run that also gives history), and a real
`farm bench` run of the demo models on this machine (whose report bench writes itself).
"""
from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.request import BenchRequest, run_bench
from orchestrator.report import write_report
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from tests.browser.conftest import ARTIFACTS
from tests.browser.synthetic import HOSTILE, Cell, add_run, matrix

pytestmark = pytest.mark.browser

BOARDS = ["rpi4", HOSTILE]
MODELS = ["yolov8n", HOSTILE]
VARIANTS = ["fp32", "fp16", "int8-dynamic"]
FAILURE_MESSAGE = "ssh: connect to host jetson-nano port 22: No route to host <img src=x onerror=alert(2)>"


@dataclasses.dataclass
class Built:
    path: Path
    result_ids: list[int]
    expect_thermal: bool


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Built]:
    tmp = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(max_workers=1) as pool:
        env.setenv("XDG_DATA_HOME", str(tmp / "data"))  # keep the local board's work dir out of $HOME
        env.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        # the real bench mostly waits on its agent processes: let it run while the synthetic farm is built
        real = pool.submit(_real_report, tmp)
        store = open_store(f"sqlite:///{tmp / 'synthetic.db'}")
        try:
            base = add_run(store, matrix(BOARDS, MODELS, VARIANTS), samples_per_result=300,
                           thermal_boards=["rpi4"], seed=1)
            cells = matrix(BOARDS, MODELS, VARIANTS, **{
                "rpi4|yolov8n|int8-dynamic": {"slowdown": 1.3, "accuracy_error": "dataset: <b>no labels</b>"},
                "rpi4|yolov8n|fp16": {"throttled": True},
            }) + [Cell("jetson-nano", "yolov8n", "fp32", fail_kind="unreachable", fail_message=FAILURE_MESSAGE)]
            new = add_run(store, cells, samples_per_result=300, thermal_boards=["rpi4"], seed=2)
            synthetic = write_report(store, new, tmp / "synthetic.html", compare_run_id=base)
            synthetic_ids = [r["result_id"] for r in store.results(new)]
        finally:
            store.close()
        return {"synthetic": Built(synthetic, synthetic_ids, True), "real": real.result(timeout=300)}


def _real_report(tmp: Path) -> Built:
    """`farm bench` of the demo models on this machine (few runs); bench writes the report itself."""
    settings = BenchSettings(runs=5, min_seconds=0.0, warmup=1, threads=1, sample_interval_s=0.05)
    store = open_store(f"sqlite:///{tmp / 'real.db'}")
    try:
        outcome = run_bench(BenchRequest(settings=settings, report_path=tmp / "real.html"), store=store)
        assert outcome.report_path is not None and outcome.report_path.exists()
        return Built(outcome.report_path, [r["result_id"] for r in store.results(outcome.run.run_id)], False)
    finally:
        store.close()


@pytest.fixture(scope="module")
def loaded(open_page, reports):
    """Each report opened once at desktop width (tests that only read share it)."""
    return {name: open_page(built.path) for name, built in reports.items()}


@pytest.mark.parametrize("name", ["synthetic", "real"])
def test_report_opens_offline_with_no_errors_and_no_requests(loaded, name):
    opened = loaded[name]
    assert opened.errors == []
    assert opened.requests == [opened.url]  # the file itself, nothing else: no CDN, no fonts, no images
    assert opened.dialogs == []


@pytest.mark.parametrize("name", ["synthetic", "real"])
def test_every_chart_is_drawn_as_a_non_empty_svg(loaded, reports, name):
    page = loaded[name].page
    charts = page.evaluate("""() => Array.from(document.querySelectorAll('.chart')).map(div => ({
        id: div.id,
        drawn: div.getAttribute('data-drawn') === 'true',
        svgs: div.querySelectorAll('svg.main-svg').length,
        traces: div.querySelectorAll('.cartesianlayer .trace').length,
        width: div.getBoundingClientRect().width,
    }))""")
    specs = page.evaluate("window.farmReport.specs.map(s => s.id)")
    assert [c["id"] for c in charts] == specs
    for chart in charts:
        assert chart["drawn"] and chart["svgs"] > 0 and chart["traces"] > 0 and chart["width"] > 300, chart
    kinds = {re.sub(r"-\d+$", "", c["id"]) for c in charts}
    assert {"fig-latency", "fig-memory"} <= kinds
    if reports[name].expect_thermal:
        assert {"fig-comparison", "fig-tradeoff", "fig-thermal", "fig-history"} <= kinds
        assert page.locator("#thermal-flags").get_by_text("fp16").count() == 1  # the throttled job
    elif "fig-thermal" not in kinds:  # a machine without sensors says so instead of drawing nothing
        assert page.locator("#no-thermal").is_visible()


@pytest.mark.parametrize("name", ["synthetic", "real"])
def test_results_table_has_exactly_one_row_per_result(loaded, reports, name):
    ids = loaded[name].page.eval_on_selector_all(
        "#results tbody tr", "rows => rows.map(r => Number(r.dataset.resultId))")
    assert sorted(ids) == sorted(reports[name].result_ids)


def _column(page, table: str, header: str) -> tuple[int, list[str]]:
    headers = page.eval_on_selector_all(f"{table} thead th", "ths => ths.map(th => th.textContent.trim())")
    index = headers.index(header)
    values = page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-sort') ?? r.cells[{index}].textContent.trim())")
    return index, values


def test_clicking_a_header_sorts_rows_and_clicking_again_reverses(loaded):
    page = loaded["synthetic"].page
    _, before = _column(page, "#results", "p50 ms")
    numbers = [float(v) for v in before if v]
    assert numbers != sorted(numbers)  # stored order is by board/model/variant, not by latency
    header = page.locator("#results thead th", has_text="p50 ms")
    header.locator("button").click()
    _, ascending = _column(page, "#results", "p50 ms")
    filled = [float(v) for v in ascending if v]
    assert filled == sorted(numbers) and ascending[len(filled):] == [""] * (len(ascending) - len(filled))
    assert header.get_attribute("aria-sort") == "ascending"
    header.locator("button").click()
    _, descending = _column(page, "#results", "p50 ms")
    assert [float(v) for v in descending if v] == sorted(numbers, reverse=True)
    assert descending[-1] == ""  # the failed job (no latency) stays last either way
    page.locator("#results thead th", has_text="board").locator("button").click()
    _, boards = _column(page, "#results", "board")
    assert boards == sorted(boards, key=str.lower)


def test_hostile_names_appear_as_text_and_never_run(loaded):
    opened = loaded["synthetic"]
    page = opened.page
    assert opened.dialogs == []
    cells = page.locator("#results td", has_text=HOSTILE)
    assert cells.count() >= 2 and cells.first.is_visible()
    assert cells.first.inner_text() == HOSTILE
    assert page.locator("#results td", has_text=HOSTILE).evaluate_all(
        "tds => tds.every(td => td.querySelector('script') === null)")
    legend = page.locator(".chart .legendtext", has_text=HOSTILE)  # plotly shows the name, too
    assert legend.count() >= 1 and legend.first.text_content() == HOSTILE
    reasons = page.locator("#failures-table td.reason").all_inner_texts()
    assert reasons == [FAILURE_MESSAGE, "dataset: <b>no labels</b>"]  # the job, then the accuracy step
    assert page.locator("#failures-table img, #failures-table b").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 3  # data, plotly, report.js


def test_narrow_window_has_no_page_overflow_outside_the_table_and_charts_resize(loaded):
    opened = loaded["synthetic"]
    page = opened.page
    page.set_viewport_size({"width": 375, "height": 812})
    try:
        # plotly redraws on resize: wait until every chart fits the phone's width
        page.wait_for_function("""() => Array.from(document.querySelectorAll('.chart svg.main-svg'))
            .every(svg => svg.getBoundingClientRect().right <= window.innerWidth)""", timeout=20_000)
        spill = page.evaluate("""() => Array.from(document.querySelectorAll('.chart')).filter(div =>
            div.querySelector('svg.main-svg').getBoundingClientRect().bottom > div.getBoundingClientRect().bottom + 1
        ).map(div => div.id)""")
        assert spill == []  # a resized chart stays inside its box (no overlap with the next section)
        overflow = page.evaluate("""() => {
            const width = document.documentElement.clientWidth;
            const outside = [];
            for (const el of document.body.querySelectorAll('*')) {
                if (el.closest('.table-wrap')) continue;  // the tables scroll inside their wrapper
                const box = el.getBoundingClientRect();
                if (box.width && box.right > width + 1) outside.push(`${el.tagName}#${el.id} ${Math.round(box.right)}px`);
            }
            const wrap = document.querySelector('#overview .table-wrap');
            return {scroll: document.documentElement.scrollWidth, width, outside: outside.slice(0, 10),
                    wrapScrolls: wrap.scrollWidth > wrap.clientWidth, wrapRight: wrap.getBoundingClientRect().right};
        }""")
        assert overflow["scroll"] <= overflow["width"] == 375, overflow
        assert overflow["outside"] == [], overflow
        assert overflow["wrapScrolls"] and overflow["wrapRight"] <= 375
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-375px.png"))
        page.locator("#fig-tradeoff-0").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "report-375px-chart.png"))
        assert (ARTIFACTS / "report-375px.png").stat().st_size > 10_000
        assert opened.errors == []
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    loaded["real"].page.screenshot(path=str(ARTIFACTS / "report-real-1280px.png"), full_page=True)


def test_print_layout_shows_the_whole_table_and_hides_the_controls(loaded):
    page = loaded["synthetic"].page
    page.emulate_media(media="print")
    try:
        styles = page.evaluate("""() => ({
            toc: getComputedStyle(document.querySelector('.toc')).display,
            wrap: getComputedStyle(document.querySelector('.table-wrap')).overflowX,
            modebar: Array.from(document.querySelectorAll('.modebar-container')).every(m => getComputedStyle(m).display === 'none'),
        })""")
        assert styles == {"toc": "none", "wrap": "visible", "modebar": True}
        ARTIFACTS.mkdir(exist_ok=True)
        pdf = page.pdf(path=str(ARTIFACTS / "report.pdf"), format="A4")
        assert pdf[:5] == b"%PDF-" and len(pdf) > 50_000
    finally:
        page.emulate_media(media="screen")
