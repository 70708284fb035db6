"""`farm runs ...`: list, show, export, tag and abandon stored runs."""
from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import typer
from rich.table import Table

from orchestrator.cli import render, state
from orchestrator.cli.layout import Column, fitted_table
from orchestrator.cli.options import MAX_COUNT, FarmCommand, FarmGroup

runs_app = typer.Typer(cls=FarmGroup, help="List, show, export, tag and abandon stored runs.", no_args_is_help=True)

DB_HELP = "Results database URL or SQLite path."
RUN_HELP = "A run id, a unique prefix of one, `latest`, or `tag:NAME`."
DB_OPTION = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help=DB_HELP)


class ExportFormat(str, enum.Enum):
    json = "json"
    csv = "csv"
    parquet = "parquet"


def _runs_table(found: list[Mapping[str, Any]]) -> Table:
    columns = [Column("run id"), Column("created (UTC)"), Column("status", priority=2), Column("jobs", "right", 3),
               Column("failed", "right", 1), Column("tags", wrap=True, priority=1, wrap_width=12)]
    rows = []
    for run in found:
        failed = str(run["failed"])
        rows.append([run["run_id"], run["created_at"][:16].replace("T", " "), run["status"], str(run["results"]),
                     f"[red]{failed}[/red]" if run["failed"] else failed,
                     render.escape(", ".join(run.get("tags") or []))])
    return fitted_table(state.out, columns, rows)


