"""`farm lab up|status|down`: simulated boards on this machine (see orchestrator.lab)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from orchestrator import lab
from orchestrator.cli import state
from orchestrator.cli.layout import Column, fitted_table
from orchestrator.cli.options import FarmCommand, FarmGroup
from orchestrator.cli.render import escape

lab_app = typer.Typer(
    cls=FarmGroup,
    help=(
        "Simulated boards on this machine: real sshd servers on loopback (127.0.0.11, .12, ...) "
        "with CPU/memory limits modelled on real boards. Needs root and openssh-server."
    ),
    no_args_is_help=True,
)

DIR_OPTION = typer.Option(
    None,
    "--dir",
    metavar="DIR",
    envvar=lab.LAB_DIR_ENV,
    help=f"Folder that holds the lab (default: {lab.DEFAULT_LAB_DIR}).",
)


def _lab_dir(value: Optional[Path]) -> Path:
    return value if value is not None else lab.default_lab_dir()


def _limits_text(board: lab.LabBoard) -> str:
    limits = board.limits
    parts = []
    if limits.cpu_quota_cores is not None:
        parts.append(f"{limits.cpu_quota_cores:g} cpu" + (f" on {limits.cpuset_cpus}" if limits.cpuset_cpus else ""))
    if limits.memory_limit_bytes is not None:
        parts.append(f"{limits.memory_limit_bytes / lab.GIB:g} GiB")
    return ", ".join(parts) or "none"


def _show(lab_state: lab.LabState) -> None:
    if not lab_state.boards:
        state.out.print(escape(lab_state.limits_note or f"no lab in {lab_state.lab_dir}"))
        return
    columns = [Column("board"), Column("profile", priority=2), Column("address", priority=1), Column("state"),
               Column("limits", wrap=True, wrap_width=16), Column("python", priority=3)]
    rows = []
    for board in lab_state.boards:
        if not board.running:
            status = "[red]stopped[/red]"
        elif board.name in lab_state.started_now:
            status = "[green]started[/green]"
        else:
            status = "[green]running[/green]"
        python = "bare" if board.bare else "venv"  # bare: system Python without onnxruntime
        if board.emulated:
            python = "qemu, bare"  # a Debian arm64 root; `farm inventory provision` fills it
        rows.append([escape(board.name), escape(board.profile), f"{board.address}:{board.port}", status,
                     escape(_limits_text(board)), python])
    state.out.print(fitted_table(state.out, columns, rows))
    if not lab_state.limits_enforced:
        state.out.print(f"[yellow]limits not enforced:[/yellow] {escape(lab_state.limits_note)}")


def _board_json(board: lab.LabBoard) -> dict:
    limits = board.limits
    return {"board": board.name, "profile": board.profile, "address": board.address, "port": board.port,
            "running": board.running, "bare": board.bare, "emulated": board.emulated,
            "cpu_quota_cores": limits.cpu_quota_cores, "cpuset_cpus": limits.cpuset_cpus,
            "memory_limit_bytes": limits.memory_limit_bytes}


@lab_app.command("up", cls=FarmCommand)
def lab_up(
    profiles: Optional[str] = typer.Option(
        None,
        "--profiles",
        help=f"Comma-separated board profiles ({', '.join(lab.PROFILES)}); "
        "add ':bare' for a board without onnxruntime. "
        f"Default: {','.join(lab.DEFAULT_PROFILES)}; with --arch arm64: {','.join(lab.DEFAULT_EMULATED_PROFILES)}.",
    ),
    arch: Optional[str] = typer.Option(
        None,
        "--arch",
        help="Board architecture: this machine's (default), or arm64: a real Debian aarch64 userland under "
        "qemu user emulation (slow; first run debootstraps ~230 MB; needs qemu-user-static, binfmt-support, "
        "debootstrap). Its boards start without numpy/onnxruntime: run `farm inventory provision`.",
    ),
    count: int = typer.Option(1, "--count", min=1, max=lab.MAX_BOARDS, help="Boards per profile."),
    lab_dir: Optional[Path] = DIR_OPTION,
    first_address: str = typer.Option(
        lab.DEFAULT_FIRST_ADDRESS, "--first-address", help="Loopback address of the first board; the next get +1."
    ),
    port: int = typer.Option(lab.DEFAULT_PORT, "--port", min=1, max=65535, help="SSH port of every board."),
) -> None:
    """Start the simulated boards (reports them if they already run) and write their inventory."""
    import platform

    board_arch = lab.normalize_arch(arch) if arch else platform.machine()
    if profiles is None:
        emulated = board_arch != platform.machine()
        profiles = ",".join(lab.DEFAULT_EMULATED_PROFILES if emulated else lab.DEFAULT_PROFILES)
    if board_arch != platform.machine():
        state.err.print("emulated arm64 boards: the first `lab up` debootstraps a Debian arm64 root "
                        "(minutes); later ones reuse it", highlight=False)
    result = lab.lab_up(
        _lab_dir(lab_dir),
        [p for p in profiles.split(",") if p.strip()],
        count,
        board_arch,
        first_address=first_address,
        port=port,
    )
    for note in result.notes:
        state.out.print(escape(note))
    _show(result)
    if result.running and not result.started_now:
        state.out.print("all boards were already running")
    state.out.print(f"inventory: {escape(str(result.inventory_path))}")
    if any(b.emulated or b.bare for b in result.boards):
        state.out.print(f"bare boards: farm inventory provision -i {escape(str(result.inventory_path))}")
    state.out.print(f"try: farm bench -i {escape(str(result.inventory_path))}")


@lab_app.command("status", cls=FarmCommand)
def lab_status(
    lab_dir: Optional[Path] = DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the boards as JSON."),
) -> None:
    """Show the lab's boards, whether each runs, and their limits."""
    lab_state = lab.lab_status(_lab_dir(lab_dir))
    if as_json:
        typer.echo(json.dumps({"lab_dir": str(lab_state.lab_dir), "limits_enforced": lab_state.limits_enforced,
                               "boards": [_board_json(b) for b in lab_state.boards]}, indent=2))
        return
    _show(lab_state)


@lab_app.command("down", cls=FarmCommand)
def lab_down(
    lab_dir: Optional[Path] = DIR_OPTION,
    purge: bool = typer.Option(False, "--purge", help="Also delete the lab folder (keys, venv, inventory)."),
) -> None:
    """Stop every board and whatever its sessions started; nothing of the lab keeps running."""
    result = lab.lab_down(_lab_dir(lab_dir), remove_files=purge)
    stopped = [b.name for b in result.boards]
    state.out.print(f"stopped {len(stopped)} board(s)" + (f": {', '.join(stopped)}" if stopped else ""))
