"""A submitted run's matrix as data: what `farm submit` planned, rebuilt into Cells on a worker.

The submitter validates and plans exactly as `farm bench` does (orchestrator.plan), builds the
variants, stores every file by content (orchestrator.fleet.artifacts) and writes a `FleetPlan`:
boards by name with their queue, models and datasets by sha256, each cell's variant file and
record (a sweep point's with its own settings), and the baseline files that paired cells are
measured beside (orchestrator.pairing). A worker fetches those files into its cache and rebuilds the same `Cell`s
(`materialize`), so the runner measures what the submitter planned, under the run's settings
hash, and the results are the ones `farm bench` would store. Nothing in a plan is a path on the
submitter's machine, a credential or a command: boards are names a worker's own inventory
resolves; a `--detection postprocess=` hook (code) is refused at submit time.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, StoreError
from orchestrator.fleet import artifacts
from orchestrator.models import ModelFile
from orchestrator.paths import farm_cache_dir
from orchestrator.pairing import PairedBaseline, PairKey
from orchestrator.plan import Cell, ModelFiles, ModelTask
from orchestrator.settings import BenchSettings

PLAN_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PlannedBoard:
    name: str
    queue: str


@dataclasses.dataclass
class FleetPlan:
    """What workers need to measure a submitted run (stored as JSON in fleet_runs.plan_json)."""

    boards: list[PlannedBoard]
    tasks: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    version: int = PLAN_FORMAT_VERSION
    # cells measured beside their baseline's file (orchestrator.pairing): key, baseline result, files
    pairs: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "boards": [dataclasses.asdict(b) for b in self.boards],
                           "tasks": self.tasks, "cells": self.cells, "pairs": self.pairs}, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "FleetPlan":
        data = json.loads(text)
        if data.get("version") != PLAN_FORMAT_VERSION:
            raise StoreError(f"a submitted run's plan has format version {data.get('version')!r}; this farm reads "
                             f"{PLAN_FORMAT_VERSION}: run the same farm version on submitters and workers")
        return cls([PlannedBoard(**b) for b in data["boards"]], data["tasks"], data["cells"],
                   pairs=list(data.get("pairs") or []))

    @property
    def board_names(self) -> list[str]:
        return [b.name for b in self.boards]

    def cell_keys(self, run_settings_hash: str) -> list[tuple[str, str, str]]:
        """(model, variant, settings hash) of every cell, in plan order: a sweep's points share a
        model and variant, each has its own settings hash (`run_settings_hash`: the run's)."""
        return [(self.tasks[c["task"]]["model"]["name"], c["variant"],
                 run_settings_hash if c.get("settings") is None else _point_settings(c).settings_hash())
                for c in self.cells]


#: What a run's stored settings record holds besides its BenchSettings.
_RUN_KEYS = ("boards", "models", "variants", "plan")


def settings_of_run(stored: Mapping[str, Any]) -> BenchSettings:
    """The BenchSettings a run was submitted with (its settings record, as orchestrator.resume reads it)."""
    return BenchSettings.model_validate({k: v for k, v in stored.items() if k not in _RUN_KEYS})


def check_submittable(tasks: Sequence[ModelTask]) -> None:
    """What `farm bench` may do on the controller but a submission may not carry to workers."""
    for task in tasks:
        if task.dataset is not None and task.dataset.postprocess:
            raise BadInputError(
                f"--detection postprocess={task.dataset.postprocess} for {task.model.name!r}: a postprocess hook is code "
                "run by the controller, and a submission carries no code to the fleet's workers; use farm bench, or a "
                "built-in layout (layout=yolov5|yolov8|yolox)")


def build_plan(store, boards: Sequence[tuple[Board, str]], tasks: Sequence[ModelTask], cells: Sequence[Cell],
               pairs: Mapping[PairKey, PairedBaseline] | None = None) -> FleetPlan:
    """Store every file the cells (and the baselines they are paired with) need and describe them
    (called by `farm submit` after planning)."""
    check_submittable(tasks)
    task_index: dict[str, int] = {}
    task_entries: list[dict[str, Any]] = []
    for task in tasks:
        artifacts.put_file(store, task.model.path)
        task_index[task.model.name] = len(task_entries)
        task_entries.append({
            "model": {"name": task.model.name, "sha256": task.model.sha256, "size_bytes": task.model.size_bytes,
                      "suffix": task.model.path.suffix},
            "shapes": list(task.shapes), "batch": task.batch,
            "dataset": None if task.dataset is None else _store_dataset(store, task),
        })
    cell_entries = []
    for cell in cells:
        entry: dict[str, Any] = {
            "task": task_index[cell.model.name], "variant": cell.variant, "details": cell.variant_details,
            "build_error": cell.build_error, "runtime": cell.runtime, "file": None, "suffix": cell.variant_path.suffix,
            "weights": None, "weights_suffix": None,
            # a sweep's point (orchestrator.sweep): its shapes, batch, settings and label
            "shapes": list(cell.shapes), "batch": cell.batch,
            "settings": None if cell.settings is None else cell.settings.record(), "sweep": cell.sweep,
        }
        if cell.build_error is None:
            entry["file"] = artifacts.put_file(store, cell.variant_path)
            if cell.weights_path is not None:
                entry["weights"] = artifacts.put_file(store, cell.weights_path)
                entry["weights_suffix"] = cell.weights_path.suffix
        cell_entries.append(entry)
    pair_entries = []
    for (board, model, variant, sweep), paired in (pairs or {}).items():
        files = paired.files
        pair_entries.append({
            "board": board, "model": model, "variant": variant, "sweep": sweep,
            "result_id": paired.result_id, "run_id": paired.run_id,
            "file": artifacts.put_file(store, files.model), "suffix": files.model.suffix,
            "weights": None if files.weights is None else artifacts.put_file(store, files.weights),
            "weights_suffix": None if files.weights is None else files.weights.suffix,
        })
    return FleetPlan([PlannedBoard(board.name, queue) for board, queue in boards], task_entries, cell_entries,
                     pairs=pair_entries)


def materialize_pairs(store, plan: FleetPlan, board: str,
                      cache_dir: Path | None = None) -> dict[PairKey, PairedBaseline]:
    """`board`'s paired baselines on this worker, their files fetched (sha256 checked) into its cache."""
    folder = cache_dir or artifacts.artifacts_cache_dir()
    found: dict[PairKey, PairedBaseline] = {}
    for entry in plan.pairs:
        if entry["board"] != board:
            continue
        model = artifacts.fetch_file(store, entry["file"], entry.get("suffix") or ".onnx", folder)
        weights = None
        if entry.get("weights"):
            weights = artifacts.fetch_file(store, entry["weights"], entry.get("weights_suffix") or ".bin", folder)
        key = (entry["board"], entry["model"], entry["variant"], entry.get("sweep") or "")
        found[key] = PairedBaseline(int(entry["result_id"]), str(entry["run_id"]), ModelFiles(model, weights))
    return found


def _store_dataset(store, task: ModelTask) -> dict[str, Any]:
    dataset = task.dataset
    assert dataset is not None
    if dataset.kind == "classification":
        name = Path(dataset.source).name
        return {"kind": "classification", "path": name, "files": artifacts.put_tree(store, {name: dataset.source})}
    coco = dataset.dataset
    json_path = Path(coco.annotations_path)
    files = {"annotations.json": json_path}
    for image in coco.coco["images"]:
        files[str(image["file_name"])] = _image_file(json_path, Path(coco.images_dir), str(image["file_name"]))
    return {
        "kind": "detection", "path": ".", "files": artifacts.put_tree(store, files),
        "input_size": list(coco.input_size), "layout": dataset.detection_layout, "decoded": dataset.decoded,
        "preprocessing": dataclasses.asdict(coco.preprocessing),
    }


def _image_file(json_path: Path, images_dir: Path, file_name: str) -> Path:
    """Where the loader found an image (orchestrator.accuracy.datasets looks in these folders)."""
    for folder in (images_dir, json_path.parent, json_path.parent / "images"):
        if (folder / file_name).is_file():
            return folder / file_name
    raise BadInputError(f"{json_path}: image {file_name!r} not found")


def materialize(store, plan: FleetPlan, cache_dir: Path | None = None) -> list[Cell]:
    """The run's cells on this worker: every file fetched (sha256 checked) into its cache."""
    from orchestrator.accuracy import Preprocessing
    from orchestrator.accuracy.task import DetectionOptions, load_task_dataset

    folder = cache_dir or artifacts.artifacts_cache_dir()
    datasets_cache = farm_cache_dir() / "datasets"
    tasks: list[ModelTask] = []
    for entry in plan.tasks:
        spec = entry["model"]
        path = artifacts.fetch_file(store, spec["sha256"], spec.get("suffix") or ".onnx", folder)
        model = ModelFile(name=spec["name"], path=path, sha256=spec["sha256"], size_bytes=int(spec["size_bytes"]))
        dataset = None
        if entry.get("dataset"):
            data = entry["dataset"]
            root = artifacts.fetch_tree(store, data["files"], folder)
            source = root / artifacts.safe_relative(data["path"]) if data["path"] != "." else root
            if data["kind"] == "classification":
                dataset = load_task_dataset(source, datasets_cache)
            else:
                options = DetectionOptions(data["layout"], bool(data["decoded"]), Preprocessing(**data["preprocessing"]))
                dataset = load_task_dataset(source, datasets_cache, input_size=tuple(data["input_size"]),
                                            detection=options)
        tasks.append(ModelTask(model, dataset, tuple(entry["shapes"]), int(entry["batch"])))
    cells = []
    for entry in plan.cells:
        task = tasks[entry["task"]]
        variant_path = task.model.path
        weights_path = None
        if entry.get("file"):
            variant_path = artifacts.fetch_file(store, entry["file"], entry.get("suffix") or ".onnx", folder)
        if entry.get("weights"):
            weights_path = artifacts.fetch_file(store, entry["weights"], entry.get("weights_suffix") or ".bin", folder)
        cells.append(Cell(task.model, entry["variant"], variant_path, dict(entry.get("details") or {}),
                          build_error=entry.get("build_error"), dataset=task.dataset, reference_path=task.model.path,
                          shapes=tuple(entry.get("shapes", task.shapes)), batch=int(entry.get("batch", task.batch)),
                          weights_path=weights_path, runtime=entry.get("runtime"),
                          settings=_point_settings(entry), sweep=str(entry.get("sweep") or "")))
    return cells


def _point_settings(entry: Mapping[str, Any]) -> BenchSettings | None:
    """A sweep point's own settings (None: the run's)."""
    record = entry.get("settings")
    return None if record is None else BenchSettings.model_validate(record)


__all__ = ["FleetPlan", "PlannedBoard", "build_plan", "check_submittable", "materialize", "materialize_pairs",
           "settings_of_run"]
