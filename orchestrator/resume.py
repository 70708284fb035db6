"""`farm bench --resume RUN`: continue that run's own plan, never another one.

A run stores its plan with its settings (`plan_record`): the model files and names, variants,
datasets, calibration, inventory and board selection, and every setting. `--resume RUN` alone
rebuilds the request from it (`resumed_request`) and measures only the cells with no ok result,
under the run's own settings hash, so no cell is ever stored twice. An option given with
`--resume` must say what the plan says; one that differs is refused, naming the difference
(it would otherwise measure another plan into this run). Settings that do not change what is
measured (timeouts, lease waits: `identity=False` in orchestrator.settings) may differ.

The plan also keeps what a suite added (each model's `shapes:`, the suite file) and the gate the
run was asked for (baseline, thresholds: the command line's and the suite's, and the baseline run
found before measuring), so a resumed run is gated as its first run would have been; and each
model file's sha256, so a file changed since is refused rather than measured into the old run.
Plans stored before these keys existed resume as before (the command line's gate, no hash check).
"""
from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestrator.errors import BadInputError
from orchestrator.hashing import file_sha256
from orchestrator.run_liveness import controller_is_dead
from orchestrator.settings import BenchSettings, field_meta, flag_of
from orchestrator.sweep import SWEPT_FIELDS, Sweep

PLAN_VERSION = 1
#: Request fields that make up a run's plan, and the option that sets each.
PLAN_OPTIONS = {
    "model_paths": "--model", "variants": "--variants", "datasets": "--dataset", "detection": "--detection",
    "calibration": "--calibration", "inventory": "--inventory", "limit": "--limit",
}
#: The request's gate options a plan keeps (orchestrator.gate_options.GateOptions), and their flags.
GATE_OPTIONS = {
    "baseline": "--baseline", "fail_on_regression": "--fail-on-regression",
    "fail_on_memory_regression": "--fail-on-memory-regression", "fail_on_inconclusive": "--fail-on-inconclusive",
    "baseline_optional": "--baseline-optional",
}


@dataclasses.dataclass(frozen=True)
class ResumedPlan:
    """What a resumed run takes from its plan beside the request: the model names, each model's
    shapes (a suite's `shapes:`), the suite's thresholds, and the baseline run its first run found."""

    model_names: list[str]
    shapes: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    suite_latency_pct: float | None = None
    suite_memory_pct: float | None = None
    baseline_run: str | None = None


def plan_record(request: Any, model_names: Sequence[str], *, shapes: Mapping[str, Sequence[str]] | None = None,
                suite: Path | str | None = None, gate: Any = None, baseline_run: str | None = None) -> dict[str, Any]:
    """What a run stores of its request so `--resume RUN` can continue it (paths made absolute).

    `shapes`: each model's own shapes (a suite's), by model name; `suite`: the suite file;
    `gate`: the run's GateOptions; `baseline_run`: the baseline run found before measuring."""
    shapes = shapes or {}
    record = {
        "version": PLAN_VERSION,
        "models": [{"path": str(Path(p).expanduser().resolve()), "name": name, "sha256": file_sha256(p),
                    "shapes": list(shapes.get(name, ()))}
                   for p, name in zip(request.model_paths, model_names)],
        "variants": list(request.variants),
        "datasets": list(request.datasets),
        "detection": list(request.detection),
        "calibration": None if request.calibration is None else str(Path(request.calibration).expanduser().resolve()),
        "inventory": None if request.inventory is None else str(Path(request.inventory).expanduser().resolve()),
        "limit": request.limit,
        "sweep": request.sweep.record(),  # the lists swept (orchestrator.sweep)
        "suite": None if suite is None else str(Path(suite).expanduser().resolve()),
    }
    if gate is not None:
        record["gate"] = {**{name: getattr(gate, name) for name in GATE_OPTIONS},
                          "suite_latency_pct": gate.suite_latency_pct, "suite_memory_pct": gate.suite_memory_pct,
                          "baseline_run": baseline_run}
    return record


