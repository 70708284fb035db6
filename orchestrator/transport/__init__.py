"""Transports: how the controller reaches a board (local subprocess or SSH)."""
from __future__ import annotations

from orchestrator.boards import Board, default_local_workdir
from orchestrator.errors import UsageError
from orchestrator.transport.base import CommandResult, Transport

__all__ = ["CommandResult", "Transport", "open_transport"]


def open_transport(board: Board) -> Transport:
    """The transport for `board`. SSH connects lazily on first use."""
    if board.transport == "local":
        from orchestrator.transport.local import LocalTransport

        workdir = board.workdir or default_local_workdir()
        return LocalTransport(board.name, workdir, env=dict(board.env) or None)
    if board.transport == "ssh":
        from orchestrator.transport.ssh import SSHTransport

        return SSHTransport(board)
    raise UsageError(f"board {board.name!r}: unknown transport {board.transport!r} (use local or ssh)")
