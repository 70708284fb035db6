"""Reports built from runs stored through the real store: context, comparison, history, HTML."""
from __future__ import annotations

import base64
import gzip
import json
import re

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.report import build_context, render_html, write_report
from orchestrator.report.render import figure_specs, plotly_js
from orchestrator.report.charts import MAX_BOX_POINTS
from orchestrator.store import open_store
from tests.browser.synthetic import HOSTILE, Cell, add_run, matrix

BOARDS = ["rpi4", "jetson"]
MODELS = ["yolov8n", "mobilenetv2"]
VARIANTS = ["fp32", "fp16", "int8-dynamic"]


@pytest.fixture
def store(db_url):
    store = open_store(db_url)
    yield store
    store.close()


@pytest.fixture
def two_runs(store):
    """A baseline and a new run; in the new one int8 on the rpi4 got 30 % slower."""
    base = add_run(store, matrix(BOARDS, MODELS, VARIANTS), samples_per_result=200, seed=1)
    new = add_run(store, matrix(BOARDS, MODELS, VARIANTS, **{
        "rpi4|yolov8n|int8-dynamic": {"slowdown": 1.3},
    }), samples_per_result=200, seed=2)
    return base, new


def embedded_figures(html: str) -> list[dict]:
    specs = figure_specs(html)
    assert specs, "the figure data block is missing"
    return specs


def test_context_has_one_row_per_result_and_a_chart_per_model_and_kind(store, two_runs):
    _, new = two_runs
    context = build_context(store, new)
    assert len(context["rows"]) == store.count_results(new) == 12
    assert {r.result_id for r in context["rows"]} == {r["result_id"] for r in store.results(new)}
    figures = context["figures"]
    for kind in ("latency", "tradeoff", "memory", "history"):
        assert len(figures[kind]) == len(MODELS), kind
    assert figures["thermal"] == [] and not context["thermal_reported"]
    assert context["comparison"] is None and figures["comparison"] == []
    assert context["accuracy_measured"]  # yolov8n has mAP50 in the synthetic rows


def test_comparison_flags_the_slowed_cell_and_leaves_the_others_clean(store, two_runs):
    base, new = two_runs
    comparison = build_context(store, new, compare_run_id=base)["comparison"]
    verdicts = {(c.board, c.model, c.variant): c.latency_verdict for c in comparison.cells}
    assert verdicts.pop(("rpi4", "yolov8n", "int8-dynamic")) == "regressed"
    assert set(verdicts.values()) <= {"unchanged", "inconclusive"} and "unchanged" in verdicts.values()
    regressed = comparison.regressed[0]
    assert regressed.latency.change_pct == pytest.approx(30.0, abs=4.0) and regressed.latency.p_value < 0.01
    assert all(c.memory_verdict == "unchanged" for c in comparison.cells)
    assert comparison.metric_counts("latency")["regressed"] == 1
    assert "1 regressed" in comparison.summary()


def test_comparison_reports_cells_missing_or_failed_on_one_side(store):
    base = add_run(store, [Cell("rpi4", "m", "fp32"), Cell("rpi4", "m", "fp16")], samples_per_result=50)
    new = add_run(store, [Cell("rpi4", "m", "fp32", fail_kind="timeout", fail_message="job timed out"),
                          Cell("rpi4", "m", "int8-dynamic")], samples_per_result=50)
    context = build_context(store, new, compare_run_id=base)
    status = {c.variant: (c.verdict, c.base_status, c.new_status) for c in context["comparison"].cells}
    assert status == {"fp32": ("failed", "ok", "failed"), "fp16": ("only-base", "ok", None),
                      "int8-dynamic": ("only-new", None, "ok")}
    assert context["figures"]["comparison"] == []  # nothing could be compared
    html = render_html(context)
    assert "failed in this run" in html and "only in the baseline run" in html


def test_overview_rows_carry_the_change_vs_the_baseline_run(store, two_runs):
    base, new = two_runs
    rows = build_context(store, new, compare_run_id=base)["rows"]
    slowed = next(r for r in rows if (r.board, r.model, r.variant) == ("rpi4", "yolov8n", "int8-dynamic"))
    assert slowed.vs_base["p50"].tone == "worse" and slowed.vs_base["p50"].title.startswith("regressed")
    assert slowed.vs_base["memory"].tone == "same"


