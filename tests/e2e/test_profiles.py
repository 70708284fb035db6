"""`farm bench --profile` and `farm ops` on the local board: real onnxruntime and OpenVINO sessions,
real model files, the real CLI (issue #21)."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests import model_factory
from tests.conftest import REPO_ROOT
from tests.e2e.test_cli_output import WIDTH, too_long

FAST = ["--runs", "30", "--min-seconds", "0.3", "--warmup", "5", "--threads", "1", "--sample-interval", "0",
        "--no-report"]
F32 = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})


def farm(db_url: str, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as a person's 80-column terminal sees it."""
    env = {"COLUMNS": str(WIDTH), "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args, "--db", db_url], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def ops_json(db_url: str, *args: str) -> dict:
    return json.loads(farm(db_url, "ops", *args, "--json").stdout)


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory) -> tuple[str, Path]:
    """fp32 and int8-dynamic of a conv+BN model, profiled on the local board (one run for the module)."""
    tmp = tmp_path_factory.mktemp("conv-run")
    db_url = f"sqlite:///{tmp / 'farm.db'}"
    model = model_factory.conv_bn_relu(tmp / "convbn.onnx")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(tmp / "data"))
        env.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        status = main(["bench", *FAST, "--db", db_url, "-m", str(model), "--variants", "fp32,int8-dynamic",
                       "--profile", "--profile-runs", "20"])
    assert status == ExitStatus.OK
    return db_url, model


def test_fp32_runs_conv_and_int8_dynamic_runs_convinteger(conv_run):
    db_url, _ = conv_run
    profiles = {p["variant"]: p for p in ops_json(db_url)["profiles"]}
    fp32 = {op["op_type"] for op in profiles["fp32"]["ops"]}
    int8 = {op["op_type"] for op in profiles["int8-dynamic"]["ops"]}
    assert "Conv" in fp32 and "ConvInteger" not in fp32
    assert "ConvInteger" in int8 and "Conv" not in int8
    assert "BatchNormalization" not in fp32  # folded into the convolutions by onnxruntime
    assert {"op_type": "BatchNormalization", "file": 4, "executed": 0} in profiles["fp32"]["runtime_rewrites"]["fewer"]
    for profile in profiles.values():
        # the operator times of a profiled inference add up to the timed (never profiled) median latency
        assert profile["op_ms"] == pytest.approx(profile["latency_ms_p50"], rel=0.30), profile
        assert profile["runs"] == 20 and profile["wall_s"] > 0 and profile["cost_ratio"] > 0
        assert profile["fallback"] == f"all {profile['nodes_executed']} nodes on CPU"


def test_farm_ops_vs_fp32_names_what_replaced_conv_in_80_columns(conv_run):
    db_url, _ = conv_run
    for args in (["ops", "--help"], ["ops"], ["ops", "--vs", "fp32"], ["ops", "--vs", "fp32", "--top", "3"]):
        out = farm(db_url, *args).stdout
        assert not too_long(out), out
    table = farm(db_url, "ops", "--vs", "fp32").stdout
    assert "convbn / int8-dynamic vs fp32" in table
    assert "ConvInteger" in table and "replaces Conv" in table
    [diff] = ops_json(db_url, "--vs", "fp32")["diffs"]
    conv_integer = next(c for c in diff["changes"] if c["op_type"] == "ConvInteger")
    assert conv_integer["kind"] == "added" and conv_integer["replaces"] == ["Conv"] and conv_integer["delta_ms"] > 0
    # the change is put on the operator types: ConvInteger's time when slower, Conv's when faster
    assert diff["explanation"].startswith("ConvInteger +" if diff["latency_change_ms"] > 0 else "Conv -")


def test_export_ops_is_long_form_and_the_record_states_the_pass(conv_run):
    db_url, _ = conv_run
    rows = list(csv.DictReader(io.StringIO(farm(db_url, "runs", "export", "--ops", "--format", "csv").stdout)))
    assert {r["variant"] for r in rows} == {"fp32", "int8-dynamic"}
    conv = [r for r in rows if r["variant"] == "fp32" and r["op_type"] == "Conv"]
    assert len(conv) == 1 and int(conv[0]["nodes"]) == 4 and float(conv[0]["op_ms"]) > 0
    assert sum(float(r["op_share"]) for r in rows if r["variant"] == "fp32") == pytest.approx(1.0, abs=1e-6)
    records = json.loads(farm(db_url, "runs", "export").stdout)
    for record in records:
        assert record["profile_runs"] == 20 and record["profile_error"] is None
        assert record["profile_wall_s"] > 0 and record["profile_cost_ratio"] > 0
    with open_store(db_url) as store:
        run = store.get_run("latest")
    assert run["settings"]["profile"] is True  # stored with the run; not part of the cells' settings hash


def test_openvino_run_gives_layer_counters(tmp_path, db_url):
    pytest.importorskip("openvino")
    model = model_factory.conv_bn_relu(tmp_path / "convbn.onnx")
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--runtime", "openvino", "--provider-options", F32,
                 "--profile", "--profile-runs", "5"]) == ExitStatus.OK
    [profile] = ops_json(db_url)["profiles"]
    assert profile["profiler"] == "openvino-perf-counters" and profile["runtime"] == "openvino"
    convolution = next(op for op in profile["ops"] if op["op_type"] == "Convolution")
    assert convolution["nodes"] == 4 and convolution["kernels"]  # OpenVINO's own kernel names (exec types)
    assert profile["nodes_not_run"] is not None and profile["runtime_rewrites"] is None
    out = farm(db_url, "ops").stdout
    assert "Convolution" in out and "fused away or not run" in out and not too_long(out)


