"""The agent session over real SSH (issue 17): one agent per board per run, liveness both ways,
streamed results, validated messages, uploads without SFTP, per-board connection errors.

Board processes are found from here through /proc (we are root): a process whose current
directory is the board's work dir and whose command line names an agent file is that board's
agent or worker. Waits are on the agent's own messages (the controller's events) or, for
processes that must go away, on /proc with a deadline.
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.farm_common import CHUNK_VALUES
from orchestrator import cli
from orchestrator import lab as lab_mod
from orchestrator.lab.sshd import board_dir
from orchestrator.boards import Board
from orchestrator.hashing import file_sha256
from orchestrator.models import DEMO_DIR, load_model_file
from orchestrator.plan import ModelTask, plan_cells, plan_tasks
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from orchestrator.transport.ssh import SSHTransport
from tests import model_factory
from tests.integration.conftest import board_of as _board_of

pytestmark = pytest.mark.integration

SETTINGS = BenchSettings(runs=3, min_seconds=0, warmup=0, threads=1, sample_interval_s=0.5, retry_backoff_s=0.2,
                         lease_wait_s=5)
CONTROLLER = Path(__file__).with_name("controller_process.py")


def board_of(lab, which: str, **overrides) -> Board:
    return dataclasses.replace(_board_of(lab, which), **overrides)


def workdir_of(lab, which: str) -> str:
    return os.path.realpath(next(b for b in lab.boards if b.name == which).workdir)


def board_processes(workdir: str) -> dict[int, str]:
    """The agents and workers running in `workdir` (pid -> command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != workdir:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "agent-" in cmdline:
            found[int(entry.name)] = cmdline
    return found


def wait_until(condition, timeout_s: float, what: str):
    """Poll another process's state with a deadline (there is no message to wait on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(0.05)


def bench(db_url: str, boards: list[Board], models: list[Path], settings: BenchSettings = SETTINGS, on_event=None):
    store = open_store(db_url)
    cells = plan_cells([ModelTask(load_model_file(m)) for m in models], ["fp32"])
    outcome = BenchRunner(store, boards, cells, settings, on_event=on_event or (lambda kind, info: None)).run()
    assert store.count_results(outcome.run_id) == len(boards) * len(models)  # one row per cell, none lost
    return outcome, {(o.board, o.model): o.row for o in outcome.outcomes}


def start_controller(db_url: str, boards: list[Board], models: list[Path], **settings) -> subprocess.Popen:
    spec = {"db": db_url, "boards": [dataclasses.asdict(b) for b in boards], "models": [str(m) for m in models],
            "settings": settings}
    return subprocess.Popen([sys.executable, str(CONTROLLER), json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


def wait_for_event(proc: subprocess.Popen, timeout_s: float, **wanted) -> dict:
    """The controller's next event line with all of `wanted`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if not line:
            break
        event = json.loads(line)
        if all(event.get(k) == v for k, v in wanted.items()):
            return event
    raise AssertionError(f"no event {wanted} within {timeout_s} s (stderr: {proc.stderr.read() if proc.poll() else ''})")


# ------------------------------------------------------------------------------------------- liveness


def test_a_killed_controller_leaves_nothing_running_and_the_next_run_measures_alone(lab, tmp_path, db_url,
                                                                                   digits_model, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    board = board_of(lab, "rpi4-1")
    workdir = workdir_of(lab, "rpi4-1")
    endless = model_factory.endless_loop(tmp_path / "endless_kill.onnx")  # its job never ends by itself
    proc = start_controller(db_url, [board], [endless], runs=1, min_seconds=0, warmup=0, threads=1,
                            heartbeat_s=1.0)
    try:
        first = wait_for_event(proc, 120, event="run_started")
        wait_for_event(proc, 120, event="cell_phase", phase="first_inference")
        assert len(board_processes(workdir)) == 2  # the agent and its worker, measuring
        proc.kill()  # kill -9: no handler runs, nothing is said to the board
        proc.wait(timeout=10)
    finally:
        proc.kill()
    # The agent reads end-of-file on its channel: it kills its worker and frees the lease at once.
    wait_until(lambda: not board_processes(workdir), 2 * 1.0 + 1.0, "the agent and worker to be gone")
    assert not (Path(workdir) / "lease.json").exists()

    during: list[dict[int, str]] = []

    def on_event(kind, info):
        if kind == "cell_phase" and info["phase"] == "measure":
            during.append(board_processes(workdir))

    outcome, rows = bench(db_url, [board], [digits_model], on_event=on_event)
    assert rows[("rpi4-1", "digits_mlp")]["status"] == "ok"
    assert during and all(len(found) == 2 for found in during)  # its own agent and worker, nothing else
    assert open_store(db_url).get_run(first["run_id"])["status"] == "abandoned"


def test_a_frozen_holders_leftovers_are_killed_by_the_controller_that_takes_over(lab, tmp_path, db_url,
                                                                                 digits_model, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    board = board_of(lab, "jetson-nano-1")
    workdir = workdir_of(lab, "jetson-nano-1")
    endless = model_factory.endless_loop(tmp_path / "endless_frozen.onnx")
    proc = start_controller(db_url, [board], [endless], runs=1, min_seconds=0, warmup=0, threads=1, lease_ttl_s=6.0)
    try:
        first = wait_for_event(proc, 120, event="run_started")
        wait_for_event(proc, 120, event="cell_phase", phase="first_inference")
        leftovers = board_processes(workdir)
        [agent] = [pid for pid, cmd in leftovers.items() if " -c " in cmd]
        os.kill(agent, signal.SIGSTOP)  # a frozen agent cannot clean up after its controller
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert set(board_processes(workdir)) == set(leftovers)  # still there: the worker still measures
    takeovers = []
    outcome, rows = bench(db_url, [board], [digits_model], SETTINGS.replace(lease_wait_s=30.0),
                          on_event=lambda kind, info: takeovers.append(info) if kind == "board_takeover" else None)
    assert rows[("jetson-nano-1", "digits_mlp")]["status"] == "ok"
    [takeover] = takeovers
    assert sorted(takeover["killed"]) == sorted(leftovers)  # the old worker and agent, killed first
    assert first["run_id"] in takeover["previous"]
    assert not set(board_processes(workdir)) & set(leftovers)
    assert open_store(db_url).get_run(first["run_id"])["status"] == "abandoned"


def test_a_half_open_link_is_disconnected_within_30_s_and_the_agent_cleans_up(lab, tcp_proxy, tmp_path, db_url):
    target = next(b for b in lab.boards if b.name == "rpi4-1")
    proxy = tcp_proxy((target.address, target.port))
    stalled = board_of(lab, "rpi4-1", name="rpi4-1-stalled", host="127.0.0.1", port=proxy.port,
                       accept_new_host_keys=True, known_hosts_file=str(tmp_path / "known_hosts"))
    workdir = workdir_of(lab, "rpi4-1")
    model = model_factory.slow_matmul_chain(tmp_path / "stall.onnx", size=256, layers=4)
    times: dict[str, float] = {}

    def on_event(kind, info):
        if info.get("board") != stalled.name:
            return
        if kind == "cell_phase" and info["phase"] == "measure" and "stall" not in times:
            proxy.stall()  # nothing forwarded either way from now on; both sockets stay open
            times["stall"] = time.monotonic()
        elif kind == "cell_failed":
            times["failed"] = time.monotonic()

    settings = SETTINGS.replace(min_seconds=12.0, retries=0, lease_ttl_s=10.0)
    outcome, rows = bench(db_url, [stalled, board_of(lab, "snapdragon-1")], [model], settings, on_event)
    assert rows[(stalled.name, "stall")]["error_kind"] == "disconnected"
    assert "half-open" in rows[(stalled.name, "stall")]["error_message"]
    assert times["failed"] - times["stall"] <= 30.0
    assert rows[("snapdragon-1", "stall")]["status"] == "ok"  # the other board is unaffected
    # The agent hears nothing from its controller: after the lease ttl it kills its worker and exits.
    deadline_s = times["stall"] + settings.lease_ttl_s + 2 * settings.heartbeat_s + 5.0 - time.monotonic()
    wait_until(lambda: not board_processes(workdir), max(deadline_s, 1.0), "the cut-off agent to clean up")


def test_after_a_half_open_link_the_retry_takes_the_board_back_from_the_cut_off_agent(lab, tcp_proxy, tmp_path,
                                                                                      db_url):
    target = next(b for b in lab.boards if b.name == "jetson-nano-1")
    proxy = tcp_proxy((target.address, target.port))
    board = board_of(lab, "jetson-nano-1", name="jetson-stalled-once", host="127.0.0.1", port=proxy.port,
                     accept_new_host_keys=True, known_hosts_file=str(tmp_path / "known_hosts"))
    workdir = workdir_of(lab, "jetson-nano-1")
    model = model_factory.slow_matmul_chain(tmp_path / "stall_once.onnx", size=256, layers=4)
    seen: dict[str, object] = {}

    def on_event(kind, info):
        if kind == "cell_phase" and info["phase"] == "measure" and "stall" not in seen:
            seen["cut_off"] = board_processes(workdir)  # the agent and worker that will be cut off
            proxy.stall()  # this connection goes half-open; the next one is forwarded
            seen["stall"] = time.monotonic()
        elif kind == "board_retry":
            seen.setdefault("retry", (time.monotonic(), info["kind"]))
        elif kind == "board_takeover":
            seen["takeover"] = info

    settings = SETTINGS.replace(min_seconds=4.0, retries=1, lease_ttl_s=60.0)
    outcome, rows = bench(db_url, [board], [model], settings, on_event)
    assert rows[(board.name, "stall_once")]["status"] == "ok"  # measured again, whole, on a new connection
    retry_at, kind = seen["retry"]
    assert kind == "disconnected" and retry_at - seen["stall"] <= 30.0
    # The new agent took its own lease back from the cut-off one, killing that agent first (and its
    # worker, unless the worker had finished its job meanwhile).
    [cut_off_agent] = [pid for pid, cmd in seen["cut_off"].items() if " -c " in cmd]
    killed = seen["takeover"]["killed"]
    assert cut_off_agent in killed and set(killed) <= set(seen["cut_off"])
    assert not set(board_processes(workdir)) & set(seen["cut_off"])


# ------------------------------------------------------------------------------------------- results


def test_a_30_s_run_of_a_sub_ms_model_is_stored_whole(lab, db_url, digits_model):
    settings = BenchSettings(runs=100, min_seconds=30.0, warmup=10, threads=1, sample_interval_s=1.0)
    outcome, rows = bench(db_url, [board_of(lab, "snapdragon-1")], [digits_model], settings)
    row = rows[("snapdragon-1", "digits_mlp")]
    assert row["status"] == "ok", row.get("error_message")
    store = open_store(db_url)
    [stored] = store.results(outcome.run_id)
    latency_ms, series = store.series(stored["result_id"])
    details = stored["details"]
    assert len(latency_ms) == stored["runs"] == details["latency_samples_total"] == details["latency_samples_kept"]
    assert stored["runs"] > 4 * CHUNK_VALUES  # came in many chunks (one 8 MiB line could not carry it)
    assert details["latency_summary_exact"] is True
    assert stored["latency_ms_min"] == min(latency_ms) and stored["latency_ms_max"] == max(latency_ms)
    assert len(series) >= 25  # the time series at 1 s over 30 s


LIAR = r'''#!{python}
"""A lying board's python: runs the real one, rewrites its agent's lines ({mode})."""
import json, subprocess, sys
MODE = {mode!r}
child = subprocess.Popen([{python!r}] + sys.argv[1:], stdout=subprocess.PIPE)
def lie(m):
    t = m.get("type")
    if MODE == "string" and t == "result":
        m["result"]["peak_rss_bytes"] = "lots"
    elif MODE == "phase-time" and t == "result":
        m["result"]["phase_marks"][0]["t_s"] = "soon"
    elif MODE == "nan" and t == "chunk" and m["field"] == "latency_ms":
        m["values"][0] = float("nan")
    elif MODE == "huge-count" and t == "result":
        m["result"]["latency_samples_total"] = 10 ** 30
    elif MODE == "escapes" and t == "facts":
        m["facts"]["hostname"] = "\x1b]0;owned\x07\x1b[2Jlying-board"
        m["facts"]["cpu_model"] = "\x1b[31mred\x1b[0m \u202eCPU"
    return m
for line in child.stdout:
    try:
        line = (json.dumps(lie(json.loads(line))) + "\n").encode()
    except ValueError:
        pass
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
sys.exit(child.wait())
'''


@pytest.mark.parametrize("mode, field", [
    ("string", "result.peak_rss_bytes"), ("phase-time", "result.phase_marks.0.t_s"), ("nan", "values.0"),
    ("huge-count", "result.latency_samples_total"),
])
def test_a_lying_board_fails_its_job_as_agent_error_and_every_command_still_works(lab, tmp_path, db_url,
                                                                                   digits_model, capsys, mode, field):
    liar = Path(lab.lab_dir) / f"liar-{mode}.py"
    liar.write_text(LIAR.format(python=next(b for b in lab.boards if b.name == "rpi4-1").python, mode=mode))
    liar.chmod(0o755)
    honest, _ = bench(db_url, [board_of(lab, "rpi4-1")], [digits_model])
    lying, rows = bench(db_url, [board_of(lab, "rpi4-1", python=str(liar))], [digits_model])
    row = rows[("rpi4-1", "digits_mlp")]
    assert row["error_kind"] == "agent-error"
    assert f"field {field}" in row["error_message"]
    assert open_store(db_url).get_run(lying.run_id)["status"] == "failed"  # stored, not crashed
    for argv in (["runs", "show", lying.run_id], ["runs", "ls"], ["report", lying.run_id, "-o", str(tmp_path / "r.html")],
                 ["compare", honest.run_id, lying.run_id], ["compare", lying.run_id, honest.run_id]):
        assert cli.main([*argv, "--db", db_url]) == 0, argv


def test_board_text_reaches_the_store_and_the_terminal_without_control_characters(lab, tmp_path, db_url,
                                                                                  digits_model, capsys):
    liar = Path(lab.lab_dir) / "liar-escapes.py"
    liar.write_text(LIAR.format(python=next(b for b in lab.boards if b.name == "rpi4-1").python, mode="escapes"))
    liar.chmod(0o755)
    outcome, rows = bench(db_url, [board_of(lab, "rpi4-1", python=str(liar))], [digits_model])
    row = rows[("rpi4-1", "digits_mlp")]
    assert row["status"] == "ok"
    facts = open_store(db_url).results(outcome.run_id)[0]["facts"]
    assert facts["hostname"] == "]0;owned[2Jlying-board" and facts["cpu_model"] == "[31mred[0m CPU"
    capsys.readouterr()
    assert cli.main(["runs", "show", outcome.run_id, "--db", db_url]) == 0
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\u202e" not in out.out + out.err


# ------------------------------------------------------------------------------------------- channels


class ChannelCounter:
    """Counts the SSH channels farm opens per board (paramiko's Transport.open_channel)."""

    def __init__(self, monkeypatch) -> None:
        import paramiko

        self.by_port: dict[int, list[str]] = {}
        original = paramiko.Transport.open_channel
        counter = self

        def open_channel(transport, kind, *args, **kwargs):  # noqa: ANN001, ANN202
            port = transport.getpeername()[1] if transport.sock is not None else 0
            counter.by_port.setdefault(port, []).append(kind)
            return original(transport, kind, *args, **kwargs)

        monkeypatch.setattr(paramiko.Transport, "open_channel", open_channel)


def python_start_counter(lab, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A board `python` that logs each start, then runs the real one (exec: same process)."""
    log = Path(lab.lab_dir) / f"starts-{name}.log"
    log.write_text("")
    log.chmod(0o666)
    wrapper = Path(lab.lab_dir) / f"counting-python-{name}"
    real = next(b for b in lab.boards if b.name == "snapdragon-1").python
    wrapper.write_text(f"#!/bin/sh\necho start >> {log}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper, log


def test_one_agent_start_and_at_most_two_channels_per_board_whatever_the_cells(lab, tmp_path, db_url, monkeypatch,
                                                                               yolo_model):
    channels = ChannelCounter(monkeypatch)
    python, starts = python_start_counter(lab, tmp_path, "channels")
    models = [DEMO_DIR / "digits_mlp.onnx", yolo_model, model_factory.dynamic_batch_matmul(tmp_path / "dyn.onnx")]
    fresh = [model_factory.slow_matmul_chain(tmp_path / f"fresh{i}.onnx", size=64, layers=i + 1) for i in range(2)]
    board = board_of(lab, "snapdragon-1", python=str(python))
    store = open_store(db_url)
    tasks = plan_tasks([load_model_file(m) for m in [*models, *fresh]],
                            [f"digits_mlp={DEMO_DIR / 'digits_test.npz'}"])
    cells = plan_cells(tasks, ["fp32", "fp16"])
    runner = BenchRunner(store, [board], cells, SETTINGS.replace(repeats=2))
    outcome = runner.run()
    assert all(o.ok for o in outcome.outcomes) and len(outcome.outcomes) == 10
    [opened] = channels.by_port.values()
    assert opened.count("session") <= 2  # the agent session, and SFTP for the uploads
    assert starts.read_text().split() == ["start"]  # one agent Python start (workers are its children)

    # Again: everything is on the board already, so one channel (the session) and nothing sent.
    channels.by_port.clear()
    starts.write_text("")
    outcome = BenchRunner(store, [board], cells, SETTINGS).run()
    assert all(o.ok for o in outcome.outcomes)
    assert list(channels.by_port.values()) == [["session"]]
    assert all(o.row["details"]["bytes_sent"] == 0 for o in outcome.outcomes)
    assert starts.read_text().split() == ["start"]


# ------------------------------------------------------------------------------------------- no SFTP


@pytest.fixture
def sftpless_board(lab, tmp_path):
    """rpi4-1's user and keys behind a second sshd on another port whose config has no SFTP."""
    target = next(b for b in lab.boards if b.name == "rpi4-1")
    config = (board_dir(Path(lab.lab_dir), target.name) / "sshd_config").read_text()
    assert "Subsystem sftp" in config
    port = target.port + 1
    lines = [line for line in config.splitlines() if not line.startswith(("Subsystem", "ListenAddress", "PidFile"))]
    lines += [f"ListenAddress {target.address}:{port}", f"PidFile {tmp_path / 'sshd.pid'}"]
    path = Path(lab.lab_dir) / f"sshd_config-nosftp-{os.getpid()}"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([lab_mod.SSHD, "-D", "-e", "-f", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line = time.monotonic() + 10
        assert proc.stderr is not None
        while time.monotonic() < wait_for_line:
            line = proc.stderr.readline()
            if "Server listening" in line or not line:
                break
        yield board_of(lab, "rpi4-1", name="rpi4-1-nosftp", port=port, accept_new_host_keys=True,
                       known_hosts_file=str(tmp_path / "known_hosts"))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        path.unlink(missing_ok=True)


def test_a_board_without_sftp_gets_its_files_over_exec_channels(sftpless_board, tmp_path, db_url, digits_model):
    model = model_factory.slow_matmul_chain(tmp_path / "nosftp_fresh.onnx", size=32, layers=3)
    store = open_store(db_url)
    tasks = plan_tasks([load_model_file(model), load_model_file(digits_model)],
                            [f"digits_mlp={DEMO_DIR / 'digits_test.npz'}"])
    outcome = BenchRunner(store, [sftpless_board], plan_cells(tasks, ["fp32"]), SETTINGS).run()
    rows = {o.model: o.row for o in outcome.outcomes}
    assert rows["nosftp_fresh"]["status"] == "ok" and rows["nosftp_fresh"]["details"]["bytes_sent"] == model.stat().st_size
    assert rows["digits_mlp"]["status"] == "ok"
    assert rows["digits_mlp"]["details"]["export"]["accuracy"] > 0.9  # the dataset's outputs came back too

    transport = SSHTransport(sftpless_board)  # the transport's own staging and fetching, without SFTP
    try:
        path, sent = transport.stage_file(model, "0123456789abcdef.onnx", file_sha256(model))
        assert transport.sftp_missing and sent == model.stat().st_size
        assert transport.stage_file(model, "0123456789abcdef.onnx", file_sha256(model))[1] == 0
        back = tmp_path / "back.onnx"
        assert transport.fetch_file(path, back) == model.stat().st_size and back.read_bytes() == model.read_bytes()
        transport.run(["rm", "-f", path], 30)
    finally:
        transport.close()


# ------------------------------------------------------------------------------------------- ProxyJump


def test_a_boards_bad_proxy_jump_fails_that_board_only(lab, tmp_path, db_url, digits_model):
    rpi = next(b for b in lab.boards if b.name == "rpi4-1")
    # A jump host on the board's own address but another port (nothing listens there): not a loop.
    same_ip = board_of(lab, "rpi4-1", name="jump-same-ip", proxy_jump=f"{lab_mod.BOARD_USER}@{rpi.address}:1")
    # A real loop, from an ssh config: a -> b -> a.
    config = tmp_path / "ssh_config"
    config.write_text(f"Host loop-a\n  HostName {rpi.address}\n  Port {rpi.port}\n  ProxyJump loop-b\n"
                      f"Host loop-b\n  HostName {rpi.address}\n  Port {rpi.port + 7}\n  ProxyJump loop-a\n")
    looping = board_of(lab, "rpi4-1", name="jump-loop", host="loop-a", port=None, proxy_jump=None,
                       ssh_config_file=str(config))
    outcome, rows = bench(db_url, [same_ip, looping, board_of(lab, "snapdragon-1")], [digits_model],
                          SETTINGS.replace(retries=0))
    assert outcome.status == "finished"
    assert rows[("jump-same-ip", "digits_mlp")]["error_kind"] == "unreachable"
    assert "loop" not in rows[("jump-same-ip", "digits_mlp")]["error_message"]
    assert rows[("jump-loop", "digits_mlp")]["error_kind"] == "unreachable"
    assert "loops" in rows[("jump-loop", "digits_mlp")]["error_message"]
    assert rows[("snapdragon-1", "digits_mlp")]["status"] == "ok"


def test_a_jump_host_on_the_boards_address_with_another_port_works(lab, tcp_proxy, tmp_path, db_url, digits_model):
    rpi = next(b for b in lab.boards if b.name == "rpi4-1")
    snap = next(b for b in lab.boards if b.name == "snapdragon-1")
    to_board, to_jump = tcp_proxy((rpi.address, rpi.port)), tcp_proxy((snap.address, snap.port))
    board = board_of(lab, "rpi4-1", name="via-same-ip-jump", host="127.0.0.1", port=to_board.port,
                     proxy_jump=f"{lab_mod.BOARD_USER}@127.0.0.1:{to_jump.port}", accept_new_host_keys=True,
                     known_hosts_file=str(tmp_path / "known_hosts"))
    outcome, rows = bench(db_url, [board], [digits_model])
    assert rows[("via-same-ip-jump", "digits_mlp")]["status"] == "ok"
    assert to_jump.connections == 1 and to_board.connections == 1  # through the jump host, then the board
