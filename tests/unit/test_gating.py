"""Gating: baseline resolution, exit status precedence, JUnit and Markdown outputs."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib

import pytest

from orchestrator import store as store_mod
from orchestrator.errors import BadInputError, ExitStatus
from orchestrator.gating import (
    GITHUB_STEP_SUMMARY,
    evaluate_gate,
    markdown_targets,
    resolve_baseline,
    write_junit,
    write_markdown,
)
from orchestrator.store import open_store
from tests.store._support import failed_row, ok_row, samples

MB = 1_000_000


@pytest.fixture
def store(tmp_path):
    opened = open_store(str(tmp_path / "farm.db"))
    yield opened
    opened.close()


def make_run(store, cells, status="finished", created_at=None):
    """cells: {(board, variant): p50 ms | ("failed", kind) | (p50, peak_rss_bytes)}."""
    run_id = store.create_run({}, {}, "test")
    for (board, variant), spec in cells.items():
        if isinstance(spec, tuple) and spec[0] == "failed":
            store.add_result(run_id, failed_row(board=board, model="yolo", variant=variant, kind=spec[1],
                                                message="board said <no> & \x1b[31mbye\x1b[0m"))
            continue
        p50, rss = spec if isinstance(spec, tuple) else (spec, 50 * MB)
        store.add_result(run_id, ok_row(board=board, model="yolo", variant=variant, latency_ms_p50=p50,
                                        peak_rss_bytes=rss), samples(p50, seed=zlib.crc32(f"{board}{variant}{p50}{len(cells)}".encode())))
    if status:
        store.finish_run(run_id, status)
    if created_at:
        with store.engine.begin() as conn:
            conn.execute(store_mod.runs.update().where(store_mod.runs.c.run_id == run_id).values(created_at=created_at))
    return run_id


# --------------------------------------------------------------------------- baseline


def test_latest_is_the_newest_earlier_finished_run_sharing_a_cell(store):
    older = make_run(store, {("rpi4", "fp32"): 10.0}, created_at="2026-11-01T00:00:00.000+00:00")
    newer = make_run(store, {("rpi4", "fp32"): 10.0}, created_at="2026-11-02T00:00:00.000+00:00")
    make_run(store, {("other", "fp32"): 10.0}, created_at="2026-11-03T00:00:00.000+00:00")  # no common cell
    make_run(store, {("rpi4", "fp32"): 10.0}, status="interrupted", created_at="2026-11-04T00:00:00.000+00:00")
    current = make_run(store, {("rpi4", "fp32"): 10.0}, status=None)
    assert resolve_baseline(store, "latest", current) == newer
    assert resolve_baseline(store, "latest", newer) == older
    with pytest.raises(BadInputError, match="no earlier finished run in .* --baseline-optional"):
        resolve_baseline(store, "latest", older)  # a first run (or a mistyped FARM_DB) is not a silent pass
    assert resolve_baseline(store, "latest", older, optional=True) is None  # the first nightly, said so

def test_baseline_by_tag_or_id(store):
    base = make_run(store, {("rpi4", "fp32"): 10.0})
    current = make_run(store, {("rpi4", "fp32"): 10.0})
    store.tag_run(base, "release-1.2")
    assert resolve_baseline(store, "tag:release-1.2", current) == base
    assert resolve_baseline(store, base[:-1], current) == base
    assert resolve_baseline(store, None, current) is None
    with pytest.raises(BadInputError, match="no run is tagged 'nope'"):
        resolve_baseline(store, "tag:nope", current)
    with pytest.raises(BadInputError, match="no run"):
        resolve_baseline(store, "r1999", current)
    with pytest.raises(BadInputError, match="is the run being gated"):
        resolve_baseline(store, current, current)


# --------------------------------------------------------------------------- verdicts and exit status


def test_clean_run_passes(store):
    base = make_run(store, {("rpi4", "fp32"): 10.0, ("rpi4", "fp16"): 8.0})
    new = make_run(store, {("rpi4", "fp32"): 10.0, ("rpi4", "fp16"): 8.0})
    gate = evaluate_gate(store, new, base, 5.0)
    assert gate.exit_status == ExitStatus.OK and gate.counts()["passed"] == 2


def test_latency_regression_fails_with_5(store):
    base = make_run(store, {("rpi4", "fp32"): 10.0, ("rpi4", "fp16"): 8.0})
    new = make_run(store, {("rpi4", "fp32"): 11.5, ("rpi4", "fp16"): 8.0})
    gate = evaluate_gate(store, new, base, 5.0)
    assert gate.exit_status == ExitStatus.REGRESSION
    [bad] = gate.regressed
    assert (bad.board, bad.variant) == ("rpi4", "fp32") and "+15." in bad.message
    assert evaluate_gate(store, new, base, 20.0).exit_status == ExitStatus.OK  # below a 20 % threshold


def test_memory_regression_fails_with_its_own_threshold(store):
    base = make_run(store, {("rpi4", "fp32"): (10.0, 100 * MB)})
    new = make_run(store, {("rpi4", "fp32"): (10.0, 112 * MB)})
    assert evaluate_gate(store, new, base, 5.0, memory_pct=10.0).exit_status == ExitStatus.REGRESSION
    assert evaluate_gate(store, new, base, 5.0, memory_pct=15.0).exit_status == ExitStatus.OK


def _energy_run(store, energy_mj, p50=10.0):
    """One cell whose board measured `energy_mj` per inference (None: no power sensor)."""
    run_id = store.create_run({}, {}, "test")
    export = {"energy_mj_per_inference": energy_mj, "power_w_mean": None if energy_mj is None else energy_mj / p50}
    store.add_result(run_id, ok_row(board="jetson", model="yolo", variant="fp32", latency_ms_p50=p50,
                                    peak_rss_bytes=50 * MB, details={"export": export}), samples(p50, seed=7))
    store.finish_run(run_id, "finished")
    return run_id


def test_energy_regression_fails_where_both_runs_measured_it(store, tmp_path):
    base = _energy_run(store, 20.0)
    new = _energy_run(store, 23.0)  # same latency, 15 % more energy per inference: the board draws more
    gate = evaluate_gate(store, new, base, 5.0)
    assert gate.exit_status == ExitStatus.REGRESSION
    [bad] = gate.regressed
    assert "energy 20 -> 23 mJ/inference (+15.0%): regressed" in bad.message
    assert "energy 5%" in gate.summary_line()
    write_markdown(tmp_path / "s.md", gate)
    assert "Δ energy" in (tmp_path / "s.md").read_text() and "+15.0%" in (tmp_path / "s.md").read_text()
    assert evaluate_gate(store, new, base, 20.0).exit_status == ExitStatus.OK  # below a 20 % threshold
    assert evaluate_gate(store, _energy_run(store, 18.0), base, 5.0).comparison.cells[0].energy_verdict == "improved"


def test_a_few_slow_outliers_do_not_fail_the_gate_on_energy(store):
    """Energy is mean power × mean time per inference: 5 hiccups in 200 runs move the mean (and the
    energy figure) by 12 %, the median not at all; the board's power is the same. Not a regression."""
    def run(latencies):
        run_id = store.create_run({}, {}, "test")
        mean_ms = sum(latencies) / len(latencies)
        export = {"energy_mj_per_inference": 2.0 * mean_ms, "power_w_mean": 2.0}
        store.add_result(run_id, ok_row(board="jetson", model="yolo", variant="fp32", latency_ms_p50=10.0,
                                        details={"export": export}), latencies)
        store.finish_run(run_id, "finished")
        return run_id

    base = run(samples(10.0, 200, seed=1))
    hiccups = samples(10.0, 200, seed=2)
    hiccups[::40] = [60.0] * 5
    gate = evaluate_gate(store, run(hiccups), base, 5.0)
    [cell] = gate.comparison.cells
    assert cell.energy_change_pct > 10.0  # the figures moved...
    assert cell.energy_verdict == "unchanged" and cell.latency.verdict == "unchanged"  # ...the board did not
    assert gate.exit_status == ExitStatus.OK


