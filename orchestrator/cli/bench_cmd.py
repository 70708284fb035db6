"""`farm bench`: parse options, build the plan, run it with a progress display, print a summary."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Optional

import typer

from orchestrator.cli import render, state
from orchestrator.settings import MAX_FORKS, flag_of
from orchestrator.cli.options import (
    RESULTS_PANEL,
    VARIANTS_PANEL,
    WHAT_PANEL,
    WHERE_PANEL,
    setting_of_parameter,
    setting_option,
    settings_from_options,
    sweep_option,
    threshold_option,
)

VARIANTS_HELP = ("Comma-separated: fp32, optimized, fp16, int8-dynamic, int8-static, prune-l1:AMOUNT, "
                 "prune-l1-layerwise:AMOUNT, openvino-ir, openvino-ir-fp16 (the last two run on OpenVINO).")

if TYPE_CHECKING:
    from orchestrator.request import BenchRequest


# bench's parameter name -> the BenchRequest / BenchSettings field it sets (what --resume checks):
# the request's own options, then every setting's (from BenchSettings' flags, none left out)
_FIELD_OF_OPTION = {
    "model": "model_paths", "variants": "variants", "dataset": "datasets", "detection": "detection",
    "calibration": "calibration", "inventory": "inventory", "limit": "limit", "suite": "suite",
    "baseline": "baseline", "fail_on_regression": "fail_on_regression",
    "fail_on_memory_regression": "fail_on_memory_regression", "fail_on_inconclusive": "fail_on_inconclusive",
    "baseline_optional": "baseline_optional",
    **setting_of_parameter(),
}


def bench(
    ctx: typer.Context,
    model: Optional[List[Path]] = typer.Option(
        None, "--model", "-m", metavar="PATH", rich_help_panel=WHAT_PANEL,
        help="ONNX model file (repeatable). Default: the bundled demo models."),
    suite: Optional[Path] = typer.Option(
        None, "--suite", metavar="PATH", rich_help_panel=WHAT_PANEL,
        help="A suite file: models, datasets, variants, boards, settings, baseline, thresholds."),
    resume: Optional[str] = typer.Option(
        None, "--resume", metavar="RUN", rich_help_panel=WHAT_PANEL,
        help="Measure only the cells of this run (id, prefix, latest, tag:NAME) that have no result yet."),
    shape: Optional[List[str]] = sweep_option("shapes"),
    variants: str = typer.Option("fp32", "--variants", "-V", metavar="LIST", rich_help_panel=VARIANTS_PANEL,
                                 help=VARIANTS_HELP),
    dataset: Optional[List[str]] = typer.Option(
        None, "--dataset", "-d", metavar="[MODEL=]PATH", rich_help_panel=VARIANTS_PANEL,
        help="Labelled data for accuracy: an .npz (classification) or a COCO folder (detection)."),
    detection: Optional[List[str]] = typer.Option(
        None, "--detection", metavar="[MODEL=]K=V,...", rich_help_panel=VARIANTS_PANEL,
        help="How a detector reads its COCO dataset: layout=auto|yolov5|yolov8|yolox, decoded=true|false, "
             "pixel-max=1|255, letterbox=center|top-left|stretch, channels=RGB|BGR, pad=114, postprocess=MOD:FUNC."),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration", metavar="PATH", rich_help_panel=VARIANTS_PANEL,
        help="Calibration inputs (.npz with `inputs`) for int8-static; default: the model's dataset."),
    runs: int = setting_option("min_runs", "-n"),
    min_seconds: float = setting_option("min_seconds"),
    max_seconds: float = setting_option("max_seconds"),
    warmup: int = setting_option("warmup"),
    repeats: int = setting_option("repeats"),
    threads: Optional[str] = sweep_option("threads", "-t"),
    batch: Optional[str] = sweep_option("batch"),
    runtime: Optional[str] = sweep_option("runtime"),
    providers: Optional[List[str]] = sweep_option("providers"),
    provider_options: Optional[str] = setting_option("provider_options"),
    strict: bool = setting_option("strict"),
    cpu_arena: bool = setting_option("cpu_arena"),
    sample_interval: float = setting_option("sample_interval_s"),
    cooldown: float = setting_option("cooldown_s"),
    cooldown_below: Optional[float] = setting_option("cooldown_below_c"),
    idle_power: float = setting_option("idle_power_s"),
    profile: bool = setting_option("profile"),
    profile_runs: int = setting_option("profile_runs"),
    profile_max_seconds: float = setting_option("profile_max_seconds"),
    inventory: Optional[str] = typer.Option(
        None, "--inventory", "-i", envvar="FARM_INVENTORY", metavar="PATH", rich_help_panel=WHERE_PANEL,
        help="Inventory YAML (default: the built-in local board)."),
    limit: Optional[str] = typer.Option(
        None, "--limit", "-l", metavar="PATTERN", rich_help_panel=WHERE_PANEL,
        help="Boards: names, groups, globs, tag:key=value; comma-separated; !pattern excludes."),
    forks: int = typer.Option(8, "--forks", "-f", min=1, max=MAX_FORKS, metavar="N", rich_help_panel=WHERE_PANEL,
                              help="Boards benchmarked in parallel."),
    lease_wait: float = setting_option("lease_wait_s"),
    lease_ttl: float = setting_option("lease_ttl_s"),
    accept_new_host_keys: bool = typer.Option(
        False, "--accept-new-host-keys", rich_help_panel=WHERE_PANEL,
        help="Accept (and record) host keys not yet in known_hosts. Changed keys are always refused."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", rich_help_panel=RESULTS_PANEL,
                                     help="Results database: SQLAlchemy URL or SQLite file path."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", metavar="PATH", rich_help_panel=RESULTS_PANEL,
        help="Where to write the HTML report (default: reports/<run id>.html)."),
    report_alias: Optional[Path] = typer.Option(None, "--report", hidden=True, help="Deprecated: --output."),
    no_report: bool = typer.Option(False, "--no-report", rich_help_panel=RESULTS_PANEL,
                                   help="Do not write an HTML report."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=RESULTS_PANEL,
                                 help="Print the run and its results as JSON on stdout (progress stays on stderr)."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", metavar="RUN", rich_help_panel=RESULTS_PANEL,
        help="Compare with this run: an id, latest (the newest other run with common cells) or tag:NAME."),
    fail_on_regression: Optional[float] = threshold_option(
        "--fail-on-regression", rich_help_panel=RESULTS_PANEL,
        help="Exit 5 when a cell's median latency (or peak memory) regressed by at least PCT percent "
             "against the baseline."),
    paired: Optional[bool] = typer.Option(
        None, "--paired/--no-paired", rich_help_panel=RESULTS_PANEL, show_default=False,
        help="Measure the baseline's own model files again beside the new ones, interleaved, and judge the "
             "per-round ratios (default: whenever the baseline's files are still in the cache and differ)."),
    baseline_optional: bool = typer.Option(
        False, "--baseline-optional", rich_help_panel=RESULTS_PANEL,
        help="No baseline to be found (a first run) is fine; without it that is an error (exit 3)."),
    fail_on_memory_regression: Optional[float] = threshold_option(
        "--fail-on-memory-regression", rich_help_panel=RESULTS_PANEL,
        help="The peak-memory threshold in percent (default: the suite's, else --fail-on-regression's)."),
    fail_on_inconclusive: bool = typer.Option(
        False, "--fail-on-inconclusive", rich_help_panel=RESULTS_PANEL,
        help="An inconclusive cell (the data cannot bound the change) fails the gate too (exit 5); by default "
             "it is reported and skipped."),
    junit: Optional[Path] = typer.Option(None, "--junit", metavar="PATH", rich_help_panel=RESULTS_PANEL,
                                         help="Write JUnit XML: one test case per board × model × variant."),
    markdown: Optional[Path] = typer.Option(
        None, "--markdown", metavar="PATH", rich_help_panel=RESULTS_PANEL,
        help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)."),
) -> int:
    """Benchmark models on boards, store the results, print a summary and write an HTML report."""
    from orchestrator.request import run_bench

    output = _deprecated_alias(output, report_alias, "--report", "-o/--output")
    request = request_from_options(ctx, {**locals(), "report": output})
    with render.BenchProgress(state.err) as progress:
        try:
            outcome = run_bench(request, on_event=progress.on_event)
        except KeyboardInterrupt:
            if progress.run_id:
                state.err.print(f"run {progress.run_id} interrupted; finish it with: farm bench "
                                f"--resume {progress.run_id}")
            raise
    rows = [{**o.row, "result_id": o.result_id} for o in outcome.run.outcomes]
    if as_json:
        typer.echo(json.dumps(_outcome_json(outcome, db), indent=2, default=str))
        return outcome.exit_status
    state.out.print(f"run [bold]{outcome.run.run_id}[/bold] ({outcome.run.status})")
    state.out.print(render.summary_table(rows, _samples_reader(db, rows), console=state.out))
    for failure in outcome.run.failed:
        state.err.print(
            f"[red]failed[/red] {render.escape(failure.board)} / {render.escape(failure.model)} / "
            f"{render.escape(failure.variant)}: [bold]{failure.row.get('error_kind')}[/bold] "
            f"{render.escape(str(failure.row.get('error_message')))}",
            highlight=False,
        )
    for job in outcome.run.outcomes:
        export = (job.row.get("details") or {}).get("export") or {}
        if job.ok and export.get("provider_fallback"):
            requested = ((job.row.get("details") or {}).get("providers_requested") or ["?"])[0]
            state.err.print(
                f"[yellow]fallback[/yellow] {render.escape(job.board)} / {render.escape(job.model)} / "
                f"{render.escape(job.variant)}: asked for {render.escape(requested)}, ran on "
                f"{render.escape(str(export.get('provider')))} (use --strict to make this a failure)",
                highlight=False,
            )
    if outcome.gate is not None:
        state.out.print(render.escape(outcome.gate.summary_line()))
    if outcome.report_path is not None:
        state.out.print(f"report: {outcome.report_path}", markup=False, soft_wrap=True)
    state.out.print(f"database: {outcome.db_url}", style="dim", markup=False, soft_wrap=True)
    return outcome.exit_status


def _first(values: Any) -> Any:
    return values[0] if values else None


def _sweep_lists(threads: str | None, batch: str | None, runtime: str | None, providers: list[str] | None):
    """The sweepable options' lists (orchestrator.sweep); a malformed list is a usage error
    naming its option."""
    from orchestrator.sweep import Sweep, parse_int_list, parse_name_list

    def parsed(parse: Any, text: str | None, field: str) -> tuple:
        if text is None:
            return ()
        try:
            return parse(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=flag_of(field)) from None

    provider_lists = tuple(parsed(parse_name_list, text, "providers") for text in providers or [])
    return Sweep(parsed(parse_int_list, threads, "threads"), parsed(parse_int_list, batch, "batch"),
                 parsed(parse_name_list, runtime, "runtime"), provider_lists)


def _checked_sweep(sweep: Any, settings: Any) -> Any:
    """Every swept value checked as BenchSettings checks one (bounds, runtime names)."""
    from orchestrator.sweep import SweepValueError

    try:
        return sweep.checked(settings)
    except SweepValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag_of(exc.field)) from None


def _shape_values(shape: list[str] | None) -> list[str] | None:
    """--shape values, a comma-separated list of one input's values split into one value each."""
    from orchestrator.sweep import split_shape_values

    if not shape:
        return None
    try:
        return split_shape_values(shape)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shape") from None


