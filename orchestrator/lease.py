"""Board leases: who measures on a board, recorded on the board itself and kept by its agent.

Two controllers on two laptops see each other's lease because it lives in the board's work
dir (agent verb `lease`, atomic under an flock on the board). The lease is taken through the
run's agent session, and the agent renews it itself while it hears from its controller (no
second connection). A controller that dies stops talking: its agent notices (end-of-file, or
silence for the lease's ttl), kills its workers and frees the lease; if even the agent is gone
or frozen, the lease expires after `ttl_s` and the next controller takes over. The lease names
the agent and its running worker, so a taker-over first kills what the dead holder left
running, and reports whose lease it took (its run is then marked `abandoned`). Waiting for a
busy board is bounded and reported as progress.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import os
import platform
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from orchestrator.errors import AgentError, TransportError

if TYPE_CHECKING:
    from orchestrator.agent_messages import LeaseMessage
    from orchestrator.agent_session import AgentSession


@dataclasses.dataclass(frozen=True)
class LeaseHolder:
    """Who holds a board: enough for a person to find them ("alice@ci-3, pid 4242, run r…")."""

    id: str
    user: str
    host: str
    pid: int
    run_id: str | None = None

    @classmethod
    def for_this_process(cls, run_id: str | None = None) -> "LeaseHolder":
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(uuid.uuid4().hex, user, platform.node(), os.getpid(), run_id)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def describe_lease(lease: dict[str, Any] | None) -> str:
    if not lease:
        return "free"
    holder = lease.get("holder") or {}
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(lease.get("since", 0))))
    run = f", run {holder['run_id']}" if holder.get("run_id") else ""
    return f"held by {holder.get('user')}@{holder.get('host')} (pid {holder.get('pid')}{run}) since {since} UTC"


@dataclasses.dataclass(frozen=True)
class Takeover:
    """What acquiring a board found: the expired lease of another holder that it replaced (None
    when the board was free or ours), and the pids of leftovers it killed."""

    previous: dict[str, Any] | None
    killed: list[int]


class BoardLease:
    """Acquire through an agent session (waiting at most `wait_s`), then the agent keeps it."""

    def __init__(
        self,
        session: "AgentSession",
        holder: LeaseHolder,
        *,
        ttl_s: float,
        wait_s: float,
        cancel: threading.Event | None = None,
        on_wait: Callable[[dict[str, Any], float], None] = lambda lease, waited_s: None,
        poll_s: float = 2.0,
    ) -> None:
        """`ttl_s`, `wait_s`: the run's settings (BenchSettings.lease_ttl_s, lease_wait_s; no
        defaults here to drift from those)."""
        self.session = session
        self.holder = holder
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.cancel = cancel or threading.Event()
        self.on_wait = on_wait
        self.poll_s = poll_s

    @property
    def lost(self) -> threading.Event:
        """Set when the agent found someone else holding the board at a renewal."""
        return self.session.lease_lost

    def _call(self, action: str) -> "LeaseMessage":
        return self.session.lease(action, self.holder.to_json(), self.ttl_s)

    def acquire(self) -> Takeover:
        """Take the lease, or raise AgentError(kind="busy") once `wait_s` has passed."""
        started = time.monotonic()
        while True:
            answer = self._call("acquire")
            if answer.acquired:
                previous = answer.previous.model_dump() if answer.previous is not None else None
                return Takeover(previous, list(answer.killed))
            current = answer.lease.model_dump() if answer.lease is not None else {}
            waited_s = time.monotonic() - started
            if waited_s >= self.wait_s or self.cancel.is_set():
                raise AgentError(
                    f"{self.session.name}: board busy, {describe_lease(current)}; waited {waited_s:.0f} s (--lease-wait)",
                    kind="busy",
                )
            self.on_wait(current, waited_s)
            self.cancel.wait(min(self.poll_s, max(0.1, self.wait_s - waited_s)))

    def release(self) -> None:
        """Free the board now (best effort: an agent that ends frees it too, and it expires anyway)."""
        if not self.session.alive:
            return
        try:
            self._call("release")
        except (AgentError, TransportError):
            pass  # unreleased, it expires after ttl_s
