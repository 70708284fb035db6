"""Sweeps: several values of a measurement setting in one run, each value its own cell.

`--threads 1,2,4`, `--batch 1,4,8`, several values for one input (`--shape
images=1x3x320x320,1x3x640x640`, or `--shape` given twice for it), `--runtime onnxruntime,openvino`
and `--providers` given more than once: the run measures every combination (the cartesian
product) for every model × variant.

BenchSettings keeps ONE value per field (its single definition). A sweep point is the run's
settings with that point's values (`BenchSettings.replace`), so each point has its own settings
hash: the store keys a result by (run, board, model, variant, settings hash), `--resume` finds
each point's done cells, and a comparison pairs each point with the same point of the baseline
(compare._pairs: same settings hash first). What sets a point apart is its label, `sweep` in the
export (`threads=2, batch=8`), shown by the terminal summary and the report; threads, batch,
runtime and provider are identity fields besides (record.IDENTITY_EXPORT_FIELDS), so history
and comparisons never mix two points.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.plan import Cell, ModelTask
from orchestrator.settings import DIMS_RE, SHAPE_RE, BenchSettings
from orchestrator.shapes import ResolvedShapes, ShapePoint, parse_shape

#: The BenchSettings field each swept list sets.
SWEPT_FIELDS = {"threads": "threads", "batch": "batch", "runtimes": "runtime", "providers": "providers"}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The values of each swept setting, as given (one value: not swept, the run's settings hold
    it; none: the setting's own value). Shapes are swept through BenchSettings.shapes, where one
    input may have several values (orchestrator.shapes.shape_points)."""

    threads: tuple[int, ...] = ()
    batch: tuple[int, ...] = ()
    runtimes: tuple[str, ...] = ()
    providers: tuple[tuple[str, ...], ...] = ()

    def swept(self, name: str) -> bool:
        return len(getattr(self, name)) > 1

    @property
    def any(self) -> bool:
        return any(self.swept(name) for name in SWEPT_FIELDS)

    def record(self) -> dict[str, Any]:
        """As a run's plan stores it (orchestrator.resume)."""
        return {"threads": list(self.threads), "batch": list(self.batch), "runtimes": list(self.runtimes),
                "providers": [list(p) for p in self.providers]}

    @classmethod
    def from_record(cls, data: Mapping[str, Any] | None) -> "Sweep":
        data = data or {}
        return cls(tuple(int(v) for v in data.get("threads") or ()), tuple(int(v) for v in data.get("batch") or ()),
                   tuple(str(v) for v in data.get("runtimes") or ()),
                   tuple(tuple(str(p) for p in ps) for ps in data.get("providers") or ()))

    def checked(self, settings: BenchSettings) -> "Sweep":
        """Every value as BenchSettings checks it (bounds, runtime names), runtime aliases
        resolved; SweepValueError naming the BenchSettings field and the value otherwise, for the
        command line to turn into a usage error."""
        checked: dict[str, Any] = {}
        for name, field in SWEPT_FIELDS.items():
            values = getattr(self, name)
            found = []
            for value in values:
                try:
                    found.append(getattr(settings.replace(**{field: value}), field))
                except ValueError as exc:
                    errors = getattr(exc, "errors", None)
                    message = str(errors()[0]["msg"]) if callable(errors) else str(exc)
                    raise SweepValueError(field, f"{_values_text([value])}: {message.removeprefix('Value error, ')}"
                                          ) from None
            if len(set(found)) != len(found):
                raise SweepValueError(field, f"lists a value twice: {_values_text(values)}")
            checked[name] = tuple(found)
        return Sweep(**checked)


class SweepValueError(ValueError):
    """A swept value BenchSettings refuses; `field` is the BenchSettings field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _values_text(values: Sequence[Any]) -> str:
    return ", ".join(",".join(v) if isinstance(v, tuple) else str(v) for v in values)


def parse_int_list(text: str) -> tuple[int, ...]:
    """`1,2,4` -> (1, 2, 4); ValueError saying what is wrong."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(items):
        raise ValueError(f"{text!r}: write values separated by commas, e.g. 1,2,4")
    try:
        return tuple(int(item) for item in items)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number or a list of them (e.g. 1,2,4)") from None


