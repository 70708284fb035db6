"""What `pip install .` (the README's first command) installs: every file the package reads at
run time, not only its Python — a data file left out of the wheel fails only on a user's machine."""
from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGES = ("orchestrator", "agents")


def _package_files() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(REPO_ROOT).as_posix())
    return found


def test_the_wheel_holds_every_file_of_the_packages(tmp_path):
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # build_py is the step that puts a wheel's files together (pyproject's packages and package
    # data); run offline with the installed setuptools, as building a whole wheel would download
    built = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                            "--build-lib", str(tmp_path / "lib")], cwd=source, capture_output=True, text=True,
                           timeout=240)
    assert built.returncode == 0, built.stderr[-3000:]
    in_wheel = {path.relative_to(tmp_path / "lib").as_posix() for path in (tmp_path / "lib").rglob("*")
                if path.is_file()}
    expected = _package_files()
    assert "orchestrator/report/vendor/plotly-cartesian.min.js.gz" in expected
    assert expected - in_wheel == set()
