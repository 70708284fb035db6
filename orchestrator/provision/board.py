"""Steps 3 to 6 on the board, one board's provisioning in order, and the fan-out over boards.

3. Push: each wheel goes to `<workdir>/wheels/<file name>` through `Transport.stage_file`,
   which skips a file the board already holds with the same sha256 (hashed on the board).
4. Virtualenv: `<python> -m venv --clear --without-pip <workdir>/venv` when there is none, or
   when it was made from another Python. `--without-pip` needs only the `venv` module, not
   `ensurepip` (Debian's separate python3-venv package): pip itself comes from the pushed pip
   wheel, so an old distribution pip never decides which wheels fit.
5. Install: `<venv>/bin/python <wheels>/pip-*.whl/pip install --isolated --no-index
   --find-links <wheels> --only-binary=:all: name==version ...` for every wheel of the set.
   `--isolated` ignores pip configuration and PIP_* variables on the board; `--no-index`
   means the board's pip never contacts an index.
6. Finish (one command): import numpy and the runtime from the venv, check the installed
   versions against the set, remove pushed wheels that no runtime in the record uses, and write
   `<workdir>/venv/farm-provision.json` (what was installed, the wheel set's digest, the
   pip command) and `<workdir>/venv/farm-python` (the inventory's `python` the venv was made
   from: `AgentClient` runs the agent with the venv's python only for that setting).

Additive: the venv keeps the base Python's own site-packages visible after its own (a `.pth`
file the finish step writes), so a runtime the board's `python` already had (JetPack's
onnxruntime-gpu, installed system-wide) stays importable when farm provisions another one;
what farm installs comes first. `--wheel PATH` adds a user's wheel to the set (a build of the
runtime replaces the index's; its dependencies come from the index as usual).

Idempotency: a board whose record names the same base Python (the inventory setting and its
version), whose venv python exists, whose record holds this runtime with the same wheel-set
digest (sha256 over every wheel's file name and sha256), and whose venv has every package of
the set at its version, is left alone: "already provisioned, nothing changed" after one probe
command and no transfer. The record keeps one entry per runtime (`--runtime openvino` after
onnxruntime adds to the venv; both stay usable, and their wheels stay on the board so switching
back sends nothing).
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.farm_common import VENV_DIR_NAME
from orchestrator.boards import Board
from orchestrator.errors import AgentError, TransportError
from orchestrator.fanout import fan_out
from orchestrator.provision.errors import ProvisionError
from orchestrator.provision.probe import check_python, probe_board, venv_install_hint
from orchestrator.provision.record import (
    FINISH_SCRIPT,
    base_runtimes,
    earlier_record,
    finish_job,
    runtime_entry,
)
from orchestrator.provision.wheels import (
    BoardPython,
    UserWheel,
    WheelSet,
    normalize_name,
    resolve_wheels,
    wheel_cache_root,
)
from orchestrator.runtimes import DEFAULT_RUNTIME, RUNTIMES, resolve_runtime
from orchestrator.transport import CommandResult, Transport, open_transport

WHEELS_DIR_NAME = "wheels"

VENV_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 1800.0  # numpy + onnxruntime under qemu emulation: minutes
FINISH_TIMEOUT_S = 600.0

# What a board's failure may be, as an outcome; anything else is a bug and propagates.
_BOARD_FAILURES = (ProvisionError, TransportError, AgentError)


@dataclasses.dataclass(frozen=True)
class ProvisionResult:
    """One board provisioned (or found already provisioned: `changed` False). Durations in seconds."""

    board: str
    changed: bool
    summary: str
    runtime: str
    python: str  # the inventory's python setting the venv was made from
    python_version: str
    arch: str
    venv_python: str
    packages: dict[str, str]
    wheels_dir: str | None
    wheel_cache_dir: str
    wheelset_sha256: str
    bytes_sent: int
    downloaded: bool
    venv_created: bool
    pip_argv: tuple[str, ...]
    pip_output: str
    duration_s: float
    notes: tuple[str, ...] = ()
    base_runtimes: dict[str, str] = dataclasses.field(default_factory=dict)  # the base Python's, kept visible
    user_wheels: tuple[str, ...] = ()  # --wheel files in the set


@dataclasses.dataclass(frozen=True)
class ProvisionOutcome:
    """A board's result, or why it failed (`error_kind`); a failure never stops the other boards."""

    board: str
    result: ProvisionResult | None
    error_kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None


