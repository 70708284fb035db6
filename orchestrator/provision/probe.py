"""Step 1 on the board: what its Python is, and whether farm can make a venv from it.

One command: the board's `python` (the inventory's setting, default `python3`) prints its
version, implementation, machine, pointer size, C library (glibc version from `os.confstr`, or
musl), whether it has the `venv` module, the distribution (/etc/os-release), the record
`<workdir>/venv/farm-provision.json` of an earlier provisioning, and the venv's installed
distributions (its *.dist-info folders: no imports), which is all the idempotency check needs.
The probe runs on any Python (2.7 too), so a too-old one gets a clear error: farm's agent needs
Python >= 3.8.
"""
from __future__ import annotations

import json
import re

from orchestrator.boards import Board
from orchestrator.errors import TransportError
from orchestrator.provision.errors import ProvisionError
from orchestrator.provision.wheels import BoardPython, normalize_name
from orchestrator.transport import Transport

MIN_PYTHON = (3, 8)
PROBE_TIMEOUT_S = 120.0  # an emulated board starts Python in ~1 s; a slow SD card more

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
# what this Python itself can import from (its site-packages, and the user's when enabled): the
# venv keeps them visible, so provisioning another runtime never hides one the board had
site_dirs = []
try:
    import site
    site_dirs = list(site.getsitepackages())
    if getattr(site, "ENABLE_USER_SITE", False):
        site_dirs.append(site.getusersitepackages())
except Exception:
    pass
base = {}
for folder in site_dirs:
    try:
        for entry in os.listdir(folder):
            if entry.endswith(".dist-info"):
                name, _, version = entry[:-len(".dist-info")].partition("-")
                base.setdefault(name.lower().replace("_", "-").replace(".", "-"), version)
    except OSError:
        pass
info["site_dirs"] = [d for d in site_dirs if os.path.isdir(d)]
info["base_installed"] = base
sys.stdout.write(json.dumps(info) + "\n")
"""


def probe_board(transport: Transport, python: str, venv_dir: str) -> BoardPython:
    """Run the probe on the board's `python` (one command)."""
    result = transport.run([python, "-c", _PROBE_SCRIPT, venv_dir], PROBE_TIMEOUT_S)
    if result.exit_code == 127:
        raise ProvisionError(
            f"{transport.name}: {python!r} not found on the board: install Python {min_python_text()} or newer "
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
            f"farm needs Python {min_python_text()} or newer on the board",
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
        site_dirs=tuple(str(d) for d in info.get("site_dirs") or ()),
        base_installed={normalize_name(str(k)): str(v) for k, v in (info.get("base_installed") or {}).items()},
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


def check_python(board: Board, probe: BoardPython) -> None:
    """Refuse a Python farm cannot use (too old, not CPython, no venv module) before any download or push."""
    name = board.name
    if probe.version[0] < 3 or probe.version[:2] < MIN_PYTHON:
        raise ProvisionError(
            f"{name}: {board.python} is Python {probe.version_text}; farm's agent needs Python {min_python_text()} or "
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


def min_python_text() -> str:
    """`3.8`: the oldest Python farm's agent runs on, for messages."""
    return ".".join(str(x) for x in MIN_PYTHON)