def test_a_missing_accelerator_shows_every_node_on_the_cpu(tmp_path, db_url):
    model = model_factory.conv_bn_relu(tmp_path / "convbn.onnx")
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--providers", "CUDA,CPU",
                 "--profile", "--profile-runs", "5"]) == ExitStatus.OK
    [profile] = ops_json(db_url)["profiles"]
    assert [p["provider"] for p in profile["providers"]] == ["CPUExecutionProvider"]
    assert profile["providers"][0]["nodes"] == profile["nodes_executed"]
    assert profile["fallback"] == (f"all {profile['nodes_executed']} nodes on CPU "
                                   "(asked for CUDA first: no node ran there)")
    assert "no node ran there" in farm(db_url, "ops").stdout


def test_the_gate_names_the_operator_types_of_a_regression(tmp_path, db_url):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    small = model_factory.conv_bn_relu(tmp_path / "v1" / "net.onnx", layers=2)
    big = model_factory.conv_bn_relu(tmp_path / "v2" / "net.onnx", layers=8)  # new weights, same name: 4× the convs
    assert main(["bench", *FAST, "--db", db_url, "-m", str(small), "--profile"]) == ExitStatus.OK
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    status = main(["bench", *FAST, "--db", db_url, "-m", str(big), "--profile", "--baseline", "latest",
                   "--fail-on-regression", "20", "--junit", str(junit), "--markdown", str(markdown)])
    assert status == ExitStatus.REGRESSION
    [failure] = ET.parse(junit).getroot().iter("failure")
    # the operator type that grew most, read independently from the long-form export of both runs
    with open_store(db_url) as store:
        new_run, base_run = [r["run_id"] for r in store.list_runs(2)]
    grown = {}
    for run, sign in ((base_run, -1), (new_run, 1)):
        rows = csv.DictReader(io.StringIO(farm(db_url, "runs", "export", run, "--ops", "--format", "csv").stdout))
        for row in rows:
            grown[row["op_type"]] = grown.get(row["op_type"], 0.0) + sign * float(row["op_ms"])
    top = max(grown, key=grown.get)
    assert f"operators: {top} +" in failure.get("message")
    assert f"regressed: {top} +" in markdown.read_text()


def _running_worker() -> int | None:
    """The local board's running worker, as the agent records it in its lease (the pid it kills
    itself when a controller takes over)."""
    from orchestrator.boards import default_local_workdir

    try:
        lease = json.loads((default_local_workdir() / "lease.json").read_text())
    except (OSError, ValueError):
        return None
    return (lease.get("worker") or {}).get("pid")


def test_a_worker_killed_during_the_profiling_pass_keeps_its_measurement(tmp_path, db_url):
    """The pass runs after the result was sent: losing the worker then (the OOM killer, a profiler
    crash) costs the profile, and says so, never the timed figures."""
    import os
    import signal

    from orchestrator.request import BenchRequest, run_bench
    from orchestrator.settings import BenchSettings

    model = model_factory.slow_matmul_chain(tmp_path / "slow.onnx", size=512, layers=4)  # ~10 ms an inference
    killed: list[int] = []

    def on_event(kind: str, info: dict) -> None:
        if kind == "cell_phase" and info.get("phase") == "profile" and not killed:
            pid = _running_worker()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    settings = BenchSettings(runs=10, min_seconds=0, warmup=1, threads=1, sample_interval_s=0, profile=True,
                             profile_runs=100_000, profile_max_seconds=120)  # far longer than the test waits
    outcome = run_bench(BenchRequest(model_paths=[model], settings=settings, write_report=False, db_url=db_url),
                        on_event=on_event)
    assert killed and outcome.run.status == "finished"
    [record] = json.loads(farm(db_url, "runs", "export").stdout)
    assert record["status"] == "ok" and record["runs"] == 10 and record["latency_ms_p50"] > 0
    assert record["profile_runs"] is None
    assert record["profile_error"] == "the profiling pass ended the worker (exit status -9, SIGKILL: out of memory?)"


def test_with_repeats_one_process_of_the_cell_profiles(tmp_path, db_url, digits_model):
    """--repeats 3 --profile: three measuring processes, one profiling pass, and its profile stored."""
    from orchestrator.request import BenchRequest, run_bench
    from orchestrator.settings import BenchSettings

    phases: list[tuple[int, str]] = []

    def on_event(kind: str, info: dict) -> None:
        if kind == "cell_phase":
            phases.append((info["round"], info["phase"]))

    settings = BenchSettings(runs=10, min_seconds=0, warmup=1, threads=1, sample_interval_s=0, repeats=3,
                             profile=True, profile_runs=5)
    outcome = run_bench(BenchRequest(model_paths=[digits_model], settings=settings, write_report=False,
                                     db_url=db_url), on_event=on_event)
    assert outcome.run.status == "finished"
    assert {r for r, phase in phases if phase == "measure"} == {1, 2, 3}
    assert [r for r, phase in phases if phase == "profile"] == [3]
    [record] = json.loads(farm(db_url, "runs", "export").stdout)
    assert record["processes"] == 3 and record["profile_runs"] == 5
