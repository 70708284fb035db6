"""Suite files: what a nightly (or any repeatable) `farm bench --suite FILE` measures and gates.

    models:
      - path: models/yolov8n.onnx          # relative paths: against the suite file's folder
        name: yolov8n                      # default: the file stem; runs are matched by this name
        dataset: data/coco-val-64.npz      # optional: labelled inputs for accuracy/calibration
        shapes: {images: 1x3x640x640}      # optional: dynamic input dims (or ["images=1x3x640x640"])
      - path: models/resnet18.onnx
    variants: [fp32, fp16, int8-dynamic, int8-static, "prune-l1:0.5"]
    boards:
      inventory: ../inventory/lab.yaml
      limit: "rpi4-*,jetson"
      forks: 4
    settings:                              # any orchestrator.settings.SuiteSettings field; unset = farm's default
      runs: 200
      min_seconds: 5
      warmup: 20
      repeats: 5                           # fresh worker processes per cell (gating on noisy boards)
      threads: 4
      sample_interval_s: 0.1
      cooldown_s: 10
      runtime: openvino                    # and providers: [GPU, CPU], provider_options:
                                           # {CPU: {INFERENCE_PRECISION_HINT: f32}}, strict: true
    sweep:                                 # optional: lists measured as one cell per combination
      threads: [1, 2, 4]                   # (orchestrator.sweep; a field swept here is not in settings:)
      batch: [1, 8]                        # and runtime: [onnxruntime, openvino], providers: [[GPU, CPU], [CPU]]
    baseline: latest                       # latest | tag:NAME | a run id
    thresholds:
      latency_pct: 5                       # fail the gate on a significant >= 5 % slower median
      memory_pct: 10                       # ... or >= 10 % more peak RSS

Every problem is reported as `FILE:LINE: FIELD ...`, all at once, unknown keys with a
"did you mean". Variant specs are checked loosely here (a name, optionally `:AMOUNT`); the
variants module knows the valid names. Model and dataset files must exist.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from orchestrator.errors import BadInputError
from orchestrator.settings import DIMS_RE, MAX_FORKS, SHAPE_RE, BenchSettings, SuiteSettings, Thresholds
from orchestrator.sweep import SWEPT_FIELDS, Sweep, SweepValueError
from orchestrator.yaml_lines import LineMap, describe_value, did_you_mean, error_line, read_yaml_with_lines

__all__ = ["Suite", "SuiteBoards", "SuiteModel", "SuiteSettings", "SuiteSweep", "Thresholds", "load_suite"]

_VARIANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?::(?P<amount>[^\s:]+))?$")
_MAX_PROBLEMS = 20


def _resolve(value: Any, info: ValidationInfo) -> Any:
    """A relative path is relative to the suite file's folder; `~` is expanded."""
    if not isinstance(value, str) or not value.strip():
        return value  # the type check reports it
    base = (info.context or {}).get("base", Path("."))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path(base) / path)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SuiteModel(_Strict):
    path: Path
    name: str | None = None
    dataset: Path | None = None
    shapes: list[str] = []

    @field_validator("path", "dataset", mode="before")
    @classmethod
    def _relative_to_suite(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info)

    @field_validator("path", "dataset")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value) or "/" in value:
            raise ValueError(f"must be a name without spaces or '/', got {value!r}")
        return value

    @field_validator("shapes", mode="before")
    @classmethod
    def _shapes(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {images: 1x3x640x640} or {images: [1, 3, 640, 640]}
            shapes = []
            for name, dims in value.items():
                if isinstance(dims, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
                    dims = "x".join(str(d) for d in dims)
                if not isinstance(dims, str) or not DIMS_RE.match(dims):
                    raise ValueError(f"has {name!r}: {describe_value(dims)}; write dims as 1x3x224x224")
                shapes.append(f"{name}={dims}")
            return shapes
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str) or not SHAPE_RE.match(item):
                    raise ValueError(f"has {describe_value(item)}; write NAME=1x3x224x224")
            return list(value)
        return value

    @property
    def model_name(self) -> str:
        """The name runs are matched by: `name`, else the file stem."""
        return self.name or self.path.stem


class SuiteBoards(_Strict):
    inventory: Path | None = None
    limit: str | None = None
    forks: int | None = Field(default=None, ge=1, le=MAX_FORKS)

    @field_validator("inventory", mode="before")
    @classmethod
    def _relative_to_suite(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info)

    @field_validator("inventory")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value


class SuiteSweep(_Strict):
    """A suite's `sweep:`: the lists `--threads 1,2`, `--batch 1,8`, `--runtime a,b` and repeated
    `--providers` give on the command line, by their BenchSettings field names (orchestrator.sweep)."""

    threads: list[int] = []
    batch: list[int] = []
    runtime: list[str] = []
    providers: list[list[str]] = []

    def as_sweep(self) -> Sweep:
        return Sweep(tuple(self.threads), tuple(self.batch), tuple(self.runtime),
                     tuple(tuple(p) for p in self.providers))

    def given(self) -> list[str]:
        """The settings swept, by name."""
        return [name for name in SuiteSweep.model_fields if getattr(self, name)]


class Suite(_Strict):
    path: Path
    models: list[SuiteModel] = Field(min_length=1)
    variants: list[str] = ["fp32"]
    boards: SuiteBoards = SuiteBoards()
    settings: SuiteSettings = SuiteSettings()
    sweep: SuiteSweep = SuiteSweep()
    baseline: str | None = None
    thresholds: Thresholds = Thresholds()

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        seen: set[str] = set()
        for item in value:
            if not isinstance(item, str) or not _VARIANT_RE.match(item.strip()):
                raise ValueError(f"has {describe_value(item)}: a variant is a name with an optional ':AMOUNT', "
                                 "e.g. fp16 or prune-l1:0.5")
            amount = _VARIANT_RE.match(item.strip()).group("amount")
            if amount is not None:
                try:
                    float(amount)
                except ValueError:
                    raise ValueError(f"has {item!r}: the amount after ':' must be a number, e.g. prune-l1:0.5") from None
            if item.strip().lower() in seen:
                raise ValueError(f"lists {item!r} twice")
            seen.add(item.strip().lower())
        if not value:
            raise ValueError("must list at least one variant (e.g. [fp32])")
        return [item.strip() for item in value]

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value) or value == "tag:":
            raise ValueError(f"must be latest, tag:NAME or a run id, got {value!r}")
        return value

    @property
    def model_paths(self) -> list[Path]:
        return [m.path for m in self.models]

    def bench_settings(self, base: BenchSettings | None = None, model: SuiteModel | None = None) -> BenchSettings:
        """`base` (default: farm's defaults) with the suite's settings over it, and `model`'s
        shapes (if given) as its `shapes`."""
        from pydantic import ValidationError

        base = base or BenchSettings()
        changes = self.settings.given()
        if model is not None and model.shapes:
            changes["shapes"] = tuple(model.shapes)
        try:
            return BenchSettings.model_validate({**base.model_dump(by_alias=True), **changes})
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise BadInputError(f"{self.path}: settings {problem['msg'].removeprefix('Value error, ')} "
                                "(with the command line's settings)") from None

    def with_sweep(self, settings: BenchSettings, given: Sweep) -> tuple[BenchSettings, Sweep]:
        """`settings` and the command line's sweep `given` with the suite's `sweep:` over them:
        each list the suite sweeps replaces the command line's, and the settings take its first
        value (as the command line's do; the sweep holds the rest); a setting the suite gives one
        value in `settings:` is not swept by a command-line list either."""
        mine = self.sweep.as_sweep()
        fixed = self.settings.given()  # one value in settings: also over a command-line list
        sweep = Sweep(**{name: getattr(mine, name) or (() if field in fixed else getattr(given, name))
                         for name, field in SWEPT_FIELDS.items()})
        firsts = {field: getattr(mine, name)[0] for name, field in SWEPT_FIELDS.items() if getattr(mine, name)}
        settings = settings.replace(**firsts) if firsts else settings
        try:
            return settings, sweep.checked(settings)
        except SweepValueError as exc:  # load_suite checked the suite's values alone
            raise BadInputError(f"{self.path}: sweep.{exc.field} {exc} (with the command line's settings)") from None


