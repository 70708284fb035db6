"""`farm bench --profile` across the real sshd lab boards (issue #21): the profiling pass runs on
each board's agent, its compact profile crosses the SSH session, and `farm ops` explains it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from tests import model_factory
from tests.integration.test_bench_lab import host_vars, write_inventory

pytestmark = pytest.mark.integration

FAST = ["--runs", "20", "--min-seconds", "0.3", "--warmup", "3", "--threads", "1", "--sample-interval", "0.1",
        "--no-report"]


def ops_json(db_url: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "ops", *args, "--json", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_conv_bn_profiles_on_every_lab_board_and_a_missing_accelerator(lab, tmp_path, db_url):
    hosts = {b.name: host_vars(lab, b) for b in lab.boards}
    jetson = next(b for b in lab.boards if b.profile == "jetson-nano")
    hosts[jetson.name]["providers"] = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    inventory = write_inventory(tmp_path / "farm.yaml", hosts)
    model = model_factory.conv_bn_relu(tmp_path / "convbn.onnx", layers=3, channels=16, size=48)
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(model),
                   "--variants", "fp32,int8-dynamic", "--profile", "--profile-runs", "10"])
    assert status == ExitStatus.OK

    profiles = {(p["board"], p["variant"]): p for p in ops_json(db_url)["profiles"]}
    assert set(profiles) == {(b.name, v) for b in lab.boards for v in ("fp32", "int8-dynamic")}
    for (board, variant), profile in profiles.items():
        types = {op["op_type"] for op in profile["ops"]}
        if variant == "fp32":
            assert "Conv" in types and "ConvInteger" not in types, (board, types)
        else:
            assert "ConvInteger" in types and "Conv" not in types, (board, types)
        # per-operator times add up to the board's timed latency (cgroup CPU quotas included)
        assert profile["op_ms"] == pytest.approx(profile["latency_ms_p50"], rel=0.30), (board, variant, profile)
        assert [p["provider"] for p in profile["providers"]] == ["CPUExecutionProvider"]
    # the Jetson asked for TensorRT first and has none: the profile shows where every node really ran
    assert profiles[(jetson.name, "fp32")]["fallback"].endswith("(asked for TensorRT first: no node ran there)")

    diffs = ops_json(db_url, "--vs", "fp32")["diffs"]
    assert {d["board"] for d in diffs} == {b.name for b in lab.boards}
    for diff in diffs:
        conv_integer = next(c for c in diff["changes"] if c["op_type"] == "ConvInteger")
        assert conv_integer["replaces"] == ["Conv"] and conv_integer["new_nodes"] == 3
