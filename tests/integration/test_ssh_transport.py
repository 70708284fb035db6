"""SSHTransport against real sshd boards on loopback (no mocks): commands, staging, host keys, faults."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.boards import Board
from orchestrator.errors import TransportError
from orchestrator.lab import BOARD_USER
from orchestrator.transport import open_transport
from orchestrator.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


def board_processes(transport: SSHTransport, needle: str) -> list[str]:
    """Live (not zombie) processes of the board user whose command line contains `needle`, seen by ps."""
    result = transport.run(["ps", "-u", BOARD_USER, "-o", "pid=,stat=,args="], 10)
    found = []
    for line in result.stdout.splitlines():
        pid, stat, args = (line.split(None, 2) + ["", ""])[:3]
        if needle in args and not stat.startswith("Z") and "ps -u" not in args:
            found.append(line.strip())
    return found


def wait_until_no_board_processes(transport: SSHTransport, needle: str, timeout_s: float = 3.0) -> list[str]:
    """SIGKILL is asynchronous: poll (bounded) until no process matches; returns what is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = board_processes(transport, needle)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


# ---------------------------------------------------------------------- commands


def test_arguments_reach_the_program_as_data(connect, lab):
    transport = connect()
    token = secrets.token_hex(6)
    pwned = [f"/tmp/farm-pwned-{token}-{i}" for i in range(4)]
    weird = [
        f"$(touch {pwned[0]})",
        f"`touch {pwned[1]}`",
        f"x; touch {pwned[2]}",
        f"a && touch {pwned[3]} || b",
        "two words",
        "it's",
        '"double" \\backslash',
        "",
        "*",
        "~",
        "$HOME",
        "line\nbreak",
        "--option-like",
        "ünïcødé ✓",
    ]
    program = "import json, sys; print(json.dumps(sys.argv[1:]))"
    result = transport.run([transport._board.python, "-c", program, *weird], 20)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == weird
    for path in pwned:
        assert not os.path.exists(path), f"{path} was created: an argument reached a shell unquoted"


def test_board_env_reaches_the_command_as_data(connect):
    value = "two words $(touch /tmp/farm-env-pwned) 'q'"
    transport = connect(env={"FARM_TEST_VALUE": value})
    result = transport.run(["sh", "-c", 'printf "%s" "$FARM_TEST_VALUE"'], 10)
    assert result.stdout == value
    assert not os.path.exists("/tmp/farm-env-pwned")


def test_stdout_lines_stream_to_the_callback_while_the_command_runs(connect):
    transport = connect()
    # The command prints "first", then waits (bounded) for a file that only the callback creates:
    # unless lines reach the callback while the command runs, it ends with "late".
    flag = Path(transport.workdir) / f"flag-{secrets.token_hex(4)}"
    program = (
        "import os, sys, time\n"
        "print('first', flush=True)\n"
        "end = time.monotonic() + 10\n"
        "while not os.path.exists(sys.argv[1]) and time.monotonic() < end: time.sleep(0.01)\n"
        "print('second' if os.path.exists(sys.argv[1]) else 'late')\n"
        "sys.stdout.write('no newline at the end')\n"
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first\n":
            flag.touch()

    try:
        result = transport.run([transport._board.python, "-c", program, str(flag)], 20, on_line)
    finally:
        flag.unlink(missing_ok=True)
    assert seen == ["first\n", "second\n", "no newline at the end"]
    assert result.stdout == "first\nsecond\nno newline at the end"
    assert result.exit_code == 0


def test_exit_codes_stderr_and_sigkill_as_137(connect):
    transport = connect()
    assert transport.run(["true"], 10).exit_code == 0
    failed = transport.run(["sh", "-c", "echo oops >&2; exit 3"], 10)
    assert (failed.exit_code, failed.stderr) == (3, "oops\n")
    # A program the board does not have: the same error LocalTransport raises.
    with pytest.raises(TransportError) as missing:
        transport.run(["no-such-program-farm"], 10)
    assert missing.value.kind == "missing-runtime"
    assert transport.run(["sh", "-c", "exit 127"], 10).exit_code == 127  # a real 127 stays a 127
    # A command killed by SIGKILL (what the OOM killer sends) reports 137, not "no status".
    assert transport.run(["sh", "-c", "kill -KILL $$"], 10).exit_code == 137
    # The work dir is the command's current directory.
    assert transport.run(["pwd"], 10).stdout.strip() == transport.workdir


def test_a_channel_that_dies_without_status_gives_none_then_reconnects(connect):
    transport = connect()
    # Kill the sshd session process that runs us (the wrapper's parent): the connection drops.
    script = 'kill -KILL "$(awk "{print \\$4}" /proc/$PPID/stat)"; sleep 3'
    result = transport.run(["sh", "-c", script], 15)
    assert result.exit_code is None
    assert transport.run(["echo", "back"], 10).stdout == "back\n"


def test_timeout_stops_the_command_and_its_children(connect):
    transport = connect()
    program = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '301'])\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.run([transport._board.python, "-c", program], 1.5)
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert 1.5 <= elapsed < 4.0
    assert wait_until_no_board_processes(transport, "sleep 301") == []


