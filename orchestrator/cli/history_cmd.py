"""`farm history --board B --model M`: one board × model across runs, oldest first."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import render, state
from orchestrator.cli.options import MAX_COUNT


def history(
    board: str = typer.Option(..., "--board", "-b", metavar="NAME", help="Board name."),
    model: str = typer.Option(..., "--model", "-m", metavar="NAME", help="Model name (the suite's name or the file stem)."),
    variant: Optional[str] = typer.Option(None, "--variant", "-V", metavar="NAME", help="Only this variant (default: all)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="WHEN", help="Only results since: YYYY-MM-DD, an ISO time, or an age (30d)."),
    last: int = typer.Option(30, "--last", min=1, max=MAX_COUNT, metavar="N", help="Show the newest N results (oldest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help="Results database URL or SQLite path."),
) -> None:
    """Median latency and peak memory of one board × model over runs, oldest → newest, each
    judged against the run before it by the comparison engine (the verdict farm compare gives)."""
    from orchestrator.compare import compare_history, history_records
    from orchestrator.record import identity_text, input_shapes_of
    from orchestrator.store import open_store

    with open_store(db, read_only=True) as store:
        entries = store.cell_history(board, model, variant, since=since, last_results=last)
        records = history_records(store, entries)
        verdicts = compare_history(store, entries, records=records)
    shapes = {result_id: input_shapes_of(record) for result_id, record in records.items()}
    # the input shapes name a series only where they differ (a --shape sweep's points)
    several_shapes = len(set(shapes.values()) - {""}) > 1
    series_of = {entry.result_id: ", ".join(part for part in (
        identity_text(entry.identity), shapes.get(entry.result_id, "") if several_shapes else "") if part)
        for entry in entries}
    if as_json:
        run_of = {entry.result_id: entry.run_id for entry in entries}
        rows = []
        for entry in entries:
            row = entry.history_row()
            cell = verdicts.get(entry.result_id)
            row["series"] = series_of[entry.result_id]
            row["vs_previous"] = None if cell is None else {
                "verdict": cell.verdict, "base_run_id": run_of.get(cell.base_result_id), "reason": cell.reason,
                "change_pct": None if cell.latency is None else cell.latency.change_pct}
            rows.append(row)
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not entries:
        what = f"{board} / {model}" + (f" / {variant}" if variant else "")
        state.err.print(f"no results for {render.escape(what)} in {render.escape(store.safe_url)} "
                        f"(see `farm runs ls --board {render.escape(board)}`)")
        return
    several = len({(e.variant, series_of[e.result_id]) for e in entries}) > len({e.variant for e in entries})
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  title=f"{render.escape(board)} / {render.escape(model)}" + (f" / {render.escape(variant)}" if variant else ""))
    # the run id carries the date and time (rYYYYMMDD-HHMMSS-...): no separate date column
    columns = [("run id", "left")]
    if variant is None:
        columns.append(("variant", "left"))
    if several:
        columns.append(("ran on", "left"))
    weights_change = len({e.model_sha256 for e in entries}) > 1
    columns += [("p50 ms", "right"), ("Δ prev", "right"), ("verdict", "left"), ("peak MiB", "right")]
    if weights_change:
        columns.append(("weights", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name not in ("variant", "ran on"), overflow="fold")
    for entry in entries:
        row = [entry.run_id]
        if variant is None:
            row.append(render.escape(entry.variant))
        if several:
            row.append(render.escape(series_of[entry.result_id]))
        if entry.status != "ok":
            row += [f"[red]{render.escape(str(entry.error_kind or 'failed'))}[/red]", "", "", ""]
        else:
            cell = verdicts.get(entry.result_id)
            p50, rss = entry.latency_ms_p50, entry.peak_rss_bytes
            delta = f"{cell.latency.change_pct:+.1f}%" if cell is not None and cell.latency is not None else ""
            row += ["—" if p50 is None else f"{p50:,.3f}", delta, "" if cell is None else render.verdict_markup(cell.verdict),
                    "—" if rss is None else f"{rss / 1048576:,.1f}"]
        if weights_change:
            row.append((entry.model_sha256 or "")[:7])
        table.add_row(*row)
    state.out.print(table)
    if several:
        state.out.print("[dim]a series per variant and what it ran on: each run is judged against the one before "
                        "it on the same runtime, precision, batch, threads and input shapes[/dim]")