_MODELS_BY_FIELD: dict[str, type[BaseModel]] = {
    "models": SuiteModel, "boards": SuiteBoards, "settings": SuiteSettings, "thresholds": Thresholds,
    "sweep": SuiteSweep,
}


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; BadInputError listing every problem as FILE:LINE: ..."""
    path = Path(path).expanduser()
    data = read_yaml_with_lines(path, "suite")
    if not isinstance(data, LineMap):
        raise BadInputError(f"{path}:1: a suite must be a mapping with 'models:' (and 'variants:', 'boards:', "
                            f"'settings:', 'baseline:', 'thresholds:'), got {describe_value(data)}")
    if "path" in data:
        raise BadInputError(f"{path}:{data.key_lines['path']}: unknown key 'path' (models go under 'models:')")
    try:
        suite = Suite.model_validate({**data, "path": path.resolve()}, context={"base": path.resolve().parent})
    except ValidationError as exc:
        problems = sorted({(error_line(data, _loc(e), data.line), _message(e)) for e in exc.errors()})
        _fail(path, problems)
    problems = []
    seen: dict[str, Path] = {}
    for index, model in enumerate(suite.models):
        if model.model_name in seen:
            line = error_line(data, ("models", index), data.line)
            problems.append((line, f"models[{index}]: two models are named {model.model_name!r} "
                                   f"({seen[model.model_name]} and {model.path}): give one a different 'name'"))
        seen.setdefault(model.model_name, model.path)
    problems += _sweep_problems(suite, data)
    if problems:
        _fail(path, problems)
    return suite


def _sweep_problems(suite: Suite, data: LineMap) -> list[tuple[int, str]]:
    """A swept setting also set in `settings:`, or a swept value BenchSettings refuses."""
    problems = []
    set_too = [name for name in suite.sweep.given() if name in suite.settings.given()]
    for name in set_too:
        problems.append((error_line(data, ("sweep", name), data.line),
                         f"sweep.{name} is set in settings: too: give it in one place (one value: settings, "
                         "several: sweep)"))
    try:
        suite.sweep.as_sweep().checked(BenchSettings())
    except SweepValueError as exc:
        problems.append((error_line(data, ("sweep", exc.field), data.line), f"sweep.{exc.field} {exc}"))
    return problems


def _fail(path: Path, problems: list[tuple[int, str]]) -> NoReturn:
    lines = [f"{path}:{line}: {message}" for line, message in problems[:_MAX_PROBLEMS]]
    if len(problems) > _MAX_PROBLEMS:
        lines.append(f"... and {len(problems) - _MAX_PROBLEMS} more problems")
    raise BadInputError("the suite has problems:\n" + "\n".join(lines)) from None


def _loc(error: Any) -> tuple[Any, ...]:
    return tuple(p for p in error["loc"] if p != "[key]")


def _field(loc: tuple[Any, ...]) -> str:
    text = str(loc[0]) if loc else "suite"
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _message(error: Any) -> str:
    loc = _loc(error)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        model = Suite if not parent else _MODELS_BY_FIELD.get(str(parent[0]), Suite)
        allowed = [name for name in model.model_fields if name != "path" or model is not Suite]
        where = f" in {_field(parent)}" if parent else ""
        hint = did_you_mean(str(loc[-1]), allowed) or f" (known keys: {', '.join(allowed)})"
        return f"unknown key {loc[-1]!r}{where}{hint}"
    field = _field(loc)
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        return f"{field} {str(error['msg']).removeprefix('Value error, ')}"
    if kind == "missing":
        return f"{field} is required"
    if kind == "too_short":
        return f"{field} must list at least one entry"
    if kind == "literal_error":
        return f"{field} must be {ctx.get('expected')}, got {describe_value(value)}"
    if kind in ("greater_than", "greater_than_equal"):
        bound = ctx.get("gt", ctx.get("ge", 0))
        word = "greater than" if kind == "greater_than" else "at least"
        return f"{field} must be {word} {bound}, got {describe_value(value)}"
    if kind in ("less_than", "less_than_equal"):
        bound = ctx.get("lt", ctx.get("le", 0))
        word = "less than" if kind == "less_than" else "at most"
        return f"{field} must be {word} {bound}, got {describe_value(value)}"
    words = {
        "finite_number": "must be a finite number", "int_type": "must be a whole number",
        "float_type": "must be a number", "string_type": "must be text",
        "bool_type": "must be true or false", "model_type": "must be a mapping", "model_attributes_type":
        "must be a mapping", "dict_type": "must be a mapping", "tuple_type": "must be a list",
        "list_type": "must be a list", "path_type": "must be a file path",
    }.get(kind)
    if words is None:
        return f"{field}: {error['msg']} (got {describe_value(value)})"
    hint = " (remove the quotes)" if kind in ("int_type", "float_type") and isinstance(value, str) else ""
    if kind in ("tuple_type", "list_type") and isinstance(value, str):
        hint = f" (write [{value}])"
    return f"{field} {words}, got {describe_value(value)}{hint}"
