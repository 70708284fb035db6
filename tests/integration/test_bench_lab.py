"""`farm bench` and `farm inventory check` across real sshd lab boards on loopback."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import yaml

from orchestrator import lab as lab_mod
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store

pytestmark = pytest.mark.integration

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0.1",
        "--no-report"]


def host_vars(lab, board, **overrides) -> dict:
    values = {
        "host": board.address, "port": board.port, "user": lab_mod.BOARD_USER,
        "identity_file": str(lab.identity_file), "known_hosts_file": str(lab.known_hosts_path),
        "python": board.python, "workdir": board.workdir, "tags": {"profile": board.profile},
    }
    values.update(overrides)
    return values


def write_inventory(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"vars": {"connect_timeout_s": 3.0}, "hosts": hosts}}))
    return path


def export(db_url: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_inventory_check_reads_facts_and_profile_limits_in_parallel(lab, capsys):
    status = main(["inventory", "check", "-i", str(lab.inventory_path), "--json"])
    assert status == ExitStatus.OK
    checks = {c["board"]: c for c in json.loads(capsys.readouterr().out)}
    assert set(checks) == {b.name for b in lab.boards}
    for board in lab.boards:
        facts = checks[board.name]["facts"]
        assert facts["onnxruntime_version"] and "CPUExecutionProvider" in facts["onnxruntime_providers"]
        if lab.limits_enforced:
            assert facts["cgroup_limits"]["memory_limit_bytes"] == board.limits.memory_limit_bytes
            assert facts["cgroup_limits"]["cpu_quota_cores"] == pytest.approx(board.limits.cpu_quota_cores)


def test_bench_across_boards_with_a_dead_and_a_bare_board(lab, tmp_path, db_url, digits_model, capsys):
    rpi = next(b for b in lab.boards if b.profile == "rpi4")
    hosts = {b.name: host_vars(lab, b) for b in lab.boards}
    hosts["dead-board"] = host_vars(lab, rpi, host=rpi.address, port=1)  # refused at once
    hosts["bare-board"] = host_vars(lab, rpi, python="/usr/bin/python3", workdir=rpi.workdir + "/bare")
    inventory = write_inventory(tmp_path / "farm.yaml", hosts)

    started = time.monotonic()
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(digits_model)])
    assert status == ExitStatus.BOARD_FAILURE
    records = {r["board"]: r for r in export(db_url)}
    assert set(records) == set(hosts)
    for board in lab.boards:  # the live boards all measured, whatever the others did
        assert records[board.name]["status"] == "ok" and records[board.name]["runs"] >= 5
        assert records[board.name]["accuracy"] > 0.95  # the dataset ran on the board
    assert records["dead-board"]["error_kind"] == "unreachable"
    assert records["bare-board"]["error_kind"] == "missing-runtime"
    assert "is not installed for /usr/bin/python3" in records["bare-board"]["error_message"]
    assert time.monotonic() - started < 120
    err = capsys.readouterr().err
    assert "dead-board" in err and "unreachable" in err


def test_second_bench_sends_no_model_bytes(lab, tmp_path, db_url, yolo_model):
    board = lab.boards[0]
    inventory = write_inventory(tmp_path / "one.yaml", {board.name: host_vars(lab, board)})
    # A name and content new to the board (uploads are skipped by content: other tests staged yolo_model).
    copy = tmp_path / f"fresh_{int(time.time() * 1e6)}.onnx"
    proto = onnx.load(str(yolo_model))
    proto.doc_string = f"{copy.name} {tmp_path}"
    onnx.save(proto, str(copy))
    args = ["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(copy)]
    assert main(args) == ExitStatus.OK
    store = open_store(db_url)
    first = store.results("latest")[0]["details"]["bytes_sent"]
    assert main(args) == ExitStatus.OK
    second = store.results("latest")[0]["details"]["bytes_sent"]
    assert first >= copy.stat().st_size and second == 0


def test_unknown_host_key_is_refused_then_accepted_on_request(lab, tmp_path, db_url, digits_model, capsys):
    board = lab.boards[0]
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    inventory = write_inventory(tmp_path / "new.yaml", {board.name: host_vars(lab, board, known_hosts_file=str(empty_known_hosts))})
    args = ["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(digits_model)]
    assert main(args) == ExitStatus.BOARD_FAILURE
    [record] = export(db_url)
    assert record["error_kind"] == "host-key" and "--accept-new-host-keys" in record["error_message"]
    assert main(args + ["--accept-new-host-keys"]) == ExitStatus.OK
    assert board.address in empty_known_hosts.read_text() or f"[{board.address}]" in empty_known_hosts.read_text()
    assert main(args) == ExitStatus.OK  # now known


def test_changed_host_key_is_always_refused(lab, tmp_path, db_url, digits_model):
    board, other = lab.boards[0], lab.boards[1]
    # known_hosts that names `board` with `other`'s key: exactly what a changed key looks like
    lines = lab.known_hosts_path.read_text().splitlines()
    other_key = next(line for line in lines if other.address in line).split(None, 1)[1]
    host_field = f"[{board.address}]:{board.port}" if board.port != 22 else board.address
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host_field} {other_key}\n")
    inventory = write_inventory(tmp_path / "changed.yaml", {board.name: host_vars(lab, board, known_hosts_file=str(wrong))})
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "-m", str(digits_model), "--accept-new-host-keys"])
    assert status == ExitStatus.BOARD_FAILURE
    [record] = export(db_url)
    assert record["error_kind"] == "host-key" and "changed" in record["error_message"]
    assert wrong.read_text() == f"{host_field} {other_key}\n"  # never rewritten