StepCallback = Callable[[str, str], None]  # (board name, what is happening now)


def _no_step(board: str, message: str) -> None:
    pass


def provision_command(board_name: str, inventory: str | None, runtime: str | None = None) -> str:
    """The command a user runs to provision one board (used in missing-runtime hints)."""
    words = ["farm", "inventory", "provision", "-i", shlex.quote(inventory) if inventory else "<inventory>",
             "-l", shlex.quote(board_name)]
    if runtime and runtime != DEFAULT_RUNTIME:
        words += ["--runtime", shlex.quote(runtime)]
    return " ".join(words)


def check_runtime(runtime: str) -> str:
    """The registry's name for `runtime` (orchestrator.runtimes); ProvisionError(kind="usage") if unknown."""
    try:
        return resolve_runtime(runtime)
    except ValueError as exc:
        raise ProvisionError(str(exc), kind="usage") from None


def provision_boards(
    boards: Sequence[Board],
    runtime: str = DEFAULT_RUNTIME,
    *,
    forks: int = 8,
    cache_root: Path | None = None,
    refresh: bool = False,
    on_step: StepCallback = _no_step,
    transport_factory: Callable[[Board], Transport] = open_transport,
    user_wheels: Sequence[UserWheel] = (),
) -> list[ProvisionOutcome]:
    """Provision every board (at most `forks` at once); outcomes in the order given.

    A board's ProvisionError / TransportError / AgentError is its failed outcome; any other
    exception is a bug and is raised (the first in board order) once every board has finished.
    """
    runtime = check_runtime(runtime)
    if not boards:
        return []
    durations_s: dict[str, float] = {}

    def work(board: Board) -> ProvisionResult:
        started = time.monotonic()
        try:
            return provision_board(board, runtime, cache_root=cache_root, refresh=refresh, on_step=on_step,
                                   transport_factory=transport_factory, user_wheels=user_wheels)
        finally:
            durations_s[board.name] = time.monotonic() - started

    group = fan_out(boards, work, forks, thread_name="farm-provision")
    outcomes = []
    for board in boards:
        found = group[board.name]
        if isinstance(found, _BOARD_FAILURES):
            outcomes.append(ProvisionOutcome(board.name, None, found.kind, str(found), durations_s[board.name]))
        elif isinstance(found, BaseException):
            raise found
        else:
            outcomes.append(ProvisionOutcome(board.name, found, duration_s=durations_s[board.name]))
    return outcomes


def provision_board(
    board: Board,
    runtime: str = DEFAULT_RUNTIME,
    *,
    cache_root: Path | None = None,
    refresh: bool = False,
    on_step: StepCallback = _no_step,
    transport_factory: Callable[[Board], Transport] = open_transport,
    user_wheels: Sequence[UserWheel] = (),
) -> ProvisionResult:
    """Provision one board; raises ProvisionError / TransportError / AgentError on failure."""
    runtime = check_runtime(runtime)
    transport = transport_factory(board)
    try:
        return _provision(board, transport, runtime, cache_root or wheel_cache_root(), refresh, on_step,
                          tuple(user_wheels))
    finally:
        transport.close()


