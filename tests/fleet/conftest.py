"""Fleet fixtures: a real PostgreSQL server, real `farm worker` processes, real sshd boards.

- `fleet_pg` (module): a private PostgreSQL cluster (tests/store/pgserver.py); `fleet_db` a
  fresh database in it per test.
- `fleet_lab` (session): 4 sshd boards on 127.77.<n>.41-44 (profile `unlimited`: no CPU quota,
  so four boards measuring at once stay quick on a 2-core machine), brought up beside the
  integration suite's lab with the same board virtualenv; `fleet_inventory` lists them with
  `tags: {site: lab-t}` (their queue).
- `farm` helpers: `Fleet.worker(...)` starts `python -m orchestrator.cli worker` as a real
  process (stopped with SIGTERM, then killed, at the end), `Fleet.submit(...)`, `Fleet.run(...)`.

Without root/sshd (the lab) or the PostgreSQL binaries the tests are skipped locally and fail
under CI=true, as the other suites do.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from orchestrator import lab as lab_mod
from tests.integration.conftest import TEST_VENV, in_ci, lab_address_block
from tests.store.pgserver import PostgresServer, PostgresUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = "lab-t"
FLEET_BOARDS = 4
# measurement settings that keep cells short; lease settings so a dead worker's lease expires fast
FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0",
        "--lease-ttl", "6", "--lease-wait", "60"]
# a worker that notices a dead one within seconds
QUICK_WORKER = ["--heartbeat", "0.5", "--stalled-after", "4"]


def _unavailable(message: str):
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def fleet_pg() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(max_connections=120).start()
    except PostgresUnavailable as exc:
        _unavailable(f"PostgreSQL server could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fleet_db(fleet_pg, request) -> str:
    name = "fleet_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    fleet_pg.drop_database(name)
    return fleet_pg.create_database(name)


@pytest.fixture(scope="session")
def fleet_lab() -> Iterator[lab_mod.LabState]:
    problems = lab_mod.missing_prerequisites()
    if problems:
        _unavailable("fleet tests need a lab of real sshd boards: " + " ".join(problems))
    lab_dir = Path(f"/var/lib/farm-lab-test-{os.getpid()}-fleet")
    try:
        state = lab_mod.lab_up(lab_dir, ["unlimited"], FLEET_BOARDS, first_address=f"127.77.{lab_address_block()}.41",
                               venv_dir=TEST_VENV)
    except BaseException:
        lab_mod.lab_down(lab_dir, remove_files=True)
        raise
    yield state
    lab_mod.lab_down(lab_dir, remove_files=True)


def write_inventory(path: Path, lab: lab_mod.LabState, extra_hosts: dict | None = None) -> Path:
    hosts = {
        b.name: {"host": b.address, "port": b.port, "user": lab_mod.BOARD_USER, "identity_file": str(lab.identity_file),
                 "known_hosts_file": str(lab.known_hosts_path), "python": b.python, "workdir": b.workdir}
        for b in lab.boards
    }
    hosts.update(extra_hosts or {})
    path.write_text(yaml.safe_dump({"all": {"vars": {"connect_timeout_s": 3.0, "tags": {"site": SITE}},
                                            "hosts": hosts}}))
    return path


@pytest.fixture
def fleet_inventory(fleet_lab, tmp_path) -> Path:
    return write_inventory(tmp_path / "lab.yaml", fleet_lab)


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, procs: tuple = ()) -> object:
    """Poll a condition (a row, a process state, a file) until it holds, or fail naming it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[3] if len(proc.args) > 3 else proc.args} exited "
                                     f"{proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Fleet:
    """Real farm processes against one database; everything started is stopped at the end."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}

    def env(self, home: str = "main") -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["XDG_DATA_HOME"] = str(self.tmp_path / home / "data")  # each process's own spool
        env.setdefault("XDG_CACHE_HOME", str(self.tmp_path / "cache"))
        env.pop("FARM_DB", None)
        return env

    def farm(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "orchestrator.cli", *args]

    def worker(self, name: str, inventory: Path | None, *extra: str, concurrency: int = 2) -> subprocess.Popen:
        args = ["worker", "--db", self.db_url, "--name", name, "--concurrency", str(concurrency), *QUICK_WORKER, *extra]
        if inventory is not None:
            args += ["-i", str(inventory)]
        log = self.tmp_path / f"worker-{name}.log"
        proc = subprocess.Popen(self.farm(*args), env=self.env(name), stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"))
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def log_of(self, proc: subprocess.Popen) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def submit_args(self, inventory: Path | None, *args: str) -> list[str]:
        inv = ["-i", str(inventory)] if inventory is not None else []
        return self.farm("submit", "--db", self.db_url, *inv, *args)

    def submit(self, inventory: Path | None, *args: str) -> str:
        proc = subprocess.run(self.submit_args(inventory, *args), env=self.env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.farm(*args), env=self.env(), capture_output=True, text=True, timeout=timeout)

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int | None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc, timeout_s=30)


@pytest.fixture
def fleet(fleet_db, tmp_path) -> Iterator[Fleet]:
    started = Fleet(fleet_db, tmp_path)
    yield started
    started.close()


def board_processes(workdir: str, containing: str = "") -> list[int]:
    """Processes running in a lab board's work directory (its agent and the agent's workers)
    whose command line contains `containing`.

    The boards are sshd servers on this machine, so /proc shows what runs "on the board"."""
    found = []
    real = os.path.realpath(workdir)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.path.realpath(f"/proc/{entry}/cwd") != real:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if containing in command:
            found.append(int(entry))
    return found