def test_energy_is_judged_only_when_both_runs_measured_it(store):
    base = _energy_run(store, None)  # a board without a power sensor
    new = _energy_run(store, 23.0)
    gate = evaluate_gate(store, new, base, 5.0)
    assert gate.exit_status == ExitStatus.OK
    [cell] = gate.comparison.cells
    assert cell.energy_verdict is None and "energy" not in gate.summary_line()


def test_board_failure_takes_precedence_over_regression(store):
    base = make_run(store, {("rpi4", "fp32"): 10.0, ("jetson", "fp32"): 5.0})
    new = make_run(store, {("rpi4", "fp32"): 12.0, ("jetson", "fp32"): ("failed", "unreachable")})
    gate = evaluate_gate(store, new, base, 5.0)
    assert gate.exit_status == ExitStatus.BOARD_FAILURE
    assert len(gate.failed) == 1 and len(gate.regressed) == 1


def test_no_baseline_fails_only_on_job_failures(store):
    ok = make_run(store, {("rpi4", "fp32"): 10.0})
    gate = evaluate_gate(store, ok, None, 5.0)
    assert gate.exit_status == ExitStatus.OK and gate.cells[0].message == "no baseline to compare with"
    assert gate.cells[0].outcome == "skipped"  # not compared is not passed
    bad = make_run(store, {("rpi4", "fp32"): ("failed", "timeout")})
    assert evaluate_gate(store, bad, None, 5.0).exit_status == ExitStatus.BOARD_FAILURE


