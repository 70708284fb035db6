"""Make a board ready for farm: a virtualenv in `<workdir>/venv` with numpy and a runtime.

`farm inventory provision` calls `provision_boards`; tests call it directly. The board never
reaches a package index: the CONTROLLER downloads the wheels for the board's architecture,
C library and Python version, pushes them over SSH, and the board installs them offline.

Steps for one board, each a command over the board's transport except step 2:
1. probe the board's Python, 2. resolve the wheels (controller), 3. push them, 4. make the
venv, 5. pip install from the pushed wheels, 6. check the imports and write the record. A
second run that finds the same wheels installed changes nothing.

The controller's room and the board's are separate modules, because they change for different
reasons (pip's platform rules and the cache on one side, the board's commands and its record
on the other):

- wheels.py (controller, step 2): the board's Python as pip platform tags, the versions to
  pin, `pip download` into a cache of wheel sets keyed by what was asked, the set records and
  the lock that makes boards of one kind share one download.
- probe.py (board, step 1): one command that says what the board's Python is, refusing one
  farm cannot use before anything is downloaded or pushed.
- board.py (board, steps 3 to 5, and the order of all steps): push, venv, install, the
  already-provisioned check; `provision_board` for one board and `provision_boards` over many
  (orchestrator.fanout), a board's failure being its outcome.
- record.py (board, step 6): the record in the venv and the script that checks and writes it.
- errors.py: ProvisionError, whose `kind` says why.

Runtime names come from orchestrator.runtimes; no typer, no rich here: the CLI
(orchestrator/cli/inventory_cmd.py) renders the results.
"""
from __future__ import annotations

from orchestrator.provision.board import (
    WHEELS_DIR_NAME,
    ProvisionOutcome,
    ProvisionResult,
    StepCallback,
    check_runtime,
    provision_board,
    provision_boards,
    provision_command,
)
from orchestrator.provision.errors import ProvisionError
from orchestrator.provision.probe import MIN_PYTHON, probe_board, venv_install_hint
from orchestrator.provision.record import RECORD_NAME, RECORD_VERSION
from orchestrator.provision.wheels import (
    WHEEL_CACHE_ENV,
    BoardPython,
    Wheel,
    WheelSet,
    controller_versions,
    normalize_name,
    resolve_wheels,
    wheel_arch,
    wheel_cache_root,
    wheel_platforms,
    wheel_set_key,
)

__all__ = [
    "MIN_PYTHON",
    "RECORD_NAME",
    "RECORD_VERSION",
    "WHEELS_DIR_NAME",
    "WHEEL_CACHE_ENV",
    "BoardPython",
    "ProvisionError",
    "ProvisionOutcome",
    "ProvisionResult",
    "StepCallback",
    "Wheel",
    "WheelSet",
    "check_runtime",
    "controller_versions",
    "normalize_name",
    "probe_board",
    "provision_board",
    "provision_boards",
    "provision_command",
    "resolve_wheels",
    "venv_install_hint",
    "wheel_arch",
    "wheel_cache_root",
    "wheel_platforms",
    "wheel_set_key",
]