def test_history_goes_back_over_earlier_runs_of_the_same_cells(store, two_runs):
    base, new = two_runs
    add_run(store, [Cell("rpi4", "yolov8n", "fp32")], samples_per_result=50, seed=9)  # later: not in new's history
    context = build_context(store, new)
    assert context["history_runs"] == 2
    first = context["figures"]["history"][0]
    traces = [t for t in first.data if t["visible"]]
    assert traces and all(len(t["x"]) == 2 for t in traces)
    assert build_context(store, base)["figures"]["history"] == []  # nothing before the first run
    assert build_context(store, new, history=0)["figures"]["history"] == []


def test_history_keeps_the_last_n_runs(store):
    runs = [add_run(store, [Cell("rpi4", "m", "fp32")], samples_per_result=20, timeseries_rows=5, seed=i)
            for i in range(4)]
    context = build_context(store, runs[-1], history=3)
    (trace,) = context["figures"]["history"][0].data
    assert len(trace["x"]) == 3 and context["history_runs"] == 3
    assert trace["marker"]["size"] == [6, 6, 11]  # this run is the big marker, last


def test_cli_history_default_is_the_report_default():
    import inspect

    from orchestrator.cli.report_cmd import report
    from orchestrator.report.history import DEFAULT_HISTORY_RUNS

    assert inspect.signature(report).parameters["history"].default.default == DEFAULT_HISTORY_RUNS


def test_thermal_charts_appear_when_boards_report_sensors_and_flag_throttling(store):
    run = add_run(store, [Cell("rpi4", "m", "fp32"), Cell("rpi4", "m", "int8-dynamic", throttled=True)],
                  samples_per_result=50, thermal_boards=["rpi4"])
    context = build_context(store, run)
    assert context["thermal_reported"] and len(context["figures"]["thermal"]) == 1
    assert [(f.variant, f.throttled, f.freq_drop) for f in context["thermal_flags"]] == [("int8-dynamic", True, True)]
    names = [t.get("name") for t in context["figures"]["thermal"][0].data]
    assert "throttled" in names and any("⚠ throttled" in (n or "") for n in names)


def test_box_plots_never_embed_more_than_2000_points_per_result(store):
    run = add_run(store, [Cell("rpi4", "m", "fp32")], samples_per_result=5000, timeseries_rows=10)
    html = render_html(build_context(store, run))
    boxes = [t for f in embedded_figures(html) for t in f["data"] if t["type"] == "box"]
    assert len(boxes) == 1 and len(boxes[0]["y"]) == MAX_BOX_POINTS


def test_html_is_self_contained_with_plotly_inlined_once_and_names_escaped(store):
    run = add_run(store, [
        Cell(HOSTILE, HOSTILE, "fp32"), Cell(HOSTILE, HOSTILE, "int8-dynamic"),
        Cell("rpi4", "m", "fp16", fail_kind="model-error", fail_message="<img src=x onerror=alert(2)>"),
    ], samples_per_result=50)
    html = render_html(build_context(store, run))
    assert html.count("<script>alert(1)</script>") == 0 and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert html.count("Plotly.newPlot") >= 1
    # plotly.js inlined exactly once: the packed cartesian bundle, which unpacks to the vendored file
    packed = re.findall(r'<script type="application/octet-stream" id="farm-plotly"[^>]*>([^<]*)</script>', html)
    assert len(packed) == 1 and html.count(packed[0]) == 1
    source = gzip.decompress(base64.b64decode(packed[0])).decode()
    assert source.startswith("/**\n* plotly.js (cartesian - minified) v4.") and source == plotly_js()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing fetched
    specs = embedded_figures(html)
    assert specs and HOSTILE not in json.dumps(specs)  # plotly gets the HTML-escaped label
    assert any(t.get("name") == "fp32" for s in specs for t in s["data"])


def test_accuracy_columns_say_not_measured_without_accuracy(store):
    run = add_run(store, [Cell("rpi4", "mobilenetv2", "fp32"), Cell("rpi4", "mobilenetv2", "fp16")],
                  samples_per_result=50)
    context = build_context(store, run)
    assert not context["accuracy_measured"]
    html = render_html(context)
    assert html.count(">not measured<") == 2
    assert "accuracy not measured" in html  # the trade-off chart falls back to size vs p50


