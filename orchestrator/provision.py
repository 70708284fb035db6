"""Make a board ready for farm: a virtualenv in `<workdir>/venv` with numpy and a runtime.

`farm inventory provision` calls `provision_boards`; tests call it directly. The board never
reaches a package index: the CONTROLLER downloads the wheels for the board's architecture,
C library and Python version, pushes them over SSH, and the board installs them offline.

Steps for one board (each a command over the board's transport):

1. Probe (one command): the board's `python` (the inventory's setting, default `python3`)
   prints its version, implementation, machine, pointer size, C library (glibc version
   from `os.confstr`, or musl), whether it has the `venv` module, the distribution
   (/etc/os-release), and the record `<workdir>/venv/farm-provision.json` of an earlier
   provisioning. The probe runs on any Python (2.7 too), so a too-old one gets a clear error:
   farm's agent needs Python >= 3.8.
2. Wheels (controller): `pip download --only-binary=:all: --implementation cp
   --python-version X.Y --platform <tags> --dest ...` for `pip`, `numpy` and the runtime
   (`onnxruntime` or `openvino`), pinned to the versions the controller runs (results then
   compare across boards) and, when the board's Python has no such wheel, the newest that
   fits. Platform tags are every manylinux tag the board's glibc accepts for its
   architecture (`manylinux_2_36_aarch64` ... `manylinux_2_17_aarch64`, `manylinux2014_aarch64`;
   x86_64/i686 down to `manylinux1`), or musllinux tags on musl. A 32-bit userland on a
   64-bit kernel (Raspberry Pi OS 32-bit reports `aarch64`) is treated as armv7l.
   Wheels are cached on the controller in `~/.cache/farm/wheels/<arch>-cp<XY>/`
   (`$XDG_CACHE_HOME`, or `$FARM_WHEEL_CACHE` for the `wheels` folder itself); the set chosen
   for one (requirements, tags, Python) is remembered in `sets/<key>.json` with each file's
   sha256, so the next board of that kind, or the next run, needs no network at all ("no
   such wheel" answers are remembered too; `--refresh-wheels` asks the index again). The
   controller's own pip (`sys.executable -m pip`) needs the index the first time; the board never.
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

Idempotency: the probe also lists the venv's installed distributions (its *.dist-info
folders: no imports). A board whose record names the same base Python (the inventory
setting and its version), whose venv python exists, whose record holds this runtime with
the same wheel-set digest (sha256 over every wheel's file name and sha256), and whose venv
has every package of the set at its version, is left alone: "already provisioned, nothing
changed" after one probe command and no transfer. The record keeps one entry per runtime
(`--runtime openvino` after onnxruntime adds to the venv; both stay usable, and their
wheels stay on the board so switching back sends nothing).

No typer, no rich here: the CLI (orchestrator/cli/inventory_cmd.py) renders the results.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from agents.farm_common import PYTHON_MARKER_NAME, VENV_DIR_NAME
from orchestrator.boards import Board
from orchestrator.errors import AgentError, ExitStatus, FarmError, TransportError
from orchestrator.transport import Transport, open_transport

RUNTIMES = ("onnxruntime", "openvino")
DEFAULT_RUNTIME = "onnxruntime"
# The Python module each runtime's distribution provides.
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
MIN_PYTHON = (3, 8)
WHEELS_DIR_NAME = "wheels"
RECORD_NAME = "farm-provision.json"
RECORD_VERSION = 1
WHEEL_CACHE_ENV = "FARM_WHEEL_CACHE"
SETS_DIR_NAME = "sets"

PROBE_TIMEOUT_S = 120.0  # an emulated board starts Python in ~1 s; a slow SD card more
VENV_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 1800.0  # numpy + onnxruntime under qemu emulation: minutes
FINISH_TIMEOUT_S = 600.0
DOWNLOAD_TIMEOUT_S = 900.0

# Runs on the board's Python, whatever its version (2.7 included), so a too-old Python is
# reported clearly instead of failing with a syntax error. argv[1]: the venv folder.
_PROBE_SCRIPT = r"""
import json, os, platform, struct, sys
info = {"version": list(sys.version_info[:3]), "executable": sys.executable,
        "implementation": getattr(getattr(sys, "implementation", None), "name", "cpython"),
        "machine": platform.machine(), "pointer_bits": struct.calcsize("P") * 8}
