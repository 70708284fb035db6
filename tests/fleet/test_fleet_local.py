"""Fleet mode on the built-in local board: `farm runs wait` exits as `farm bench` does, and a bad
submission fails at submit time with bench's own one-line error (real PostgreSQL, real workers)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests import model_factory

pytestmark = [pytest.mark.postgres, pytest.mark.fleet]

FAST = ["--runs", "15", "--min-seconds", "0", "--warmup", "2", "--threads", "1", "--sample-interval", "0"]


def same_name(tmp_path: Path, folder: str, layers: int) -> Path:
    """`net.onnx` with `layers` MatMuls: the weights change under the same name (what gating catches)."""
    (tmp_path / folder).mkdir()
    return model_factory.slow_matmul_chain(tmp_path / folder / "net.onnx", size=128, layers=layers)


def bench_and_fleet(fleet, *args: str) -> tuple[int, int, str]:
    """The exit code of `farm bench ARGS` and of `farm submit ARGS` + `farm runs wait` (and wait's stdout)."""
    bench = fleet.run("bench", "--db", fleet.db_url, "--no-report", *args)
    run_id = fleet.submit(None, *args)
    waited = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
    return bench.returncode, waited.returncode, waited.stdout + waited.stderr


def test_runs_wait_exits_with_the_code_farm_bench_exits_with(fleet, tmp_path, digits_model):
    worker = fleet.worker("local-worker", None, concurrency=1)
    ok = bench_and_fleet(fleet, *FAST, "-m", str(digits_model), "--variants", "fp32,fp16")
    assert ok[:2] == (ExitStatus.OK, ExitStatus.OK), ok[2][-3000:]

    broken = model_factory.string_input(tmp_path / "strings.onnx")  # loads, fails on the board: model-error
    failed = bench_and_fleet(fleet, *FAST, "-m", str(digits_model), "-m", str(broken))
    assert failed[:2] == (ExitStatus.BOARD_FAILURE, ExitStatus.BOARD_FAILURE), failed[2][-3000:]
    assert "failed" in failed[2] and "strings" in failed[2]

    base = same_name(tmp_path, "v1", layers=2)
    assert fleet.run("bench", "--db", fleet.db_url, "--no-report", *FAST, "-m", str(base)).returncode == 0
    with open_store(fleet.db_url) as store:
        store.tag_run("latest", "release-1.2")
    slower = same_name(tmp_path, "v2", layers=8)
    gate = ["--baseline", "tag:release-1.2", "--fail-on-regression", "50"]
    junit = tmp_path / "fleet.xml"
    regressed = bench_and_fleet(fleet, *FAST, "-m", str(slower), *gate, "--junit", str(junit))
    assert regressed[:2] == (ExitStatus.REGRESSION, ExitStatus.REGRESSION), regressed[2][-3000:]
    assert "gate" in regressed[2] and "regressed" in regressed[2]
    failures = list(ET.parse(junit).getroot().iter("failure"))  # written by runs wait, last
    assert len(failures) == 1 and "regress" in (failures[0].get("message") or "").lower()
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]


@pytest.mark.parametrize("args, status, text", [
    (["-m", "missing.onnx"], ExitStatus.BAD_INPUT, "model file not found: missing.onnx"),
    (["--variants", "fp32,int9"], None, "int9"),
    (["--baseline", "tag:nope", "--fail-on-regression", "5"], ExitStatus.BAD_INPUT, "no run is tagged 'nope'"),
    (["-i", "nowhere.yaml"], ExitStatus.BAD_INPUT, "nowhere.yaml"),
])
def test_a_bad_submission_fails_at_submit_time_with_benchs_own_error(fleet, args, status, text):
    bench = fleet.run("bench", "--db", fleet.db_url, "--no-report", *args)
    submit = fleet.run("submit", "--db", fleet.db_url, *args)
    assert submit.returncode == bench.returncode == (status if status is not None else bench.returncode) != 0
    assert text in submit.stderr
    assert submit.stderr.strip().splitlines()[-1] == bench.stderr.strip().splitlines()[-1]  # the same one line
    with open_store(fleet.db_url) as store:
        assert store.list_runs() == []  # nothing queued


def test_a_sweep_is_measured_point_by_point_as_farm_bench_measures_it(fleet, tmp_path):
    worker = fleet.worker("local-worker", None, concurrency=1)
    quick = ["--runs", "15", "--min-seconds", "0", "--warmup", "2", "--sample-interval", "0"]
    mlp = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    conv = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    for args, points, fed in (
        (["-m", str(mlp), "--threads", "1,2", "--batch", "1,8"],
         {"batch=1, threads=1", "batch=1, threads=2", "batch=8, threads=1", "batch=8, threads=2"}, {"x=1x16", "x=8x16"}),
        (["-m", str(conv), "--threads", "1", "--shape", "x=1x3x32x32,1x3x64x48"], {"x=1x3x32x32", "x=1x3x64x48"},
         {"x=1x3x32x32", "x=1x3x64x48"}),
    ):
        run_id = fleet.submit(None, *quick, *args)
        waited = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
        assert waited.returncode == ExitStatus.OK, waited.stderr[-3000:] + fleet.log_of(worker)[-3000:]
        with open_store(fleet.db_url) as store:
            records = store.export_records(run_id)
        assert {r["sweep"] for r in records} == points and len(records) == len(points)
        assert all(r["status"] == "ok" for r in records)
        assert len({r["settings_hash"] for r in records}) == len(points)  # each point its own cell
        assert {r["input_shapes"] for r in records} == fed  # what the worker's board was fed
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]