def test_report_comparison_tests_process_medians_when_both_runs_repeated(store):
    cells = [Cell("rpi4", "mobilenetv2", "fp32", processes=4)]
    base = add_run(store, cells, samples_per_result=200, seed=1)
    new = add_run(store, cells, samples_per_result=200, seed=2)
    (cell,) = build_context(store, new, base)["comparison"].cells
    assert cell.latency.base_runs == 4 and cell.latency.new_runs == 4  # processes, not samples
    once = add_run(store, [Cell("rpi4", "mobilenetv2", "fp32")], samples_per_result=200, seed=3)
    (cell,) = build_context(store, once, base)["comparison"].cells
    assert cell.latency.new_runs == 200  # one side measured once: the samples are compared


def test_fp32_can_be_the_fastest_variant(store):
    # fp16 runs no faster on a CPU: the reference itself is often the pick for latency
    run = add_run(store, [Cell("rpi4", "mobilenetv2", "fp32"), Cell("rpi4", "mobilenetv2", "fp16", slowdown=3.0)],
                  samples_per_result=50)
    context = build_context(store, run)
    (highlight,) = context["highlights"]
    assert highlight.fastest.variant == "fp32"
    html = render_html(context)
    assert re.search(r'<td class="text">fp32 <span class="muted">[0-9.]+ ms</span></td>', html)


def test_write_report_keeps_its_three_argument_form(store, two_runs, tmp_path):
    base, new = two_runs
    path = write_report(store, new, tmp_path / "out" / "r.html")
    assert path.exists() and "All results" in path.read_text()
    path = write_report(store, new, tmp_path / "c.html", compare_run_id=base, history=0)
    assert "Comparison with" in path.read_text()


def test_cli_report_compare_writes_the_file_and_prints_the_verdicts(db_url, two_runs, tmp_path, capsys):
    base, new = two_runs
    out = tmp_path / "cmp.html"
    assert main(["report", new, "--compare", base[:-2], "-o", str(out), "--db", db_url]) == ExitStatus.OK
    printed = capsys.readouterr().out
    assert "1 regressed" in printed and f"report: {out}" in printed
    assert f"vs</span> <code>{base}</code>" in out.read_text()
    assert main(["report", new, "--compare", "r1999", "--db", db_url]) == ExitStatus.BAD_INPUT


def test_cli_report_default_name_says_what_was_compared(db_url, two_runs, capsys):
    base, new = two_runs
    assert main(["report", new, "--compare", base, "--db", db_url]) == ExitStatus.OK
    assert f"reports/{new}-vs-{base}.html" in capsys.readouterr().out


def test_matrix_has_one_cell_per_board_and_variant_with_the_engines_verdict(store, two_runs):
    from orchestrator.compare import compare_to_reference

    _, new = two_runs
    context = build_context(store, new)
    results = {(r["board"], r["model"], r["variant"]): r for r in store.results(new)}
    assert [m.model for m in context["matrices"]] == sorted(MODELS)
    for m in context["matrices"]:
        assert list(m.boards) == ["jetson", "rpi4"]  # board order, not the order results came in
        assert [r.variant for r in m.rows] == VARIANTS
        assert len(m.cells) == len(BOARDS) * len(VARIANTS)
        for cell in m.cells:
            if cell.variant == "fp32":
                assert cell.verdict == "reference"
                continue
            engine = compare_to_reference(results[(cell.board, m.model, "fp32")], results[(cell.board, m.model, cell.variant)],
                                          lambda rid: store.series(rid)[0])
            assert cell.verdict == engine.latency_verdict
            assert cell.change.value == pytest.approx(engine.latency.change_pct)
    html = render_html(context)
    for m_index, m in enumerate(context["matrices"]):
        for cell in m.cells:
            assert f'class="cell v-{cell.verdict}" data-board="{cell.board}"' in html


def test_environment_shows_the_boards_cgroup_limits_not_the_hosts_memory():
    from orchestrator.report.context import cpu_text, memory_text

    facts = {"mem_total_bytes": int(23.5 * 2**30), "cpu_cores": 8, "cpu_cores_available": 2,
             "cgroup_limits": {"memory_limit_bytes": 2**30, "cpu_quota_cores": 0.5}}
    assert memory_text(facts) == "1.00 GiB (cgroup limit; machine 23.5 GiB)"
    assert cpu_text(facts) == "0.5 (cgroup quota) of 8"
    assert memory_text({"mem_total_bytes": 4 * 2**30, "cgroup_limits": {}}) == "4.00 GiB"
    assert cpu_text({"cpu_cores": 8, "cpu_cores_available": 8}) == "8"
    assert cpu_text({"cpu_cores": 8, "cpu_cores_available": 2}) == "2 usable of 8"