def _deprecated_alias(value: Any, alias_value: Any, alias: str, name: str) -> Any:
    """The value of an option given under its old name, with a one-line deprecation note."""
    if alias_value is None:
        return value
    from orchestrator.errors import UsageError

    if value is not None:
        raise UsageError(f"{alias} is the old name of {name}: give only {name}")
    state.err.print(f"farm: note: {alias} is deprecated, use {name}", highlight=False)
    return alias_value


def _samples_reader(db: str | None, rows: list[dict[str, Any]]):
    """Raw latencies of the run's ok results (for the summary's verdicts vs fp32), read once."""
    from orchestrator.errors import StoreError
    from orchestrator.store import open_store

    ids = [r["result_id"] for r in rows if r.get("status") == "ok" and r.get("result_id") is not None]
    if not ids:
        return None
    try:
        with open_store(db) as store:
            samples = store.latency_samples(ids)
    except StoreError:
        return None  # the summary then shows changes without verdicts
    return lambda result_id: samples.get(result_id) or []


def _outcome_json(outcome: Any, db: str | None) -> dict[str, Any]:
    from orchestrator.store import open_store

    with open_store(db) as store:
        results = store.export_records(outcome.run.run_id)
    gate = outcome.gate
    return {
        "run_id": outcome.run.run_id,
        "status": outcome.run.status,
        "exit_status": int(outcome.exit_status),
        "report": None if outcome.report_path is None else str(outcome.report_path),
        "database": outcome.db_url,
        "gate": None if gate is None else gate.summary_line(),
        "results": results,
    }


