"""`farm history --board B --model M`: one board × model across runs, oldest first."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import render, state


def history(
    board: str = typer.Option(..., "--board", "-b", metavar="NAME", help="Board name."),
    model: str = typer.Option(..., "--model", "-m", metavar="NAME", help="Model name (the suite's name or the file stem)."),
    variant: Optional[str] = typer.Option(None, "--variant", "-V", metavar="NAME", help="Only this variant (default: all)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="WHEN", help="Only results since: YYYY-MM-DD, an ISO time, or an age (30d)."),
    last: int = typer.Option(30, "--last", min=1, metavar="N", help="Show the newest N results (oldest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help="Results database URL or SQLite path."),
) -> None:
    """Median latency and peak memory of one board × model over runs, oldest → newest."""
    from orchestrator.store import open_store

    with open_store(db) as store:
        entries = store.history(board, model, variant, since=since, last=last)
    if as_json:
        typer.echo(json.dumps(entries, indent=2, default=str))
        return
    if not entries:
        what = f"{board} / {model}" + (f" / {variant}" if variant else "")
        state.err.print(f"no results for {render.escape(what)} (see `farm runs ls --board {render.escape(board)}`)")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  title=f"{render.escape(board)} / {render.escape(model)}" + (f" / {render.escape(variant)}" if variant else ""))
    # the run id carries the date and time (rYYYYMMDD-HHMMSS-...): no separate date column
    columns = [("run id", "left")]
    if variant is None:
        columns.append(("variant", "left"))
    columns += [("p50 ms", "right"), ("Δ prev", "right"), ("peak MiB", "right"), ("weights", "left")]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name != "variant", overflow="fold")
    previous: dict[str, float] = {}
    for entry in entries:
        row = [entry["run_id"]]
        if variant is None:
            row.append(render.escape(entry["variant"]))
        if entry["status"] != "ok":
            row += [f"[red]{render.escape(str(entry.get('error_kind') or 'failed'))}[/red]", "", "", ""]
        else:
            p50 = entry["latency_ms_p50"]
            before = previous.get(entry["variant"])
            delta = f"{(p50 - before) * 100.0 / before:+.1f}%" if before and p50 is not None else ""
            if p50 is not None:
                previous[entry["variant"]] = p50
            rss = entry["peak_rss_bytes"]
            row += ["—" if p50 is None else f"{p50:,.3f}", delta,
                    "—" if rss is None else f"{rss / 1048576:,.1f}", (entry["model_sha256"] or "")[:7]]
        table.add_row(*row)
    state.out.print(table)
