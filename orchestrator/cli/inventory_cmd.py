"""`farm inventory ls|check|provision`: what the inventory holds, what each board really is, and
making a board ready (a venv with numpy + a runtime, installed offline from wheels farm pushes)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import state
from orchestrator.cli.layout import Column, fitted_table
from orchestrator.cli.options import FarmCommand, FarmGroup
from orchestrator.cli.render import escape
from orchestrator.errors import ExitStatus
from orchestrator.runtimes import DEFAULT_RUNTIME, resolve_runtime, runtime_names_text
from orchestrator.settings import MAX_FORKS

inventory_app = typer.Typer(cls=FarmGroup, help="Show the boards of an inventory, check them, provision them.", no_args_is_help=True)

INVENTORY_OPTION = typer.Option(None, "--inventory", "-i", envvar="FARM_INVENTORY", metavar="PATH", help="Inventory YAML (default: only the built-in local board).")
LIMIT_OPTION = typer.Option(None, "--limit", "-l", metavar="PATTERN", help="Boards to use: names, groups, globs, tag:key=value; comma-separated; !pattern excludes.")


@inventory_app.command("ls", cls=FarmCommand)
def inventory_ls(
    inventory: Optional[str] = INVENTORY_OPTION,
    limit: Optional[str] = LIMIT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the boards as JSON."),
) -> None:
    """List boards with their address, groups and tags."""
    from orchestrator.request import resolve_boards

    boards = resolve_boards(inventory, limit, accept_new_host_keys=False)
    rows, payload = [], []
    for board in boards:
        if board.transport == "local":
            address = "local"
        else:
            address = f"{board.user + '@' if board.user else ''}{board.host or board.name}{':' + str(board.port) if board.port else ''}"
        payload.append({"board": board.name, "address": address, "groups": list(board.groups), "tags": dict(board.tags),
                        "runtime": board.tags.get("runtime")})
        tags = ", ".join(f"{k}={v}" for k, v in sorted(board.tags.items()))
        rows.append([escape(board.name), escape(address), escape(", ".join(board.groups)), escape(tags)])
    if as_json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    columns = [Column("board"), Column("address", priority=1), Column("groups", wrap=True, priority=2),
               Column("tags", wrap=True, priority=3)]
    state.out.print(fitted_table(state.out, columns, rows))


@inventory_app.command("check", cls=FarmCommand)
def inventory_check(
    inventory: Optional[str] = INVENTORY_OPTION,
    limit: Optional[str] = LIMIT_OPTION,
    forks: int = typer.Option(8, "--forks", "-f", min=1, max=MAX_FORKS, help="Boards checked in parallel."),
    accept_new_host_keys: bool = typer.Option(False, "--accept-new-host-keys", help="Accept (and record) unknown host keys. Changed keys are always refused."),
    as_json: bool = typer.Option(False, "--json", help="Print the facts as JSON."),
) -> int:
    """Connect to every selected board in parallel and show its facts, or why it failed."""
    from orchestrator.request import resolve_boards
    from orchestrator.board_check import check_boards

    checks = check_boards(resolve_boards(inventory, limit, accept_new_host_keys), forks=forks)
    if as_json:
        payload = [{"board": c.board, "ok": c.ok, "facts": c.facts, "error_kind": c.error_kind, "error": c.error} for c in checks]
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        state.out.print(facts_table(checks))
        from orchestrator.lease import describe_lease

        for check in checks:
            if check.ok and check.facts.get("lease"):
                state.out.print(f"{escape(check.board)}: {escape(describe_lease(check.facts['lease']))}")
            if not check.ok:
                state.err.print(f"[red]{escape(check.board)}[/red]: [bold]{check.error_kind}[/bold] {escape(check.error or '')}", highlight=False)
    return ExitStatus.OK if all(c.ok for c in checks) else ExitStatus.BOARD_FAILURE


def _gib(value: Optional[int]) -> str:
    return "—" if value is None else f"{value / 2**30:.1f}"


def runtimes_text(facts: dict) -> str:
    """`onnxruntime 1.32.0 (CPU); openvino 2026.4.1 (CPU bf16)`: each runtime with its providers
    or devices, and the precision OpenVINO runs float32 models at on each device."""
    parts = []
    if facts.get("onnxruntime_version"):
        providers = ", ".join(p.replace("ExecutionProvider", "") for p in facts.get("onnxruntime_providers") or [])
        parts.append(f"onnxruntime {facts['onnxruntime_version']}" + (f" ({providers})" if providers else ""))
    if facts.get("openvino_version"):
        precision = facts.get("openvino_precision") or {}
        devices = ", ".join(f"{d} {precision[d]}" if precision.get(d) else d for d in facts.get("openvino_devices") or [])
        parts.append(f"openvino {str(facts['openvino_version']).split('-')[0]}" + (f" ({devices})" if devices else ""))
    return escape("; ".join(parts)) if parts else "[red]none[/red]"


def facts_table(checks) -> Table:
    """Each board's facts, the columns that fit the terminal (board, runtimes and limits first)."""
    columns = [Column("board"), Column("arch", priority=3), Column("cpu", wrap=True, priority=8),
               Column("cores", "right", 2), Column("RAM GiB", "right", 2), Column("os / kernel", wrap=True, priority=7),
               Column("python", priority=5), Column("runtimes", wrap=True, wrap_width=18), Column("limits", priority=1),
               Column("°C max", "right", 4), Column("disk GiB", "right", 6)]
    rows = []
    for check in checks:
        if not check.ok:
            rows.append([escape(check.board), "", "", "", "", "", "",
                         f"[red]{escape(check.error_kind or 'failed')}[/red]", "", "", ""])
            continue
        f = check.facts
        limits = f.get("cgroup_limits") or {}
        limit_text = ", ".join(
            part for part in (
                f"{limits['cpu_quota_cores']} cpu" if "cpu_quota_cores" in limits else "",
                f"{_gib(limits['memory_limit_bytes'])} GiB" if "memory_limit_bytes" in limits else "",
            ) if part
        ) or "—"
        temps = (f.get("temperatures_c") or {}).values()
        rows.append([
            escape(check.board), escape(str(f.get("arch"))), escape(str(f.get("cpu_model"))),
            f"{f.get('cpu_cores_available')}/{f.get('cpu_cores')}", _gib(f.get("mem_total_bytes")),
            escape(f"{f.get('os')} / {f.get('kernel')}"), escape(str(f.get("python_version"))),
            runtimes_text(f), escape(limit_text),
            f"{max(temps):.0f}" if temps else "—", _gib(f.get("disk_free_bytes")),
        ])
    return fitted_table(state.out, columns, rows)


