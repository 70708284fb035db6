"""Provisioning is additive, and a wheel of the user's own is pushed and installed like the others.

* A board whose Python already has onnxruntime (here: the lab's board venv stands for a system
  Python with JetPack's onnxruntime-gpu) is provisioned with OpenVINO: the new venv keeps the
  board's onnxruntime importable, and one `farm bench --runtime onnxruntime,openvino` runs both.
* `--wheel onnxruntime_gpu-…-linux_x86_64.whl` (a local build, as JetPack's are: not on any index,
  tagged linux_*): the board gets that build instead of the index's onnxruntime, offline, and a
  second run changes nothing.

Boards run pip with NO_NETWORK_ENV (no index reachable); the controller's pip may use the index.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from orchestrator.agent_client import AgentClient
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.inventory import load_inventory
from orchestrator.store import open_store
from orchestrator.transport import open_transport

try:
    from tests.integration.conftest import NO_NETWORK_ENV, TEST_VENV, TEST_WHEEL_CACHE
except ImportError:  # pragma: no cover - rootdir-less import mode
    from conftest import NO_NETWORK_ENV, TEST_VENV, TEST_WHEEL_CACHE  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0", "--no-report"]


def board_inventory(bare_lab, tmp_path: Path, name: str, **host: object) -> Path:
    (lab_board,) = bare_lab.boards
    values = {"host": lab_board.address, "port": lab_board.port, "user": "farmboard",
              "identity_file": str(bare_lab.identity_file), "known_hosts_file": str(bare_lab.known_hosts_path),
              "workdir": f"{lab_board.workdir}/{name}", "connect_timeout_s": 5.0, "env": dict(NO_NETWORK_ENV),
              "tags": {"profile": "bare"}, **host}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {name: values}}}))
    return path


def facts_of(inventory: Path) -> dict:
    (board,) = load_inventory(inventory).boards
    transport = open_transport(board)
    try:
        return AgentClient(transport, python=board.python).facts(timeout_s=120)
    finally:
        transport.close()


def test_provisioning_openvino_keeps_the_onnxruntime_the_board_had(bare_lab, tmp_path, db_url, yolo_model,
                                                                    wheel_cache, capsys):
    inventory = board_inventory(bare_lab, tmp_path, "prov-additive", python=str(TEST_VENV / "bin" / "python"))
    before = facts_of(inventory)
    assert before["runtimes"] == ["onnxruntime"]  # the board's own Python: onnxruntime, no OpenVINO

    assert main(["inventory", "provision", "-i", str(inventory), "--runtime", "openvino"]) == ExitStatus.OK
    out = " ".join(capsys.readouterr().out.split())
    assert "kept onnxruntime 1." in out and "its site-packages stay visible" in out
    after = facts_of(inventory)
    assert after["python_executable"].endswith("/prov-additive/venv/bin/python")  # the new venv runs the agent
    assert after["runtimes"] == ["onnxruntime", "openvino"]  # additive: nothing hidden

    args = ["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(yolo_model),
            "--runtime", "onnxruntime,openvino"]
    assert main(args) == ExitStatus.OK
    records = {r["runtime"]: r for r in open_store(db_url).export_records("latest")}
    assert set(records) == {"onnxruntime", "openvino"} and all(r["status"] == "ok" for r in records.values())


def rebuilt_as(wheel: Path, new_name: str, folder: Path, platform: str) -> Path:
    """The wheel repackaged as another distribution (`onnxruntime_gpu`) with a local platform tag:
    what a board vendor's own build of a runtime looks like (RECORD rewritten, hashes and all)."""
    old_name, version, python, abi, _ = wheel.name[:-len(".whl")].split("-")
    target = folder / f"{new_name}-{version}-{python}-{abi}-{platform}.whl"
    old_info, new_info = f"{old_name}-{version}.dist-info/", f"{new_name}-{version}.dist-info/"
    rows = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if item.filename == old_info + "RECORD":
                continue
            data = source.read(item.filename)
            name = item.filename.replace(old_info, new_info, 1)
            if name == new_info + "METADATA":
                data = data.replace(f"Name: {old_name}\n".encode(), f"Name: {new_name.replace('_', '-')}\n".encode(), 1)
            if name == new_info + "WHEEL":
                data = b"\n".join(line if not line.startswith(b"Tag:") else f"Tag: {python}-{abi}-{platform}".encode()
                                  for line in data.split(b"\n"))
            out.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append([name, f"sha256={digest}", str(len(data))])
        rows.append([new_info + "RECORD", "", ""])
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        out.writestr(new_info + "RECORD", text.getvalue())
    return target


def test_a_users_own_build_of_the_runtime_is_pushed_and_installed(bare_lab, tmp_path, db_url, digits_model,
                                                                   wheel_cache, capsys):
    cached = sorted(TEST_WHEEL_CACHE.glob("x86_64-cp311/onnxruntime-*.whl"))
    if not cached:
        pytest.skip("no cached onnxruntime wheel for x86_64 cp311 (the provisioning tests download it)")
    build = rebuilt_as(cached[-1], "onnxruntime_gpu", tmp_path, "linux_x86_64")
    inventory = board_inventory(bare_lab, tmp_path, "prov-userwheel")

    assert main(["inventory", "provision", "-i", str(inventory), "--wheel", str(build)]) == ExitStatus.OK
    out = " ".join(capsys.readouterr().out.split())
    assert "onnxruntime-gpu 1." in out
    facts = facts_of(inventory)
    assert facts["onnxruntime_version"] and "onnxruntime" in facts["runtimes"]
    (board,) = load_inventory(inventory).boards
    transport = open_transport(board)
    try:
        record = json.loads(transport.run(["cat", "venv/farm-provision.json"], 30).stdout)
        listing = transport.run(["ls", "venv/lib/python3.11/site-packages"], 30).stdout.split()
    finally:
        transport.close()
    entry = record["runtimes"]["onnxruntime"]
    assert entry["user_wheels"] == [build.name]
    assert "onnxruntime" not in entry["packages"] and entry["packages"]["onnxruntime-gpu"] == build.name.split("-")[1]
    assert any(n.startswith("onnxruntime_gpu-") and n.endswith(".dist-info") for n in listing)
    assert not any(n.startswith("onnxruntime-") and n.endswith(".dist-info") for n in listing)  # the index's: not installed

    assert main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(digits_model)]) == ExitStatus.OK
    assert main(["inventory", "provision", "-i", str(inventory), "--wheel", str(build)]) == ExitStatus.OK
    assert "nothing changed" in " ".join(capsys.readouterr().out.split())


def test_a_wheel_that_is_not_one_is_refused_before_any_board_is_touched(bare_lab, tmp_path, capsys):
    inventory = board_inventory(bare_lab, tmp_path, "prov-badwheel")
    bogus = tmp_path / "notes.txt"
    bogus.write_text("x")
    assert main(["inventory", "provision", "-i", str(inventory), "--wheel", str(bogus)]) == ExitStatus.BAD_INPUT
    assert "not a wheel file name" in capsys.readouterr().err
    assert main(["inventory", "provision", "-i", str(inventory), "--wheel", str(tmp_path / "x.whl")]) == \
        ExitStatus.BAD_INPUT
    (board,) = load_inventory(inventory).boards
    transport = open_transport(board)
    try:  # no board was touched: its work dir has no venv
        assert transport.run(["test", "-e", f"{board.workdir}/venv"], 30).exit_code == 1
    finally:
        transport.close()
