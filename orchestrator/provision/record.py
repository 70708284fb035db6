"""Step 6 on the board: the provision record, `<workdir>/venv/farm-provision.json`, and the
finish script that checks the venv and writes it.

The record is what the next run's probe reads back to decide "already provisioned, nothing
changed" (orchestrator.provision.board): the base Python the venv was made from, and one entry
per runtime with its wheel set's digest, the wheels and the pip command. Beside it the marker
`<workdir>/venv/farm-python` names the inventory's `python` the venv was made from
(`AgentClient` runs the agent with the venv's python only for that setting).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

from agents.farm_common import PYTHON_MARKER_NAME
from orchestrator.provision.wheels import BoardPython, WheelSet, normalize_name
from orchestrator.runtimes import RUNTIMES

RECORD_NAME = "farm-provision.json"
#: The venv's .pth file listing the base Python's site-packages (after the venv's own).
BASE_SITE_PTH = "farm-base-python.pth"
RECORD_VERSION = 1

# Runs on the venv's python after pip: checks imports and versions, tidies the pushed wheels,
# writes the record and the marker atomically. argv[1]: a JSON job description.
FINISH_SCRIPT = r"""
import importlib, json, os, site, sys, sysconfig
job = json.loads(sys.argv[1])
# The base Python's site-packages, after the venv's own: what the board had stays importable.
purelib = sysconfig.get_paths()["purelib"]
base_dirs = [d for d in job["base_site_dirs"] if os.path.isdir(d) and os.path.realpath(d) != os.path.realpath(purelib)]
pth = os.path.join(purelib, job["pth_name"])
tmp = pth + ".tmp"
with open(tmp, "w") as handle:
    handle.write("".join(d + "\n" for d in base_dirs))
os.rename(tmp, pth)
for folder in base_dirs:
    site.addsitedir(folder)
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


def base_runtimes(probe: BoardPython, installed: dict[str, str]) -> dict[str, str]:
    """The runtimes (or builds of them) the board's own Python has and the venv does not install:
    they stay importable in the venv (the finish step keeps the base site-packages visible)."""
    found = {}
    for name, version in probe.base_installed.items():
        if name in installed:
            continue
        if any(name == normalize_name(info.distribution) or name.startswith(normalize_name(info.distribution) + "-")
               for info in RUNTIMES.values()):
            found[name] = version
    return found


def earlier_record(probe: BoardPython) -> dict[str, Any]:
    """The record the probe found, if it is of this format (`{}` otherwise: provision anew)."""
    return probe.record if probe.record and probe.record.get("version") == RECORD_VERSION else {}


def runtime_entry(wheelset: WheelSet, pip_argv: list[str], user_wheels: tuple[str, ...] = ()) -> dict[str, Any]:
    """One runtime's entry in the record: which wheel set was installed (with the --wheel files
    in it), and how."""
    return {
        "user_wheels": list(user_wheels),
        "wheelset_sha256": wheelset.digest,
        "requirements": list(wheelset.requirements),
        "platforms": list(wheelset.platforms),
        "wheels": [dataclasses.asdict(w) for w in wheelset.wheels],
        "packages": wheelset.packages,
        "pip_argv": pip_argv,
        "provisioned_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "notes": list(wheelset.notes),
    }


def finish_job(
    python: str,
    probe: BoardPython,
    wheelset: WheelSet,
    runtime: str,
    runtimes: dict[str, Any],
    venv_dir: str,
    wheels_dir: str,
    *,
    tidy: bool,
) -> dict[str, Any]:
    """FINISH_SCRIPT's argument: what to check, which pushed wheels to keep (those of every
    runtime in the record: switching back re-sends nothing; `tidy` False when the wheels are not
    in the workdir's own folder, so nothing there is removed) and the record to write."""
    keep = sorted({w["filename"] for value in runtimes.values() for w in value.get("wheels", [])})
    kept = base_runtimes(probe, wheelset.packages)
    modules = ["numpy", RUNTIMES[runtime].module]
    modules += [info.module for info in RUNTIMES.values() if info.module not in modules and any(
        name == info.distribution or name.startswith(info.distribution + "-") for name in kept)]
    return {
        "packages": wheelset.packages,
        "modules": modules,  # the base Python's runtimes too: they must still import in the venv
        "base_site_dirs": list(probe.site_dirs),
        "pth_name": BASE_SITE_PTH,
        "keep_wheels": keep,
        "tidy_dir": wheels_dir if tidy else None,
        "venv": venv_dir,
        "record_name": RECORD_NAME,
        "marker_name": PYTHON_MARKER_NAME,
        "marker": python,
        "record": {
            "version": RECORD_VERSION,
            "python": python,
            "python_executable": probe.executable,
            "python_version": probe.version_text,
            "arch": probe.arch,
            "wheels_dir": wheels_dir,
            "last_runtime": runtime,
            "runtimes": runtimes,
            "base_site_dirs": list(probe.site_dirs),
            "base_runtimes": kept,
            "farm_version": _farm_version(),
        },
    }


def _farm_version() -> str:
    import orchestrator

    return orchestrator.__version__