def _provision(
    board: Board, transport: Transport, runtime: str, cache_root: Path, refresh: bool, on_step: StepCallback,
    user_wheels: tuple[UserWheel, ...] = (),
) -> ProvisionResult:
    started = time.monotonic()

    def step(message: str) -> None:
        on_step(board.name, message)

    workdir = transport.workdir
    venv_dir = posixpath.join(workdir, VENV_DIR_NAME)
    venv_python = posixpath.join(venv_dir, "bin", "python")
    step(f"probing {board.python}")
    probe = probe_board(transport, board.python, venv_dir)
    check_python(board, probe)
    wheelset = resolve_wheels(probe, runtime, cache_root, refresh=refresh, on_step=step, user_wheels=user_wheels)
    given = tuple(w.filename for w in user_wheels)
    record = earlier_record(probe)
    packages = {n: v for n, v in wheelset.packages.items() if n != "pip"}
    same_python = (
        record.get("python") == board.python
        and record.get("python_version") == probe.version_text
        and probe.python_marker == board.python
        and probe.venv_python_exists
    )
    previous = (record.get("runtimes") or {}) if same_python else {}
    missing = {n: v for n, v in wheelset.packages.items() if probe.installed.get(n) != v}
    entry = previous.get(runtime) or {}
    if same_python and entry.get("wheelset_sha256") == wheelset.digest and not missing:
        return _result(
            board, probe, wheelset, runtime, venv_python, started, changed=False,
            summary=f"already provisioned: {_package_text(packages)} in {venv_dir} (Python {probe.version_text}, "
                    f"{probe.arch}); nothing changed",
            wheels_dir=record.get("wheels_dir"), bytes_sent=0, venv_created=False,
            pip_argv=tuple(entry.get("pip_argv") or ()), pip_output="", user_wheels=given,
        )

    step(f"pushing {len(wheelset.wheels)} wheels ({wheelset.size_bytes / 1e6:.1f} MB, only those the board lacks)")
    board_paths, wheels_dir, bytes_sent = _push_wheels(transport, board, wheelset)

    venv_created = False
    if not same_python:
        step(f"creating {venv_dir} with {board.python} -m venv")
        _run(transport, [board.python, "-m", "venv", "--clear", "--without-pip", venv_dir], VENV_TIMEOUT_S,
             "creating the virtualenv", board, probe)
        venv_created = True
        previous = {}

    pip_wheel = wheelset.pip_wheel()
    pins = [f"{w.name}=={w.version}" for w in sorted(wheelset.wheels, key=lambda w: w.name)]
    pip_argv = [
        venv_python, posixpath.join(board_paths[pip_wheel.filename], "pip"), "install",
        "--isolated", "--no-index", "--find-links", wheels_dir, "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--no-cache-dir", "--progress-bar", "off", *pins,
    ]
    step(f"installing {_package_text(packages)} from the pushed wheels (pip --no-index)")
    installed = _run(transport, pip_argv, INSTALL_TIMEOUT_S, "pip install from the pushed wheels", board, probe)

    step("checking the imports and writing the record")
    runtimes = {name: value for name, value in previous.items() if name != runtime and name in RUNTIMES}
    runtimes[runtime] = runtime_entry(wheelset, pip_argv, given)
    job = finish_job(
        board.python, probe, wheelset, runtime, runtimes, venv_dir, wheels_dir,
        tidy=wheels_dir == posixpath.join(workdir, WHEELS_DIR_NAME),
    )
    kept = base_runtimes(probe, packages)
    _run(transport, [venv_python, "-c", FINISH_SCRIPT, json.dumps(job)], FINISH_TIMEOUT_S,
         "checking the installed packages", board, probe)
    kept_text = "".join(f"; kept {name} {version} of {board.python} (its site-packages stay visible)"
                        for name, version in sorted(kept.items()))
    return _result(
        board, probe, wheelset, runtime, venv_python, started, changed=True,
        summary=f"installed {_package_text(packages)} into {venv_dir} (Python {probe.version_text}, {probe.arch}"
                f"{', new venv' if venv_created else ''}){kept_text}",
        wheels_dir=wheels_dir, bytes_sent=bytes_sent, venv_created=venv_created, pip_argv=tuple(pip_argv),
        pip_output=installed.stdout, user_wheels=given, base_runtimes=kept,
    )