def test_submit_and_wait_need_postgresql(fleet, tmp_path, digits_model):
    submitted = fleet.run("submit", "--db", str(tmp_path / "farm.db"), "-m", str(digits_model))
    assert submitted.returncode == ExitStatus.USAGE and "needs a PostgreSQL" in submitted.stderr
    waited = fleet.run("runs", "wait", "latest", "--db", str(tmp_path / "farm.db"))
    assert waited.returncode == ExitStatus.USAGE


def test_waiting_for_a_run_that_never_ends_times_out_with_exit_4(fleet, digits_model):
    submitted = fleet.run("submit", "--db", fleet.db_url, *FAST, "-m", str(digits_model))  # no worker serves it
    assert submitted.returncode == 0 and "no worker serves queue default now" in submitted.stderr
    run_id = submitted.stdout.strip()
    waited = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "1")
    assert waited.returncode == ExitStatus.BOARD_FAILURE and "has not ended" in waited.stderr
    listed = fleet.run("queue", "ls", "--db", fleet.db_url)
    assert "local" in listed.stdout and "waiting" in listed.stdout and "next" in listed.stdout
    assert fleet.run("queue", "cancel", run_id, "--db", fleet.db_url).returncode == 0
    assert fleet.run("runs", "wait", run_id, "--db", fleet.db_url).returncode == ExitStatus.INTERRUPTED


def test_a_worker_refuses_a_queue_none_of_its_boards_is_in(fleet):
    started = fleet.run("worker", "--db", fleet.db_url, "--queue", "lab-z", timeout=60)
    assert started.returncode == ExitStatus.USAGE
    assert "--queue lab-z: no board of the built-in local board is in it" in started.stderr


def test_the_queue_schema_is_applied_once_whoever_starts_first(fleet):
    import multiprocessing

    import sqlalchemy as sa

    from orchestrator.fleet.queue import ensure_queue_schema, installed_procrastinate_version

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_prepare_queue, args=(fleet.db_url,)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    with open_store(fleet.db_url) as store:
        ensure_queue_schema(store)  # and again: nothing to do
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT procrastinate_version FROM fleet_queue_schema")).scalars().all()
            assert conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
    assert versions == [installed_procrastinate_version()]


def _prepare_queue(url: str) -> None:
    from orchestrator.fleet.queue import ensure_queue_schema

    with open_store(url) as store:
        ensure_queue_schema(store)


def test_a_board_the_workers_inventory_lacks_fails_with_a_message_naming_both(fleet, tmp_path, digits_model):
    import sys

    import yaml

    def inventory(path: Path, names: list[str]) -> Path:
        hosts = {name: {"transport": "local", "python": sys.executable, "workdir": str(tmp_path / name)}
                 for name in names}
        path.write_text(yaml.safe_dump({"all": {"vars": {"tags": {"site": "lab-x"}}, "hosts": hosts}}))
        return path

    mine = inventory(tmp_path / "worker.yaml", ["here"])
    theirs = inventory(tmp_path / "submitter.yaml", ["here", "ghost"])
    worker = fleet.worker("partial", mine, concurrency=1)
    run_id = fleet.submit(theirs, *FAST, "-m", str(digits_model))
    waited = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "120")
    assert waited.returncode == ExitStatus.BOARD_FAILURE, waited.stderr[-2000:]
    with open_store(fleet.db_url) as store:
        rows = {r["board"]: r for r in store.query_results(run_id)}
    assert rows["here"]["status"] == "ok"
    assert rows["ghost"]["status"] == "failed" and rows["ghost"]["error_kind"] == "unreachable"
    assert "worker partial has no board named 'ghost'" in rows["ghost"]["error_message"]
    assert "queue 'lab-x'" in rows["ghost"]["error_message"]
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]


def test_a_submitted_run_is_paired_with_its_baseline_as_farm_bench_pairs_it(fleet, tmp_path):
    worker = fleet.worker("local-worker", None, concurrency=1)
    base = same_name(tmp_path, "v1", layers=2)
    assert fleet.run("bench", "--db", fleet.db_url, "--no-report", *FAST, "-m", str(base)).returncode == 0
    with open_store(fleet.db_url) as store:
        [baseline] = store.results("latest")
        store.tag_run("latest", "nightly")
    slower = same_name(tmp_path, "v2", layers=8)
    gate = ["--baseline", "tag:nightly", "--fail-on-regression", "50"]
    for paired in ([], ["--no-paired"]):
        run_id = fleet.submit(None, *FAST, "-m", str(slower), *gate, *paired)
        waited = fleet.run("runs", "wait", run_id, "--db", fleet.db_url, "--timeout", "240")
        assert waited.returncode == ExitStatus.REGRESSION, waited.stderr[-3000:] + fleet.log_of(worker)[-3000:]
        with open_store(fleet.db_url) as store:
            [result] = store.results(run_id)
        export = result["details"]["export"]
        if paired:  # --no-paired: judged against the stored baseline only
            assert export["paired_base_result_id"] is None
        else:  # the worker measured the baseline's own file (sent with the plan) beside the new one
            assert export["paired_base_result_id"] == baseline["result_id"]
            base_p50s = export["latency_ms_paired_base_p50"]  # one per round, the baseline's file in its own process
            assert len(base_p50s) >= 3 and all(p50 > 0 for p50 in base_p50s)
    assert fleet.stop(worker) == 0, fleet.log_of(worker)[-5000:]
