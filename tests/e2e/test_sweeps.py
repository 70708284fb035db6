"""Sweeps through the real CLI on the local board: `--threads 1,2 --batch 1,8` is one cell per point,
FPS counts images, each point has its own settings hash (so `--resume` works per point), and the
summary names each row's point."""
from __future__ import annotations

import json
import sqlite3

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.report import write_report
from orchestrator.store import open_store
from tests import model_factory

FAST = ["--runs", "20", "--min-seconds", "0", "--warmup", "1", "--sample-interval", "0", "--no-report"]


def test_a_threads_by_batch_sweep_is_one_cell_per_point_with_images_per_second(tmp_path, db_url, capsys):
    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--threads", "1,2", "--batch", "1,8"]
    assert main(args) == ExitStatus.OK
    out = capsys.readouterr().out
    records = open_store(db_url).export_records("latest")
    points = {(r["threads"], r["batch"]): r for r in records}
    assert sorted(points) == [(1, 1), (1, 8), (2, 1), (2, 8)]
    assert len({r["settings_hash"] for r in records}) == 4
    for (threads, batch), record in points.items():
        assert record["status"] == "ok" and record["sweep"] == f"batch={batch}, threads={threads}"
        assert record["input_shapes"] == f"x={batch}x16"
        calls_per_s = 1000.0 / record["latency_ms_mean"]
        assert abs(record["fps"] - batch * calls_per_s) < 1e-6 * record["fps"]  # images, not calls
        assert abs(record["latency_ms_per_image_p50"] - record["latency_ms_p50"] / batch) < 1e-12
        assert f"batch={batch}, threads={threads}" in out  # the summary names each row's point
    results = {r["result_id"]: r for r in open_store(db_url).results("latest")}
    inputs = {json.dumps(r["details"]["inputs"][0]["shape"]) for r in results.values()}
    assert inputs == {"[1, 16]", "[8, 16]"}  # what the agent fed
    html = write_report(open_store(db_url), "latest", tmp_path / "r.html").read_text()
    assert html.count("fp32 · batch=8, threads=2") >= 2  # the matrix row and the detail row of that point
    assert "sweep threads" in html and "sweep batch" in html  # the lists, with the run's settings

    # each point is its own cell for --resume: a point whose result failed is measured again, alone
    run_id = records[0]["run_id"]
    lost = points[(2, 8)]
    with sqlite3.connect(str(tmp_path / "farm.db")) as conn:
        conn.execute("UPDATE results SET status = 'failed', error_kind = 'interrupted' WHERE run_id = ? AND "
                     "settings_hash = ?", (run_id, lost["settings_hash"]))
    before = {r["settings_hash"]: r["created_at"] for r in records}
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id]) == ExitStatus.OK
    after = open_store(db_url).export_records(run_id)
    assert len(after) == 4 and all(r["status"] == "ok" for r in after)
    remeasured = {r["settings_hash"] for r in after if r["created_at"] != before[r["settings_hash"]]}
    assert remeasured == {lost["settings_hash"]}


def test_a_fixed_batch_is_refused_before_measuring(tmp_path, db_url, yolo_model, capsys):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--batch", "1,8"]) == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err
    assert "--batch 1 needs a symbolic leading (batch) dim" in err and "'images'" in err and "[1, 3, 160, 160]" in err
    assert open_store(db_url).count_results() == 0


def test_a_list_that_is_not_one_is_a_usage_error(tmp_path, db_url, digits_model, capsys):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--threads", "1,two"]) == ExitStatus.USAGE
    assert "--threads" in capsys.readouterr().err


def test_two_values_for_one_input_are_two_cells(tmp_path, db_url):
    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=1x3x32x32,1x3x64x48"]
    assert main(args) == ExitStatus.OK
    records = open_store(db_url).export_records("latest")
    assert sorted(r["input_shapes"] for r in records) == ["x=1x3x32x32", "x=1x3x64x48"]
    assert sorted(r["sweep"] for r in records) == ["x=1x3x32x32", "x=1x3x64x48"]


def test_compare_names_each_point_of_a_sweep(tmp_path, db_url, capsys):
    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--threads", "1,2"]
    assert main(args) == ExitStatus.OK and main(args) == ExitStatus.OK
    store = open_store(db_url)
    new = store.resolve_run_id("latest")
    [base] = {r["run_id"] for r in store.query_results()} - {new}
    capsys.readouterr()
    assert main(["compare", base, new, "--db", db_url]) == ExitStatus.OK
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("local  mlp")]  # the table's
    assert len(rows) == 2 and "threads=1" in rows[0] + rows[1] and "threads=2" in rows[0] + rows[1]
    reasons = [line for line in out.splitlines() if line.startswith("local/mlp/fp32")]  # each names its point
    assert all(" · threads=" in line for line in reasons)
    assert main(["compare", base, new, "--db", db_url, "--json"]) == ExitStatus.OK
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert sorted(cell["sweep"] for cell in cells) == ["threads=1", "threads=2"]


