"""Nightly CI through `farm bench`: suites, baselines, regression gating, JUnit/Markdown, resume."""
from __future__ import annotations

import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.settings import GATE_REPEATS
from orchestrator.store import open_store
from tests import model_factory
from tests.e2e.cli_process import FarmProcess

FAST = ["--runs", "15", "--min-seconds", "0", "--warmup", "2", "--threads", "1", "--sample-interval", "0", "--no-report"]


def same_name(tmp_path: Path, folder: str, layers: int) -> Path:
    """`net.onnx` with `layers` MatMuls: the weights change under the same name (what gating catches)."""
    (tmp_path / folder).mkdir()
    return model_factory.slow_matmul_chain(tmp_path / folder / "net.onnx", size=128, layers=layers)


def test_an_unchanged_run_passes_and_a_slower_model_fails_the_gate(tmp_path, db_url, capsys, monkeypatch):
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base = same_name(tmp_path, "v1", layers=2)
    assert main(["bench", *FAST, "--db", db_url, "-m", str(base)]) == ExitStatus.OK
    open_store(db_url).tag_run("latest", "release-1.2")

    junit, markdown = tmp_path / "ok.xml", tmp_path / "ok.md"
    status = main(["bench", *FAST, "--db", db_url, "-m", str(base), "--baseline", "tag:release-1.2",
                   "--fail-on-regression", "50", "--junit", str(junit), "--markdown", str(markdown)])
    assert status == ExitStatus.OK, capsys.readouterr().out
    suite = ET.parse(junit).getroot()
    assert suite.iter("testcase") and not list(suite.iter("failure"))
    assert "net" in markdown.read_text()

    slower = same_name(tmp_path, "v2", layers=8)
    junit = tmp_path / "regressed.xml"
    status = main(["bench", *FAST, "--db", db_url, "-m", str(slower), "--baseline", "tag:release-1.2",
                   "--fail-on-regression", "50", "--junit", str(junit)])
    assert status == ExitStatus.REGRESSION
    failures = list(ET.parse(junit).getroot().iter("failure"))
    assert len(failures) == 1 and "regress" in (failures[0].get("message") or "").lower()
    text = summary.read_text()
    assert text.startswith("earlier step\n") and text.count("net") >= 2  # appended by both gated runs


def test_a_failed_board_beats_a_regression_in_the_exit_code(tmp_path, db_url):
    from tests import model_factory as mf

    base = same_name(tmp_path, "v1", layers=2)
    assert main(["bench", *FAST, "--db", db_url, "-m", str(base)]) == ExitStatus.OK
    broken = mf.string_input(tmp_path / "strings.onnx")
    status = main(["bench", *FAST, "--db", db_url, "-m", str(base), "-m", str(broken), "--baseline", "latest",
                   "--fail-on-regression", "50"])
    assert status == ExitStatus.BOARD_FAILURE


def test_a_bad_baseline_fails_before_measuring(db_url, digits_model, capsys):
    status = main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--baseline", "tag:nope",
                   "--fail-on-regression", "5"])
    assert status == ExitStatus.BAD_INPUT
    assert open_store(db_url).count_results() == 0
    # a tag not set yet (the first night before a release is tagged) is fine when asked: skipped cells
    status = main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--baseline", "tag:nope",
                   "--fail-on-regression", "5", "--baseline-optional", "--repeats", "1"])
    assert status == ExitStatus.OK and "1 skipped" in capsys.readouterr().out
    assert main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--baseline", "r-no-such-run",
                 "--baseline-optional"]) == ExitStatus.BAD_INPUT  # a mistyped run id is still an error