def test_an_exception_in_the_callback_stops_the_remote_command(connect):
    transport = connect()

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transport.run(["sh", "-c", "echo go; sleep 302 & sleep 303; wait"], 30, interrupt)
    assert wait_until_no_board_processes(transport, "sleep 30") == []


def test_close_from_another_thread_stops_running_commands(connect):
    # What Ctrl-C does: the main thread closes the transports that worker threads are using.
    transport = connect()
    started = threading.Event()
    outcome: list[object] = []

    def on_line(line: str) -> None:
        started.set()

    def work() -> None:
        try:
            outcome.append(transport.run(["sh", "-c", "echo up; sleep 305 & sleep 306; wait"], 60, on_line))
        except TransportError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(20)
    transport.close()
    worker.join(20)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert wait_until_no_board_processes(connect(), "sleep 30") == []


def test_exec_round_trip_is_fast_with_tcp_nodelay(connect):
    transport = connect("snapdragon-1")
    transport.run(["true"], 10)
    sock = transport._connection().sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    times_ms = []
    for _ in range(20):
        started = time.perf_counter()
        transport.run(["true"], 10)
        times_ms.append((time.perf_counter() - started) * 1000)
    median_ms = statistics.median(times_ms)
    print(f"run(['true']) round trip: median {median_ms:.1f} ms, min {min(times_ms):.1f} ms")
    assert median_ms < 100  # ~5 ms here; 40+ ms would mean Nagle is back


def test_many_transports_in_parallel_threads(connect, lab):
    transports = [connect(board.name) for board in lab.boards for _ in range(2)]

    def work(transport: SSHTransport) -> list[str]:
        return [transport.run(["echo", transport.name, str(i)], 20).stdout for i in range(5)]

    with ThreadPoolExecutor(max_workers=len(transports)) as pool:
        outputs = list(pool.map(work, transports, timeout=60))
    for transport, lines in zip(transports, outputs, strict=True):
        assert lines == [f"{transport.name} {i}\n" for i in range(5)]


def test_default_workdir_is_dot_farm_in_the_board_users_home(connect):
    transport = connect(workdir=None)
    assert transport.workdir == f"/home/{BOARD_USER}/.farm"
    assert transport.run(["pwd"], 10).stdout.strip() == f"/home/{BOARD_USER}/.farm"


def test_open_transport_gives_ssh_for_ssh_boards(make_board):
    transport = open_transport(make_board("jetson-nano-1"))
    try:
        assert isinstance(transport, SSHTransport)
        assert transport.run(["id", "-un"], 10).stdout == f"{BOARD_USER}\n"
    finally:
        transport.close()
        transport.close()  # idempotent


# ---------------------------------------------------------------------- staging


