"""Connect to boards in parallel and collect their facts (what `farm inventory check` shows)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from orchestrator.agent_client import AgentClient
from orchestrator.boards import Board
from orchestrator.errors import AgentError, TransportError
from orchestrator.fanout import fan_out
from orchestrator.transport import Transport, open_transport


@dataclasses.dataclass(frozen=True)
class BoardCheck:
    """One board's facts, or why they could not be had (`error_kind` is a failure kind)."""

    board: str
    facts: dict[str, Any] | None
    error_kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.facts is not None


def check_boards(
    boards: Sequence[Board],
    forks: int = 8,
    transport_factory: Callable[[Board], Transport] = open_transport,
) -> list[BoardCheck]:
    """Facts of every board, in the order given; a failing board never stalls the others."""
    by_board = fan_out(boards, lambda b: check_board(b, transport_factory), forks, thread_name="farm-check")
    for failure in by_board.failed.values():
        raise failure  # check_board turns every board failure into a BoardCheck: this is a bug
    return list(by_board.values())


def check_board(board: Board, transport_factory: Callable[[Board], Transport] = open_transport) -> BoardCheck:
    import time

    started = time.monotonic()
    transport = transport_factory(board)
    try:
        facts = AgentClient(transport, python=board.python).facts(timeout_s=max(30.0, board.connect_timeout_s * 3))
        return BoardCheck(board.name, facts, duration_s=time.monotonic() - started)
    except (TransportError, AgentError) as exc:
        return BoardCheck(board.name, None, exc.kind, str(exc), time.monotonic() - started)
    finally:
        transport.close()
