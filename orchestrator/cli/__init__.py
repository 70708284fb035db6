"""The `farm` command line: a thin typer shell over the core.

Commands parse options, call core functions, and render with rich. Errors become exit codes
in ONE place (`main`), from the table in orchestrator.errors.ExitStatus.
"""
from __future__ import annotations

import logging
import sys
import traceback

import typer

import orchestrator
from orchestrator.cli import state
from orchestrator.cli.bench_cmd import bench
from orchestrator.cli.compare_cmd import compare
from orchestrator.cli.history_cmd import history
from orchestrator.cli.compress_cmd import compress
from orchestrator.cli.fleet_cmd import queue_app, runs_wait, submit, worker
from orchestrator.cli.inventory_cmd import inventory_app
from orchestrator.cli.ops_cmd import ops
from orchestrator.cli.options import FarmCommand, FarmGroup
from orchestrator.cli.report_cmd import report
from orchestrator.cli.runs_cmd import runs_app
from orchestrator.errors import ExitStatus, FarmError

app = typer.Typer(
    name="farm",
    cls=FarmGroup,
    help="Benchmark ML models across a farm of edge boards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"farm {orchestrator.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    state.debug = debug
    # libraries (onnxruntime.quantization) log advice through the root logger; show it with --debug
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.ERROR)


app.command(help=bench.__doc__, cls=FarmCommand)(bench)
app.command(help=report.__doc__, cls=FarmCommand)(report)
app.command(help=compress.__doc__, cls=FarmCommand)(compress)
app.command(help=compare.__doc__, cls=FarmCommand)(compare)
app.command(help=history.__doc__, cls=FarmCommand)(history)
app.command(help=ops.__doc__, cls=FarmCommand)(ops)
app.add_typer(runs_app, name="runs")
app.add_typer(inventory_app, name="inventory")
# fleet mode (orchestrator.fleet): queue runs on PostgreSQL, workers next to the boards measure them
app.command(help=submit.__doc__)(submit)
app.command(help=worker.__doc__)(worker)
app.add_typer(queue_app, name="queue")
runs_app.command("wait", help=runs_wait.__doc__)(runs_wait)


def _register_optional() -> None:
    """Sub-apps that live in their own modules (added as the product grows)."""
    try:
        from orchestrator.cli.lab_cmd import lab_app
    except ImportError:
        return
    app.add_typer(lab_app, name="lab")


_register_optional()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `farm` console script: run the app, map every error to an exit code."""
    args = sys.argv[1:] if argv is None else argv
    _sigterm_interrupts()
    try:
        result = app(args=args, prog_name="farm", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        state.err.print("[red]farm: interrupted[/red]")
        return int(ExitStatus.INTERRUPTED)
    except typer.TyperException as exc:  # bad command line: typer prints usage and the problem
        exc.show()
        return int(ExitStatus.USAGE)
    except FarmError as exc:
        if state.debug:
            traceback.print_exc()
        state.err.print(f"[red]farm: error:[/red] {_escape(str(exc))}", highlight=False)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        state.err.print("[red]farm: interrupted[/red] (finished results are stored)")
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:  # the single place that turns a bug into a message
        if state.debug:
            traceback.print_exc()
        state.err.print(
            f"[red]farm: internal error:[/red] {_escape(type(exc).__name__)}: {_escape(str(exc))} "
            "(run with --debug for the traceback)",
            highlight=False,
        )
        return int(ExitStatus.ERROR)
    if result == ExitStatus.INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130) by itself
        state.err.print("[red]farm: interrupted[/red] (finished results are stored)")
    return int(result if isinstance(result, int) else ExitStatus.OK)


def _sigterm_interrupts() -> None:
    """SIGTERM (CI cancelling a job, `kill`) stops farm like Ctrl-C: jobs on boards are stopped,
    finished results kept, the run marked interrupted."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)



def run() -> None:
    """The `farm` console script."""
    sys.exit(main())