def request_from_options(ctx: typer.Context, options: Mapping[str, Any]) -> "BenchRequest":
    """The BenchRequest a `farm bench` command line asks for (`farm submit` takes the same options;
    those it lacks, such as --report, take bench's defaults)."""
    from orchestrator.request import BenchRequest

    o = options
    sweep = _sweep_lists(o["threads"], o["batch"], o["runtime"], o["providers"])
    values = {field: o[option] for option, field in setting_of_parameter().items()}
    # the sweepable options hold lists: the settings take their first value (the sweep the rest)
    values.update(threads=_first(sweep.threads), batch=_first(sweep.batch), runtime=_first(sweep.runtimes),
                  providers=_first(sweep.providers), shapes=_shape_values(o["shape"]))
    settings = settings_from_options(**values)
    sweep = _checked_sweep(sweep, settings)
    explicit = frozenset(field for option, field in _FIELD_OF_OPTION.items()
                         if getattr(ctx.get_parameter_source(option), "name", None) == "COMMANDLINE")
    return BenchRequest(
        explicit=explicit,
        model_paths=list(o["model"] or []), settings=settings, sweep=sweep, inventory=o["inventory"], limit=o["limit"],
        forks=o.get("forks", 8), accept_new_host_keys=o.get("accept_new_host_keys", False), db_url=o["db"],
        report_path=o.get("report"), write_report=not o.get("no_report", False), suite=o["suite"],
        resume=o.get("resume"), baseline=o["baseline"], fail_on_regression=o["fail_on_regression"], junit=o["junit"],
        fail_on_memory_regression=o["fail_on_memory_regression"], fail_on_inconclusive=o["fail_on_inconclusive"],
        baseline_optional=o["baseline_optional"], paired=o.get("paired"), markdown=o["markdown"],
        variants=[v for v in o["variants"].split(",") if v.strip()], datasets=list(o["dataset"] or []),
        detection=list(o["detection"] or []), calibration=o["calibration"],
    )