def test_a_suite_file_runs_its_matrix_with_its_settings(tmp_path, db_url, digits_model, yolo_model):
    suite = tmp_path / "nightly.yaml"
    suite.write_text(yaml.safe_dump({
        "models": [{"path": str(digits_model), "name": "digits"},
                   {"path": str(yolo_model), "name": "detector", "shapes": {"images": "1x3x160x160"}}],
        "variants": ["fp32", "int8-dynamic"],
        "settings": {"runs": 7, "min_seconds": 0, "warmup": 0, "threads": 1, "sample_interval_s": 0},
        "thresholds": {"latency_pct": 50, "memory_pct": 50},
    }))
    assert main(["bench", "--suite", str(suite), "--db", db_url, "--no-report"]) == ExitStatus.OK
    records = open_store(db_url).export_records("latest")
    assert sorted((r["model"], r["variant"]) for r in records) == [
        ("detector", "fp32"), ("detector", "int8-dynamic"), ("digits", "fp32"), ("digits", "int8-dynamic")]
    # a gated suite (it has thresholds) measures every cell in GATE_REPEATS fresh processes of 7 runs
    assert all(r["processes"] == GATE_REPEATS and r["runs"] == 7 * GATE_REPEATS for r in records)
    assert {r["accuracy_metric"] for r in records if r["model"] == "digits"} == {"top1"}  # its demo dataset


def test_a_bad_suite_names_file_line_and_field(tmp_path, db_url, capsys):
    suite = tmp_path / "bad.yaml"
    suite.write_text("models:\n  - path: nowhere.onnx\nvariants: [fp32]\nsettings:\n  rnus: 5\n")
    assert main(["bench", "--suite", str(suite), "--db", db_url]) == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err
    assert "bad.yaml:5" in err and "rnus" in err and "runs" in err


def test_resume_after_killing_the_controller_measures_only_missing_cells(tmp_path, db_url, digits_model):
    slow = model_factory.slow_matmul_chain(tmp_path / "slow.onnx")
    args = ["bench", "--db", db_url, "--no-report", "--threads", "1", "--runs", "3", "--min-seconds", "0",
            "--warmup", "0", "--sample-interval", "0", "-m", str(digits_model), "-m", str(slow)]
    farm = FarmProcess(*args)
    farm.wait_for_line("slow/fp32: started", timeout_s=120)  # digits is stored; slow takes seconds per run
    farm.proc.send_signal(signal.SIGINT)
    code, err = farm.finish()
    assert code == ExitStatus.INTERRUPTED
    store = open_store(db_url)
    run = store.get_run("latest")
    assert run["status"] == "interrupted" and f"--resume {run['run_id']}" in err
    [first] = store.results(run["run_id"])

    assert main([*args, "--resume", run["run_id"]]) == ExitStatus.OK  # the same options: the same plan
    results = store.results(run["run_id"])
    assert [r["model"] for r in results] == ["digits_mlp", "slow"]
    assert results[0]["result_id"] == first["result_id"]  # the finished cell was not measured again
    assert store.get_run(run["run_id"])["status"] == "finished"


def _count(db_url: str) -> int:
    try:
        return open_store(db_url).count_results()
    except Exception:
        return 0


def test_no_silent_passes_a_mistyped_database_or_a_baseline_with_nothing_in_common(tmp_path, digits_model, yolo_model,
                                                                                   capsys):
    typo = f"sqlite:///{tmp_path / 'farm-typo.db'}"  # a new, empty database: nothing to compare with
    status = main(["bench", *FAST, "--db", typo, "-m", str(digits_model), "--baseline", "latest",
                   "--fail-on-regression", "5", "--junit", str(tmp_path / "j.xml")])
    assert status == ExitStatus.BAD_INPUT
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert "no finished run in" in line and "nothing to compare with" in line and "farm-typo.db" in line
    assert open_store(typo).count_results() == 0 and not (tmp_path / "j.xml").exists()  # refused before measuring
    # a first nightly says so explicitly
    assert main(["bench", *FAST, "--db", typo, "-m", str(digits_model), "--baseline", "latest",
                 "--fail-on-regression", "5", "--baseline-optional"]) == ExitStatus.OK
    capsys.readouterr()
    other = open_store(typo).list_runs()[0]["run_id"]
    stored_before = open_store(typo).count_results()
    status = main(["bench", *FAST, "--db", typo, "-m", str(yolo_model), "--baseline", other,
                   "--fail-on-regression", "5"])
    err = capsys.readouterr().err
    assert status == ExitStatus.BAD_INPUT and "nothing would be compared" in err and other in err
    assert open_store(typo).count_results() == stored_before  # refused before measuring