try:
    info["glibc"] = os.confstr("CS_GNU_LIBC_VERSION")
except (AttributeError, ValueError, OSError):
    info["glibc"] = None
musl = []
for folder in ("/lib", "/usr/lib"):
    try:
        musl += [n for n in os.listdir(folder) if n.startswith("ld-musl-")]
    except OSError:
        pass
info["musl"] = sorted(musl)
try:
    import venv
    info["venv"] = True
except Exception:
    info["venv"] = False
release = {}
try:
    for line in open("/etc/os-release"):
        key, sep, value = line.strip().partition("=")
        if sep and key in ("ID", "ID_LIKE", "PRETTY_NAME", "VERSION_ID"):
            release[key] = value.strip('"')
except (IOError, OSError):
    pass
info["os_release"] = release
venv_dir = sys.argv[1]
info["venv_python"] = os.access(os.path.join(venv_dir, "bin", "python"), os.X_OK)
try:
    with open(os.path.join(venv_dir, "farm-provision.json")) as handle:
        info["record"] = json.load(handle)
except Exception:
    info["record"] = None
try:
    with open(os.path.join(venv_dir, "farm-python")) as handle:
        info["python_marker"] = handle.read().strip()
except Exception:
    info["python_marker"] = None
installed = {}
lib = os.path.join(venv_dir, "lib")
try:
    for version_dir in os.listdir(lib):
        site = os.path.join(lib, version_dir, "site-packages")
        if version_dir.startswith("python") and os.path.isdir(site):
            for entry in os.listdir(site):
                if entry.endswith(".dist-info"):
                    name, _, version = entry[:-len(".dist-info")].partition("-")
                    installed[name.lower().replace("_", "-").replace(".", "-")] = version
except OSError:
    pass
info["installed"] = installed
sys.stdout.write(json.dumps(info) + "\n")
"""

# Runs on the venv's python after pip: checks imports and versions, tidies the pushed wheels,
# writes the record and the marker atomically. argv[1]: a JSON job description.
_FINISH_SCRIPT = r"""
import importlib, json, os, sys
job = json.loads(sys.argv[1])
from importlib import metadata
problems = []
installed = {}
for name, version in sorted(job["packages"].items()):
    got = None
    for candidate in (name, name.replace("-", "_")):
        try:
            got = metadata.version(candidate)
            break
        except metadata.PackageNotFoundError:
            pass
    if got is None:
        problems.append("%s is not installed" % name)
        continue
    installed[name] = got
    if got != version:
        problems.append("%s is %s, not %s" % (name, got, version))
for module in job["modules"]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        problems.append("import %s failed: %s: %s" % (module, type(exc).__name__, exc))
if problems:
    sys.stderr.write("; ".join(problems) + "\n")
    sys.exit(3)
keep = set(job["keep_wheels"])
removed = []
if job.get("tidy_dir"):
    for name in os.listdir(job["tidy_dir"]):
        if name.endswith(".whl") and name not in keep:
            os.remove(os.path.join(job["tidy_dir"], name))
            removed.append(name)
record = job["record"]
record["installed"] = installed
venv = job["venv"]
for name, text in ((job["record_name"], json.dumps(record, indent=2, sort_keys=True) + "\n"),
                   (job["marker_name"], job["marker"] + "\n")):
    tmp = os.path.join(venv, ".%s.tmp" % name)
    with open(tmp, "w") as handle:
        handle.write(text)
    os.rename(tmp, os.path.join(venv, name))
sys.stdout.write(json.dumps({"installed": installed, "removed": removed}) + "\n")
"""


class ProvisionError(FarmError):
    """A board cannot be provisioned; the message says what to do. `kind` names the cause."""

    exit_status = ExitStatus.BOARD_FAILURE

    def __init__(self, message: str, kind: str = "provision-error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class BoardPython:
    """What the probe found out about the board's Python (see `_PROBE_SCRIPT`)."""

    setting: str  # the inventory's `python`, e.g. "python3"
    executable: str
    version: tuple[int, int, int]
    implementation: str
    machine: str
    pointer_bits: int
    glibc: tuple[int, int] | None
    musl: bool
    has_venv: bool
    os_release: dict[str, str]
    venv_python_exists: bool
    record: dict[str, Any] | None
    python_marker: str | None
    installed: dict[str, str]  # normalized name -> version, from the venv's *.dist-info folders

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def arch(self) -> str:
        """The wheel architecture: what pip on this Python would accept."""
        return wheel_arch(self.machine, self.pointer_bits)

    @property
    def python_tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"