def parse_name_list(text: str) -> tuple[str, ...]:
    """`onnxruntime,openvino` -> ("onnxruntime", "openvino")."""
    items = tuple(item.strip() for item in str(text).split(","))
    if not all(items):
        raise ValueError(f"{text!r}: write names separated by commas, e.g. onnxruntime,openvino")
    return items


def split_shape_values(values: Sequence[str]) -> list[str]:
    """--shape values with commas -> one `[MODEL:]NAME=dims` each: `images=1x3x320x320,1x3x640x640`
    gives two values of `images` (a bare dims item continues the name before it), `a=1x8,b=1x4`
    one of each. ValueError for an item that is neither."""
    found: list[str] = []
    for text in values:
        name = None
        for item in str(text).split(","):
            item = item.strip()
            if SHAPE_RE.match(item):
                name = item.rpartition("=")[0]
                found.append(item)
            elif name is not None and DIMS_RE.match(item):
                found.append(f"{name}={item}")
            else:
                raise ValueError(f"has {text!r}; write NAME=1x3x224x224, several values as "
                                 "NAME=1x3x320x320,1x3x640x640")
    return found


def expand_cells(cells: Sequence[Cell], tasks: Sequence[ModelTask], settings: BenchSettings,
                 sweep: Sweep) -> list[Cell]:
    """One cell per model × variant × sweep point: the point's resolved shapes and batch, its
    own settings (None when nothing is swept: the run's) and its label. Per model the points
    come first, then the variants (fp32 first), so a point's variants run side by side."""
    tasks_by_model = {task.model.name: task for task in tasks}
    expanded: list[Cell] = []
    for model in dict.fromkeys(cell.model.name for cell in cells):
        model_cells = [cell for cell in cells if cell.model.name == model]
        task = tasks_by_model.get(model)
        points = list(task.points) if task is not None and task.points else [
            ShapePoint((), None, ResolvedShapes(model_cells[0].shapes, model_cells[0].batch))]
        shape_labels = _shape_labels(points)
        for point, shape_label in zip(points, shape_labels):
            for threads in sweep.threads if sweep.swept("threads") else [None]:
                for runtime in sweep.runtimes if sweep.swept("runtimes") else [None]:
                    for providers in sweep.providers if sweep.swept("providers") else [None]:
                        changes: dict[str, Any] = {}
                        label: list[str] = []
                        if shape_label:
                            changes["shapes"] = point.given
                            label += shape_label
                        if sweep.swept("batch"):
                            changes["batch"] = point.batch
                            label.append(f"batch={point.batch}")
                        if threads is not None:
                            changes["threads"] = threads
                            label.append(f"threads={threads}")
                        if runtime is not None:
                            changes["runtime"] = runtime
                            label.append(f"runtime={runtime}")
                        if providers is not None:
                            changes["providers"] = providers
                            label.append(f"providers={'+'.join(providers)}")
                        point_settings = settings.replace(**changes) if changes else None
                        for cell in model_cells:
                            expanded.append(dataclasses.replace(
                                cell, shapes=point.resolved.shapes, batch=point.resolved.batch,
                                settings=point_settings, sweep=", ".join(label)))
    return expanded


def _shape_labels(points: Sequence[ShapePoint]) -> list[list[str]]:
    """Per point, the --shape values of the inputs whose value changes between points."""
    if len({p.given for p in points}) <= 1:
        return [[] for _ in points]
    values: dict[str, set[str]] = {}
    for point in points:
        for text in point.given:
            values.setdefault(parse_shape(text)[0], set()).add(text)
    varying = {name for name, texts in values.items() if len(texts) > 1}
    return [[text for text in point.given if parse_shape(text)[0] in varying] for point in points]


__all__ = ["SWEPT_FIELDS", "Sweep", "SweepValueError", "expand_cells", "parse_int_list", "parse_name_list",
           "split_shape_values"]
