"""`farm bench` as a function tests call directly: request in, stored run (and report) out."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from orchestrator.boards import Board, local_board
from orchestrator.models import ModelFile, demo_models, load_model_file
from orchestrator.plan import attach_datasets, plan_jobs
from orchestrator.runner import BenchRunner, BenchSettings, Event, RunOutcome, _no_event
from orchestrator.store import Store, open_store

DEFAULT_REPORTS_DIR = Path("reports")


@dataclasses.dataclass
class BenchRequest:
    model_paths: Sequence[Path] = ()
    settings: BenchSettings = dataclasses.field(default_factory=BenchSettings)
    inventory: str | None = None
    limit: str | None = None
    forks: int = 8
    accept_new_host_keys: bool = False
    db_url: str | None = None
    report_path: Path | None = None
    write_report: bool = True
    variants: Sequence[str] = ("fp32",)
    datasets: Sequence[str] = ()  # PATH (one model) or MODEL=PATH
    detection: Sequence[str] = ()  # [MODEL=]KEY=VALUE,... (how a detector reads its dataset)
    calibration: Path | None = None  # int8-static calibration inputs (.npz); default: the model's dataset


@dataclasses.dataclass
class BenchOutcome:
    run: RunOutcome
    report_path: Path | None
    db_url: str


def resolve_models(paths: Sequence[Path]) -> list[ModelFile]:
    """The models to measure: the given files (checked), or the bundled demo models."""
    if not paths:
        return demo_models()
    models = [load_model_file(p) for p in paths]
    seen: dict[str, Path] = {}
    for m in models:
        if m.name in seen and seen[m.name] != m.path:
            from orchestrator.errors import BadInputError

            raise BadInputError(f"two models are named {m.name!r} ({seen[m.name]} and {m.path}): rename one")
        seen[m.name] = m.path
    return models


def resolve_boards(inventory: str | None, limit: str | None, accept_new_host_keys: bool) -> list[Board]:
    """Boards from the inventory (selected by `limit`), or the built-in local board."""
    from orchestrator.errors import BadInputError

    if inventory is None:
        if limit not in (None, "local", "all", "*"):
            raise BadInputError(f"--limit {limit!r} needs an inventory (-i): without one the only board is 'local'")
        return [local_board()]
    from orchestrator.inventory import load_inventory, select_boards

    boards = select_boards(load_inventory(Path(inventory)), limit)
    if accept_new_host_keys:
        boards = [dataclasses.replace(b, accept_new_host_keys=True) for b in boards]
    return boards


def run_bench(request: BenchRequest, on_event: Event = _no_event, store: Store | None = None) -> BenchOutcome:
    """Validate everything the user gave (before any board is touched), run, store, report."""
    from orchestrator.variants import parse_variant_list

    parse_variant_list(",".join(request.variants))  # unknown names fail before anything is built
    models = resolve_models(request.model_paths)
    tasks = attach_datasets(models, request.datasets, request.detection)
    boards = resolve_boards(request.inventory, request.limit, request.accept_new_host_keys)
    report_path = None
    if request.write_report and request.report_path is not None:
        report_path = _check_writable(Path(request.report_path))
    own_store = store is None
    store = store or open_store(request.db_url)
    try:
        jobs = plan_jobs(tasks, request.variants, request.calibration, on_event=on_event)
        runner = BenchRunner(store, boards, jobs, request.settings, forks=request.forks, on_event=on_event)
        run = runner.run()
        if request.write_report:
            from orchestrator.report import write_report

            report_path = write_report(store, run.run_id, report_path or DEFAULT_REPORTS_DIR / f"{run.run_id}.html")
        return BenchOutcome(run=run, report_path=report_path, db_url=store.safe_url)
    finally:
        if own_store:
            store.close()


def _check_writable(path: Path) -> Path:
    """Fail before measuring when the report cannot be written (not after ten minutes of work)."""
    from orchestrator.errors import BadInputError

    path = path.expanduser()
    if path.is_dir():
        raise BadInputError(f"--report {path} is a directory; give a file name such as {path / 'report.html'}")
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    import os

    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise BadInputError(f"cannot write the report to {path}: {probe} is not a writable directory")
    return path