@dataclasses.dataclass(frozen=True)
class Wheel:
    filename: str
    sha256: str
    size_bytes: int

    @property
    def name(self) -> str:
        return normalize_name(self.filename.split("-")[0])

    @property
    def version(self) -> str:
        return self.filename.split("-")[1]


@dataclasses.dataclass(frozen=True)
class WheelSet:
    """The wheels one board kind needs, in the controller's cache."""

    cache_dir: Path
    requirements: tuple[str, ...]
    platforms: tuple[str, ...]
    python_version: str
    wheels: tuple[Wheel, ...]
    downloaded: bool  # True: pip reached the index this time; False: the cached set was used
    notes: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """sha256 over every wheel's file name and sha256: what "the same wheels" means."""
        text = "\n".join(f"{w.filename} {w.sha256}" for w in sorted(self.wheels, key=lambda w: w.filename))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def packages(self) -> dict[str, str]:
        return {w.name: w.version for w in self.wheels}

    @property
    def size_bytes(self) -> int:
        return sum(w.size_bytes for w in self.wheels)

    def path(self, wheel: Wheel) -> Path:
        return self.cache_dir / wheel.filename

    def pip_wheel(self) -> Wheel:
        for wheel in self.wheels:
            if wheel.name == "pip":
                return wheel
        raise ProvisionError(f"the wheel set in {self.cache_dir} has no pip wheel", kind="download")


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


# ---------------------------------------------------------------------------------- public API


def provision_command(board_name: str, inventory: str | None, runtime: str | None = None) -> str:
    """The command a user runs to provision one board (used in missing-runtime hints)."""
    words = ["farm", "inventory", "provision", "-i", shlex.quote(inventory) if inventory else "<inventory>",
             "-l", shlex.quote(board_name)]
    if runtime and runtime != DEFAULT_RUNTIME:
        words += ["--runtime", shlex.quote(runtime)]
    return " ".join(words)


def wheel_cache_root() -> Path:
    """$FARM_WHEEL_CACHE, else $XDG_CACHE_HOME/farm/wheels, else ~/.cache/farm/wheels."""
    value = os.environ.get(WHEEL_CACHE_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    from orchestrator.paths import farm_cache_dir

    return farm_cache_dir() / "wheels"


def provision_boards(
    boards: Sequence[Board],
    runtime: str = DEFAULT_RUNTIME,
    *,
    forks: int = 8,
    cache_root: Path | None = None,
    refresh: bool = False,
    on_step: StepCallback = _no_step,
    transport_factory: Callable[[Board], Transport] = open_transport,
) -> list[ProvisionOutcome]:
    """Provision every board (bounded parallelism), in the order given; failures are outcomes."""
    check_runtime(runtime)
    if not boards:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(boards))), thread_name_prefix="farm-provision") as pool:
        return list(pool.map(
            lambda b: _provision_outcome(b, runtime, cache_root, refresh, on_step, transport_factory), boards
        ))


def provision_board(
    board: Board,
    runtime: str = DEFAULT_RUNTIME,
    *,
    cache_root: Path | None = None,
    refresh: bool = False,
    on_step: StepCallback = _no_step,
    transport_factory: Callable[[Board], Transport] = open_transport,
) -> ProvisionResult:
    """Provision one board; raises ProvisionError / TransportError / AgentError on failure."""
    check_runtime(runtime)
    transport = transport_factory(board)
    try:
        return _provision(board, transport, runtime, cache_root or wheel_cache_root(), refresh, on_step)
    finally:
        transport.close()


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ProvisionError(f"unknown runtime {runtime!r}: choose {' or '.join(RUNTIMES)}", kind="usage")


# ---------------------------------------------------------------------------------- wheels


