"""`farm report RUN_ID`: (re)write the HTML report of a stored run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import state


def report(
    run_id: str = typer.Argument("latest", help="A run id, a unique prefix of one, or `latest`."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML file to write (default: reports/<run id>.html)."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help="Results database URL or SQLite path."),
) -> None:
    """Write the HTML report of a stored run."""
    from orchestrator.bench import DEFAULT_REPORTS_DIR
    from orchestrator.report import write_report
    from orchestrator.store import open_store

    store = open_store(db)
    try:
        resolved = store.resolve_run_id(run_id)
        path = write_report(store, resolved, output or DEFAULT_REPORTS_DIR / f"{resolved}.html")
    finally:
        store.close()
    state.out.print(f"report: {path}")
