"""`farm report [RUN] [--baseline BASE]`: (re)write the HTML report of a stored run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import state
from orchestrator.cli.options import MAX_COUNT


def report(
    run_id: str = typer.Argument("latest", metavar="RUN", help="A run id, a unique prefix of one, `latest` or `tag:NAME`."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", metavar="RUN",
        help="Compare with this baseline run (id, prefix, `latest` or `tag:NAME`): change and verdict per matching cell."),
    compare: Optional[str] = typer.Option(None, "--compare", "-c", hidden=True, help="Deprecated: --baseline."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", metavar="PATH",
        help="HTML file to write (default: reports/<run id>.html, or <run id>-vs-<base>.html)."),
    history: int = typer.Option(30, "--history", min=0, max=MAX_COUNT, metavar="N", help="Runs the history charts go back (0: no history)."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help="Results database URL or SQLite path."),
) -> None:
    """Write the HTML report of a stored run, optionally compared with a baseline run."""
    from orchestrator.cli.bench_cmd import _deprecated_alias
    from orchestrator.request import DEFAULT_REPORTS_DIR
    from orchestrator.report import build_context, render_html, write_html
    from orchestrator.store import open_store

    baseline = _deprecated_alias(baseline, compare, "--compare/-c", "--baseline")
    from orchestrator.run_liveness import reap_abandoned_runs

    store = open_store(db, read_only=True)
    try:
        reap_abandoned_runs(store)
        resolved = store.resolve_run_id(run_id)
        base = store.resolve_run_id(baseline) if baseline is not None else None
        default_name = f"{resolved}.html" if base is None else f"{resolved}-vs-{base}.html"
        context = build_context(store, resolved, compare_run_id=base, history=history)
        path = write_html(render_html(context), output or DEFAULT_REPORTS_DIR / default_name)
    finally:
        store.close()
    if context["comparison"] is not None:
        state.out.print(context["comparison"].summary(), markup=False, soft_wrap=True)
    state.out.print(f"report: {path}", markup=False, soft_wrap=True)
