"""The matrix of one `farm bench`: which model variants (with which data) each board measures.

Variants are built on the controller before any board is touched (cached by content, so a
second run builds nothing); a variant that fails to build becomes a cell that is recorded as
failed ("variant-error") while the rest of the matrix runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from orchestrator.errors import BadInputError
from orchestrator.models import DEMO_DIR, ModelFile
from orchestrator.paths import farm_cache_dir
from orchestrator.shapes import ShapePoint, model_inputs, points_for_task, shapes_mapping, split_shape_args
from orchestrator.accuracy.task import DetectionOptions, TaskDataset, load_task_dataset, parse_detection_options

# The demo models' own labelled data (shipped beside them).
DEMO_DATASETS = {"digits_mlp": DEMO_DIR / "digits_test.npz"}


@dataclasses.dataclass(frozen=True)
class ModelTask:
    """A model to measure and, when it has one, the labelled data its accuracy is judged on."""

    model: ModelFile
    dataset: TaskDataset | None = None
    shapes: tuple[str, ...] = ()  # NAME=1x3x224x224 for every input with an open dim (orchestrator.shapes)
    batch: int = 1  # the first input's leading dim: what FPS counts images by
    # every shape × batch point the model is measured at (its first is `shapes`/`batch`, what
    # variants are built and checked at); more than one is a sweep (orchestrator.sweep)
    points: tuple[ShapePoint, ...] = ()


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the matrix: a model variant to measure on each board (a board × a Cell is
    one stored result, see orchestrator.record)."""

    model: ModelFile
    variant: str
    variant_path: Path
    variant_details: dict[str, Any] = dataclasses.field(default_factory=dict)
    build_error: str | None = None  # a variant that failed to build is recorded, not run
    dataset: TaskDataset | None = None
    reference_path: Path | None = None  # the fp32 model, for fidelity when fp32 is not in the matrix
    shapes: tuple[str, ...] = ()  # every input with an open dim, resolved (orchestrator.shapes)
    batch: int = 1
    weights_path: Path | None = None  # the weights file of a two-file variant (OpenVINO IR .bin)
    runtime: str | None = None  # the one runtime that reads this variant's format; None: the run's
    # A sweep point (orchestrator.sweep): the settings this cell is measured with (None: the
    # run's) and what sets it apart from the run's other points, e.g. "threads=2, batch=8".
    settings: Any = None  # BenchSettings | None
    sweep: str = ""

    @property
    def files(self) -> "ModelFiles":
        return ModelFiles(self.variant_path, self.weights_path)


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """The file(s) a board needs for one model: an ONNX file, or an OpenVINO IR's .xml and .bin."""

    model: Path
    weights: Path | None = None

    def uploads(self) -> list[tuple[str, Path, str]]:
        """(agent option, local file, suffix of its staged name) for each file."""
        if self.weights is None:
            return [("--model", self.model, ".onnx")]
        return [("--model", self.model, ".xml"), ("--weights", self.weights, ".bin")]


def plan_tasks(models: Sequence[ModelFile], dataset_args: Sequence[str] = (), detection_args: Sequence[str] = (),
               shape_args: Sequence[str] = (), model_shapes: Mapping[str, Sequence[str]] | None = None,
               batches: Sequence[int] = ()) -> list[ModelTask]:
    """Pair models with datasets and resolve the shapes they are measured at.

    Datasets: `--dataset PATH` (one model) or `--dataset MODEL=PATH`, detection datasets with how
    their model reads them: `--detection [MODEL=]KEY=VALUE,...`; the bundled demo classifier
    always gets its shipped test set. Shapes: `--shape [MODEL:]NAME=dims` (`shape_args`) and a
    suite's per-model `shapes` (`model_shapes`), else the dataset's, else BadInputError for a
    symbolic dim other than the batch (orchestrator.shapes). Several values for one input, or
    several `batches` (`--batch`), make several points per model (a sweep).
    """
    detection = _detection_by_model(models, detection_args)
    by_name: dict[str, str] = {}
    for arg in dataset_args:
        name, sep, path = arg.partition("=")
        if not sep:
            if len(models) != 1:
                raise BadInputError(f"--dataset {arg!r}: with several models write --dataset MODEL=PATH")
            name, path = models[0].name, arg
        if name not in {m.name for m in models}:
            raise BadInputError(f"--dataset {arg!r}: no model named {name!r} (models: {', '.join(m.name for m in models)})")
        by_name[name] = path
    shared, per_model = split_shape_args(shape_args, [m.name for m in models])
    cache = farm_cache_dir() / "datasets"
    tasks = []
    for model in models:
        given = [*shared, *per_model.get(model.name, ()), *(model_shapes or {}).get(model.name, ())]
        path = by_name.get(model.name)
        if path is None and model.path.parent == DEMO_DIR.resolve() and model.path.stem in DEMO_DATASETS:
            path = str(DEMO_DATASETS[model.path.stem])
        dataset = None
        if path is not None:
            dataset = load_task_dataset(path, cache, input_size=_image_input_size(model.path, _first_values(given)),
                                        detection=detection.get(model.name))
        elif model.name in detection:
            raise BadInputError(f"--detection for {model.name!r}, which has no --dataset")
        points = points_for_task(model.name, model.path, given,
                                 dataset.inputs_npz if dataset is not None and dataset.kind == "classification"
                                 else None, several_models=len(models) > 1, batches=batches)
        first = points[0].resolved
        tasks.append(ModelTask(model, dataset, first.shapes, first.batch, tuple(points)))
    return tasks


