"""Which wheels a board needs, resolved and cached on the CONTROLLER (the board never reaches an index).

`pip download --only-binary=:all: --implementation cp --python-version X.Y --platform <tags>
--dest ...` for `pip`, `numpy` and the runtime's distribution, pinned to the versions the
controller runs (results then compare across boards) and, when the board's Python has no such
wheel, the newest that fits. Platform tags are every manylinux tag the board's glibc accepts for
its architecture (`manylinux_2_36_aarch64` ... `manylinux_2_17_aarch64`, `manylinux2014_aarch64`;
x86_64/i686 down to `manylinux1`), or musllinux tags on musl. A 32-bit userland on a 64-bit
kernel (Raspberry Pi OS 32-bit reports `aarch64`) is treated as armv7l.

Wheels are cached in `~/.cache/farm/wheels/<arch>-cp<XY>/` (`$XDG_CACHE_HOME`, or
`$FARM_WHEEL_CACHE` for the `wheels` folder itself); the set chosen for one (requirements,
tags, Python) is remembered in `sets/<key>.json` with each file's sha256, so the next board of
that kind, or the next run, needs no network at all ("no such wheel" answers are remembered
too; `refresh=True` asks the index again). The controller's own pip (`sys.executable -m pip`)
needs the index the first time; the board never.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_path
from orchestrator.hashing import file_sha256
from orchestrator.locks import file_lock
from orchestrator.paths import farm_cache_dir
from orchestrator.provision.errors import ProvisionError
from orchestrator.runtimes import RUNTIMES

WHEEL_CACHE_ENV = "FARM_WHEEL_CACHE"
SETS_DIR_NAME = "sets"
DOWNLOAD_TIMEOUT_S = 900.0


@dataclasses.dataclass(frozen=True)
class BoardPython:
    """What the probe found out about the board's Python (see orchestrator.provision.probe)."""

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
    # the base Python's own site-packages (kept visible in the venv) and what they hold
    site_dirs: tuple[str, ...] = ()
    base_installed: dict[str, str] = dataclasses.field(default_factory=dict)

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


