"""The fault suite: boards that misbehave, over real SSH, with nothing stored lost.

Each scenario checks the failure kind recorded, that the other boards are unaffected, and
that the rows stored are exactly one per board × model × variant (never half-counted).
Faults come from a loopback TCP proxy (cut, silent), the lab's cgroup limits (OOM), a tiny
tmpfs work dir (disk full), killing the board's sshd (a reboot), and hostile names.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import lab as lab_mod
from orchestrator.boards import Board
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from orchestrator.transport import open_transport
from tests import model_factory
from tests.integration.conftest import board_of as _board_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SETTINGS = BenchSettings(runs=3, min_seconds=0, warmup=0, threads=1, sample_interval_s=0.1, retry_backoff_s=0.2,
                         lease_wait_s=5)


def board_of(lab, which: str, **overrides) -> Board:
    """The Board of lab board `which`, with any field (even its name) overridden."""
    import dataclasses

    return dataclasses.replace(_board_of(lab, which), **overrides)


def run(db_url: str, boards: list[Board], models: list[Path], settings: BenchSettings = SETTINGS, on_event=None):
    store = open_store(db_url)
    jobs = plan_cells([ModelTask(load_model_file(m)) for m in models], ["fp32"])
    runner = BenchRunner(store, boards, jobs, settings, on_event=on_event or (lambda kind, info: None))
    outcome = runner.run()
    rows = {(o.board, o.model): o.row for o in outcome.outcomes}
    assert store.count_results(outcome.run_id) == len(boards) * len(models)  # one row per cell, no more, no less
    return outcome, rows


def fresh_copy(model: Path, tmp_path: Path, name: str) -> Path:
    """The same model with a few extra bytes: new content, so the board has to receive it."""
    copy = tmp_path / f"{name}.onnx"
    copy.write_bytes(model.read_bytes())
    import onnx

    proto = onnx.load(str(copy))
    proto.doc_string = f"{name} {time.time_ns()}"
    onnx.save(proto, str(copy))
    return copy


def through_proxy(lab, tcp_proxy, name: str, **proxy_options) -> tuple[Board, object]:
    target = next(b for b in lab.boards if b.name == name)
    proxy = tcp_proxy((target.address, target.port), **proxy_options)
    known_hosts = Path(str(lab.known_hosts_path))
    board = board_of(lab, name, name=f"{name}-via-proxy", host="127.0.0.1", port=proxy.port,
                     accept_new_host_keys=True, known_hosts_file=str(known_hosts.parent / f"kh-{proxy.port}"))
    return board, proxy


def agents_on_board(board: Board) -> list[str]:
    transport = open_transport(board)
    try:
        out = transport.run(["ps", "-u", lab_mod.BOARD_USER, "-o", "args="], 10).stdout
    finally:
        transport.close()
    return [line for line in out.splitlines() if "farm_agent" in line or "agent-" in line and " bench " in line]


def test_connection_cut_mid_upload_is_retried_from_the_start(lab, tcp_proxy, tmp_path, db_url, yolo_model):
    board, proxy = through_proxy(lab, tcp_proxy, "rpi4-1", cut_after_bytes=1 * MiB, cut_once=True)
    model = fresh_copy(yolo_model, tmp_path, "cut_upload")
    others = [board_of(lab, "snapdragon-1")]
    outcome, rows = run(db_url, [board, *others], [model])
    assert proxy.cut.is_set()
    assert rows[(board.name, "cut_upload")]["status"] == "ok"  # the job re-ran from its start
    assert rows[(board.name, "cut_upload")]["details"]["bytes_sent"] >= model.stat().st_size  # whole file, verified
    assert rows[("snapdragon-1", "cut_upload")]["status"] == "ok"


def test_connection_cut_mid_bench_reruns_the_job_and_leaves_no_orphans(lab, tcp_proxy, tmp_path, db_url):
    board, proxy = through_proxy(lab, tcp_proxy, "snapdragon-1")
    slowish = model_factory.slow_matmul_chain(tmp_path / "slowish.onnx", size=512, layers=8)
    cuts = []

    def cut_when_measuring(kind, info):
        if kind == "cell_phase" and info.get("phase") == "measure" and not cuts:
            cuts.append(time.monotonic())
            proxy.cut_all()

    settings = BenchSettings(runs=20, min_seconds=0.5, warmup=0, threads=1, sample_interval_s=0.1,
                             retry_backoff_s=0.2, lease_wait_s=5)
    outcome, rows = run(db_url, [board], [slowish], settings, on_event=cut_when_measuring)
    assert cuts, "the connection was never cut mid-bench"
    row = rows[(board.name, "slowish")]
    assert row["status"] == "ok" and row["runs"] >= 20  # a complete second attempt, not a half-counted one
    direct = board_of(lab, "snapdragon-1")
    deadline = time.monotonic() + 20
    while agents_on_board(direct) and time.monotonic() < deadline:
        time.sleep(0.2)  # the cut session's worker is reaped by the wrapper/lab; bounded wait
    assert agents_on_board(direct) == []


def test_silent_and_refused_boards_fail_fast_while_others_run(lab, tcp_proxy, tmp_path, db_url, digits_model):
    silent = tcp_proxy(mode="silent")
    boards = [
        board_of(lab, "rpi4-1", name="silent-board", host="127.0.0.1", port=silent.port, connect_timeout_s=1.5),
        board_of(lab, "rpi4-1", name="refused-board", port=1),
        board_of(lab, "snapdragon-1"),
    ]
    started = time.monotonic()
    settings = BenchSettings(runs=3, min_seconds=0, warmup=0, threads=1, retries=1, retry_backoff_s=0.2)
    outcome, rows = run(db_url, boards, [digits_model], settings)
    assert rows[("silent-board", "digits_mlp")]["error_kind"] == "timeout"
    assert rows[("refused-board", "digits_mlp")]["error_kind"] == "unreachable"
    assert rows[("snapdragon-1", "digits_mlp")]["status"] == "ok"
    assert time.monotonic() - started < 60  # 2 tries × 1.5 s connect timeout, not fabric's 60 s per try


def test_wrong_key_is_an_auth_failure(lab, tmp_path, db_url, digits_model):
    stranger = tmp_path / "stranger_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    outcome, rows = run(db_url, [board_of(lab, "rpi4-1", identity_file=str(stranger))], [digits_model])
    assert rows[("rpi4-1", "digits_mlp")]["error_kind"] == "auth"


def test_a_model_the_runtime_rejects_is_a_model_error_on_that_model_only(lab, tmp_path, db_url, digits_model):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="farm.test")], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    bad = tmp_path / "rejected.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("farm.test", 1)]),
              str(bad))
    outcome, rows = run(db_url, [board_of(lab, "rpi4-1")], [bad, digits_model])
    assert rows[("rpi4-1", "rejected")]["error_kind"] == "model-error"
    assert rows[("rpi4-1", "digits_mlp")]["status"] == "ok"


def test_a_worker_killed_by_the_boards_memory_limit_is_oom_killed(lab, tmp_path, db_url, digits_model):
    if not lab.limits_enforced:
        pytest.skip(f"the lab runs without cgroup limits: {lab.limits_note}")
    rpi = next(b for b in lab.boards if b.name == "rpi4-1")
    hog = model_factory.transient_spike(tmp_path / "hog.onnx", spike_bytes=rpi.limits.memory_limit_bytes + 256 * MiB)
    settings = BenchSettings(runs=1, min_seconds=0, warmup=0, threads=1, sample_interval_s=0.1, cpu_arena=False)
    outcome, rows = run(db_url, [board_of(lab, "rpi4-1"), board_of(lab, "snapdragon-1")], [hog], settings)
    assert rows[("rpi4-1", "hog")]["error_kind"] == "oom-killed"
    assert rows[("snapdragon-1", "hog")]["status"] == "ok"  # a 2 GiB board holds the spike: unaffected


def test_a_full_work_dir_is_disk_full(lab, tmp_path, db_url, yolo_model):
    rpi = next(b for b in lab.boards if b.name == "rpi4-1")
    tiny = Path(rpi.workdir) / "tiny"
    tiny.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(tiny)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        board = board_of(lab, "rpi4-1", name="tiny-disk", workdir=str(tiny))
        outcome, rows = run(db_url, [board, board_of(lab, "snapdragon-1")], [fresh_copy(yolo_model, tmp_path, "big")])
        assert rows[("tiny-disk", "big")]["error_kind"] == "disk-full"
        assert rows[("snapdragon-1", "big")]["status"] == "ok"
        assert not [p for p in tiny.iterdir() if p.name.endswith(".onnx")]  # no half-written model left as valid
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def test_a_board_rebooted_mid_run_is_reconnected_and_the_job_rerun(lab, tmp_path, db_url):
    state = lab_mod.lab_status(lab.lab_dir)
    target = next(b for b in state.boards if b.name == "jetson-nano-1")
    slowish = model_factory.slow_matmul_chain(tmp_path / "reboot.onnx", size=512, layers=8)
    rebooted = []

    def reboot(kind, info):
        if kind == "cell_phase" and info.get("phase") == "measure" and not rebooted:
            rebooted.append(True)
            os.kill(target.pid, signal.SIGKILL)  # the sshd dies: every session drops, like a power cut
            subprocess.run(["pkill", "-KILL", "-u", lab_mod.BOARD_USER, "-f", "reboot.onnx"], check=False)
            lab_mod.lab_up(lab.lab_dir, [b.profile for b in state.boards], 1,
                           first_address=state.boards[0].address, venv_dir=Path(target.python).parents[1])

    settings = BenchSettings(runs=10, min_seconds=0.3, warmup=0, threads=1, sample_interval_s=0.1,
                             retry_backoff_s=0.5, lease_wait_s=5)
    outcome, rows = run(db_url, [board_of(lab, "jetson-nano-1"), board_of(lab, "snapdragon-1")], [slowish],
                        settings, on_event=reboot)
    assert rebooted
    assert rows[("jetson-nano-1", "reboot")]["status"] == "ok"
    assert rows[("snapdragon-1", "reboot")]["status"] == "ok"


HOSTILE = "m $(touch PWNED) `touch PWNED2`; ' \" & | < > * ?"


def test_hostile_names_reach_the_board_as_data(lab, tmp_path, db_url, digits_model):
    folder = tmp_path / "dir $(touch PWNED_DIR)"
    folder.mkdir()
    model = folder / f"{HOSTILE}.onnx"
    model.write_bytes(digits_model.read_bytes())
    board = board_of(lab, "rpi4-1")
    outcome, rows = run(db_url, [board], [model])
    row = rows[("rpi4-1", HOSTILE)]
    assert row["status"] == "ok"
    [record] = open_store(db_url).export_records(outcome.run_id)
    assert record["model"] == HOSTILE  # stored verbatim
    workdir = Path(next(b for b in lab.boards if b.name == "rpi4-1").workdir)
    for where in (Path.cwd(), tmp_path, workdir, Path("/tmp"), Path(f"/home/{lab_mod.BOARD_USER}")):
        assert not list(where.glob("PWNED*")) if where.exists() else True