@runs_app.command("ls", cls=FarmCommand)
def runs_ls(
    board: Optional[str] = typer.Option(None, "--board", "-b", metavar="NAME", help="Only runs that measured this board."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME", help="Only runs that measured this model (name)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="WHEN", help="Only runs created since: YYYY-MM-DD, an ISO time, or an age (7d, 36h)."),
    limit: int = typer.Option(20, "--last", min=1, max=MAX_COUNT, metavar="N", help="How many runs to show, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """List stored runs, newest first."""
    from orchestrator.store import open_store

    from orchestrator.run_liveness import reap_abandoned_runs

    with open_store(db, read_only=True) as store:
        reap_abandoned_runs(store)  # a run whose controller died here shows as abandoned, not running
        found = store.list_runs(limit, board=board, model=model, since=since)
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    if not found:
        state.err.print("no runs match" if (board or model or since) else "no runs stored yet: run `farm bench`")
        return
    state.out.print(_runs_table(found))


@runs_app.command("show", cls=FarmCommand)
def runs_show(
    run_id: str = typer.Argument("latest", metavar="RUN", help=RUN_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run and its results (export fields) as JSON."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Show one run: status, settings, the controller it ran on, and its results."""
    from orchestrator.store import open_store

    from orchestrator.run_liveness import reap_abandoned_runs

    with open_store(db, read_only=True) as store:
        reap_abandoned_runs(store)
        run = store.get_run(run_id)
        if as_json:
            typer.echo(json.dumps({"run": run, "results": store.export_records(run["run_id"])}, indent=2, default=str))
            return
        found = store.results(run["run_id"])
        samples = store.latency_samples([r["result_id"] for r in found if r["status"] == "ok"])
    esc = render.escape
    state.out.print(f"run [bold]{run['run_id']}[/bold]  {run['status']}"
                    + (f"  tags: {esc(', '.join(run['tags']))}" if run["tags"] else ""))
    times = f"created {run['created_at'][:19].replace('T', ' ')} UTC"
    if run.get("finished_at"):
        times += f", ended {run['finished_at'][:19].replace('T', ' ')}"
    if run.get("resumed_at"):
        times += f", resumed {run['resumed_at'][:19].replace('T', ' ')}"
    state.out.print(times + f", farm {esc(run['farm_version'])}")
    controller = run["controller"]
    state.out.print("controller: " + esc(", ".join(
        f"{key} {controller[key]}" for key in ("hostname", "platform", "python") if controller.get(key))))
    if controller.get("argv"):
        state.out.print("command: farm " + esc(" ".join(str(a) for a in controller["argv"])))
    settings = {k: v for k, v in run["settings"].items() if v not in (None, [], (), "")}
    state.out.print("settings: " + esc(", ".join(f"{k}={_short(v)}" for k, v in sorted(settings.items()))))
    state.out.print(render.summary_table(found, lambda rid: samples.get(rid) or [], console=state.out))


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


@runs_app.command("export", cls=FarmCommand)
def runs_export(
    run_id: str = typer.Argument("latest", metavar="RUN", help=RUN_HELP),
    fmt: ExportFormat = typer.Option(ExportFormat.json, "--format", help="json: a list of records; csv: one row per record; parquet: a typed table (needs pyarrow)."),
    samples: bool = typer.Option(False, "--samples", help="Export the raw per-inference latencies instead, one row each: run_id, board, model, variant, sample, latency_ms, result_id, sweep."),
    ops: bool = typer.Option(False, "--ops", help="Export the operator profiles instead (farm bench --profile), one row per result × operator type × provider: op_type, provider, nodes, op_ms (per inference), op_share."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="PATH", help="Write to this file instead of stdout."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Export one run (default: the latest): one record per board × model × variant (stable field
    names), or with --samples every measured latency, or with --ops every operator profile."""
    from orchestrator.errors import BadInputError, UsageError
    from orchestrator.export import export_ops_bytes, export_run, export_run_bytes, export_samples_bytes
    from orchestrator.store import open_store

    if fmt is ExportFormat.parquet and output is None and sys.stdout.isatty():
        raise UsageError("parquet is binary: give -o FILE (or redirect stdout to a file)")
    if samples and ops:
        raise UsageError("--samples and --ops are two different exports: give one")
    with open_store(db, read_only=True) as store:
        if samples:
            data = export_samples_bytes(store, run_id, fmt.value)
            text = None
        elif ops:
            data = export_ops_bytes(store, run_id, fmt.value)
            text = None
        elif fmt is ExportFormat.parquet or output is not None:
            data = export_run_bytes(store, run_id, fmt.value)
            text = None
        else:
            text = export_run(store, run_id, fmt.value)
    if text is not None:
        typer.echo(text, nl=False)
        return
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise BadInputError(f"cannot write {output}: {exc.strerror or exc}") from exc


@runs_app.command("tag", cls=FarmCommand)
def runs_tag(
    run_id: str = typer.Argument(..., metavar="RUN", help=RUN_HELP + " With --delete: the tag name."),
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The name, e.g. release-1.2 (letters, digits, . _ + -)."),
    delete: bool = typer.Option(False, "--delete", help="Remove the tag given as the first argument."),
    delete_short: bool = typer.Option(False, "-d", hidden=True, help="Deprecated: --delete."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Name a run (use it later as `tag:NAME`). A name names one run: reusing it moves it."""
    from orchestrator.errors import UsageError
    from orchestrator.store import open_store

    if delete_short:  # -d means --dataset elsewhere: the short form of --delete goes away
        state.err.print("farm: note: -d is deprecated here, use --delete", highlight=False)
        delete = True
    with open_store(db) as store:
        if delete:
            if name is not None:
                raise UsageError("farm runs tag --delete NAME takes only the tag name")
            previous = store.untag(run_id)
            state.out.print(f"removed tag {render.escape(run_id)} (was on {previous})")
            return
        if name is None:
            raise UsageError("give the run and the name: farm runs tag RUN_ID NAME")
        previous = store.tag_run(run_id, name)
        target = store.resolve_run_id(f"tag:{name}")
    moved = f" (moved from {previous})" if previous else ""
    state.out.print(f"tagged {target} as {render.escape(name)}{moved}")


@runs_app.command("abandon", cls=FarmCommand)
def runs_abandon(
    run_id: str = typer.Argument(..., metavar="RUN", help=RUN_HELP),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Mark a run `abandoned` whose controller is gone but still shows as running (one on another
    machine, which farm cannot see: a killed CI job); its results stay and `farm bench --resume RUN`
    continues it. A controller that died on this machine is found without this."""
    from orchestrator.run_liveness import abandon_run
    from orchestrator.store import open_store

    with open_store(db, read_only=True) as store:
        abandoned = abandon_run(store, run_id)
    state.out.print(f"run {abandoned} marked abandoned: `farm bench --resume {abandoned}` continues it")
