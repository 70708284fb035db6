"""Fleet commands: `farm submit`, `farm worker`, `farm runs wait`, `farm queue ls|cancel`.

Thin shells over orchestrator.fleet: parse, call, print. `farm submit` takes `farm bench`'s own
options (the same parameters, from bench's signature), less those that only mean something to a
controller measuring by itself (--forks, --report, --resume, --accept-new-host-keys).
"""
from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import render, state
from orchestrator.cli.bench_cmd import bench, request_from_options
from orchestrator.cli.options import threshold_option

DB_HELP = "The fleet's PostgreSQL database (postgresql+psycopg://user@host/farm); FARM_DB."
RUN_HELP = "A run id, a unique prefix of one, `latest`, or `tag:NAME`."
_NOT_FOR_SUBMIT = ("forks", "accept_new_host_keys", "report", "no_report", "resume")

queue_app = typer.Typer(help="What the fleet is running and what waits; cancel a submitted run.",
                        no_args_is_help=True)


# --- farm submit ----------------------------------------------------------------------------


def submit(ctx: typer.Context, **options: Any) -> int:
    """Queue a benchmark on the fleet's workers (same options as farm bench); print its run id at once."""
    from orchestrator.fleet.submit import submit_run

    request = request_from_options(ctx, options)

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "variant_building":
            state.err.print(f"building {render.escape(info['model'])} / {render.escape(info['variant'])}",
                            style="dim", highlight=False)

    outcome = submit_run(request, on_event=on_event)
    queues = sorted({queue for _board, queue, _job in outcome.jobs})
    state.err.print(f"queued run {outcome.run_id}: {len(outcome.jobs)} board job(s) × {outcome.cells_per_board} "
                    f"cell(s) on queue(s) {render.escape(', '.join(queues))}; follow it with: farm runs wait "
                    f"{outcome.run_id}", highlight=False)
    for queue in outcome.unserved_queues:
        state.err.print(f"[yellow]no worker serves queue {render.escape(queue)} now[/yellow]: the run waits until one "
                        f"starts (farm worker --queue {render.escape(queue)})", highlight=False)
    typer.echo(outcome.run_id)  # stdout holds only the id: RUN=$(farm submit ...)
    return 0


def _submit_signature() -> None:
    """submit's parameters are bench's, less _NOT_FOR_SUBMIT (typer reads __signature__)."""
    signature = inspect.signature(bench, eval_str=True)
    submit.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name not in _NOT_FOR_SUBMIT],
        return_annotation=int)
    hints = typing.get_type_hints(bench)
    submit.__annotations__ = {name: hint for name, hint in hints.items() if name not in _NOT_FOR_SUBMIT}


_submit_signature()


# --- farm worker ----------------------------------------------------------------------------


