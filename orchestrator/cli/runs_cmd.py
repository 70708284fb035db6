"""`farm runs ...`: list, show and export stored runs."""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import render, state

runs_app = typer.Typer(help="List and export stored runs.", no_args_is_help=True)


class ExportFormat(str, enum.Enum):
    json = "json"
    csv = "csv"


@runs_app.command("ls")
def runs_ls(
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help="Results database URL or SQLite path."),
    limit: int = typer.Option(20, "--last", min=1, help="How many runs to show, newest first."),
) -> None:
    """List stored runs, newest first."""
    from orchestrator.store import open_store

    store = open_store(db)
    try:
        state.out.print(render.runs_table(store.list_runs(limit)))
    finally:
        store.close()


@runs_app.command("export")
def runs_export(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix of one, or `latest`."),
    fmt: ExportFormat = typer.Option(ExportFormat.json, "--format", help="json: a list of records; csv: one row per record."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help="Results database URL or SQLite path."),
) -> None:
    """Export one run: one record per board × model × variant (stable field names)."""
    from orchestrator.export import export_run
    from orchestrator.store import open_store

    store = open_store(db)
    try:
        text = export_run(store, run_id, fmt.value)
    finally:
        store.close()
    if output is None:
        typer.echo(text, nl=False)
    else:
        from orchestrator.errors import BadInputError

        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot write {output}: {exc.strerror or exc}") from exc