def normalize_name(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_arch(machine: str, pointer_bits: int = 64) -> str:
    """The wheel platform architecture for `uname -m` and the Python's pointer size.

    A 32-bit Python on a 64-bit kernel (Raspberry Pi OS 32-bit on a Pi 4 says aarch64)
    needs armv7l wheels; one on x86_64 needs i686.
    """
    machine = machine.strip().lower()
    aliases = {"arm64": "aarch64", "amd64": "x86_64", "i386": "i686", "i586": "i686", "armv8l": "armv7l"}
    arch = aliases.get(machine, machine)
    if pointer_bits == 32:
        arch = {"aarch64": "armv7l", "x86_64": "i686"}.get(arch, arch)
    if not re.match(r"^[a-z0-9_]+$", arch):
        raise ProvisionError(f"cannot tell the board's architecture from {machine!r}", kind="unsupported")
    return arch


def wheel_platforms(arch: str, glibc: tuple[int, int] | None, musl: bool = False) -> list[str]:
    """Every platform tag (newest first) a pip on this board accepts for binary wheels."""
    if glibc is not None:
        major, minor = glibc
        if major != 2 or minor < 5:
            raise ProvisionError(f"glibc {major}.{minor} is too old for any manylinux wheel", kind="unsupported")
        floor = 5 if arch in ("x86_64", "i686") else 17
        tags = []
        for m in range(minor, floor - 1, -1):
            tags.append(f"manylinux_2_{m}_{arch}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(m)
            if legacy and (m == 17 or arch in ("x86_64", "i686")):
                tags.append(f"{legacy}_{arch}")
        return tags
    if musl:
        return [f"musllinux_1_{m}_{arch}" for m in range(2, -1, -1)]
    raise ProvisionError(
        "the board's C library is neither glibc nor musl: no binary wheels (manylinux/musllinux) fit it",
        kind="unsupported",
    )


def controller_versions(runtime: str) -> dict[str, str | None]:
    """numpy and the runtime at the versions this controller runs (None: not installed here)."""
    versions: dict[str, str | None] = {}
    for name in ("numpy", runtime):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def resolve_wheels(
    probe: BoardPython,
    runtime: str,
    cache_root: Path,
    *,
    refresh: bool = False,
    on_step: Callable[[str], None] = lambda message: None,
) -> WheelSet:
    """The wheel set for this board kind: from the cache's record, else downloaded by pip."""
    platforms = wheel_platforms(probe.arch, probe.glibc, probe.musl)
    python_version = f"{probe.version[0]}.{probe.version[1]}"
    libc = "" if probe.glibc is not None else "-musl"
    cache_dir = cache_root / f"{probe.arch}{libc}-{probe.python_tag}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    pinned = controller_versions(runtime)
    attempts = [
        tuple(["pip"] + [f"{n}=={v}" if v else n for n, v in pinned.items()]),
        ("pip", "numpy", runtime),
    ]
    if attempts[0] == attempts[1]:
        attempts.pop()
    with _locked(cache_dir / ".lock"):  # boards of one kind share the download
        last_error: ProvisionError | None = None
        for index, requirements in enumerate(attempts):
            key = _set_key(requirements, platforms, python_version)
            record_path = cache_dir / SETS_DIR_NAME / f"{key}.json"
            notes: tuple[str, ...] = ()
            if index > 0 and last_error is not None:
                held = ", ".join(f"{n} {v}" for n, v in pinned.items() if v)
                notes = ((f"no wheels of this controller's versions ({held}) for Python {python_version} on "
                          f"{probe.arch}; installed the newest that fit"),)
            if not refresh:
                remembered = _read_set_record(record_path)
                if remembered.get("no_wheel"):
                    # pip found no such wheels before: don't ask the index again on every run
                    last_error = ProvisionError(str(remembered["no_wheel"]), kind="no-wheel")
                    continue
                cached = _cached_set(cache_dir, remembered, requirements, platforms, python_version, notes)
                if cached is not None:
                    return cached
            on_step(f"downloading wheels for {probe.arch} Python {python_version}: {' '.join(requirements)}")
            try:
                wheels = _download(cache_dir, requirements, platforms, python_version)
            except ProvisionError as exc:
                last_error = exc
                if exc.kind != "no-wheel":
                    raise
                _write_json(record_path, {"requirements": list(requirements), "platforms": list(platforms),
                                          "python_version": python_version, "no_wheel": str(exc),
                                          "created_at": _now()})
                continue
            _write_json(record_path, {
                "requirements": list(requirements),
                "platforms": list(platforms),
                "python_version": python_version,
                "wheels": [dataclasses.asdict(w) for w in wheels],
                "created_at": _now(),
            })
            return WheelSet(cache_dir, requirements, tuple(platforms), python_version, tuple(wheels), True, notes)
        assert last_error is not None
        raise ProvisionError(
            f"no binary wheels of numpy and {runtime} for CPython {python_version} on {probe.arch} "
            f"({platforms[0]} and older): {last_error}",
            kind="unsupported",
        )


def _set_key(requirements: Sequence[str], platforms: Sequence[str], python_version: str) -> str:
    text = json.dumps({"requirements": list(requirements), "platforms": list(platforms),
                       "python_version": python_version, "implementation": "cp"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_set_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _cached_set(
    cache_dir: Path,
    record: dict[str, Any],
    requirements: tuple[str, ...],
    platforms: list[str],
    python_version: str,
    notes: tuple[str, ...],
) -> WheelSet | None:
    """The remembered set when every one of its files is still there with its sha256."""
    try:
        wheels = tuple(Wheel(**w) for w in record["wheels"])
    except (KeyError, TypeError):
        return None
    for wheel in wheels:
        path = cache_dir / wheel.filename
        try:
            if path.stat().st_size != wheel.size_bytes or _sha256(path) != wheel.sha256:
                return None
        except OSError:
            return None
    return WheelSet(cache_dir, requirements, tuple(platforms), python_version, wheels, False, notes)


# pip says "No matching distribution" both when no wheel fits and when it could not reach the
# index; these lines tell the second case, which must not be remembered as "no such wheel".
_NETWORK_TROUBLE = ("Retrying (Retry(", "NewConnectionError", "ProxyError", "Max retries exceeded",
                    "Temporary failure in name resolution", "Failed to establish a new connection",
                    "ConnectionError", "ReadTimeoutError", "SSLError")


def _download(cache_dir: Path, requirements: Sequence[str], platforms: Sequence[str], python_version: str) -> list[Wheel]:
    """pip download into a fresh folder (so the set is exactly what pip chose), then into the cache."""
    tmp = cache_dir / f".download-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
        for tag in platforms:
            argv += ["--platform", tag]
        argv += ["--dest", str(tmp), *requirements]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"pip download took over {DOWNLOAD_TIMEOUT_S:g} s", kind="download") from None
        if done.returncode != 0:
            text = (done.stderr or done.stdout).strip()
            offline = any(sign in text for sign in _NETWORK_TROUBLE)
            if not offline and ("No matching distribution" in text or "Could not find a version" in text):
                line = next((l for l in text.splitlines() if "No matching distribution" in l), text.splitlines()[-1])
                raise ProvisionError(line.strip(), kind="no-wheel")
            raise ProvisionError(
                f"pip download failed on the controller (the controller needs the package index; the board "
                f"does not): {text[-800:]}",
                kind="download",
            )
        wheels = []
        for path in sorted(tmp.iterdir()):
            if not path.name.endswith(".whl"):
                raise ProvisionError(f"pip download gave {path.name}, not a wheel", kind="download")
            digest = _sha256(path)
            target = cache_dir / path.name
            if not (target.is_file() and _sha256(target) == digest):
                os.replace(path, target)
            wheels.append(Wheel(path.name, digest, target.stat().st_size))
        return wheels
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------- one board


def _provision_outcome(
    board: Board,
    runtime: str,
    cache_root: Path | None,
    refresh: bool,
    on_step: StepCallback,
    transport_factory: Callable[[Board], Transport],
) -> ProvisionOutcome:
    started = time.monotonic()
    try:
        result = provision_board(board, runtime, cache_root=cache_root, refresh=refresh, on_step=on_step,
                                 transport_factory=transport_factory)
    except (ProvisionError, TransportError, AgentError) as exc:
        return ProvisionOutcome(board.name, None, exc.kind, str(exc), time.monotonic() - started)
    return ProvisionOutcome(board.name, result, duration_s=time.monotonic() - started)


def _provision(
    board: Board, transport: Transport, runtime: str, cache_root: Path, refresh: bool, on_step: StepCallback
) -> ProvisionResult:
    started = time.monotonic()

    def step(message: str) -> None:
        on_step(board.name, message)

    workdir = transport.workdir
    venv_dir = posixpath.join(workdir, VENV_DIR_NAME)
    venv_python = posixpath.join(venv_dir, "bin", "python")
    step(f"probing {board.python}")
    probe = probe_board(transport, board.python, venv_dir)
    _check_python(board, probe)
    wheelset = resolve_wheels(probe, runtime, cache_root, refresh=refresh, on_step=step)
    record = probe.record if probe.record and probe.record.get("version") == RECORD_VERSION else {}
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
        return ProvisionResult(
            board=board.name, changed=False,
            summary=f"already provisioned: {_package_text(packages)} in {venv_dir} (Python {probe.version_text}, "
                    f"{probe.arch}); nothing changed",
            runtime=runtime, python=board.python, python_version=probe.version_text, arch=probe.arch,
            venv_python=venv_python, packages=packages, wheels_dir=record.get("wheels_dir"),
            wheel_cache_dir=str(wheelset.cache_dir), wheelset_sha256=wheelset.digest, bytes_sent=0,
            downloaded=wheelset.downloaded, venv_created=False, pip_argv=tuple(entry.get("pip_argv") or ()),
            pip_output="", duration_s=time.monotonic() - started, notes=wheelset.notes,
        )

    step(f"pushing {len(wheelset.wheels)} wheels ({wheelset.size_bytes / 1e6:.1f} MB, only those the board lacks)")
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
    pushed_to_workdir = wheels_dir == posixpath.join(workdir, WHEELS_DIR_NAME)

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
    runtimes[runtime] = {
        "wheelset_sha256": wheelset.digest,
        "requirements": list(wheelset.requirements),
        "platforms": list(wheelset.platforms),
        "wheels": [dataclasses.asdict(w) for w in wheelset.wheels],
        "packages": wheelset.packages,
        "pip_argv": pip_argv,
        "provisioned_at": _now(),
        "notes": list(wheelset.notes),
    }
    # Wheels of every runtime still installed stay on the board: switching back re-sends nothing.
    keep = sorted({w["filename"] for value in runtimes.values() for w in value.get("wheels", [])})
    job = {
        "packages": wheelset.packages,
        "modules": ["numpy", RUNTIME_MODULES[runtime]],
        "keep_wheels": keep,
        "tidy_dir": wheels_dir if pushed_to_workdir else None,
        "venv": venv_dir,
        "record_name": RECORD_NAME,
        "marker_name": PYTHON_MARKER_NAME,
        "marker": board.python,
        "record": {
            "version": RECORD_VERSION,
            "python": board.python,
            "python_executable": probe.executable,
            "python_version": probe.version_text,
            "arch": probe.arch,
            "wheels_dir": wheels_dir,
            "last_runtime": runtime,
            "runtimes": runtimes,
            "farm_version": _farm_version(),
        },
    }
    _run(transport, [venv_python, "-c", _FINISH_SCRIPT, json.dumps(job)], FINISH_TIMEOUT_S,
         "checking the installed packages", board, probe)
    return ProvisionResult(
        board=board.name, changed=True,
        summary=f"installed {_package_text(packages)} into {venv_dir} (Python {probe.version_text}, {probe.arch}"
                f"{', new venv' if venv_created else ''})",
        runtime=runtime, python=board.python, python_version=probe.version_text, arch=probe.arch,
        venv_python=venv_python, packages=packages, wheels_dir=wheels_dir,
        wheel_cache_dir=str(wheelset.cache_dir), wheelset_sha256=wheelset.digest, bytes_sent=bytes_sent,
        downloaded=wheelset.downloaded, venv_created=venv_created, pip_argv=tuple(pip_argv),
        pip_output=installed.stdout, duration_s=time.monotonic() - started, notes=wheelset.notes,
    )


def probe_board(transport: Transport, python: str, venv_dir: str) -> BoardPython:
    """Run the probe on the board's `python` (one command)."""
    result = transport.run([python, "-c", _PROBE_SCRIPT, venv_dir], PROBE_TIMEOUT_S)
    if result.exit_code == 127:
        raise ProvisionError(
            f"{transport.name}: {python!r} not found on the board: install Python {_min_text()} or newer "
            "(Debian/Ubuntu: `sudo apt install python3`) or set `python:` for this board in the inventory",
            kind="missing-runtime",
        )
    if result.exit_code is None:
        raise TransportError(f"{transport.name}: the connection dropped while probing {python}", kind="disconnected")
    line = (result.stdout.strip().splitlines() or [""])[-1]
    try:
        info = json.loads(line)
        version = tuple(int(x) for x in info["version"])
    except (ValueError, KeyError, TypeError):
        tail = (result.stderr.strip().splitlines() or [""])[-1][:300]
        if "SyntaxError" in result.stderr or "invalid syntax" in result.stderr:
            tail = "its Python is too old to run the probe"
        raise ProvisionError(
            f"{transport.name}: cannot probe {python!r} (exit status {result.exit_code}): {tail}. "
            f"farm needs Python {_min_text()} or newer on the board",
            kind="missing-runtime",
        ) from None
    glibc = None
    match = re.match(r"^glibc (\d+)\.(\d+)", str(info.get("glibc") or ""))
    if match:
        glibc = (int(match.group(1)), int(match.group(2)))
    return BoardPython(
        setting=python,
        executable=str(info.get("executable") or python),
        version=(version + (0, 0, 0))[:3],  # type: ignore[arg-type]
        implementation=str(info.get("implementation") or "cpython"),
        machine=str(info.get("machine") or ""),
        pointer_bits=int(info.get("pointer_bits") or 64),
        glibc=glibc,
        musl=bool(info.get("musl")),
        has_venv=bool(info.get("venv")),
        os_release={str(k): str(v) for k, v in (info.get("os_release") or {}).items()},
        venv_python_exists=bool(info.get("venv_python")),
        record=info.get("record") if isinstance(info.get("record"), dict) else None,
        python_marker=info.get("python_marker"),
        installed={normalize_name(str(k)): str(v) for k, v in (info.get("installed") or {}).items()},
    )


def venv_install_hint(os_release: dict[str, str], version: tuple[int, ...]) -> str:
    """What to install on this distribution so its Python has the venv module."""
    family = {os_release.get("ID", "")} | set(os_release.get("ID_LIKE", "").split())
    minor = f"python{version[0]}.{version[1]}-venv"
    if family & {"debian", "ubuntu", "raspbian"}:
        return f"`sudo apt install python3-venv` (or `{minor}`)"
    if family & {"fedora", "rhel", "centos"}:
        return "`sudo dnf install python3` (the venv module is part of Fedora/RHEL's python3 package)"
    if "alpine" in family:
        return "`sudo apk add python3` (Alpine's python3 package includes venv)"
    if "poky" in family or "yocto" in family:
        return "the `python3-venv` package (add it to IMAGE_INSTALL in your Yocto image)"
    return f"your distribution's Python venv package (Debian/Ubuntu: `sudo apt install python3-venv` or `{minor}`)"


def _check_python(board: Board, probe: BoardPython) -> None:
    name = board.name
    if probe.version[0] < 3 or probe.version[:2] < MIN_PYTHON:
        raise ProvisionError(
            f"{name}: {board.python} is Python {probe.version_text}; farm's agent needs Python {_min_text()} or "
            "newer: install one (Debian/Ubuntu: `sudo apt install python3`) and set `python:` for this board "
            "in the inventory",
            kind="missing-runtime",
        )
    if probe.implementation != "cpython":
        raise ProvisionError(
            f"{name}: {board.python} is {probe.implementation}, not CPython: numpy and the runtimes publish "
            "CPython wheels only; set `python:` to a CPython for this board",
            kind="unsupported",
        )
    if not probe.has_venv:
        raise ProvisionError(
            f"{name}: {board.python} (Python {probe.version_text}) has no venv module, which farm needs to make "
            f"the board's virtualenv: install {venv_install_hint(probe.os_release, probe.version)} on the board, "
            "then provision again",
            kind="missing-runtime",
        )


def _run(transport: Transport, argv: list[str], timeout_s: float, what: str, board: Board, probe: BoardPython):
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


def _package_text(packages: dict[str, str]) -> str:
    order = ["numpy", *RUNTIMES]
    shown = [f"{n} {packages[n]}" for n in order if n in packages]
    return ", ".join(shown) or "nothing"


def _min_text() -> str:
    return ".".join(str(x) for x in MIN_PYTHON)


def _farm_version() -> str:
    import orchestrator

    return orchestrator.__version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`: one download per wheel cache at a time.

    Every call opens the file anew, and flock locks belong to the open file, so this
    excludes other threads of this process as well as other processes.
    """
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
