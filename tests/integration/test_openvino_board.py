"""OpenVINO on real SSH boards: the IR variant is staged as its .xml and .bin pair and run there.

A lab board (numpy + onnxruntime, no OpenVINO) runs the ONNX original and fails the IR with the
provision command that fixes it; the bare lab board, provisioned with `--runtime openvino` from
wheels the controller pushed (no index), then runs both on OpenVINO and scores them on the
shipped digits test set.
"""
from __future__ import annotations

import json
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import lab as lab_mod
from orchestrator import provision as prov
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.hashing import file_sha256
from orchestrator.models import DEMO_DIR
from orchestrator.store import open_store
from orchestrator.transport import open_transport
from tests.model_factory import plain_digits_classifier

try:
    from tests.integration.conftest import NO_NETWORK_ENV, TEST_WHEEL_CACHE
except ImportError:  # pragma: no cover - rootdir-less import mode
    from conftest import NO_NETWORK_ENV, TEST_WHEEL_CACHE  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0.1",
        "--no-report"]
F32 = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})


def write_inventory(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def export(db_url: str) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return {r["variant"]: r for r in json.loads(out)}


def details(db_url: str) -> dict[str, dict]:
    return {r["variant"]: r["details"] for r in open_store(db_url).results("latest")}


def test_a_board_without_openvino_runs_the_onnx_model_and_names_the_fix_for_the_ir(lab, tmp_path, db_url,
                                                                                     yolo_model):
    board = next(b for b in lab.boards if b.profile == "rpi4")
    host = {"host": board.address, "port": board.port, "user": lab_mod.BOARD_USER,
            "identity_file": str(lab.identity_file), "known_hosts_file": str(lab.known_hosts_path),
            "python": board.python, "workdir": board.workdir}
    inventory = write_inventory(tmp_path / "farm.yaml", {board.name: host})
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(yolo_model),
                   "--variants", "fp32,openvino-ir"])
    assert status == ExitStatus.BOARD_FAILURE
    records = export(db_url)
    assert records["fp32"]["status"] == "ok" and records["fp32"]["runtime"] == "onnxruntime"
    ir = records["openvino-ir"]
    assert ir["status"] == "failed" and ir["error_kind"] == "missing-runtime"
    assert "openvino is not installed" in ir["error_message"]
    assert ir["error_message"].endswith(f"farm inventory provision -i {inventory} -l {board.name} --runtime openvino")


@pytest.fixture(scope="module")
def openvino_board(bare_lab, tmp_path_factory):
    """The bare lab board in a work dir of its own, provisioned with numpy + OpenVINO only."""
    (lab_board,) = bare_lab.boards
    name = "ov-main"
    host = {
        "host": lab_board.address, "port": lab_board.port, "user": lab_mod.BOARD_USER,
        "identity_file": str(bare_lab.identity_file), "known_hosts_file": str(bare_lab.known_hosts_path),
        "workdir": f"{lab_board.workdir}/{name}", "connect_timeout_s": 5.0, "env": dict(NO_NETWORK_ENV),
    }
    inventory = write_inventory(tmp_path_factory.mktemp("ov-inv") / "farm.yaml", {name: host})
    from orchestrator.inventory import load_inventory

    (board,) = load_inventory(inventory).boards
    TEST_WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    result = prov.provision_board(board, "openvino", cache_root=TEST_WHEEL_CACHE)
    return {"board": board, "inventory": inventory, "result": result}


def board_files(board, names: list[str]) -> dict[str, str]:
    """sha256 of each named file in the board's work dir, computed on the board."""
    transport = open_transport(board)
    try:
        done = transport.run(["sha256sum", *[posixpath.join(board.workdir, n) for n in names]], 60)
    finally:
        transport.close()
    assert done.exit_code == 0, done.stderr
    return {posixpath.basename(line.split()[1]): line.split()[0] for line in done.stdout.splitlines()}


def test_ir_pair_is_staged_by_content_and_scores_like_the_onnx_model_on_openvino(openvino_board, tmp_path,
                                                                                  db_url):
    board, inventory = openvino_board["board"], openvino_board["inventory"]
    packages = openvino_board["result"].packages
    assert "openvino" in packages and "onnxruntime" not in packages  # OpenVINO is the only runtime there
    classifier = plain_digits_classifier(tmp_path / "digits_plain.onnx")
    args = ["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(classifier),
            "--dataset", str(DEMO_DIR / "digits_test.npz"), "--variants", "fp32,openvino-ir",
            "--runtime", "openvino", "--provider-options", F32]
    assert main(args) == ExitStatus.OK
    records = export(db_url)
    for record in records.values():
        assert record["status"] == "ok" and record["runtime"] == "openvino" and record["inference_precision"] == "f32"
    assert records["openvino-ir"]["accuracy"] > 0.95
    assert records["openvino-ir"]["accuracy"] == pytest.approx(records["fp32"]["accuracy"], abs=1 / 540)

    manifest = details(db_url)["openvino-ir"]["variant"]
    xml, weights = Path(manifest["path"]), Path(manifest["weights_path"])
    assert details(db_url)["openvino-ir"]["bytes_sent"] == xml.stat().st_size + weights.stat().st_size
    staged = {f"{file_sha256(path)[:16]}{path.suffix}": file_sha256(path) for path in (xml, weights)}
    assert board_files(board, sorted(staged)) == staged  # both files, named by content, intact

    assert main(args) == ExitStatus.OK
    assert details(db_url)["openvino-ir"]["bytes_sent"] == 0  # a second run sends nothing


def test_an_openvino_board_profiles_layer_counters_of_the_onnx_model_and_the_ir(openvino_board, tmp_path, db_url):
    """farm bench --profile on a board that has OpenVINO only: the pass reads its performance counters."""
    from tests.model_factory import conv_bn_relu

    inventory = openvino_board["inventory"]
    model = conv_bn_relu(tmp_path / "convbn.onnx", layers=3, channels=16, size=48)
    assert main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(model), "--variants",
                 "fp32,openvino-ir", "--runtime", "openvino", "--provider-options", F32, "--profile",
                 "--profile-runs", "5"]) == ExitStatus.OK
    for variant, record in details(db_url).items():
        profile = record["profile"]
        assert profile["source"] == "openvino-perf-counters" and profile["runs"] == 5, variant
        convolution = next(op for op in profile["ops"] if op["op_type"] == "Convolution")
        assert convolution["nodes"] == 3 and convolution["provider"] == "CPU" and convolution["kernels"]
        assert profile["nodes_not_run"] is not None