def _push_wheels(transport: Transport, board: Board, wheelset: WheelSet) -> tuple[dict[str, str], str, int]:
    """Stage every wheel of the set (those the board lacks): (file name -> path on the board,
    the one folder they are in, bytes sent)."""
    bytes_sent = 0
    board_paths: dict[str, str] = {}
    for wheel in wheelset.wheels:
        path, sent = transport.stage_file(wheelset.path(wheel), f"{WHEELS_DIR_NAME}/{wheel.filename}", wheel.sha256)
        board_paths[wheel.filename] = path
        bytes_sent += sent
    wheels_dirs = {posixpath.dirname(p) for p in board_paths.values()}
    if len(wheels_dirs) != 1:
        raise ProvisionError(f"{board.name}: the wheels landed in several folders: {sorted(wheels_dirs)}")
    (wheels_dir,) = wheels_dirs
    return board_paths, wheels_dir, bytes_sent


def _result(
    board: Board,
    probe: BoardPython,
    wheelset: WheelSet,
    runtime: str,
    venv_python: str,
    started: float,
    *,
    changed: bool,
    summary: str,
    wheels_dir: str | None,
    bytes_sent: int,
    venv_created: bool,
    pip_argv: tuple[str, ...],
    pip_output: str,
    user_wheels: tuple[str, ...] = (),
    base_runtimes: dict[str, str] | None = None,
) -> ProvisionResult:
    """The result of one board: what the set and the probe say, and what this run did."""
    return ProvisionResult(
        board=board.name, changed=changed, summary=summary, runtime=runtime, python=board.python,
        python_version=probe.version_text, arch=probe.arch, venv_python=venv_python,
        packages={n: v for n, v in wheelset.packages.items() if n != "pip"}, wheels_dir=wheels_dir,
        wheel_cache_dir=str(wheelset.cache_dir), wheelset_sha256=wheelset.digest, bytes_sent=bytes_sent,
        downloaded=wheelset.downloaded, venv_created=venv_created, pip_argv=pip_argv, pip_output=pip_output,
        duration_s=time.monotonic() - started, notes=wheelset.notes, user_wheels=user_wheels,
        base_runtimes=dict(base_runtimes or {}),
    )


def _run(
    transport: Transport, argv: list[str], timeout_s: float, what: str, board: Board, probe: BoardPython
) -> CommandResult:
    """Run one step's command; a failure becomes a ProvisionError whose kind says why."""
    result = transport.run(argv, timeout_s)
    if result.exit_code is None:
        raise TransportError(f"{board.name}: the connection dropped while {what}", kind="disconnected")
    if result.exit_code != 0:
        text = (result.stderr.strip() or result.stdout.strip())
        kind = "install"
        if "No space left" in text:
            kind = "disk-full"
        elif result.exit_code in (137, -9):
            kind = "oom-killed"
        lines = [l for l in text.splitlines() if l.strip()]
        detail = " | ".join(lines[-6:])[-1200:] or f"exit status {result.exit_code}"
        if "ensurepip" in text:
            detail += f" (install {venv_install_hint(probe.os_release, probe.version)} on the board)"
        raise ProvisionError(f"{board.name}: {what} failed (exit status {result.exit_code}): {detail}", kind=kind)
    return result


def _package_text(packages: dict[str, Any]) -> str:
    """numpy and the runtimes (builds of them too: onnxruntime-gpu) of a wheel set."""
    runtimes = [normalize_name(info.distribution) for info in RUNTIMES.values()]
    shown = [n for n in ("numpy", *runtimes) if n in packages]
    shown += sorted(n for n in packages if n not in shown and any(n.startswith(r + "-") for r in runtimes))
    return ", ".join(f"{n} {packages[n]}" for n in shown) or "nothing"

