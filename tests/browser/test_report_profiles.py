"""The report's operator section (farm bench --profile) in real headless Chromium.

Two real profiled runs on this machine of a conv+BN model whose name is hostile HTML
(fp32 and int8-dynamic; the second run is the report's baseline comparison): the stacked bar
is drawn with one trace per operator type, the provider split and the operator types that
moved vs fp32 and vs the baseline are tables, and every name arrives as text.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.report import write_report
from orchestrator.request import BenchRequest, run_bench
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from tests import model_factory

pytestmark = pytest.mark.browser

NAME = "<img src=x onerror=alert(1)>convbn"  # a file name has no slash


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("profiles-report")
    model = model_factory.conv_bn_relu(tmp / f"{NAME}.onnx")
    settings = BenchSettings(runs=20, min_seconds=0.0, warmup=2, threads=1, sample_interval_s=0, profile=True,
                             profile_runs=5)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(tmp / "data"))
        env.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        store = open_store(f"sqlite:///{tmp / 'farm.db'}")
        try:
            runs = [run_bench(BenchRequest(model_paths=[model], variants=["fp32", "int8-dynamic"], settings=settings,
                                           write_report=False), store=store).run.run_id for _ in range(2)]
            return write_report(store, runs[1], tmp / "report.html", compare_run_id=runs[0])
        finally:
            store.close()


@pytest.fixture(scope="module")
def page(open_page, report):
    opened = open_page(report)
    assert opened.errors == [] and opened.dialogs == [] and opened.requests == [opened.url]
    return opened.page


def test_stacked_bar_has_a_trace_per_operator_type_and_a_bar_per_variant(page):
    chart = page.evaluate("""() => {
        const gd = document.getElementById('fig-ops-0');
        return {drawn: gd.getAttribute('data-drawn') === 'true', barmode: gd.layout.barmode,
                names: gd.data.map(t => t.name), types: gd.data.map(t => t.type), x: gd.data[0].x,
                bars: gd.querySelectorAll('.barlayer .point').length};
    }""")
    assert chart["drawn"] and chart["barmode"] == "stack" and set(chart["types"]) == {"bar"}
    assert {"Conv", "ConvInteger"} <= set(chart["names"])
    assert [x.replace("&lt;", "<").replace("&gt;", ">") for x in chart["x"]] == ["local / fp32", "local / int8-dynamic"]
    assert chart["bars"] >= len(chart["names"])  # every trace drew at least one segment


def test_provider_split_and_changes_vs_fp32_and_the_baseline(page):
    providers = page.locator("#ops-providers-0 tbody tr").all_inner_texts()
    assert len(providers) == 2 and all("nodes on CPU" in row for row in providers)
    vs_fp32 = page.locator("#ops-changes-0-fp32 tbody tr").all_inner_texts()
    # ConvInteger's time when int8 is slower here, Conv's when it is faster: either way the convolutions
    assert len(vs_fp32) == 1 and "int8-dynamic" in vs_fp32[0] and "Conv" in vs_fp32[0]
    vs_base = page.locator("#ops-changes-0-base tbody tr").all_inner_texts()
    assert len(vs_base) == 2  # both variants were profiled in the baseline run too


def test_model_name_is_text_in_the_operator_section(page):
    heading = page.locator("#operators-0")
    assert heading.inner_text() == NAME  # shown as typed, never parsed as markup
    assert page.locator("#operators img").count() == 0  # and the page opened with no dialog (fixture)
    assert page.locator("nav.toc a[href='#operators']").count() == 1