@inventory_app.command("provision", cls=FarmCommand)
def inventory_provision(
    inventory: Optional[str] = INVENTORY_OPTION,
    limit: Optional[str] = LIMIT_OPTION,
    runtime: str = typer.Option(DEFAULT_RUNTIME, "--runtime", help=f"Runtime to install next to numpy: {runtime_names_text()}."),
    forks: int = typer.Option(8, "--forks", "-f", min=1, max=MAX_FORKS, help="Boards provisioned in parallel."),
    accept_new_host_keys: bool = typer.Option(False, "--accept-new-host-keys", help="Accept (and record) unknown host keys. Changed keys are always refused."),
    refresh_wheels: bool = typer.Option(False, "--refresh-wheels", help="Ask the package index again instead of reusing the wheels cached for this board kind."),
    wheel: Optional[List[Path]] = typer.Option(
        None, "--wheel", metavar="PATH",
        help="A wheel of your own to push and install too (repeatable), e.g. a JetPack onnxruntime-gpu build: "
             "a build of the runtime replaces the index's; its dependencies come from the index."),
) -> int:
    """Make boards ready: a venv in <workdir>/venv with numpy + the runtime, from wheels this
    machine downloads for each board's architecture and Python and pushes over SSH (the board
    needs no internet; its pip runs with --no-index). Additive: runtimes the board's Python
    already had, or that an earlier provision installed, stay usable. A second run changes nothing."""
    from orchestrator.request import resolve_boards
    from orchestrator.errors import BadInputError
    from orchestrator.provision import provision_boards
    from orchestrator.provision.wheels import check_user_wheels

    user_wheels = check_user_wheels(wheel or [])
    try:
        runtime = resolve_runtime(runtime)
    except ValueError as exc:
        raise BadInputError(f"--runtime: {exc}") from None
    if inventory is None:
        raise BadInputError(
            "farm inventory provision needs an inventory (-i FILE or FARM_INVENTORY): the built-in local "
            "board runs the agent with farm's own Python"
        )
    boards = resolve_boards(inventory, limit, accept_new_host_keys)

    def on_step(board: str, message: str) -> None:
        state.err.print(f"[dim]{escape(board)}[/dim]: {escape(message)}", highlight=False)

    outcomes = provision_boards(boards, runtime, forks=forks, refresh=refresh_wheels, on_step=on_step,
                                user_wheels=user_wheels)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("board", "result", "python", "packages", "sent MB", "s"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            table.add_row(escape(outcome.board), f"[red]{escape(outcome.error_kind or 'failed')}[/red]", "", "", "",
                          f"{outcome.duration_s:.1f}")
            continue
        given = {w.split("-")[0].lower().replace("_", "-") for w in result.user_wheels}
        packages = ", ".join(f"{n} {v}" for n, v in sorted(result.packages.items())
                             if n in ("numpy", result.runtime) or n in given)
        table.add_row(
            escape(outcome.board), "[green]installed[/green]" if result.changed else "unchanged",
            escape(f"{result.python_version} {result.arch}"), escape(packages),
            f"{result.bytes_sent / 1e6:.1f}", f"{outcome.duration_s:.1f}",
        )
    state.out.print(table)
    for outcome in outcomes:
        if outcome.result is not None:
            state.out.print(f"{escape(outcome.board)}: {escape(outcome.result.summary)}", highlight=False)
            for note in outcome.result.notes:
                state.out.print(f"{escape(outcome.board)}: [yellow]note[/yellow] {escape(note)}", highlight=False)
        else:
            state.err.print(f"[red]{escape(outcome.board)}[/red]: [bold]{outcome.error_kind}[/bold] "
                            f"{escape(outcome.error or '')}", highlight=False)
    return ExitStatus.OK if all(o.ok for o in outcomes) else ExitStatus.BOARD_FAILURE