def test_stage_file_uploads_once_then_sends_nothing(connect, tmp_path):
    transport = connect()
    local = tmp_path / "model.onnx"
    local.write_bytes(secrets.token_bytes(1_500_000))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    name = f"model-{digest[:12]}.onnx"

    path, sent = transport.stage_file(local, name, digest)
    assert (path, sent) == (f"{transport.workdir}/{name}", local.stat().st_size)
    assert Path(path).read_bytes() == local.read_bytes()  # same machine: read the board's copy
    again_path, again_sent = transport.stage_file(local, name, digest)
    assert (again_path, again_sent) == (path, 0)
    leftovers = [p.name for p in Path(transport.workdir).iterdir() if p.name.startswith(f"{name}.part-")]
    assert leftovers == []  # (other tests' cut uploads may leave theirs: the runner's clean step removes them)


def test_stage_file_uploads_again_when_the_boards_copy_differs(connect, tmp_path):
    transport = connect("jetson-nano-1")
    local = tmp_path / "agent.py"
    local.write_bytes(b"print('the real agent')\n" * 1000)
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    path, sent = transport.stage_file(local, "agent.py", digest)
    assert sent == local.stat().st_size
    # Same name, other content (a half-written or tampered file): detected by hash, not by name.
    transport.run(["sh", "-c", 'echo tampered > "$1"', "sh", path], 10)
    path2, sent2 = transport.stage_file(local, "agent.py", digest)
    assert (path2, sent2) == (path, local.stat().st_size)
    assert Path(path).read_bytes() == local.read_bytes()


def test_stage_file_cut_mid_transfer_fails_fast_as_disconnected(connect, lab, tcp_proxy, tmp_path):
    board = next(b for b in lab.boards if b.name == "rpi4-1")
    proxy = tcp_proxy((board.address, board.port), cut_after_bytes=400_000)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_known_hosts_line(lab, board.name, f"[127.0.0.1]:{proxy.port}"))
    transport = connect(host="127.0.0.1", port=proxy.port, known_hosts_file=str(known_hosts))
    local = tmp_path / "big.bin"
    local.write_bytes(secrets.token_bytes(3_000_000))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.stage_file(local, "big.bin", digest)
    assert caught.value.kind == "disconnected", caught.value
    assert time.monotonic() - started < 10
    assert proxy.cut.is_set()


def test_fetch_file_copies_a_board_file_back(connect, tmp_path):
    transport = connect("snapdragon-1")
    program = "import os, sys; open(sys.argv[1], 'wb').write(os.urandom(700000))"
    transport.run([transport._board.python, "-c", program, "outputs.bin"], 20)
    local = tmp_path / "outputs.bin"
    received = transport.fetch_file("outputs.bin", local)  # relative: inside the work dir
    assert received == 700_000
    assert local.read_bytes() == (Path(transport.workdir) / "outputs.bin").read_bytes()
    with pytest.raises(TransportError) as caught:
        transport.fetch_file(f"{transport.workdir}/no-such-file", tmp_path / "nothing")
    assert caught.value.kind == "agent-error"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs.bin"]  # no partial files left


# ---------------------------------------------------------------------- host keys


def _known_hosts_line(lab, board_name: str, as_name: str) -> str:
    board = next(b for b in lab.boards if b.name == board_name)
    for line in lab.known_hosts_path.read_text().splitlines():
        name, key_type, key = line.split()
        if name == f"[{board.address}]:{board.port}":
            return f"{as_name} {key_type} {key}\n"
    raise AssertionError(f"{board_name} not in {lab.known_hosts_path}")


