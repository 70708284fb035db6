"""`farm bench --resume RUN`: continue that run's own plan, never another one.

A run stores its plan with its settings (`plan_record`): the model files and names, variants,
datasets, calibration, inventory and board selection, and every setting. `--resume RUN` alone
rebuilds the request from it (`resumed_request`) and measures only the cells with no ok result,
under the run's own settings hash, so no cell is ever stored twice. An option given with
`--resume` must say what the plan says; one that differs is refused, naming the difference
(it would otherwise measure another plan into this run). Settings that do not change what is
measured (timeouts, lease waits: `identity=False` in orchestrator.settings) may differ.
"""
from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestrator.errors import BadInputError
from orchestrator.run_liveness import controller_is_dead
from orchestrator.settings import BenchSettings, field_meta, flag_of
from orchestrator.sweep import SWEPT_FIELDS, Sweep

PLAN_VERSION = 1
#: Request fields that make up a run's plan, and the option that sets each.
PLAN_OPTIONS = {
    "model_paths": "--model", "variants": "--variants", "datasets": "--dataset", "detection": "--detection",
    "calibration": "--calibration", "inventory": "--inventory", "limit": "--limit",
}


def plan_record(request: Any, model_names: Sequence[str]) -> dict[str, Any]:
    """What a run stores of its request so `--resume RUN` can continue it (paths made absolute)."""
    return {
        "version": PLAN_VERSION,
        "models": [{"path": str(Path(p).expanduser().resolve()), "name": name}
                   for p, name in zip(request.model_paths, model_names)],
        "variants": list(request.variants),
        "datasets": list(request.datasets),
        "detection": list(request.detection),
        "calibration": None if request.calibration is None else str(Path(request.calibration).expanduser().resolve()),
        "inventory": None if request.inventory is None else str(Path(request.inventory).expanduser().resolve()),
        "limit": request.limit,
        "sweep": request.sweep.record(),  # the lists swept (orchestrator.sweep)
    }


def resumed_request(request: Any, run: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """The request that continues `run` (a stored run with its settings), and its model names.

    BadInputError when the run has no stored plan (stored by farm < 0.3: give the same options
    again) and the request names no models, or when an option given explicitly differs."""
    controller = run.get("controller") or {}
    if run.get("status") == "running" and not controller_is_dead(controller):
        where = f"pid {controller.get('pid')} on {controller.get('hostname')}"
        if controller.get("hostname") == platform.node():
            raise BadInputError(f"run {run['run_id']} is still being measured (its controller, {where}, is alive): "
                                "wait for it, or stop it first")
        raise BadInputError(f"run {run['run_id']} is still marked running by its controller, {where}, which "
                            f"farm cannot see from here: wait for it, or if it is gone, `farm runs abandon "
                            f"{run['run_id']}` and resume again")
    stored = dict(run.get("settings") or {})
    plan = stored.pop("plan", None)
    for key in ("boards", "models", "variants"):
        stored.pop(key, None)
    run_id = run["run_id"]
    if plan is None:
        return _legacy(request, run, stored)
    settings = _stored_settings(run["run_id"], stored)
    differences = [_difference(name, getattr(request, name), planned, option)
                   for name, option in PLAN_OPTIONS.items() if name in request.explicit
                   for planned in [_planned_value(plan, name)]]
    differences += _setting_differences(request, settings)
    planned_sweep = Sweep.from_record(plan.get("sweep"))
    differences += _sweep_differences(request, planned_sweep)
    differences = [d for d in differences if d]
    if differences:
        raise BadInputError(f"--resume {run_id} measures that run's own plan; " + "; ".join(differences)
                            + " (leave the option out, or start a new run)")
    resumed_settings = settings.replace(**{name: getattr(request.settings, name) for name in request.explicit
                                           if name in BenchSettings.model_fields})
    models = plan["models"]
    resumed = dataclasses.replace(
        request, model_paths=[Path(m["path"]) for m in models], variants=list(plan["variants"]),
        datasets=list(plan["datasets"]), detection=list(plan["detection"]),
        calibration=None if plan["calibration"] is None else Path(plan["calibration"]),
        inventory=plan["inventory"], limit=plan["limit"], settings=resumed_settings, suite=None, sweep=planned_sweep,
    )
    return resumed, [m["name"] for m in models]


def _stored_settings(run_id: str, stored: Mapping[str, Any]) -> BenchSettings:
    """The settings a run stored, or BadInputError when this farm cannot read them back."""
    from pydantic import ValidationError

    try:
        return BenchSettings.model_validate(stored)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise BadInputError(f"run {run_id}'s stored settings cannot be resumed by this farm "
                            f"({'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}): start a new run") from None


def _planned_value(plan: Mapping[str, Any], name: str) -> Any:
    if name == "model_paths":
        return [m["path"] for m in plan["models"]]
    return plan[name]


def _normalized(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("model_paths",):
        return [str(Path(p).expanduser().resolve()) for p in value]
    if name in ("calibration", "inventory"):
        return str(Path(value).expanduser().resolve())
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _difference(name: str, given: Any, planned: Any, option: str) -> str:
    if _normalized(name, given) == _normalized(name, planned):
        return ""
    return f"{option} {_shown(given)} differs from its {_shown(planned)}"


def _setting_differences(request: Any, settings: BenchSettings) -> list[str]:
    found = []
    for name, info in BenchSettings.model_fields.items():
        if name not in request.explicit or not field_meta(info).get("identity"):
            continue
        given, planned = getattr(request.settings, name), getattr(settings, name)
        if given != planned:
            found.append(f"{flag_of(name)} {_shown(given)} differs from its {_shown(planned)}")
    return found


def _sweep_differences(request: Any, planned: Sweep) -> list[str]:
    """A swept option given with --resume must list the plan's values."""
    found = []
    for name, field in SWEPT_FIELDS.items():
        given, wanted = getattr(request.sweep, name), getattr(planned, name)
        if field in request.explicit and len(given) + len(wanted) > 2 and given != wanted:
            found.append(f"{flag_of(field)} {_shown(given)} differs from its {_shown(wanted)}")
    return found


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)


def _legacy(request: Any, run: Mapping[str, Any], stored: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """A run stored before plans were: the options must be given again, and must match its
    settings (the settings hash is how its cells are found)."""
    if not request.model_paths:
        raise BadInputError(f"run {run['run_id']} was stored by an older farm without its plan: give the same "
                            "options as its first run with --resume")
    settings = _stored_settings(run["run_id"], stored)
    if settings.settings_hash() != request.settings.settings_hash():
        raise BadInputError(f"--resume {run['run_id']}: the measurement settings differ from the run's "
                            "(its cells would be measured again under other settings); give the same options")
    return request, []