def test_history_judges_each_point_of_a_shape_sweep_against_the_same_point(tmp_path, db_url, capsys):
    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=1x3x32x32,1x3x256x256"]
    assert main(args) == ExitStatus.OK and main(args) == ExitStatus.OK
    capsys.readouterr()
    assert main(["history", "--board", "local", "--model", "textdet", "--json", "--db", db_url]) == ExitStatus.OK
    entries = json.loads(capsys.readouterr().out)
    judged = [entry["vs_previous"] for entry in entries if entry["vs_previous"]]
    assert len(judged) == 2
    # 64 times the pixels: a point judged against the other would be some +3000 % or -97 %
    assert all(abs(vs["change_pct"]) < 100 for vs in judged), judged
    series = sorted(entry["series"] for entry in entries)  # two series, each named by its shapes
    assert len(set(series)) == 2 and sum(s.endswith(", x=1x3x256x256") for s in series) == 2
    assert main(["history", "--board", "local", "--model", "textdet", "--db", db_url]) == ExitStatus.OK
    assert "ran on" in capsys.readouterr().out  # the table shows the series too


def test_a_gated_sweep_names_each_point_in_junit_and_markdown(tmp_path, db_url):
    import xml.etree.ElementTree as ET

    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--threads", "1,2", "--repeats", "2"]
    assert main(args) == ExitStatus.OK
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    main([*args, "--baseline", "latest", "--fail-on-regression", "50", "--junit", str(junit),
          "--markdown", str(markdown)])
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert sorted(names) == ["mlp[fp32][threads=1]", "mlp[fp32][threads=2]"]  # CI tools keep both
    text = markdown.read_text()
    assert "| fp32 · threads=1 |" in text and "| fp32 · threads=2 |" in text


def test_shapes_that_batch_makes_the_same_are_refused_before_measuring(tmp_path, db_url, capsys):
    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=2x16,3x16", "--batch", "2"]
    assert main(args) == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err
    assert "--shape x=2x16 and x=3x16 both measure x=2x16 (--batch 2" in err
    assert open_store(db_url).count_results() == 0


def test_the_samples_export_tells_a_sweeps_points_apart(tmp_path, db_url):
    from orchestrator import results

    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--threads", "1,2"]) == ExitStatus.OK
    frame = results.load_samples(db_url, "latest")
    stored = {r["sweep"]: r for r in open_store(db_url).query_results("latest", with_result_id=True)}
    assert set(frame["sweep"]) == {"threads=1", "threads=2"}
    for sweep, rows in frame.groupby("sweep"):
        assert set(rows["result_id"]) == {stored[sweep]["result_id"]}
        assert list(rows["sample"]) == list(range(len(rows)))  # one sequence per point, not two mixed


def test_a_suite_declares_a_sweep_and_its_run_resumes_without_the_suite(tmp_path, db_url, digits_model):
    suite = tmp_path / "nightly.yaml"
    suite.write_text(f"models: [{{path: {digits_model}}}]\n"
                     "settings: {runs: 20, min_seconds: 0, warmup: 1, sample_interval_s: 0}\n"
                     "sweep: {threads: [1, 2]}\n")
    assert main(["bench", "--db", db_url, "--no-report", "--suite", str(suite), "--threads", "4"]) == ExitStatus.OK
    records = open_store(db_url).export_records("latest")
    assert sorted((r["threads"], r["sweep"]) for r in records) == [(1, "threads=1"), (2, "threads=2")]
    # the plan keeps the suite's sweep: a resume measures the same points, with no suite named
    run_id = records[0]["run_id"]
    with sqlite3.connect(str(tmp_path / "farm.db")) as conn:
        conn.execute("UPDATE results SET status = 'failed', error_kind = 'interrupted' WHERE run_id = ? AND "
                     "settings_hash = ?", (run_id, records[1]["settings_hash"]))
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id]) == ExitStatus.OK
    after = open_store(db_url).export_records(run_id)
    assert sorted((r["threads"], r["status"]) for r in after) == [(1, "ok"), (2, "ok")]


def test_the_reports_history_has_a_line_per_point_of_a_sweep(tmp_path, db_url, digits_model):
    from orchestrator.report import build_context

    args = ["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--threads", "1,2"]
    assert main(args) == ExitStatus.OK
    assert main(args) == ExitStatus.OK
    store = open_store(db_url)
    by_point = {}
    for run in store.list_runs():
        for record in store.export_records(run["run_id"]):
            by_point.setdefault(record["sweep"], []).append(round(record["latency_ms_p50"], 6))
    [figure] = build_context(store, "latest")["figures"]["history"]
    lines = {trace["name"]: trace["y"] for trace in figure.data}
    assert set(lines) == {"fp32 · threads=1", "fp32 · threads=2"}  # before: one line, the first point
    for point, line in lines.items():
        assert sorted(line) == sorted(by_point[point.split(" · ")[1]])  # each line holds its own point's medians


def test_the_reports_history_draws_no_line_that_would_mix_the_points_of_a_shape_sweep(tmp_path, db_url):
    from orchestrator.report import build_context

    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=1x3x32x32,1x3x64x48"]
    assert main(args) == ExitStatus.OK
    assert main(args) == ExitStatus.OK
    # the stored history cannot tell two shapes apart (same identity): no line rather than a mixed one
    assert build_context(open_store(db_url), "latest")["figures"]["history"] == []