def test_unknown_host_key_is_refused_with_a_hint(connect, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    transport = connect(known_hosts_file=str(known_hosts))
    with pytest.raises(TransportError) as caught:
        transport.run(["true"], 10)
    assert caught.value.kind == "host-key"
    assert "--accept-new-host-keys" in str(caught.value)
    assert "accept_new_host_keys: true" in str(caught.value)
    assert not known_hosts.exists()


def test_accept_new_host_keys_accepts_and_records_the_key(connect, lab, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    someone_else = "[192.0.2.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    known_hosts.write_text(f"# my hosts\n{someone_else}")  # no newline at the end: we must add one
    transport = connect(known_hosts_file=str(known_hosts), accept_new_host_keys=True)
    assert transport.run(["true"], 10).exit_code == 0
    lines = known_hosts.read_text().splitlines()
    assert lines[:2] == ["# my hosts", someone_else]
    assert lines[2] == _known_hosts_line(lab, "rpi4-1", lines[2].split()[0]).strip()
    # Now known: a strict connection works.
    assert connect(known_hosts_file=str(known_hosts)).run(["true"], 10).exit_code == 0


def test_a_changed_host_key_is_always_refused(connect, lab, tmp_path):
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    key_type, key = other_key.with_suffix(".pub").read_text().split()[:2]
    board = next(b for b in lab.boards if b.name == "rpi4-1")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"# line 1\n[{board.address}]:{board.port} {key_type} {key}\n")
    transport = connect(known_hosts_file=str(known_hosts), accept_new_host_keys=True)
    with pytest.raises(TransportError) as caught:
        transport.run(["true"], 10)
    assert caught.value.kind == "host-key"
    assert "CHANGED" in str(caught.value)
    assert f"{known_hosts}:2" in str(caught.value)
    assert known_hosts.read_text().count("\n") == 2  # never rewritten


# ---------------------------------------------------------------------- unreachable, silent, auth


def test_a_refused_port_fails_fast_as_unreachable(tmp_path):
    with socket.socket() as reserved:  # bound, never listening: connecting to it is refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        transport = SSHTransport(Board(name="gone", transport="ssh", host="127.0.0.1", port=port,
                                       user=BOARD_USER, known_hosts_file=str(tmp_path / "kh")))
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            transport.run(["true"], 10)
        elapsed = time.monotonic() - started
    print(f"refused port: failed in {elapsed * 1000:.1f} ms")
    assert caught.value.kind == "unreachable"
    assert elapsed < 2.0


def test_a_silent_port_fails_within_the_connect_timeout(tcp_proxy, tmp_path):
    proxy = tcp_proxy(mode="silent")
    transport = SSHTransport(Board(name="hung", transport="ssh", host="127.0.0.1", port=proxy.port,
                                   user=BOARD_USER, known_hosts_file=str(tmp_path / "kh"), connect_timeout_s=1.5))
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.run(["true"], 10)
    elapsed = time.monotonic() - started
    print(f"silent port: failed in {elapsed:.2f} s (connect timeout 1.5 s)")
    assert caught.value.kind == "timeout"
    assert 1.4 <= elapsed < 1.5 + 1.0
    transport.close()


def test_a_slow_link_still_works(connect, lab, tcp_proxy, tmp_path):
    board = next(b for b in lab.boards if b.name == "snapdragon-1")
    proxy = tcp_proxy((board.address, board.port), delay_s=0.01)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_known_hosts_line(lab, board.name, f"[127.0.0.1]:{proxy.port}"))
    transport = connect("snapdragon-1", host="127.0.0.1", port=proxy.port, known_hosts_file=str(known_hosts))
    assert transport.run(["echo", "slow"], 20).stdout == "slow\n"


def test_a_wrong_key_fails_as_auth(connect, tmp_path):
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(TransportError) as caught:
        connect(identity_file=str(wrong)).run(["true"], 10)
    assert caught.value.kind == "auth"
    with pytest.raises(TransportError) as missing:
        connect(identity_file=str(tmp_path / "no-such-key")).run(["true"], 10)
    assert missing.value.kind == "auth"


# ---------------------------------------------------------------------- ProxyJump and ssh config


def _through_a_counting_jump_host(connect, lab, tcp_proxy, tmp_path):  # noqa: ANN001, ANN202 - fixtures
    """rpi4-1 reached through jetson-nano-1, which is reached through a counting proxy."""
    jump = next(b for b in lab.boards if b.name == "jetson-nano-1")
    proxy = tcp_proxy((jump.address, jump.port))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        lab.known_hosts_path.read_text() + _known_hosts_line(lab, jump.name, f"[127.0.0.1]:{proxy.port}")
    )
    transport = connect("rpi4-1", proxy_jump=f"{BOARD_USER}@127.0.0.1:{proxy.port}",
                        known_hosts_file=str(known_hosts))
    return transport, proxy