def worker(
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help=DB_HELP),
    inventory: Optional[str] = typer.Option(None, "--inventory", "-i", envvar="FARM_INVENTORY",
                                            help="This worker's inventory: the boards it can reach, with its own keys."),
    queue: Optional[List[str]] = typer.Option(None, "--queue", "-q", help="A queue (site) to serve, repeatable. "
                                              "Default: the queues of every board in the inventory."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256, help="Boards measured at once."),
    name: Optional[str] = typer.Option(None, "--name", help="This worker's name in farm queue ls (default host:pid)."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", min=0.2, max=3600.0, help="Seconds between heartbeats and checks "
                                    "for dead workers' jobs."),
    stalled_after: float = typer.Option(60.0, "--stalled-after", min=1.0, max=86_400.0, help="A worker silent this many seconds "
                                        "is dead: its jobs go to another worker."),
    outage_wait: float = typer.Option(300.0, "--outage-wait", min=0.0, max=86_400.0, help="Seconds to keep reconnecting to a "
                                      "database that went away before exiting (6)."),
) -> int:
    """Measure the fleet's queued board jobs on the boards of this inventory, until Ctrl-C/SIGTERM."""
    import logging

    from orchestrator.fleet.worker import WorkerConfig, run_worker

    if not state.debug:  # farm says what matters (lost database, spooled results, failed jobs) in one line
        for noisy in ("procrastinate", "psycopg.pool"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    config = WorkerConfig(db_url=db or "", inventory=inventory, queues=list(queue or []), concurrency=concurrency,
                          name=name, heartbeat_s=heartbeat, stalled_after_s=stalled_after, outage_wait_s=outage_wait)
    if not db:
        from orchestrator.store import default_db_url

        config.db_url = default_db_url()
    run_worker(config, on_event=_worker_log)
    return 0


def _worker_log(kind: str, info: dict[str, Any]) -> None:
    esc = render.escape
    if kind == "worker_started":
        state.err.print(f"worker {esc(info['name'])}: queues {esc(', '.join(info['queues']))}; boards "
                        f"{esc(', '.join(info['boards']))}; {info['concurrency']} at once", highlight=False)
    elif kind == "job_started":
        state.err.print(f"{esc(info['run_id'])} {esc(info['board'])}: started (attempt {info['attempt']})",
                        highlight=False)
    elif kind == "cell_finished":
        row = info.get("row") or {}
        state.err.print(f"{esc(info['run_id'])} {esc(info['board'])}: {esc(info['model'])}/{esc(info['variant'])} ok "
                        f"p50 {row.get('latency_ms_p50') or 0:.3g} ms", highlight=False)
    elif kind == "cell_failed":
        state.err.print(f"{esc(info['run_id'])} {esc(info['board'])}: {esc(info['model'])}/{esc(info['variant'])} "
                        f"[red]failed[/red] {esc(str(info['kind']))}", highlight=False)
    elif kind == "job_done":
        ended = f"; run {info['run_status']}" if info.get("run_status") else ""
        state.err.print(f"{esc(info['run_id'])} {esc(info['board'])}: done{ended}", highlight=False)
    elif kind == "job_failed":
        state.err.print(f"{esc(info['run_id'])} {esc(info['board'])}: [red]job failed[/red] {esc(info['error'])}",
                        highlight=False)
    elif kind == "job_recovered":
        state.err.print(f"recovered job {info['job_id']} ({esc(str(info['board']))}) of a dead worker", highlight=False)
    elif kind == "result_spooled":
        state.err.print(f"[yellow]database away[/yellow]: result kept in {esc(info['path'])} "
                        f"({info['pending']} pending)", highlight=False)
    elif kind == "worker_disconnected":
        state.err.print(f"[yellow]lost the database[/yellow]: {esc(info['error'])}", highlight=False)
    elif kind == "worker_reconnecting":
        state.err.print(f"reconnecting in {info['delay_s']:.0f} s", style="dim")


# --- farm runs wait ---------------------------------------------------------------------------


def runs_wait(
    run_id: str = typer.Argument(..., help=RUN_HELP),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help=DB_HELP),
    timeout: float = typer.Option(86400.0, "--timeout", min=1.0, max=30 * 86_400.0, help="Give up after this many seconds (exit 4); "
                                  "the run goes on."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Compare with this run (overrides the submission's)."),
    baseline_optional: bool = typer.Option(False, "--baseline-optional", help="No baseline to be found is fine."),
    fail_on_regression: Optional[float] = threshold_option(
        "--fail-on-regression", help="Exit 5 on a regression of at least this percentage."),
    fail_on_memory_regression: Optional[float] = threshold_option(
        "--fail-on-memory-regression", help="The peak-memory threshold in percent."),
    fail_on_inconclusive: bool = typer.Option(False, "--fail-on-inconclusive", help="An inconclusive cell fails the gate."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML file when the run ends."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary when the run ends."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the run's HTML report here when it ends."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> int:
    """Follow a submitted run until it ends; exit as farm bench would have (0 ok, 4 failed, 5 regressed)."""
    from orchestrator.fleet.follow import wait_for_run
    from orchestrator.fleet.queue import require_postgresql
    from orchestrator.store import open_store

    overrides = {"baseline": baseline, "baseline_optional": baseline_optional, "fail_on_regression": fail_on_regression,
                 "fail_on_memory_regression": fail_on_memory_regression, "fail_on_inconclusive": fail_on_inconclusive,
                 "junit": None if junit is None else str(junit.expanduser().resolve()),
                 "markdown": None if markdown is None else str(markdown.expanduser().resolve())}
    seen: dict[str, tuple] = {}

    def on_progress(jobs, status: str) -> None:
        if quiet:
            return
        for job in jobs:
            view = (job.state, job.stored, job.current_cell, job.worker)
            if seen.get(job.board) == view:
                continue
            seen[job.board] = view
            doing = f", running {job.current_cell}" if job.state == "running" and job.current_cell else ""
            where = f" on {job.worker}" if job.worker and job.state == "running" else ""
            state.err.print(f"{render.escape(job.board)}: {job.state} {job.stored}/{job.cells} cells"
                            f"{render.escape(doing + where)}", highlight=False)

    with open_store(require_postgresql(db, "farm runs wait")) as store:
        outcome = wait_for_run(store, run_id, timeout_s=timeout, gate_overrides=overrides, on_progress=on_progress)
        report_path = None
        if report is not None and outcome.status != "cancelled":
            from orchestrator.report import write_report

            report_path = write_report(store, outcome.run_id, report)
        safe_url = store.safe_url
    state.out.print(f"run [bold]{outcome.run_id}[/bold] ({outcome.status})")
    if outcome.rows:
        state.out.print(render.summary_table(outcome.rows))
    for row in outcome.failed:
        state.err.print(f"[red]failed[/red] {render.escape(row['board'])} / {render.escape(row['model'])} / "
                        f"{render.escape(row['variant'])}: [bold]{row.get('error_kind')}[/bold] "
                        f"{render.escape(str(row.get('error_message')))}", highlight=False)
    for board, model, variant in outcome.missing:
        state.err.print(f"[red]not measured[/red] {render.escape(board)} / {render.escape(model)} / "
                        f"{render.escape(variant)} (its job ended without a result)", highlight=False)
    if outcome.gate is not None:
        state.out.print(render.escape(outcome.gate.summary_line()))
    if report_path is not None:
        state.out.print(f"report: {report_path}")
    state.out.print(f"database: {safe_url}", style="dim")
    return outcome.exit_status


# --- farm queue ---------------------------------------------------------------------------


@queue_app.command("ls")
def queue_ls(
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (jobs and workers) instead of tables."),
) -> None:
    """What is waiting and running, per board and per worker."""
    from orchestrator.fleet.control import queue_record, queue_view
    from orchestrator.fleet.queue import require_postgresql
    from orchestrator.store import open_store

    with open_store(require_postgresql(db, "farm queue ls"), read_only=True) as store:
        view = queue_view(store)
    if as_json:
        typer.echo(json.dumps(queue_record(view), indent=2, sort_keys=True))
        return
    if not view.jobs:
        state.err.print("nothing waiting or running")
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
        for column in ("board", "run", "state", "cells", "worker / wait", "queue"):
            table.add_column(column, no_wrap=column != "worker / wait", overflow="fold")
        for job in view.jobs:
            if job.state == "running":
                where = f"{job.worker or '?'}: {job.current_cell or 'starting'}"
            else:
                ahead = view.ahead.get((job.run_id, job.board), 0)
                where = f"{ahead} job(s) ahead on this board" if ahead else "next"
            table.add_row(render.escape(job.board), job.run_id, job.state, f"{job.stored}/{job.cells}",
                          render.escape(where), render.escape(job.queue))
        state.out.print(table)
    if view.workers:
        running: dict[str, int] = {}
        for job in view.jobs:
            if job.state == "running" and job.worker:
                running[job.worker] = running.get(job.worker, 0) + 1
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
        for column in ("worker", "queues", "running", "last seen (UTC)"):
            table.add_column(column, overflow="fold")
        for w in view.workers:
            table.add_row(render.escape(w.name), render.escape(", ".join(w.queues)),
                          f"{running.get(w.name, 0)}/{w.concurrency}", w.last_seen_at[:19].replace("T", " "))
        state.out.print(table)


@queue_app.command("cancel")
def queue_cancel(
    run_id: str = typer.Argument(..., help=RUN_HELP),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help=DB_HELP),
    timeout: float = typer.Option(120.0, "--timeout", min=0.0, max=86_400.0, help="Seconds to wait for running jobs to stop."),
) -> int:
    """Cancel a submitted run: waiting jobs never start, running ones stop; stored cells are kept."""
    from orchestrator.fleet.control import cancel_run
    from orchestrator.fleet.queue import require_postgresql
    from orchestrator.store import open_store

    with open_store(require_postgresql(db, "farm queue cancel")) as store:
        outcome = cancel_run(store, run_id, timeout_s=timeout)
    if outcome.already_ended:
        state.err.print(f"run {outcome.run_id} already ended ({outcome.status}); nothing to cancel")
        return 0
    parts = []
    if outcome.cancelled_waiting:
        parts.append(f"{len(outcome.cancelled_waiting)} waiting job(s) cancelled")
    if outcome.stopping_running:
        parts.append(f"{len(outcome.stopping_running)} running job(s) stopped")
    ended = outcome.status or "still stopping (farm queue ls shows it)"
    state.out.print(f"run {outcome.run_id}: {', '.join(parts) or 'cancel requested'}; {ended}")
    return 0


__all__ = ["queue_app", "runs_wait", "submit", "worker"]
