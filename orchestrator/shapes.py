"""The input shapes a model is measured at: every dim concrete, chosen by the user, never guessed.

A model with symbolic dims (`[1, 3, H, W]`, `[batch, 3, 224, 224]`) does not say how big its
input is. Guessing 1 made a text detector with input `[1, 3, H, W]` measure at 1×3×1×1 (1,309
FPS, about 4 at 640×640) without a word. So:
* a leading symbolic dim is the batch: 1 unless given (`--batch N` sets it on every input whose
  leading dim is symbolic; a model that fixes its batch refuses `--batch` before measuring);
* any other symbolic dim must come from `--shape NAME=1x3x640x640` (per model: `--shape
  MODEL:NAME=...`; suites: `shapes:`), or from the model's labelled dataset (its inputs' shape);
  otherwise planning fails before any board is touched, naming the input, its dims and the
  option to pass.
The resolved shapes are what the agent feeds, what variant fidelity is measured on, and the
batch that FPS counts images by (`_batch`: the first input's leading dim when it is a batch dim).

Several values for one input (`--shape images=1x3x320x320,1x3x640x640`, or `--shape` given twice
for it) are a sweep: `shape_points` makes one point per combination, each its own cell
(orchestrator.sweep), never a silent "the last one wins".
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Mapping, Sequence

from orchestrator.errors import BadInputError
from orchestrator.settings import SHAPE_RE

Dims = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """A model input as the file declares it: a dim is an int, a symbolic name, or None."""

    name: str
    dims: tuple[int | str | None, ...]

    @property
    def symbolic(self) -> list[int]:
        """Indexes of the dims the file leaves open."""
        return [i for i, d in enumerate(self.dims) if not (isinstance(d, int) and d > 0)]

    def dims_text(self) -> str:
        return "[" + ", ".join(str(d) if d is not None else "?" for d in self.dims) + "]"


@dataclasses.dataclass(frozen=True)
class ResolvedShapes:
    """Every input's concrete shape (`NAME=1x3x640x640`, as the agent takes them) and the batch."""

    shapes: tuple[str, ...]
    batch: int

    def as_dict(self) -> dict[str, Dims]:
        return {name: dims for name, dims in (parse_shape(text) for text in self.shapes)}


@dataclasses.dataclass(frozen=True)
class ShapePoint:
    """One point of a model's shape × batch sweep: the --shape values it was given (one per
    input), the `--batch` asked (None: not given) and what they resolve to."""

    given: tuple[str, ...]
    batch: int | None
    resolved: ResolvedShapes


def model_inputs(path: Path) -> list[InputSpec]:
    """The inputs an ONNX file declares (initializers that are also inputs are left out)."""
    from orchestrator.models import model_input_dims

    return [InputSpec(name, dims) for name, dims in model_input_dims(path)]


def parse_shape(text: str) -> tuple[str, Dims]:
    """`images=1x3x640x640` -> ("images", (1, 3, 640, 640)); ValueError when malformed."""
    if not SHAPE_RE.match(text):
        raise ValueError(f"--shape {text!r}: write NAME=1x3x224x224")
    name, _, dims = text.rpartition("=")
    return name, tuple(int(d) for d in dims.split("x"))


def shape_text(name: str, dims: Sequence[int]) -> str:
    return f"{name}={'x'.join(str(d) for d in dims)}"