def test_cells_failed_in_the_baseline_or_missing_now_are_skipped_not_passed(store):
    base = make_run(store, {("a", "fp32"): ("failed", "timeout"), ("b", "fp32"): 10.0})
    new = make_run(store, {("a", "fp32"): 10.0, ("c", "fp32"): 10.0})
    gate = evaluate_gate(store, new, base, 5.0)
    outcomes = {c.board: c.outcome for c in gate.cells}
    assert outcomes == {"a": "skipped", "b": "skipped", "c": "skipped"}
    assert gate.exit_status == ExitStatus.OK


def test_a_baseline_with_no_cell_in_common_is_an_error_unless_optional(store):
    base = make_run(store, {("a", "fp32"): 10.0})
    new = make_run(store, {("b", "fp32"): 10.0})
    with pytest.raises(BadInputError, match="no cell .* in common"):
        evaluate_gate(store, new, base, 5.0)
    gate = evaluate_gate(store, new, base, 5.0, baseline_optional=True)
    assert gate.exit_status == ExitStatus.OK and {c.outcome for c in gate.cells} == {"skipped"}


def test_inconclusive_is_its_own_outcome_shown_as_skipped_or_failing_when_asked(store, tmp_path):
    base = make_run(store, {("rpi4", "fp32"): 10.0})
    new = store.create_run({}, {"hostname": "ci-7"}, "test")  # noisy samples: the CI straddles the threshold
    store.add_result(new, ok_row(board="rpi4", model="yolo", variant="fp32", peak_rss_bytes=50 * MB),
                     samples(10.6, n=12, seed=3, spread=0.2))
    store.finish_run(new, "finished")
    gate = evaluate_gate(store, new, base, 5.0)
    [cell] = gate.cells
    assert cell.outcome == "inconclusive" and gate.exit_status == ExitStatus.OK and "CI" in cell.message
    suite = ET.parse(write_junit(tmp_path / "j.xml", gate)).getroot().find("testsuite")
    case = suite.find("testcase")
    assert case.find("skipped").get("message").startswith("inconclusive: ") and case.find("failure") is None
    assert suite.get("hostname") == "ci-7" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", suite.get("timestamp"))
    assert float(case.get("time")) >= 0.0 and suite.get("skipped") == "1"
    from orchestrator.gating import markdown_summary
    assert "⚠️ inconclusive" in markdown_summary(gate) and "✅ passed" not in markdown_summary(gate)
    strict = evaluate_gate(store, new, base, 5.0, fail_on_inconclusive=True)
    assert strict.exit_status == ExitStatus.REGRESSION
    case = ET.parse(write_junit(tmp_path / "k.xml", strict)).getroot().find("testsuite/testcase")
    assert case.find("failure").get("type") == "inconclusive"


# --------------------------------------------------------------------------- JUnit


