"""`farm inventory provision`: a bare board gets a venv with numpy + onnxruntime from wheels the
controller pushed, offline; a second run is a no-op that says so; `farm bench` then runs there.

The board is the `bare` lab board (its /usr/bin/python3 has no numpy/onnxruntime), each test
in a work directory of its own, with an environment that sends any HTTP(S) request to a closed
loopback port (NO_NETWORK_ENV): pip on the board cannot reach an index, so provisioning works
only because it installs from the pushed wheels with --no-index.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from orchestrator import provision as prov
from orchestrator.agent_client import AgentClient
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.hashing import file_sha256
from orchestrator.transport import open_transport

try:
    from tests.integration.conftest import NO_NETWORK_ENV, TEST_WHEEL_CACHE
except ImportError:  # pragma: no cover - rootdir-less import mode
    from conftest import NO_NETWORK_ENV, TEST_WHEEL_CACHE  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0.1",
        "--no-report"]


def write_inventory(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def run_on(board, argv: list[str], timeout_s: float = 60.0):
    transport = open_transport(board)
    try:
        return transport.run(argv, timeout_s)
    finally:
        transport.close()


@pytest.fixture(scope="module")
def first(bare_lab, tmp_path_factory):
    """The first provisioning of a fresh work directory (shared by the tests of this module, in order)."""
    (lab_board,) = bare_lab.boards
    name = "prov-main"
    host = {
        "host": lab_board.address, "port": lab_board.port, "user": "farmboard",
        "identity_file": str(bare_lab.identity_file), "known_hosts_file": str(bare_lab.known_hosts_path),
        "workdir": f"{lab_board.workdir}/{name}", "connect_timeout_s": 5.0,
        "env": dict(NO_NETWORK_ENV), "tags": {"profile": "bare"},
    }
    inventory = write_inventory(tmp_path_factory.mktemp("inv") / "farm.yaml", {name: host})
    from orchestrator.inventory import load_inventory

    (board,) = load_inventory(inventory).boards
    TEST_WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    steps: list[str] = []
    started = time.monotonic()
    result = prov.provision_board(board, cache_root=TEST_WHEEL_CACHE, on_step=lambda b, m: steps.append(m))
    return {"board": board, "inventory": inventory, "result": result, "steps": steps,
            "duration_s": time.monotonic() - started}


# ---------------------------------------------------------------------------------- pure logic


def test_wheel_platforms_cover_every_manylinux_tag_the_board_accepts():
    arm = prov.wheel_platforms("aarch64", (2, 36))
    assert arm[0] == "manylinux_2_36_aarch64" and "manylinux_2_28_aarch64" in arm
    assert "manylinux2014_aarch64" in arm and "manylinux_2_17_aarch64" in arm
    assert not any(t.startswith("manylinux_2_16") or "manylinux1" in t for t in arm)  # no aarch64 wheels before 2.17
    x86 = prov.wheel_platforms("x86_64", (2, 31))
    assert x86[0] == "manylinux_2_31_x86_64" and "manylinux_2_32_x86_64" not in x86
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(x86)
    assert prov.wheel_platforms("aarch64", None, musl=True)[0] == "musllinux_1_2_aarch64"
    with pytest.raises(prov.ProvisionError):
        prov.wheel_platforms("aarch64", None, musl=False)


def test_wheel_arch_follows_the_python_not_the_kernel():
    assert prov.wheel_arch("aarch64") == "aarch64"
    assert prov.wheel_arch("arm64") == "aarch64"
    assert prov.wheel_arch("aarch64", 32) == "armv7l"  # Raspberry Pi OS 32-bit on a Pi 4
    assert prov.wheel_arch("x86_64", 32) == "i686"


def test_provision_command_and_venv_hints():
    assert prov.provision_command("rpi 1", "/a b/inv.yaml") == "farm inventory provision -i '/a b/inv.yaml' -l 'rpi 1'"
    assert prov.provision_command("b", "i.yaml", "openvino").endswith("-l b --runtime openvino")
    assert "apt install python3-venv" in prov.venv_install_hint({"ID": "raspbian", "ID_LIKE": "debian"}, (3, 11))
    assert "apt install python3-venv" in prov.venv_install_hint({}, (3, 9))


# ---------------------------------------------------------------------------------- a bare board


def test_first_provision_installs_only_the_pushed_wheels_with_no_index(first):
    board, result = first["board"], first["result"]
    workdir = board.workdir
    wheels_dir = posixpath.join(workdir, "wheels")
    assert result.changed and result.venv_created
    assert result.venv_python == posixpath.join(workdir, "venv", "bin", "python")
    assert result.packages["numpy"] == metadata.version("numpy")
    assert result.packages["onnxruntime"] == metadata.version("onnxruntime")
    assert result.wheels_dir == wheels_dir

    # The command line: the venv's python runs pip from the pushed pip wheel, index off.
    argv = list(result.pip_argv)
    assert argv[0] == result.venv_python
    assert argv[1].startswith(wheels_dir + "/pip-") and argv[1].endswith(".whl/pip")
    assert argv[2] == "install"
    assert {"--no-index", "--isolated", "--only-binary=:all:"} <= set(argv)
    assert argv[argv.index("--find-links") + 1] == wheels_dir
    assert not any(a.startswith(("--index-url", "--extra-index-url", "-i")) for a in argv[2:])

    # pip says where each wheel came from: the pushed folder, nothing downloaded.
    output = result.pip_output
    assert f"Looking in links: {wheels_dir}" in output
    processed = [line.split("Processing ", 1)[1].strip() for line in output.splitlines() if "Processing " in line]
    # pip names them relative to its working directory, the board's workdir
    processed = [posixpath.normpath(posixpath.join(workdir, p)) for p in processed]
    assert processed and all(p.startswith(wheels_dir + "/") for p in processed)
    assert "Downloading" not in output and "http" not in output

    # The board holds exactly the wheel set, byte for byte as the controller cached it.
    listing = run_on(board, ["sh", "-c", 'cd wheels && sha256sum *.whl'])
    on_board = {line.split()[1]: line.split()[0] for line in listing.stdout.splitlines()}
    cache_dir = Path(result.wheel_cache_dir)
    assert set(on_board) == {Path(p).name for p in processed} | {Path(argv[1]).parent.name}
    for filename, digest in on_board.items():
        assert file_sha256(cache_dir / filename) == digest

    # The record on the board says what was installed and how.
    record = json.loads(run_on(board, ["cat", "venv/farm-provision.json"]).stdout)
    entry = record["runtimes"]["onnxruntime"]
    assert entry["pip_argv"] == argv and entry["wheelset_sha256"] == result.wheelset_sha256
    assert record["installed"]["onnxruntime"] == metadata.version("onnxruntime")
    assert record["python"] == "python3" and record["python_version"] == result.python_version
    assert run_on(board, ["cat", "venv/farm-python"]).stdout.strip() == "python3"


def test_the_board_had_no_way_to_an_index(first):
    """Negative control: with the same environment, pip on the board fails to reach any index."""
    board, result = first["board"], first["result"]
    tried = run_on(board, [result.venv_python, "-m", "pip", "download", "--isolated", "--no-cache-dir",
                           "--retries", "1", "--timeout", "3", "--disable-pip-version-check", "-d", "dl", "six"], 90)
    text = tried.stdout + tried.stderr
    assert tried.exit_code != 0
    assert "127.0.0.1', port=9" in text and "Connection refused" in text  # every request hit the dead proxy
    assert "from versions: none" in text  # six is on PyPI: no index was reachable


def test_second_provision_changes_nothing_and_says_so(first, wheel_cache, capsys):
    board, inventory = first["board"], first["inventory"]
    before = run_on(board, ["stat", "-c", "%Y %i", "venv/farm-provision.json", "venv/bin/python"]).stdout
    started = time.monotonic()
    status = main(["inventory", "provision", "-i", str(inventory)])
    elapsed_s = time.monotonic() - started
    out = capsys.readouterr().out
    assert status == ExitStatus.OK
    assert "unchanged" in out and "nothing changed" in " ".join(out.split())
    assert run_on(board, ["stat", "-c", "%Y %i", "venv/farm-provision.json", "venv/bin/python"]).stdout == before
    again = prov.provision_board(board, cache_root=wheel_cache)
    assert not again.changed and again.bytes_sent == 0 and not again.downloaded
    assert again.wheelset_sha256 == first["result"].wheelset_sha256
    assert elapsed_s < 30


def test_bench_runs_on_the_provisioned_board_with_its_venv(first, db_url):
    board, inventory, result = first["board"], first["inventory"], first["result"]
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url])
    assert status == ExitStatus.OK
    records = json.loads(_export(db_url))
    assert {r["model"] for r in records} == {"digits_mlp", "yolo_timing"}
    assert all(r["status"] == "ok" and r["runs"] >= 5 for r in records), records
    digits = next(r for r in records if r["model"] == "digits_mlp")
    assert digits["accuracy"] > 0.95
    # The agent ran with the venv's python: the board's `python3` setting matches the venv's marker.
    transport = open_transport(board)
    try:
        facts = AgentClient(transport, python=board.python).facts(timeout_s=60)
        assert facts["python_executable"] == result.venv_python
        assert facts["onnxruntime_version"] == metadata.version("onnxruntime")
        # Another interpreter named in the inventory is used as it is: not the venv made from python3.
        other = AgentClient(transport, python="/usr/bin/python3").facts(timeout_s=60)
        assert other["python_executable"] == "/usr/bin/python3" and not other["onnxruntime_version"]
    finally:
        transport.close()


def _export(db_url: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                          capture_output=True, text=True, check=True, timeout=120).stdout


# ---------------------------------------------------------------------------------- refusals and hints


def test_missing_runtime_message_ends_with_the_provision_command(bare_board, tmp_path, db_url, digits_model,
                                                                 monkeypatch):
    board, host = bare_board("prov-unprovisioned")
    inventory = write_inventory(tmp_path / "farm.yaml", {board.name: host})
    monkeypatch.setenv("FARM_INVENTORY", str(inventory))  # what the hint names (see the report)
    status = main(["bench", "-l", board.name, *FAST, "--db", db_url, "-m", str(digits_model)])
    assert status == ExitStatus.BOARD_FAILURE
    (record,) = json.loads(_export(db_url))
    assert record["error_kind"] == "missing-runtime"
    assert "is not installed for /usr/bin/python3" in record["error_message"]
    assert record["error_message"].endswith(f"farm inventory provision -i {inventory} -l {board.name}")


def test_a_python_without_the_venv_module_is_told_what_to_install(bare_board):
    board, _ = bare_board("prov-novenv")
    shadow = f"{board.workdir}/shadow"
    script = 'mkdir -p "$1/venv" && echo "raise ImportError(\'no venv here\')" > "$1/venv/__init__.py"'
    made = run_on(board, ["sh", "-c", script, "mk", shadow])
    assert made.exit_code == 0, made.stderr
    board = dataclasses.replace(board, env={**board.env, "PYTHONPATH": shadow})
    started = time.monotonic()
    with pytest.raises(prov.ProvisionError) as caught:
        prov.provision_board(board, cache_root=TEST_WHEEL_CACHE)
    assert caught.value.kind == "missing-runtime"
    assert "has no venv module" in str(caught.value)
    assert "`sudo apt install python3-venv`" in str(caught.value)  # the board is Debian
    assert time.monotonic() - started < 30  # refused before any download or push
    assert run_on(board, ["sh", "-c", "test -e wheels || echo none"]).stdout.strip() == "none"


def test_a_too_old_python_is_refused_clearly(bare_board):
    board, _ = bare_board("prov-old")
    fake = f"{board.workdir}/python3.7"
    info = {"version": [3, 7, 3], "executable": "/usr/bin/python3.7", "implementation": "cpython",
            "machine": "x86_64", "pointer_bits": 64, "glibc": "glibc 2.28", "musl": [], "venv": True,
            "os_release": {"ID": "debian"}, "venv_python": False, "record": None, "python_marker": None,
            "installed": {}}
    script = "#!/bin/sh\necho '" + json.dumps(info) + "'\n"
    made = run_on(board, ["sh", "-c", 'printf "%s" "$2" > "$1" && chmod +x "$1"', "mk", fake, script])
    assert made.exit_code == 0, made.stderr
    board = dataclasses.replace(board, python=fake)
    with pytest.raises(prov.ProvisionError) as caught:
        prov.provision_board(board, cache_root=TEST_WHEEL_CACHE)
    assert caught.value.kind == "missing-runtime"
    assert "is Python 3.7.3; farm's agent needs Python 3.8 or newer" in str(caught.value)
