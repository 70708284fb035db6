"""A `farm bench` request, validated and carried out: `run_bench(request)` -> stored run, gate, report.

The CLI is a thin shell over this; tests call it directly."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Sequence

from orchestrator.boards import Board, local_board
from orchestrator.errors import BadInputError, ExitStatus
from orchestrator.models import ModelFile, check_model_paths, demo_models, load_model_file
from orchestrator.plan import check_plan, plan_cells, plan_tasks
from orchestrator.resume import plan_record, resumed_request
from orchestrator.runner import BenchRunner, Event, RunOutcome, _no_event, controller_record
from orchestrator.gate_options import GateOptions, baseline_before_run
from orchestrator.gate_options import evaluate as evaluate_gate_options
from orchestrator.pairing import paired_baselines
from orchestrator.settings import BenchSettings
from orchestrator.store import Store, open_store
from orchestrator.sweep import Sweep, expand_cells

DEFAULT_REPORTS_DIR = Path("reports")


@dataclasses.dataclass
class BenchRequest:
    model_paths: Sequence[Path] = ()
    settings: BenchSettings = dataclasses.field(default_factory=BenchSettings)
    # lists of values, each its own cell (orchestrator.sweep); `settings` holds the first of each
    sweep: Sweep = dataclasses.field(default_factory=Sweep)
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
    suite: Path | None = None  # a suite file: models, datasets, variants, boards, settings, baseline, thresholds
    resume: str | None = None  # a run id: measure only its cells that have no result yet
    baseline: str | None = None  # run id | latest | tag:NAME to compare with (and gate on)
    fail_on_regression: float | None = None  # latency change (%) that fails the run; None: don't gate
    fail_on_memory_regression: float | None = None  # peak-memory change (%) that fails; None: the suite's, else latency's
    fail_on_inconclusive: bool = False  # an inconclusive cell fails the gate (exit 5) instead of being skipped
    baseline_optional: bool = False  # no baseline to be found is fine (a first nightly), not an error
    paired: bool | None = None  # measure the baseline's own files beside the new ones; None: when they still exist
    junit: Path | None = None  # JUnit XML: one test case per board × model × variant
    markdown: Path | None = None  # a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)
    # The request fields and BenchSettings fields the user gave (not defaults): with `resume`
    # they must match the run's plan (orchestrator.resume).
    explicit: frozenset[str] = frozenset()


@dataclasses.dataclass
class BenchOutcome:
    run: RunOutcome
    report_path: Path | None
    db_url: str
    gate: object | None = None  # gating.GateResult when compared with a baseline

    @property
    def exit_status(self) -> ExitStatus:
        """Gated runs: BOARD_FAILURE, else REGRESSION, else OK; ungated: BOARD_FAILURE or OK."""
        if self.gate is not None and self.gating:
            return self.gate.exit_status
        return ExitStatus.BOARD_FAILURE if self.run.failed else ExitStatus.OK

    gating: bool = False


def resolve_models(paths: Sequence[Path], names: Sequence[str | None] = ()) -> list[ModelFile]:
    """The models to measure: the given files (checked, named by `names` or their stem), or the
    bundled demo models."""
    if not paths:
        return demo_models()
    names = list(names) + [None] * (len(paths) - len(names))
    models = [load_model_file(p, name=n) for p, n in zip(paths, names)]
    seen: dict[str, Path] = {}
    for m in models:
        if m.name in seen and seen[m.name] != m.path:
            raise BadInputError(f"two models are named {m.name!r} ({seen[m.name]} and {m.path}): rename one")
        seen[m.name] = m.path
    return models


def resolve_boards(inventory: str | None, limit: str | None, accept_new_host_keys: bool) -> list[Board]:
    """Boards from the inventory (selected by `limit`), or the built-in local board."""
    if inventory is None:
        if limit not in (None, "local", "all", "*"):
            raise BadInputError(f"--limit {limit!r} needs an inventory (-i): without one the only board is 'local'")
        return [local_board()]
    from orchestrator.inventory import load_inventory, select_boards

    boards = select_boards(load_inventory(Path(inventory)), limit)
    if accept_new_host_keys:
        boards = [dataclasses.replace(b, accept_new_host_keys=True) for b in boards]
    return boards


@dataclasses.dataclass(frozen=True)
class SuitePlan:
    """What a suite adds to a request: model names, per-model shapes, its thresholds (a suite
    gates against its baseline, else the latest run when there is one)."""

    model_names: list[str]
    shapes: dict[str, tuple[str, ...]]
    latency_pct: float | None
    memory_pct: float | None
    sets_repeats: bool = False  # the suite's settings say how many processes per cell


def apply_suite(request: BenchRequest) -> tuple[BenchRequest, SuitePlan]:
    """A request with the suite's models, datasets, variants, boards, settings and sweep filled in.

    The suite's settings and swept lists lie over the command line's; its baseline and latency
    threshold apply unless --baseline / --fail-on-regression are given.
    """
    from orchestrator.suite import load_suite

    suite = load_suite(request.suite)
    names = [m.model_name for m in suite.models]
    request = dataclasses.replace(
        request,
        model_paths=[m.path for m in suite.models],
        datasets=[f"{m.model_name}={m.dataset}" for m in suite.models if m.dataset is not None],
        variants=list(suite.variants),
        inventory=str(suite.boards.inventory) if suite.boards.inventory else request.inventory,
        limit=request.limit or suite.boards.limit,
        forks=suite.boards.forks or request.forks,
        baseline=request.baseline or suite.baseline,
    )
    settings, sweep = suite.with_sweep(suite.bench_settings(base=request.settings), request.sweep)
    request = dataclasses.replace(request, settings=settings, sweep=sweep)
    shapes = {name: tuple(m.shapes) for name, m in zip(names, suite.models) if m.shapes}
    return request, SuitePlan(names, shapes, suite.thresholds.latency_pct, suite.thresholds.memory_pct,
                              sets_repeats="repeats" in suite.settings.given())


def run_bench(request: BenchRequest, on_event: Event = _no_event, store: Store | None = None) -> BenchOutcome:
    """Validate everything the user gave (before any board is touched), run, store, gate, report."""
    plan = SuitePlan([], {}, None, None)
    resumed_run, pinned_baseline = None, None  # pinned: the baseline run the resumed run's first run found
    if request.resume is not None:
        with open_store(request.db_url) if store is None else contextlib.nullcontext(store) as opened:
            resumed_run = opened.get_run(request.resume)
        request, resumed = resumed_request(request, resumed_run)
        plan = SuitePlan(resumed.model_names, resumed.shapes, resumed.suite_latency_pct, resumed.suite_memory_pct)
        pinned_baseline = resumed.baseline_run
    elif request.suite is not None:
        request, plan = apply_suite(request)
    check_model_paths(request.model_paths)  # a missing file is said at once, before the heavy imports
    from orchestrator.variants import parse_variant_list

    parse_variant_list(",".join(request.variants))  # unknown names fail before anything is built
    models = resolve_models(request.model_paths, plan.model_names)
    batches = request.sweep.batch or ((request.settings.batch,) if request.settings.batch is not None else ())
    tasks = plan_tasks(models, request.datasets, request.detection, request.settings.shapes, plan.shapes, batches)
    check_plan(tasks, request.variants, request.calibration)  # a plan that cannot be built fails now
    boards = resolve_boards(request.inventory, request.limit, request.accept_new_host_keys)
    report_path = None
    if request.write_report and request.report_path is not None:
        report_path = _check_writable(Path(request.report_path))
    gate_options = GateOptions.from_request(request, plan.latency_pct, plan.memory_pct)
    repeats_chosen = "repeats" in request.explicit or request.settings.repeats != 1 or plan.sets_repeats
    if resumed_run is None:  # a resumed run keeps its own settings
        request = dataclasses.replace(request, settings=gate_options.with_gate_defaults(request.settings, repeats_chosen))
    variants = [spec.text for spec in parse_variant_list(",".join(request.variants))]
    own_store = store is None
    store = store or open_store(request.db_url)
    try:
        lookup = gate_options if pinned_baseline is None or not gate_options.comparing else \
            dataclasses.replace(gate_options, baseline=pinned_baseline)
        baseline_id = baseline_before_run(store, lookup, [b.name for b in boards], [m.name for m in models],
                                          variants, exclude=None if resumed_run is None else resumed_run["run_id"])
        resume_run_id, done = None, set()
        if resumed_run is not None:
            stored_boards = set((resumed_run["settings"] or {}).get("boards") or [])
            boards = [b for b in boards if not stored_boards or b.name in stored_boards]
            resume_run_id = store.reopen_run(resumed_run["run_id"], controller_record())
            done = store.done_cells(resume_run_id)
        cells = expand_cells(plan_cells(tasks, request.variants, request.calibration, on_event=on_event), tasks,
                             request.settings, request.sweep)
        pairs = {}
        if baseline_id is not None and request.paired is not False:
            pairs = paired_baselines(store, baseline_id, boards, cells, request.settings)
        runner = BenchRunner(store, boards, cells, request.settings, forks=request.forks, on_event=on_event,
                             resume_run_id=resume_run_id, done_cells=done, inventory=request.inventory,
                             plan=plan_record(request, [m.name for m in models], shapes=plan.shapes,
                                              suite=request.suite, gate=gate_options, baseline_run=baseline_id),
                             pairs=pairs,
                             thresholds=gate_options.thresholds())
        run = runner.run()
        gate = evaluate_gate_options(store, run.run_id, gate_options, baseline_id)
        if request.write_report:
            from orchestrator.report import write_report

            report_path = write_report(store, run.run_id, report_path or DEFAULT_REPORTS_DIR / f"{run.run_id}.html",
                                       compare_run_id=baseline_id, thresholds=gate_options.thresholds())
        return BenchOutcome(run=run, report_path=report_path, db_url=store.safe_url, gate=gate,
                            gating=gate_options.gating)
    finally:
        if own_store:
            store.close()


def _check_writable(path: Path) -> Path:
    """Fail before measuring when the report cannot be written (not after ten minutes of work)."""
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