def test_junit_has_one_testcase_per_cell_with_numbers(store, tmp_path):
    base = make_run(store, {("rpi4", "fp32"): 10.0, ("rpi4", "fp16"): 8.0, ("jetson", "fp32"): 5.0,
                            ("gone", "fp32"): 5.0})
    new = make_run(store, {("rpi4", "fp32"): 12.0, ("rpi4", "fp16"): 8.0,
                           ("jetson", "fp32"): ("failed", "unreachable")})
    gate = evaluate_gate(store, new, base, 5.0)
    path = write_junit(tmp_path / "junit.xml", gate)
    root = ET.parse(path).getroot()  # parses: control characters were replaced
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("farm.rpi4", "yolo[fp32]"), ("farm.rpi4", "yolo[fp16]"), ("farm.jetson", "yolo[fp32]"),
                          ("farm.gone", "yolo[fp32]")}
    regression = cases[("farm.rpi4", "yolo[fp32]")].find("failure")
    assert regression.get("type") == "regression"
    assert re.search(r"latency p50 (9|10)\.\d+ -> 1[12]\.\d+ ms \(\+(19|20)\.\d%, 95% CI", regression.get("message"))
    failed = cases[("farm.jetson", "yolo[fp32]")].find("failure")
    assert failed.get("type") == "job-failed" and "unreachable" in failed.get("message")
    assert "<no> &" in failed.get("message")
    assert cases[("farm.rpi4", "yolo[fp16]")].find("failure") is None
    assert cases[("farm.gone", "yolo[fp32]")].find("skipped") is not None


def test_junit_refuses_a_folder(store, tmp_path):
    run_id = make_run(store, {("rpi4", "fp32"): 10.0})
    with pytest.raises(BadInputError, match="directory"):
        write_junit(tmp_path, evaluate_gate(store, run_id, None, 5.0))


# --------------------------------------------------------------------------- Markdown


def test_markdown_targets_honour_github_step_summary(tmp_path, monkeypatch):
    monkeypatch.delenv(GITHUB_STEP_SUMMARY, raising=False)
    assert markdown_targets(None) == []
    assert markdown_targets(tmp_path / "s.md") == [tmp_path / "s.md"]
    monkeypatch.setenv(GITHUB_STEP_SUMMARY, str(tmp_path / "step.md"))
    assert markdown_targets(None) == [tmp_path / "step.md"]
    assert markdown_targets(tmp_path / "s.md") == [tmp_path / "s.md", tmp_path / "step.md"]
    assert markdown_targets(tmp_path / "step.md") == [tmp_path / "step.md"]


def test_markdown_appends_to_the_step_summary_and_replaces_other_files(store, tmp_path, monkeypatch):
    base = make_run(store, {("rpi4", "fp32"): 10.0, ("jetson", "fp32"): 5.0})
    new = make_run(store, {("rpi4", "fp32"): 12.0, ("jetson", "fp32"): ("failed", "oom-killed")})
    gate = evaluate_gate(store, new, base, 5.0)
    step = tmp_path / "step.md"
    step.write_text("## earlier step\n")
    own = tmp_path / "gate.md"
    own.write_text("stale\n")
    monkeypatch.setenv(GITHUB_STEP_SUMMARY, str(step))
    for target in markdown_targets(own):
        write_markdown(target, gate)
    text = step.read_text()
    assert text.startswith("## earlier step\n") and "farm gate" in text
    assert own.read_text() == text[len("## earlier step\n\n"):]
    lines = own.read_text().splitlines()
    assert "job failure" in lines[0]
    table = [line for line in lines if line.startswith("| ")]
    assert table[0].startswith("| board |") and len(table) == 3
    assert "oom-killed" in table[1] and "&lt;no&gt;" in table[1] and "\x1b" not in own.read_text()
    assert "regressed" in table[2] and re.search(r"\| (9|10)\.\d+ → 1[12]\.\d+ \| \+(19|20)\.\d% \(\+1\d…\+2\d%\) \|", table[2])


def test_core_modules_do_not_import_the_cli_framework():
    import subprocess
    import sys

    code = ("import sys; import orchestrator.store, orchestrator.results, orchestrator.export, "
            "orchestrator.compare, orchestrator.gating, orchestrator.suite; "
            "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_energy_follows_latency_where_latency_is_not_significant():
    """The interval of a latency change can sit past the threshold while its test is not
    significant at alpha (latency: inconclusive); with the same power, energy cannot be more sure."""
    import math

    from orchestrator.analysis import compare_energy, compare_process_medians

    base = [10.0 * math.exp(z * 0.1) for z in (-1.2, -0.6, 0.0, 0.6, 1.2)]
    latency = compare_process_medians(base, [b * 1.21 for b in base], min_effect_pct=5.0)
    assert latency.verdict == "inconclusive" and latency.change_ci_low_pct >= 5.0  # the case itself
    assert compare_energy(latency, 1.0, min_effect_pct=5.0)[0] == "inconclusive"
    assert compare_energy(latency, 1.10, min_effect_pct=5.0)[0] == "regressed"  # the board draws 10 % more