def wheel_cache_root() -> Path:
    """$FARM_WHEEL_CACHE, else $XDG_CACHE_HOME/farm/wheels, else ~/.cache/farm/wheels."""
    value = os.environ.get(WHEEL_CACHE_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return farm_cache_dir() / "wheels"


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


@dataclasses.dataclass(frozen=True)
class UserWheel:
    """A wheel the user gives (`farm inventory provision --wheel PATH`, e.g. a JetPack
    onnxruntime-gpu build that no index has): pushed and installed like the downloaded ones, its
    dependencies resolved by pip on the controller."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return normalize_name(self.filename.split("-")[0])

    @property
    def platform_tags(self) -> list[str]:
        """The wheel's own platform tags (`linux_aarch64` for a local build), besides `any`."""
        return [tag for tag in self.filename[:-len(".whl")].split("-")[-1].split(".") if tag != "any"]

    def provides(self, distribution: str) -> bool:
        """It is that distribution or a build of it (`onnxruntime-gpu` for `onnxruntime`)."""
        wanted = normalize_name(distribution)
        return self.name == wanted or self.name.startswith(wanted + "-")

    @property
    def requirement_key(self) -> str:
        """How the wheel set's key names it: by content, not by the path it was given at."""
        return f"{self.filename}#sha256={self.sha256}"


_WHEEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*-[0-9][^-]*(-[0-9][^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def check_user_wheels(paths: Sequence[Path | str]) -> list[UserWheel]:
    """The --wheel files, each an existing file named as a wheel (`name-version-py-abi-platform.whl`);
    BadInputError naming the first that is not."""
    from orchestrator.errors import BadInputError

    wheels = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_file():
            raise BadInputError(f"--wheel {given}: no such file")
        if not _WHEEL_NAME_RE.match(path.name):
            raise BadInputError(f"--wheel {given}: not a wheel file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)")
        wheels.append(UserWheel(path.resolve(), file_sha256(path)))
    names = [w.name for w in wheels]
    if len(set(names)) != len(names):
        raise BadInputError(f"--wheel: two wheels of one package ({', '.join(w.filename for w in wheels)})")
    return wheels


def controller_versions(runtime: str) -> dict[str, str | None]:
    """numpy and the runtime's distribution at the versions this controller runs (None: not
    installed here), keyed by distribution name."""
    versions: dict[str, str | None] = {}
    for name in ("numpy", RUNTIMES[runtime].distribution):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def wheel_set_key(requirements: Sequence[str], platforms: Sequence[str], python_version: str) -> str:
    """The name of a set's record in `sets/`: a hash of what pip was asked for.

    Order counts: pip prefers platform tags in the order given, and the requirements are always
    built in one order. Changing this text renames every cached set (the next run downloads again).
    """
    text = json.dumps({"requirements": list(requirements), "platforms": list(platforms),
                       "python_version": python_version, "implementation": "cp"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_wheels(
    probe: BoardPython,
    runtime: str,
    cache_root: Path,
    *,
    refresh: bool = False,
    on_step: Callable[[str], None] = lambda message: None,
    user_wheels: Sequence[UserWheel] = (),
) -> WheelSet:
    """The wheel set for this board kind: from the cache's record, else downloaded by pip.

    `user_wheels` (--wheel) join the set with the dependencies pip finds for them; one that is a
    build of the runtime's distribution (onnxruntime-gpu for onnxruntime) replaces the index's."""
    platforms = wheel_platforms(probe.arch, probe.glibc, probe.musl)
    platforms += [tag for w in user_wheels for tag in w.platform_tags if tag not in platforms]
    python_version = f"{probe.version[0]}.{probe.version[1]}"
    libc = "" if probe.glibc is not None else "-musl"
    cache_dir = cache_root / f"{probe.arch}{libc}-{probe.python_tag}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    pinned = controller_versions(runtime)
    if any(w.provides(RUNTIMES[runtime].distribution) for w in user_wheels):
        pinned.pop(RUNTIMES[runtime].distribution, None)  # the user's build of it instead
    unpinned = ("pip", *(name for name in pinned))
    attempts = [
        tuple(["pip"] + [f"{n}=={v}" if v else n for n, v in pinned.items()]),
        unpinned,
    ]
    if attempts[0] == attempts[1]:
        attempts.pop()
    given = {str(w.path): w.requirement_key for w in user_wheels}
    attempts = [(*requirements, *given) for requirements in attempts]
    with file_lock(cache_dir / ".lock"):  # boards of one kind share the download
        last_error: ProvisionError | None = None
        for index, pip_requirements in enumerate(attempts):
            requirements = tuple(given.get(r, r) for r in pip_requirements)  # user wheels by content
            record_path = cache_dir / SETS_DIR_NAME / f"{wheel_set_key(requirements, platforms, python_version)}.json"
            notes: tuple[str, ...] = ()
            if index > 0 and last_error is not None:
                held = ", ".join(f"{n} {v}" for n, v in pinned.items() if v)
                notes = ((f"no wheels of this controller's versions ({held}) for Python {python_version} on "
                          f"{probe.arch}; installed the newest that fit"),)
            if not refresh:
                remembered = read_set_record(record_path)
                if remembered.get("no_wheel"):
                    # pip found no such wheels before: don't ask the index again on every run
                    last_error = ProvisionError(str(remembered["no_wheel"]), kind="no-wheel")
                    continue
                cached = _cached_set(cache_dir, remembered, requirements, platforms, python_version, notes)
                if cached is not None:
                    return cached
            on_step(f"downloading wheels for {probe.arch} Python {python_version}: {' '.join(requirements)}")
            asked = {"requirements": list(requirements), "platforms": list(platforms), "python_version": python_version}
            try:
                wheels = _download(cache_dir, pip_requirements, platforms, python_version)
            except ProvisionError as exc:
                last_error = exc
                if exc.kind != "no-wheel":
                    raise
                write_set_record(record_path, {**asked, "no_wheel": str(exc)})
                continue
            write_set_record(record_path, {**asked, "wheels": [dataclasses.asdict(w) for w in wheels]})
            return WheelSet(cache_dir, requirements, tuple(platforms), python_version, tuple(wheels), True, notes)
        assert last_error is not None
        raise ProvisionError(
            f"no binary wheels of numpy and {runtime} for CPython {python_version} on {probe.arch} "
            f"({platforms[0]} and older): {last_error}",
            kind="unsupported",
        )


def read_set_record(path: Path) -> dict[str, Any]:
    """A set's record (`{}` when missing or unreadable: then the set is downloaded again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_set_record(path: Path, record: dict[str, Any]) -> None:
    """Write a set's record atomically (a reader never sees half of it), stamped `created_at`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({**record, "created_at": created_at}, indent=2, sort_keys=True) + "\n")


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
            if path.stat().st_size != wheel.size_bytes or file_sha256(path) != wheel.sha256:
                return None
        except OSError:
            return None
    return WheelSet(cache_dir, requirements, tuple(platforms), python_version, wheels, False, notes)


# pip says "No matching distribution" both when no wheel fits and when it could not reach the
# index; these lines tell the second case, which must not be remembered as "no such wheel".
_NETWORK_TROUBLE = ("Retrying (Retry(", "NewConnectionError", "ProxyError", "Max retries exceeded",
                    "Temporary failure in name resolution", "Failed to establish a new connection",
                    "ConnectionError", "ReadTimeoutError", "SSLError")


def _download(
    cache_dir: Path, requirements: Sequence[str], platforms: Sequence[str], python_version: str
) -> list[Wheel]:
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
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
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
            digest = file_sha256(path)
            target = cache_dir / path.name
            if not (target.is_file() and file_sha256(target) == digest):
                os.replace(path, target)
            wheels.append(Wheel(path.name, digest, target.stat().st_size))
        return wheels
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