def test_proxy_jump_goes_through_the_jump_host(connect, lab, tcp_proxy, tmp_path):
    # The jump host (jetson-nano-1) is reached through a counting proxy; the target (rpi4-1)
    # directly by address. If the target's bytes cross the proxy, the tunnel was used.
    transport, proxy = _through_a_counting_jump_host(connect, lab, tcp_proxy, tmp_path)
    result = transport.run([transport._board.python, "-c", "print('x' * 300000)"], 20)
    assert result.stdout == "x" * 300000 + "\n"
    assert proxy.bytes_to_client > 300000
    # The target saw a connection to its own address: we landed on rpi4-1, not on the jump host.
    target = next(b for b in lab.boards if b.name == "rpi4-1")
    connection = transport.run(["sh", "-c", 'echo "$SSH_CONNECTION"'], 10).stdout.strip()
    assert connection.endswith(f"{target.address} {target.port}")


def test_a_dead_jump_link_closes_cleanly_and_the_next_command_connects_again(connect, lab, tcp_proxy, tmp_path):
    # The board's socket is a channel of the jump host's connection: closing it talks to the jump
    # host. When that link has died, close must still finish (it raised EOFError in CI's teardown).
    transport, proxy = _through_a_counting_jump_host(connect, lab, tcp_proxy, tmp_path)
    assert transport.run(["echo", "before"], 20).stdout == "before\n"
    proxy.cut_all()
    transport.close()
    assert transport.run(["echo", "after"], 20).stdout == "after\n"
    assert proxy.connections == 2


def test_proxy_jump_with_two_hops(connect, lab):
    snapdragon = next(b for b in lab.boards if b.name == "snapdragon-1")
    jetson = next(b for b in lab.boards if b.name == "jetson-nano-1")
    hops = f"{BOARD_USER}@{snapdragon.address}:{snapdragon.port},{BOARD_USER}@{jetson.address}:{jetson.port}"
    transport = connect("rpi4-1", proxy_jump=hops)
    assert transport.run(["echo", "via", "two"], 20).stdout == "via two\n"
    assert len(transport._clients) == 3


def test_a_jump_host_with_an_unknown_key_is_refused(connect, lab, tmp_path):
    jetson = next(b for b in lab.boards if b.name == "jetson-nano-1")
    rpi = next(b for b in lab.boards if b.name == "rpi4-1")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_known_hosts_line(lab, "rpi4-1", f"[{rpi.address}]:{rpi.port}"))
    transport = connect("rpi4-1", proxy_jump=f"{BOARD_USER}@{jetson.address}:{jetson.port}",
                        known_hosts_file=str(known_hosts))
    with pytest.raises(TransportError) as caught:
        transport.run(["true"], 10)
    assert caught.value.kind == "host-key"
    assert "jump host" in str(caught.value) and jetson.address in str(caught.value)


def test_an_ssh_config_alias_with_its_own_port_user_and_key(lab, tcp_proxy, tmp_path):
    # The alias points at a proxy port (not 22, not 2222): port, user, key all come from the config.
    board = next(b for b in lab.boards if b.name == "jetson-nano-1")
    proxy = tcp_proxy((board.address, board.port))
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host farm-alias-board\n"
        "    HostName 127.0.0.1\n"
        f"    Port {proxy.port}\n"
        f"    User {BOARD_USER}\n"
        f"    IdentityFile {lab.identity_file}\n"
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_known_hosts_line(lab, board.name, f"[127.0.0.1]:{proxy.port}"))
    transport = SSHTransport(Board(name="farm-alias-board", transport="ssh", ssh_config_file=str(config),
                                   known_hosts_file=str(known_hosts), workdir=board.workdir))
    try:
        result = transport.run(["sh", "-c", 'id -un; echo "$SSH_CONNECTION"'], 10)
    finally:
        transport.close()
    user, connection = result.stdout.splitlines()
    assert user == BOARD_USER
    assert connection.endswith(f"{board.address} {board.port}")
    assert proxy.connections == 1
