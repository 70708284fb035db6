"""Who logs into a board and with what: the board users, the SSH keys, the boards' Python.

Boards are logged into as an unprivileged user, not root: root's shell start-up is slow
here and real boards don't run you as root. Native boards use `farmboard` (home
/home/farmboard); emulated arm64 boards use `farmboard-arm64`, a host account with the same
ids inside the arm64 root. Both accounts are key-only: sshd runs without PAM and refuses a
locked ('!') account, so the password field is '*'.

Keys are ed25519 without a passphrase: the controller's `client_ed25519` (root only) and
one host key per board. The boards' Python is `board-venv/`: a virtualenv of the system
Python with numpy + onnxruntime at the controller's versions, made once and reused
(a marker file records what it holds), readable by the board user.
"""
from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from orchestrator.lab.errors import LabError
from orchestrator.lab.locks import locked

BOARD_USER = "farmboard"
ARM64_BOARD_USER = "farmboard-arm64"
SYSTEM_PYTHON = "/usr/bin/python3"
VENV_DIR_ENV = "FARM_LAB_VENV"
VENV_INSTALL_TIMEOUT_S = 900.0


def ensure_board_user() -> None:
    """Create `farmboard` (shell /bin/sh, home /home/farmboard) with a login-able (not locked) account."""
    try:
        pwd.getpwnam(BOARD_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", "--comment", "farm lab board",
             "--password", "*", BOARD_USER],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by another lab
            raise LabError(f"cannot create the board user {BOARD_USER!r}: {result.stderr.strip()}") from None
    # sshd without PAM refuses a locked account ('!' password): the board logs in by key only.
    with contextlib.suppress(OSError):
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == BOARD_USER and fields[1].startswith("!"):
                subprocess.run(["usermod", "--password", "*", BOARD_USER], check=True, timeout=60,
                               capture_output=True)
    home = Path(pwd.getpwnam(BOARD_USER).pw_dir)
    if not home.is_dir():
        user = pwd.getpwnam(BOARD_USER)
        home.mkdir(parents=True, mode=0o755)
        os.chown(home, user.pw_uid, user.pw_gid)


def ensure_arm64_user(root: Path) -> None:
    """The login user of emulated boards: a host account, and the same ids inside the root."""
    try:
        user = pwd.getpwnam(ARM64_BOARD_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", f"/home/{ARM64_BOARD_USER}", "--shell", "/bin/sh",
             "--comment", "farm lab arm64 board", "--password", "*", "--user-group", ARM64_BOARD_USER],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode not in (0, 9):
            raise LabError(f"cannot create the board user {ARM64_BOARD_USER!r}: {result.stderr.strip()}")
        user = pwd.getpwnam(ARM64_BOARD_USER)
    group_name = ARM64_BOARD_USER
    with contextlib.suppress(KeyError):
        group_name = grp.getgrgid(user.pw_gid).gr_name
    entries = {
        root / "etc" / "passwd": f"{ARM64_BOARD_USER}:x:{user.pw_uid}:{user.pw_gid}:farm lab arm64 board:"
                                 f"{user.pw_dir}:/bin/sh",
        root / "etc" / "group": f"{group_name}:x:{user.pw_gid}:",
    }
    for path, line in entries.items():
        text = path.read_text()
        name = line.split(":", 1)[0] + ":"
        lines = [l for l in text.splitlines() if not l.startswith(name)]
        if line not in text.splitlines():
            path.write_text("\n".join([*lines, line]) + "\n")
    home = root / user.pw_dir.lstrip("/")
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o755)


def ensure_key(path: Path, comment: str) -> Path:
    """An ed25519 key pair at `path` (+ `.pub`), made unless both halves are there."""
    if not (path.is_file() and Path(f"{path}.pub").is_file()):
        for stale in (path, Path(f"{path}.pub")):
            stale.unlink(missing_ok=True)
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            raise LabError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")
    os.chmod(path, 0o600)
    os.chmod(f"{path}.pub", 0o644)
    return path


def _wanted_packages() -> dict[str, str | None]:
    """numpy and onnxruntime at the controller's versions (None: whatever pip picks)."""
    wanted: dict[str, str | None] = {}
    for name in ("numpy", "onnxruntime"):
        try:
            wanted[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            wanted[name] = None
    return wanted


def ensure_board_venv(venv_dir: Path) -> str:
    """A virtualenv of the system Python with numpy + onnxruntime, readable by the board user."""
    python = venv_dir / "bin" / "python"
    marker = venv_dir / "farm-board-venv.json"
    wanted = {"python": SYSTEM_PYTHON, "packages": _wanted_packages()}
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    with locked(venv_dir.parent, f".{venv_dir.name}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text()) == wanted and python.exists():
                return str(python)
        if venv_dir.exists():
            if not (venv_dir / "pyvenv.cfg").is_file():
                raise LabError(f"{venv_dir} exists and is not a virtualenv: move it away or pick another venv dir")
            shutil.rmtree(venv_dir)
        made = subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv_dir)], capture_output=True, text=True,
                              timeout=300)
        if made.returncode != 0:
            raise LabError(
                f"cannot make the boards' virtualenv {venv_dir}: {made.stderr.strip()[-500:]}\n"
                "Install venv support: `apt-get install -y python3-venv`."
            )
        requirements = [f"{n}=={v}" if v else n for n, v in wanted["packages"].items()]
        try:
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                 *requirements],
                capture_output=True, text=True, timeout=VENV_INSTALL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"pip install {' '.join(requirements)} took over {VENV_INSTALL_TIMEOUT_S:g} s") from None
        if pip.returncode != 0:
            raise LabError(
                f"cannot install {' '.join(requirements)} into {venv_dir}: {pip.stderr.strip()[-800:]}\n"
                "Check network access to the package index (or pip's find-links/cache), then run `farm lab up` again."
            )
        for root, dirs, files in os.walk(venv_dir):
            for name in dirs + files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    mode = os.stat(path).st_mode
                    os.chmod(path, mode | 0o444 | (0o111 if mode & 0o111 or name in dirs else 0))
        os.chmod(venv_dir, 0o755)
        check = subprocess.run(
            [str(python), "-c", "import numpy, onnxruntime"],
            user=BOARD_USER, group=pwd.getpwnam(BOARD_USER).pw_gid, extra_groups=[],
            capture_output=True, text=True, timeout=120, cwd="/",
        )
        if check.returncode != 0:
            raise LabError(f"the board user cannot import numpy/onnxruntime from {venv_dir}: {check.stderr[-500:]}")
        marker.write_text(json.dumps(wanted))
    return str(python)