def resumed_request(request: Any, run: Mapping[str, Any]) -> tuple[Any, ResumedPlan]:
    """The request that continues `run` (a stored run with its settings), and what else its plan says.

    BadInputError when the run has no stored plan (stored by farm < 0.3: give the same options
    again) and the request names no models, when an option given explicitly differs, or when a
    model file's contents changed since the run stored its plan."""
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
    if request.suite is not None and "suite" in plan:  # the plan holds its suite: only that same file may be named
        differences.append(_difference("suite", request.suite, plan.get("suite"), "--suite"))
    gate = plan.get("gate")
    if gate is not None:
        differences += _gate_differences(request, gate)
    differences = [d for d in differences if d]
    if differences:
        raise BadInputError(f"--resume {run_id} measures that run's own plan; " + "; ".join(differences)
                            + " (leave the option out, or start a new run)")
    models = plan["models"]
    _check_unchanged(run_id, models)
    resumed_settings = settings.replace(**{name: getattr(request.settings, name) for name in request.explicit
                                           if name in BenchSettings.model_fields})
    gate_fields = {} if gate is None else {name: gate.get(name) for name in GATE_OPTIONS}
    for flag in ("fail_on_inconclusive", "baseline_optional"):
        if flag in gate_fields:
            gate_fields[flag] = bool(gate_fields[flag])
    resumed = dataclasses.replace(
        request, model_paths=[Path(m["path"]) for m in models], variants=list(plan["variants"]),
        datasets=list(plan["datasets"]), detection=list(plan["detection"]),
        calibration=None if plan["calibration"] is None else Path(plan["calibration"]),
        inventory=plan["inventory"], limit=plan["limit"], settings=resumed_settings, suite=None, sweep=planned_sweep,
        **gate_fields,
    )
    gate = gate or {}
    return resumed, ResumedPlan(
        model_names=[m["name"] for m in models],
        shapes={m["name"]: tuple(m["shapes"]) for m in models if m.get("shapes")},
        suite_latency_pct=gate.get("suite_latency_pct"), suite_memory_pct=gate.get("suite_memory_pct"),
        baseline_run=gate.get("baseline_run"),
    )


def _check_unchanged(run_id: str, models: Sequence[Mapping[str, Any]]) -> None:
    """BadInputError when a model file's bytes are not those the run's plan recorded (plans
    without hashes, and missing files, are left to the usual checks)."""
    for model in models:
        planned, path = model.get("sha256"), Path(model["path"])
        if not planned or not path.is_file():
            continue
        now = file_sha256(path)
        if now != planned:
            raise BadInputError(f"--resume {run_id}: model {model['name']!r} ({path}) changed since the run "
                                f"measured it (sha256 {planned} then, {now} now): its cells would mix two "
                                "models; start a new run")


def _gate_differences(request: Any, gate: Mapping[str, Any]) -> list[str]:
    """A gate option given with --resume must say what the run's gate said (a suite's threshold
    counts as its --fail-on-regression / --fail-on-memory-regression)."""
    planned = {name: gate.get(name) for name in GATE_OPTIONS}
    if planned["fail_on_regression"] is None:
        planned["fail_on_regression"] = gate.get("suite_latency_pct")
    if planned["fail_on_memory_regression"] is None:
        planned["fail_on_memory_regression"] = gate.get("suite_memory_pct")
    found = []
    for name, option in GATE_OPTIONS.items():
        if name not in request.explicit:
            continue
        given, wanted = getattr(request, name), planned[name]
        if isinstance(given, bool):
            if given != bool(wanted):
                found.append(f"{option} was {'not ' if given else ''}given to that run")
        elif name == "baseline":
            if given not in (wanted, gate.get("baseline_run")):
                found.append(f"{option} {_shown(given)} differs from its {_shown(wanted)}")
        elif given != wanted:
            found.append(f"{option} {_shown(given)} differs from its {_shown(wanted)}")
    return found


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
    if name in ("calibration", "inventory", "suite"):
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
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _legacy(request: Any, run: Mapping[str, Any], stored: Mapping[str, Any]) -> tuple[Any, ResumedPlan]:
    """A run stored before plans were: the options must be given again, and must match its
    settings (the settings hash is how its cells are found)."""
    if not request.model_paths:
        raise BadInputError(f"run {run['run_id']} was stored by an older farm without its plan: give the same "
                            "options as its first run with --resume")
    settings = _stored_settings(run["run_id"], stored)
    if settings.settings_hash() != request.settings.settings_hash():
        raise BadInputError(f"--resume {run['run_id']}: the measurement settings differ from the run's "
                            "(its cells would be measured again under other settings); give the same options")
    return request, ResumedPlan(model_names=[])
