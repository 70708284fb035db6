"""Board leases: a job holds an expiring, renewed lease recorded on the board itself.

Two controllers on two laptops see each other's lease because it lives in the board's work
dir (agent verb `lease`, atomic under an flock on the board). A controller that dies stops
renewing, so its lease expires after `ttl_s` and the next controller takes over — unlike
locks that never expire. Waiting for a busy board is bounded and reported as progress.
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
from typing import Any, Callable

from orchestrator.agent_client import AgentClient
from orchestrator.errors import AgentError, TransportError


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


class BoardLease:
    """Acquire (waiting at most `wait_s`), keep renewed in the background, release."""

    def __init__(
        self,
        client: AgentClient,
        renew_client: Callable[[], AgentClient],
        holder: LeaseHolder,
        ttl_s: float = 120.0,
        wait_s: float = 60.0,
        cancel: threading.Event | None = None,
        on_wait: Callable[[dict[str, Any], float], None] = lambda lease, waited_s: None,
        poll_s: float = 2.0,
    ) -> None:
        self.client = client
        self.renew_client = renew_client
        self.holder = holder
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.cancel = cancel or threading.Event()
        self.on_wait = on_wait
        self.poll_s = poll_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _call(self, client: AgentClient, action: str) -> dict[str, Any]:
        args = [action, "--workdir", client.transport.workdir, "--holder", self.holder.to_json(), "--ttl", repr(self.ttl_s)]
        message = client.call("lease", args, timeout_s=60).first("lease")
        if message is None:
            raise AgentError(f"{client.transport.name}: the agent gave no lease answer")
        return message

    def acquire(self) -> None:
        """Take the lease, or raise AgentError(kind="busy") once `wait_s` has passed."""
        started = time.monotonic()
        while True:
            answer = self._call(self.client, "acquire")
            if answer.get("acquired"):
                break
            waited_s = time.monotonic() - started
            if waited_s >= self.wait_s or self.cancel.is_set():
                raise AgentError(
                    f"{self.client.transport.name}: board busy, {describe_lease(answer.get('lease'))}; "
                    f"waited {waited_s:.0f} s (--lease-wait)",
                    kind="busy",
                )
            self.on_wait(answer.get("lease") or {}, waited_s)
            self.cancel.wait(min(self.poll_s, max(0.1, self.wait_s - waited_s)))
        self._renewer = threading.Thread(target=self._renew_loop, name=f"farm-lease-{self.client.transport.name}",
                                         daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        client = self.renew_client()
        try:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    if not self._call(client, "renew").get("acquired"):
                        self.lost.set()  # someone took it (our renewals failed for a whole ttl)
                        return
                except (AgentError, TransportError):
                    continue  # a missed renewal is fine: the next one comes well before expiry
        finally:
            client.transport.close()

    def release(self) -> None:
        """Free the board. After Ctrl-C the run's own connection is closed (it stopped the
        command on the board), so the release goes over a fresh one (`renew_client`)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        client = self.renew_client() if self.cancel.is_set() else self.client
        try:
            self._call(client, "release")
        except (AgentError, TransportError):
            pass  # unreleased, it simply expires after ttl_s
        finally:
            if client is not self.client:
                client.transport.close()