def split_shape_args(args: Sequence[str], model_names: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """`--shape` values -> (shapes for every model, {model name: its own shapes}).

    `MODEL:NAME=dims` belongs to MODEL when MODEL is one of the models' names (input names may
    contain ':' themselves, as TensorFlow exports' `input:0` do: then it is a plain NAME=dims).
    """
    shared: list[str] = []
    per_model: dict[str, list[str]] = {}
    for text in args:
        prefix, sep, rest = text.partition(":")
        if sep and prefix in model_names and "=" in rest:
            per_model.setdefault(prefix, []).append(rest)
            continue
        shared.append(text)
    for text in shared + [t for ts in per_model.values() for t in ts]:
        try:
            parse_shape(text)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
    return shared, per_model


def shape_points(given: Sequence[str]) -> list[tuple[str, ...]]:
    """The --shape values of one model -> one list of values per point: an input given several
    values is swept, the points are every combination (inputs in the order first given, each
    input's values in the order given). `["x=1x8", "x=4x8", "m=1x2"]` -> `[("x=1x8", "m=1x2"),
    ("x=4x8", "m=1x2")]`; BadInputError for a value given twice."""
    values: dict[str, list[str]] = {}
    for text in given:
        name, _ = parse_shape(text)
        if text in values.setdefault(name, []):
            raise BadInputError(f"--shape {text} is given twice")
        values[name].append(text)
    return [tuple(point) for point in itertools.product(*values.values())] or [()]


def resolve_shapes(model_name: str, inputs: Sequence[InputSpec], given: Sequence[str],
                   dataset_dims: Dims | None = None, several_models: bool = False,
                   batch: int | None = None) -> ResolvedShapes:
    """Concrete shapes for every input (see the module docstring); BadInputError naming what to
    pass when a symbolic dim other than the batch has no value, or when `batch` (`--batch`) is
    asked of a model whose first input fixes its leading dim. `given` holds one value per input
    (a point of `shape_points`)."""
    by_name = {name: dims for name, dims in (parse_shape(t) for t in given)}
    if len(by_name) != len(given):
        raise BadInputError(f"model {model_name!r}: several --shape values for one input in one point: {', '.join(given)}")
    if batch is not None:
        _check_batch(model_name, inputs, batch)
    unknown = sorted(set(by_name) - {spec.name for spec in inputs})
    if unknown:
        names = ", ".join(spec.name for spec in inputs)
        raise BadInputError(f"model {model_name!r} has no input named {unknown[0]!r} (--shape); its inputs: {names}")
    resolved: list[str] = []  # the inputs the agent needs told: given, or with an open dim
    concrete: dict[str, Dims] = {}
    for index, spec in enumerate(inputs):
        dims = by_name.get(spec.name)
        if dims is not None:
            _check_given(model_name, spec, dims)
            if batch is not None and 0 in spec.symbolic:
                dims = (batch, *dims[1:])
        elif spec.symbolic:
            dims = _from_dataset(spec, dataset_dims) if index == 0 else None
            if dims is None and any(i != 0 for i in spec.symbolic):
                raise BadInputError(_missing_message(model_name, spec, several_models))
            if dims is None:  # only the leading (batch) dim is open: a batch of one (or --batch)
                dims = tuple((batch or 1) if i == 0 else int(d) for i, d in enumerate(spec.dims))  # type: ignore[arg-type]
            elif batch is not None and 0 in spec.symbolic:
                dims = (batch, *dims[1:])
        else:
            concrete[spec.name] = tuple(int(d) for d in spec.dims)  # type: ignore[arg-type]
            continue
        concrete[spec.name] = dims
        resolved.append(shape_text(spec.name, dims))
    return ResolvedShapes(tuple(resolved), _batch(inputs[0], concrete[inputs[0].name]) if inputs else 1)


def _batch(spec: InputSpec, dims: Dims) -> int:
    """Images per call: the first input's leading dim when the model declares it open (a batch
    dim), or when the input is an image (rank 4, NCHW/NHWC); 1 otherwise (a [2048, 2048] matrix
    input is one call, not 2,048 images)."""
    if len(dims) >= 2 and (0 in spec.symbolic or len(dims) == 4):
        return int(dims[0])
    return 1


def _check_batch(model_name: str, inputs: Sequence[InputSpec], batch: int) -> None:
    """`--batch N` needs a batch dim: the first input's leading dim left open by the model."""
    if not inputs:
        raise BadInputError(f"model {model_name!r} has no inputs: --batch {batch} has nothing to set")
    first = inputs[0]
    if not first.dims or 0 not in first.symbolic:
        raise BadInputError(
            f"model {model_name!r}: --batch {batch} needs a symbolic leading (batch) dim, but input {first.name!r} "
            f"fixes it: {first.dims_text()}; leave --batch out for this model (its batch is "
            f"{first.dims[0] if first.dims else 1}), or export it with a dynamic batch axis")


def _check_given(model_name: str, spec: InputSpec, dims: Dims) -> None:
    if len(dims) != len(spec.dims):
        raise BadInputError(f"model {model_name!r}: --shape {shape_text(spec.name, dims)} has {len(dims)} dims, "
                            f"input {spec.name!r} has {len(spec.dims)}: {spec.dims_text()}")
    for index, (want, got) in enumerate(zip(spec.dims, dims)):
        if isinstance(want, int) and want > 0 and want != got:
            raise BadInputError(f"model {model_name!r}: --shape {shape_text(spec.name, dims)} sets dim {index} to "
                                f"{got}, but the model fixes it at {want}: {spec.dims_text()}")


def _from_dataset(spec: InputSpec, dataset_dims: Dims | None) -> Dims | None:
    """The first input's shape from its dataset: a batch of one dataset input."""
    if dataset_dims is None or len(dataset_dims) + 1 != len(spec.dims):
        return None
    dims = (1, *dataset_dims)
    for want, got in zip(spec.dims, dims):
        if isinstance(want, int) and want > 0 and want != got:
            return None
    return dims


def _missing_message(model_name: str, spec: InputSpec, several_models: bool) -> str:
    example = tuple(d if isinstance(d, int) and d > 0 else (1 if i == 0 else 640) for i, d in enumerate(spec.dims))
    option = f"--shape {model_name}:{shape_text(spec.name, example)}" if several_models else \
        f"--shape {shape_text(spec.name, example)}"
    return (f"model {model_name!r}: input {spec.name!r} has dims {spec.dims_text()}; farm does not guess the size of "
            f"symbolic dims other than the batch: pass {option} (your real input size), "
            "or a --dataset whose inputs have the shape")


def points_for_task(model_name: str, path: Path, given: Sequence[str], dataset_npz: Path | None,
                    several_models: bool, batches: Sequence[int] = ()) -> list[ShapePoint]:
    """Every shape × batch point a planned model is measured at (one when nothing is swept),
    each resolved from its file, the user's --shape values and its dataset; BadInputError for
    the first point that cannot be (before any board is touched)."""
    dataset_dims = _dataset_dims(dataset_npz)
    inputs = model_inputs(path)
    points = [ShapePoint(point, batch, resolve_shapes(model_name, inputs, point, dataset_dims, several_models, batch))
              for point in shape_points(given) for batch in (list(batches) or [None])]
    seen: dict[ResolvedShapes, ShapePoint] = {}
    for point in points:  # --batch sets the leading dim: values that differ only there are one point
        first = seen.setdefault(point.resolved, point)
        if first is not point:
            raise BadInputError(
                f"model {model_name!r}: --shape {', '.join(first.given)} and {', '.join(point.given)} both measure "
                f"{', '.join(point.resolved.shapes)} (--batch {point.batch} sets the leading dim): give each shape once")
    return points


def shapes_for_task(model_name: str, path: Path, given: Sequence[str], dataset_npz: Path | None,
                    several_models: bool, batch: int | None = None) -> ResolvedShapes:
    """Resolve a planned model's shapes from its file, the user's --shape values (one per input)
    and its dataset, at `batch` images per call when given."""
    return resolve_shapes(model_name, model_inputs(path), given, _dataset_dims(dataset_npz), several_models, batch)


def _dataset_dims(dataset_npz: Path | None) -> Dims | None:
    """The shape of one input of a classification dataset (its `inputs` array less the count),
    from the array's header: the images themselves are not read."""
    if dataset_npz is None:
        return None
    import zipfile

    import numpy as np

    with zipfile.ZipFile(dataset_npz) as archive:
        if "inputs.npy" not in archive.namelist():
            return None
        with archive.open("inputs.npy") as array:
            version = np.lib.format.read_magic(array)
            if version == (1, 0):
                shape = np.lib.format.read_array_header_1_0(array)[0]
            elif version == (2, 0):
                shape = np.lib.format.read_array_header_2_0(array)[0]
            else:  # a later format: read it whole
                with np.load(dataset_npz, allow_pickle=False) as data:
                    shape = data["inputs"].shape
    return tuple(int(d) for d in shape[1:])


def shapes_mapping(shapes: Sequence[str]) -> Mapping[str, Dims]:
    return dict(parse_shape(text) for text in shapes)
