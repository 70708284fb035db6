"""A board's agent session and lease for one run (orchestrator.runner uses one per board).

The agent starts once per board per run (orchestrator.agent_session); the session that dies (the
connection dropped, heartbeats stopped) is started again for the next attempt, and the lease is
taken back: it is ours, so the new agent takes it over, first killing what the old one left.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from orchestrator.agent_client import provision_hint
from orchestrator.agent_session import AgentSession
from orchestrator.boards import Board
from orchestrator.lease import BoardLease, LeaseHolder, describe_lease
from orchestrator.transport import Transport

if TYPE_CHECKING:
    from orchestrator.runner import BenchRunner


class BoardLink:
    """A board's agent session and lease for one run, started again after the session dies.

    `open` starts the agent, reads the board's quick facts and takes the lease (waiting, as
    --lease-wait says, for another controller's); `ensure` checks the session is alive before a
    job and, after a drop, starts a new one and takes the lease again (it is ours: the new agent
    kills what the old one left, then holds it).
    """

    def __init__(self, runner: "BenchRunner", run_id: str, board: Board, transport: Transport) -> None:
        self.runner = runner
        self.run_id = run_id
        self.board = board
        self.transport = transport
        self.holder = LeaseHolder.for_this_process(run_id)
        self.session: AgentSession | None = None
        self.lease: BoardLease | None = None
        self.facts: dict[str, Any] = {}
        self.lease_lost = threading.Event()

    def _new_session(self) -> AgentSession:
        settings = self.runner.settings
        return AgentSession(
            self.transport, self.board.python, workdir=self.board.workdir,
            heartbeat_s=settings.heartbeat_s, dead_after_s=settings.disconnect_after_s,
            controller_timeout_s=settings.lease_ttl_s,
            provision_hint=lambda args: provision_hint(self.board, self.transport, self.runner.inventory, args),
            on_lease_lost=self.lease_lost.set,
        )

    def open(self, wait_s: float | None = None) -> dict[str, Any]:
        """Start the agent, read quick facts, take the lease; returns the facts."""
        settings = self.runner.settings
        self.discard()
        session = self._new_session()
        self.session = session
        session.start()
        self.facts = session.facts(quick=True)
        lease = BoardLease(
            session, self.holder, ttl_s=settings.lease_ttl_s,
            wait_s=settings.lease_wait_s if wait_s is None else wait_s, cancel=self.runner._cancel,
            on_wait=lambda held, waited_s: self.runner.on_event(
                "board_waiting", {"board": self.board.name, "lease": describe_lease(held), "waited_s": waited_s}),
        )
        takeover = lease.acquire()
        self.lease = lease
        if takeover.previous is not None or takeover.killed:
            self.runner._took_over(self.board, takeover)
        return self.facts

    def ensure(self) -> AgentSession:
        """The live session, started again (lease included) when the last one died."""
        if self.session is None or not self.session.alive:
            self.open(wait_s=min(self.runner.settings.lease_wait_s, 5.0))
        assert self.session is not None
        return self.session

    def discard(self) -> None:
        """Forget a dead session (making sure its command is gone)."""
        if self.session is not None:
            self.session.abort()
            self.session = None
            self.lease = None

    def close(self) -> None:
        """Release the lease and end the session (the agent frees the lease itself on bye)."""
        if self.session is not None:
            self.session.close()
            self.session = None
