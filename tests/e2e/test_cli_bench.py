"""`farm bench`, `farm runs`, `farm report` end to end on the local board with real models."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.record import EXPORT_FIELDS
from orchestrator.store import open_store

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0.05"]


def farm(*args: str) -> int:
    return main(list(args))


def exported(db_url: str, run_id: str = "latest") -> list[dict]:
    return json.loads(_capture(["runs", "export", run_id, "--format", "json", "--db", db_url]))


def _capture(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_default_bench_runs_every_demo_model_stores_and_reports(db_url, capsys):
    assert farm("bench", *FAST, "--db", db_url) == ExitStatus.OK
    out = capsys.readouterr().out
    assert "digits_mlp" in out and "yolo_timing" in out
    records = exported(db_url)
    assert {(r["board"], r["model"], r["variant"]) for r in records} == {
        ("local", "digits_mlp", "fp32"), ("local", "yolo_timing", "fp32")}
    for record in records:
        assert set(EXPORT_FIELDS) <= set(record)
        assert record["status"] == "ok" and record["runs"] >= 5
        assert record["latency_ms_min"] <= record["latency_ms_p50"] <= record["latency_ms_p99"] <= record["latency_ms_max"]
        assert record["fps"] == pytest.approx(1000.0 / record["latency_ms_mean"])
        assert record["peak_rss_bytes"] > 0 and record["model_size_bytes"] > 0
    run_id = records[0]["run_id"]
    report = Path("reports") / f"{run_id}.html"
    assert f"report: {report}" in out
    html = report.read_text()
    assert "digits_mlp" in html and "yolo_timing" in html and "onnxruntime_version" in html


def test_models_are_repeatable_and_csv_export_matches_json(db_url, digits_model, tmp_path):
    copy = tmp_path / "other.onnx"
    copy.write_bytes(digits_model.read_bytes())
    assert farm("bench", *FAST, "--model", str(digits_model), "--model", str(copy), "--db", db_url,
                "--report", str(tmp_path / "r.html")) == ExitStatus.OK
    records = exported(db_url)
    assert sorted(r["model"] for r in records) == ["digits_mlp", "other"]
    rows = list(csv.DictReader(io.StringIO(_capture(["runs", "export", "latest", "--format", "csv", "--db", db_url]))))
    assert [r["model"] for r in rows] == [r["model"] for r in records]
    assert float(rows[0]["latency_ms_p50"]) == pytest.approx(records[0]["latency_ms_p50"])
    assert (tmp_path / "r.html").exists()


def test_runs_ls_lists_the_run(db_url, capsys):
    assert farm("bench", *FAST, "--model", str(Path(__file__).parents[2] / "orchestrator/demo/digits_mlp.onnx"),
                "--db", db_url, "--no-report") == ExitStatus.OK
    capsys.readouterr()
    assert farm("runs", "ls", "--db", db_url) == ExitStatus.OK
    out = capsys.readouterr().out
    assert exported(db_url)[0]["run_id"] in out and "finished" in out


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["--model", "absent.onnx"], ExitStatus.BAD_INPUT, "model file not found"),
        (["--model", "corrupt.onnx"], ExitStatus.BAD_INPUT, "not a readable ONNX model"),
        (["--model", "notes.txt"], ExitStatus.BAD_INPUT, "not a readable ONNX model"),
        (["--report", "notes.txt/report.html"], ExitStatus.BAD_INPUT, "cannot write the report"),
        (["--runs", "zero"], ExitStatus.USAGE, "--runs"),
        (["--runs", "0"], ExitStatus.USAGE, "--runs"),
        (["--bogus"], ExitStatus.USAGE, "No such option"),
        (["--limit", "rpi4"], ExitStatus.BAD_INPUT, "needs an inventory"),
    ],
)
def test_bad_input_gives_one_line_an_exit_code_and_no_rows(db_url, tmp_path, capsys, args, status, message):
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07\x12\x00garbage")
    (tmp_path / "notes.txt").write_text("hello")
    assert farm("bench", *FAST, "--db", db_url, *args) == status
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    if os.path.exists(tmp_path / "farm.db"):
        assert open_store(db_url).count_results() == 0


@pytest.mark.parametrize("args", [
    ["--threads", "99999999999999999999"], ["--threads", "1,99999999999999999999"], ["--batch", "99999999999999999999"],
    ["--runs", "99999999999999999999"], ["--warmup", "99999999999999999999"], ["--repeats", "99999999999999999999"],
    ["--min-seconds", "inf"], ["--max-seconds", "nan"], ["--cooldown", "1e308"], ["--cooldown-below", "inf"],
    ["--lease-wait", "inf"], ["--lease-ttl", "1e308"], ["--profile-max-seconds", "inf"], ["--sample-interval", "inf"],
    ["--forks", "99999999999999999999"], ["--fail-on-regression", "inf"],
])
def test_a_huge_or_infinite_number_is_a_usage_error_before_any_run(db_url, capsys, args):
    assert farm("bench", *FAST, "--db", db_url, *args) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert args[0] in err
    assert "internal error" not in err and "Traceback" not in err
    if db_url.startswith("postgresql") or os.path.exists(db_url.removeprefix("sqlite:///")):
        assert open_store(db_url).list_runs() == []  # no run left behind, `failed` or otherwise


def test_unsynthesisable_input_is_a_stored_failure_with_exit_code(db_url, tmp_path, capsys):
    from tests import model_factory

    model = model_factory.string_input(tmp_path / "strings.onnx")
    assert farm("bench", *FAST, "--model", str(model), "--db", db_url, "--no-report") == ExitStatus.BOARD_FAILURE
    err = capsys.readouterr().err
    assert "input-error" in err and "cannot synthesise input" in err
    [record] = exported(db_url)
    assert record["status"] == "failed" and record["error_kind"] == "input-error"


def test_a_failed_cell_exports_the_same_fields_as_a_measured_one(db_url, digits_model, tmp_path):
    """CSV columns and JSON keys never depend on which cells failed: every record carries every
    exported field, None when not measured."""
    from tests import model_factory

    plain = tmp_path / "plain.onnx"  # the demo model under another name: no dataset, no accuracy fields
    plain.write_bytes(digits_model.read_bytes())
    model = model_factory.string_input(tmp_path / "strings.onnx")
    assert farm("bench", *FAST, "--model", str(plain), "--model", str(model), "--db", db_url,
                "--no-report") == ExitStatus.BOARD_FAILURE
    records = {r["status"]: r for r in exported(db_url)}
    assert set(records) == {"ok", "failed"}
    assert list(records["failed"]) == list(records["ok"])
    assert records["failed"]["latency_ms_cv"] is None and records["failed"]["processes"] is None
    assert records["ok"]["processes"] == 1


def test_unknown_run_id_and_bad_format(db_url, capsys):
    from orchestrator.store import open_store

    open_store(db_url).close()  # an empty database: the run id is what is wrong
    assert farm("runs", "export", "nope", "--db", db_url) == ExitStatus.BAD_INPUT
    assert farm("runs", "export", "latest", "--format", "xml", "--db", db_url) == ExitStatus.USAGE
    assert farm("report", "latest", "--db", db_url) == ExitStatus.BAD_INPUT


def test_read_only_commands_never_create_a_database_and_say_which_they_looked_in(tmp_path, capsys):
    typo = tmp_path / "farm-typo.db"
    for args in (["runs", "ls"], ["runs", "show"], ["report", "latest"], ["compare", "a", "b"],
                 ["history", "--board", "b", "--model", "m"]):
        assert farm(*args, "--db", str(typo)) == ExitStatus.STORE, args
        assert f"no results database at {typo}" in capsys.readouterr().err
    assert not typo.exists()


def test_a_database_on_a_read_only_mount_can_be_listed_and_reported(tmp_path, digits_model, capsys):
    import shutil

    import pytest

    db = tmp_path / "w" / "farm.db"
    assert farm("bench", "--db", str(db), "--runs", "3", "--min-seconds", "0", "--warmup", "0", "--sample-interval",
                "0", "--no-report", "-m", str(digits_model)) == ExitStatus.OK
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("cannot mount a tmpfs to test a read-only database (CI runs as root)")
        pytest.skip("mounting a tmpfs needs root")
    try:
        shutil.copy(db, mount / "farm.db")  # a results copy: the WAL was checkpointed when farm closed it
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        capsys.readouterr()
        assert farm("runs", "ls", "--db", str(mount / "farm.db")) == ExitStatus.OK
        assert "finished" in capsys.readouterr().out
        out = tmp_path / "report.html"
        assert farm("report", "latest", "-o", str(out), "--db", str(mount / "farm.db")) == ExitStatus.OK
        assert "digits_mlp" in out.read_text()
        assert farm("runs", "tag", "latest", "x", "--db", str(mount / "farm.db")) == ExitStatus.STORE  # writes fail
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_console_script_version_help_and_debug(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("farm ")
    for sub in (["bench"], ["runs"], ["runs", "export"], ["report"]):
        proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *sub, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "Usage" in proc.stdout, sub
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--debug", "bench", "--model", str(tmp_path / "x.onnx")],
        capture_output=True, text=True,
    )
    assert proc.returncode == ExitStatus.BAD_INPUT and "Traceback" in proc.stderr


# What `farm bench --no-report` must not load: the HTML report's code (jinja2, the charts), the fleet's.
# Every module a bench imports is startup time paid on each run (issue 17's local row).
NOT_FOR_A_BENCH = ("jinja2", "orchestrator.report.context", "orchestrator.report.render", "orchestrator.fleet")


def test_a_bench_without_a_report_does_not_load_the_report_code(db_url, digits_model):
    script = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        f"code = main(['bench', *{FAST!r}, '--model', {str(digits_model)!r}, '--db', {db_url!r}, '--no-report'])\n"
        f"print(code, [m for m in {NOT_FOR_A_BENCH!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"
