"""Runs whose controller died: found and marked `abandoned`, never left `running` for ever.

A `kill -9` of `farm bench` (or a power cut of the laptop) runs no handler, so its run stays
`running` in the store. Two things notice:

* the next controller or command that reads runs on the same machine (`farm bench`, `farm runs
  ls/show`, `farm report`): the run's controller record names its host, boot, pid and the pid's
  start time, so a run whose process is gone (or whose pid now belongs to another process, or whose
  machine rebooted) is marked `abandoned`;
* the next controller that takes over a board lease the dead controller held (a lease names its
  run): from any machine, through the shared store (orchestrator.runner).

A run from another machine is left alone by the first check: its process cannot be seen from here.
Where its controller is known to be gone (a CI container killed, a laptop that will not come
back), a person says so: `farm runs abandon RUN` (`abandon_run`), and `--resume` can continue it.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Mapping

from agents.farm_common import boot_id, process_start_ticks
from orchestrator.store import Store


def this_controller() -> dict[str, Any]:
    """What a run's controller record says about the process, so that others can tell it died."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start_ticks(pid), "boot_id": boot_id()}


def controller_is_dead(controller: Mapping[str, Any]) -> bool:
    """True only when the controller ran on this machine and is certainly gone."""
    pid = controller.get("pid")
    if controller.get("hostname") != platform.node() or not isinstance(pid, int) or pid <= 0:
        return False
    booted = boot_id()
    if booted is not None and controller.get("boot_id") not in (None, booted):
        return True  # this machine rebooted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    start = controller.get("pid_start")
    return start is not None and process_start_ticks(pid) not in (None, start)


def reap_abandoned_runs(store: Store) -> list[str]:
    """Mark `abandoned` every `running` run whose controller died on this machine; their ids.
    A database opened read-only (a copy on a read-only mount) is left as it is."""
    if store.read_only:
        return []
    reaped = []
    for run_id, controller in store.running_runs():
        if controller_is_dead(controller) and store.mark_abandoned(run_id):
            reaped.append(run_id)
    return reaped


def abandon_run(store: Store, run_spec: str) -> str:
    """Mark a `running` run `abandoned` on a person's word that its controller is gone; returns
    its id. BadInputError when it is not running, when it is a fleet run (`farm queue cancel`
    stops those), or when its controller ran on this machine and is alive."""
    from orchestrator.errors import BadInputError

    run = store.get_run(store.resolve_run_id(run_spec))
    run_id, controller = run["run_id"], run.get("controller") or {}
    if run.get("status") != "running":
        raise BadInputError(f"run {run_id} is {run.get('status')}, not running: nothing to abandon")
    if controller.get("submitted"):
        raise BadInputError(f"run {run_id} is a fleet run: stop it with `farm queue cancel {run_id}`")
    if controller.get("hostname") == platform.node() and not controller_is_dead(controller):
        raise BadInputError(f"run {run_id} is being measured by pid {controller.get('pid')} on this machine, "
                            "which is alive: stop that controller (Ctrl-C) instead")
    store.mark_abandoned(run_id)
    return run_id


__all__ = ["abandon_run", "controller_is_dead", "reap_abandoned_runs", "this_controller"]
