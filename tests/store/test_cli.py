"""`farm runs ls/show/export/tag`, `farm compare`, `farm history` on both databases."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import typer

from orchestrator.cli import main
from orchestrator.cli.compare_cmd import compare
from orchestrator.cli.history_cmd import history
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests.store._support import failed_row, ok_row, samples


def farm(*args: str) -> int:
    """The real `farm` entry point (error → exit code table included)."""
    return main(list(args))


def farm_with_new_commands(*args: str) -> int:
    """`farm` with compare and history registered the way cli/__init__.py registers commands."""
    import orchestrator.cli as cli

    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands}
    if "compare" not in names:
        cli.app.command(help=compare.__doc__)(compare)
    if "history" not in names:
        cli.app.command(help=history.__doc__)(history)
    return main(list(args))


@pytest.fixture
def two_runs(db_url):
    """Base and new run on rpi4: fp32 20 % slower in the new run, fp16 the same; jetson failed."""
    with open_store(db_url) as store:
        base = store.create_run({"runs": 60}, {"hostname": "ci"}, "0.1.0")
        store.add_result(base, ok_row(board="rpi4", model="yolo", variant="fp32", latency_ms_p50=10.0,
                                      peak_rss_bytes=50_000_000), samples(10.0, seed=1))
        store.add_result(base, ok_row(board="rpi4", model="yolo", variant="fp16", latency_ms_p50=8.0,
                                      peak_rss_bytes=40_000_000), samples(8.0, seed=2))
        store.finish_run(base, "finished")
        new = store.create_run({"runs": 60}, {"hostname": "ci"}, "0.1.0")
        store.add_result(new, ok_row(board="rpi4", model="yolo", variant="fp32", latency_ms_p50=12.0,
                                     peak_rss_bytes=50_000_000), samples(12.0, seed=3))
        store.add_result(new, ok_row(board="rpi4", model="yolo", variant="fp16", latency_ms_p50=8.0,
                                     peak_rss_bytes=40_000_000), samples(8.0, seed=4))
        store.add_result(new, failed_row(board="jetson", model="yolo", variant="fp32"))
        store.finish_run(new, "finished")
    return base, new


def test_runs_ls_filters_and_tags(two_runs, db_url, capsys):
    base, new = two_runs
    assert farm("runs", "tag", base, "release-1.2", "--db", db_url) == 0
    assert f"tagged {base} as release-1.2" in capsys.readouterr().out
    assert farm("runs", "ls", "--db", db_url) == 0
    out = capsys.readouterr().out
    assert out.index(new) < out.index(base) and "release-1.2" in out
    assert farm("runs", "ls", "--board", "jetson", "--db", db_url) == 0
    out = capsys.readouterr().out
    assert new in out and base not in out
    assert farm("runs", "ls", "--since", "2999-01-01", "--db", db_url) == 0
    assert "no runs match" in capsys.readouterr().err
    assert farm("runs", "ls", "--since", "soon", "--db", db_url) == ExitStatus.BAD_INPUT


def test_runs_tag_moves_a_reused_name(two_runs, db_url, capsys):
    base, new = two_runs
    assert farm("runs", "tag", base, "nightly", "--db", db_url) == 0
    assert farm("runs", "tag", new, "nightly", "--db", db_url) == 0
    assert f"moved from {base}" in capsys.readouterr().out
    assert farm("runs", "show", "tag:nightly", "--db", db_url) == 0
    assert f"run {new}" in capsys.readouterr().out
    assert farm("runs", "tag", "--delete", "nightly", "--db", db_url) == 0
    assert farm("runs", "show", "tag:nightly", "--db", db_url) == ExitStatus.BAD_INPUT
    assert farm("runs", "tag", base, "bad name", "--db", db_url) == ExitStatus.BAD_INPUT


def test_runs_show_prints_settings_controller_and_results(two_runs, db_url, capsys):
    _, new = two_runs
    assert farm("runs", "show", new[:-1], "--db", db_url) == 0
    out = capsys.readouterr().out
    assert f"run {new}" in out and "runs=60" in out and "hostname ci" in out
    assert "rpi4" in out and "jetson" in out and "unreachable" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert farm("runs", "show", "r1999", "--db", db_url) == ExitStatus.BAD_INPUT


def test_runs_export_formats(two_runs, db_url, tmp_path, capsys):
    _, new = two_runs
    assert farm("runs", "export", new, "--format", "csv", "-o", str(tmp_path / "run.csv"), "--db", db_url) == 0
    assert list(pd.read_csv(tmp_path / "run.csv")["board"]) == ["rpi4", "rpi4", "jetson"]
    assert farm("runs", "export", new, "--format", "json", "--db", db_url) == 0
    assert [r["variant"] for r in json.loads(capsys.readouterr().out)] == ["fp32", "fp16", "fp32"]
    pytest.importorskip("pyarrow")
    assert farm("runs", "export", new, "--format", "parquet", "-o", str(tmp_path / "run.parquet"), "--db", db_url) == 0
    assert list(pd.read_parquet(tmp_path / "run.parquet")["status"]) == ["ok", "ok", "failed"]


def test_compare_is_informational_unless_asked_to_fail(two_runs, db_url, capsys):
    base, new = two_runs
    assert farm_with_new_commands("compare", base, new, "--db", db_url) == ExitStatus.OK
    out = capsys.readouterr().out
    assert "regressed" in out and "unchanged" in out and "only in B" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    # --fail-on-regression is a percentage, as in farm bench
    assert farm_with_new_commands("compare", base, new, "--fail-on-regression", "5", "--db", db_url) == ExitStatus.REGRESSION
    capsys.readouterr()
    # a 20 % slowdown is below a 25 % threshold
    assert farm_with_new_commands("compare", base, new, "--fail-on-regression", "25", "--db", db_url) == ExitStatus.OK
    capsys.readouterr()
    assert farm_with_new_commands("compare", base, new, "--min-effect", "25", "--fail-on-regression", "5",
                                  "--db", db_url) == ExitStatus.USAGE
    capsys.readouterr()
    assert farm_with_new_commands("compare", base, new, "--json", "--db", db_url) == 0
    data = json.loads(capsys.readouterr().out)
    verdicts = {(c["board"], c["variant"]): c["verdict"] for c in data["cells"]}
    assert verdicts == {("rpi4", "fp32"): "regressed", ("rpi4", "fp16"): "unchanged", ("jetson", "fp32"): "only-new"}
    fp32 = next(c for c in data["cells"] if c["verdict"] == "regressed")
    assert fp32["latency"]["change_pct"] == pytest.approx(20.0, abs=2.0)


def test_compare_of_runs_with_no_common_cell_is_an_error(db_url, capsys):
    from orchestrator.store import open_store
    from tests.store._support import ok_row

    with open_store(db_url) as store:
        runs = []
        for board in ("a", "b"):
            run_id = store.create_run({}, {}, "test")
            store.add_result(run_id, ok_row(board=board), [1.0] * 10)
            store.finish_run(run_id, "finished")
            runs.append(run_id)
    assert farm_with_new_commands("compare", *runs, "--db", db_url) == ExitStatus.BAD_INPUT
    assert "no cell" in capsys.readouterr().err


def test_history_oldest_first(two_runs, db_url, capsys):
    base, new = two_runs
    assert farm_with_new_commands("history", "--board", "rpi4", "--model", "yolo", "--variant", "fp32",
                                  "--db", db_url) == 0
    out = capsys.readouterr().out
    assert out.index(base) < out.index(new)
    assert "10.000" in out and "12.000" in out and "47.7" in out  # 50e6 B = 47.7 MiB
    # the change and verdict vs the previous run are the comparison engine's: what farm compare says
    assert farm_with_new_commands("compare", base, new, "--json", "--db", db_url) == 0
    compared = {c["variant"]: c for c in json.loads(capsys.readouterr().out)["cells"]}
    fp32 = compared["fp32"]
    assert farm_with_new_commands("history", "--board", "rpi4", "--model", "yolo", "--variant", "fp32",
                                  "--db", db_url) == 0
    assert f"{fp32['latency']['change_pct']:+.1f}%  regressed" in capsys.readouterr().out
    assert farm_with_new_commands("history", "--board", "rpi4", "--model", "yolo", "--json", "--db", db_url) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["run_id"], e["variant"]) for e in entries] == [(base, "fp32"), (base, "fp16"), (new, "fp32"),
                                                               (new, "fp16")]
    assert [e["vs_previous"] and e["vs_previous"]["verdict"] for e in entries] == [
        None, None, fp32["verdict"], compared["fp16"]["verdict"]]
    assert [e["vs_previous"]["base_run_id"] for e in entries[2:]] == [base, base]  # judged against that run
    assert farm_with_new_commands("history", "--board", "nope", "--model", "yolo", "--db", db_url) == 0
    assert "no results" in capsys.readouterr().err


def test_history_draws_two_runtimes_as_two_series(db_url, capsys):
    from orchestrator.store import open_store

    with open_store(db_url) as store:
        for p50_ms, runtime, precision in ((10.0, "onnxruntime", None), (3.3, "openvino", "bf16"),
                                           (10.1, "onnxruntime", None), (3.4, "openvino", "bf16")):
            run_id = store.create_run({}, {}, "test")
            export = {"runtime": runtime, "inference_precision": precision}
            store.add_result(run_id, ok_row(board="nuc", model="det", latency_ms_p50=p50_ms,
                                            details={"export": export}), samples(p50_ms, seed=int(p50_ms * 10)))
            store.finish_run(run_id, "finished")
    assert farm_with_new_commands("history", "--board", "nuc", "--model", "det", "--json", "--db", db_url) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["series"] for e in entries] == ["onnxruntime", "openvino bf16"] * 2
    # each run is judged against the previous run on the same runtime: no "-67 %" between runtimes
    assert [e["vs_previous"] and e["vs_previous"]["verdict"] for e in entries] == [None, None, "unchanged", "unchanged"]
    assert farm_with_new_commands("history", "--board", "nuc", "--model", "det", "--db", db_url) == 0
    out = capsys.readouterr().out
    assert "ran on" in out and "openvino" in out and "-67." not in out  # a -67.x % delta; run ids hold digits


def test_commands_are_plain_functions():
    """compare/history are typer command functions the lead registers with app.command()."""
    app = typer.Typer()
    app.command()(compare)
    app.command()(history)
    assert {c.callback.__name__ for c in app.registered_commands} == {"compare", "history"}


@pytest.mark.parametrize("command", [
    ["runs", "ls"], ["runs", "show"], ["runs", "export"], ["history", "-b", "b", "-m", "m"], ["report"],
    ["compare", "a", "b"], ["ops"],
])
@pytest.mark.parametrize("database", ["garbage", "refused"])
def test_read_only_commands_say_a_database_they_cannot_use_in_one_line(command, database, tmp_path, capsys):
    if database == "garbage":
        path = tmp_path / "farm.db"
        path.write_bytes(bytes(range(256)) * 16)  # not SQLite
        url = f"sqlite:///{path}"
    else:
        url = "postgresql+psycopg://farm:secret@127.0.0.1:1/farm"  # nothing listens on port 1
    assert main([*command, "--db", url]) == ExitStatus.STORE
    err = capsys.readouterr().err.strip()
    assert err.startswith("farm: error: database ") and len(err.splitlines()) == 1 and "secret" not in err


@pytest.mark.parametrize("args, status, flag", [
    (["runs", "ls", "--since", "99999999d"], ExitStatus.BAD_INPUT, "out of range"),
    (["history", "-b", "rpi4", "-m", "yolo", "--since", "1000000000000d"], ExitStatus.BAD_INPUT, "out of range"),
    (["runs", "ls", "--last", "100000000000000000000"], ExitStatus.USAGE, "--last"),
    (["history", "-b", "rpi4", "-m", "yolo", "--last", "100000000000000000000"], ExitStatus.USAGE, "--last"),
    (["report", "latest", "--history", "100000000000000000000"], ExitStatus.USAGE, "--history"),
    (["ops", "--top", "100000000000000000000"], ExitStatus.USAGE, "--top"),
])
def test_huge_numbers_are_refused_with_one_line_not_an_overflow(two_runs, db_url, tmp_path, capsys, args, status, flag):
    assert farm(*args, "--db", db_url) == status
    err = capsys.readouterr().err
    assert flag in err
    assert "internal error" not in err and "Overflow" not in err