def _first_values(given: Sequence[str]) -> list[str]:
    """The first value given for each input (a swept input's first point)."""
    seen: dict[str, str] = {}
    for text in given:
        seen.setdefault(text.rpartition("=")[0], text)
    return list(seen.values())


def _detection_by_model(models: Sequence[ModelFile], args: Sequence[str]) -> dict[str, DetectionOptions]:
    """`MODEL=SPEC` when the text before the first '=' is a model's name, else SPEC for the one model."""
    names = {m.name for m in models}
    options: dict[str, DetectionOptions] = {}
    for arg in args:
        name, _, spec = arg.partition("=")
        if name not in names:
            if len(models) != 1:
                raise BadInputError(f"--detection {arg!r}: with several models write --detection MODEL=SPEC")
            name, spec = models[0].name, arg
        options[name] = parse_detection_options(spec)
    return options


def _image_input_size(model_path: Path, given_shapes: Sequence[str] = ()) -> tuple[int, int] | None:
    """(H, W) of an NCHW image input (its --shape when given), for detection preprocessing; None
    when not an image model."""
    given = shapes_mapping(given_shapes)
    for spec in model_inputs(model_path):
        dims = given.get(spec.name, spec.dims)
        if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[2:]):
            return int(dims[2]), int(dims[3])
    return None


def check_plan(tasks: Sequence[ModelTask], variant_specs: Sequence[str], calibration: Path | None = None) -> None:
    """Refuse, before any variant is built or board touched, a plan that cannot be carried out:
    a variant that needs calibration inputs for a model that has none (no --calibration and no
    dataset). The message names the models and the ways out; UsageError (exit 2)."""
    from orchestrator.errors import UsageError
    from orchestrator.variants import parse_variant_list

    needing = [s.text for s in parse_variant_list(",".join(variant_specs)) if s.needs_calibration]
    if not needing or calibration is not None:
        return
    missing = [t.model.name for t in tasks if t.dataset is None]
    if not missing:
        return
    variants = ", ".join(needing)
    models = ", ".join(missing)
    first = missing[0]
    raise UsageError(
        f"{variants} needs calibration inputs and {models} has none: give --calibration FILE.npz (real inputs, "
        f"an 'inputs' array), or --dataset {first}=PATH, or leave {variants} out for {models} "
        "(run those models in a separate farm bench)"
    )


def plan_cells(
    tasks: Sequence[ModelTask],
    variant_specs: Sequence[str],
    calibration: Path | None = None,
    cache_dir: Path | None = None,
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, info: None,
) -> list[Cell]:
    """Build every variant of every model (cached); fp32 first so fidelity has its reference."""
    from orchestrator.variants import VariantBuildError, parse_variant_list  # build_variant: only if needed

    specs = parse_variant_list(",".join(variant_specs))
    specs.sort(key=lambda s: s.name != "fp32")  # stable: fp32 first, the rest as given
    cache_dir = cache_dir or farm_cache_dir() / "variants"
    cells: list[Cell] = []
    for task in tasks:
        model = task.model
        calibration_data = None
        for spec in specs:
            base = {"dataset": task.dataset, "reference_path": model.path, "shapes": task.shapes, "batch": task.batch}
            if spec.name == "fp32":
                cells.append(Cell(model, spec.text, model.path, {"size_bytes": model.size_bytes, "variant": "fp32"}, **base))
                continue
            on_event("variant_building", {"model": model.name, "variant": spec.text})
            try:
                if spec.needs_calibration and calibration_data is None:
                    calibration_data = _calibration_for(task, calibration)
                from orchestrator.variants import build_variant

                record = build_variant(model.path, spec, cache_dir, calibration_data if spec.needs_calibration else None,
                                       shapes_mapping(task.shapes))
            except (VariantBuildError, BadInputError) as exc:
                cells.append(Cell(model, spec.text, model.path, {"variant": spec.text}, build_error=str(exc), **base))
                continue
            details = record.to_dict()
            cells.append(Cell(model, spec.text, record.file, details, weights_path=record.weights_file,
                            runtime=spec.kind.runtime, **base))
    return cells


def _calibration_for(task: ModelTask, calibration: Path | None):
    """Calibration inputs for int8-static: --calibration, else the model's own dataset inputs."""
    from orchestrator.variants import CalibrationData, CalibrationRequiredError

    if calibration is not None:
        return CalibrationData.from_npz(calibration, task.model.path)
    if task.dataset is not None:
        return CalibrationData.from_npz(task.dataset.inputs_npz, task.model.path)
    raise CalibrationRequiredError("int8-static")


__all__ = ["Cell", "ModelFiles", "ModelTask", "check_plan", "plan_cells", "plan_tasks"]
