"""Speak to the board agent: upload it by content hash, run a verb, validate every message.

Agent output is untrusted: lines are size-bounded, JSON-checked, and must carry the protocol
version this controller speaks; anything else becomes an AgentError quoting the first bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from orchestrator.errors import AgentError, TransportError
from orchestrator.transport.base import MAX_LINE_BYTES, LineSplitter, Transport

PROTOCOL_VERSION = 1
MESSAGE_TYPES = {"facts", "phase", "result", "error", "outputs", "lease"}


def agent_source_path() -> Path:
    """The agent file shipped with farm (agents/farm_agent.py, installed as a package too)."""
    import agents

    return Path(agents.__file__).parent / "farm_agent.py"


@lru_cache(maxsize=None)
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class AgentReply:
    """The messages of one agent invocation, validated."""

    messages: list[dict[str, Any]]
    exit_code: int | None
    stderr: str

    def first(self, message_type: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m["type"] == message_type), None)


def parse_message(line: str) -> dict[str, Any]:
    """One protocol line → a message dict, or AgentError saying what was wrong with it."""
    if len(line) > MAX_LINE_BYTES or line.endswith(LineSplitter.MARKER.format(limit=MAX_LINE_BYTES)):
        raise AgentError(f"agent line exceeds the {MAX_LINE_BYTES} byte limit; it began: {line[:80]!r}")
    try:
        message = json.loads(line)
    except ValueError:
        raise AgentError(f"agent answered something that is not protocol JSON: {line[:80]!r}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise AgentError(f"agent message without a type: {line[:80]!r}")
    if message.get("v") != PROTOCOL_VERSION:
        raise AgentError(
            f"agent speaks protocol {message.get('v')!r}, this controller speaks {PROTOCOL_VERSION}: "
            "upgrade farm or the agent"
        )
    if message["type"] not in MESSAGE_TYPES:
        raise AgentError(f"unknown agent message type {message['type']!r}")
    return message


class AgentClient:
    """Runs agent verbs on one board through its transport."""

    def __init__(self, transport: Transport, python: str = "python3") -> None:
        self.transport = transport
        self.python = python
        self._agent_path: str | None = None

    def agent_path(self) -> str:
        if self._agent_path is None:
            source = agent_source_path()
            digest = file_sha256(source)
            self._agent_path, _ = self.transport.stage_file(source, f"agent-{digest[:12]}.py", digest)
        return self._agent_path

    def stage(self, local_path: Path, suffix: str = "") -> tuple[str, int]:
        """Put a file on the board named by its content hash; returns (board path, bytes sent)."""
        digest = file_sha256(Path(local_path).resolve())
        return self.transport.stage_file(Path(local_path), f"{digest[:16]}{suffix}", digest)

    def call(
        self,
        verb: str,
        args: Sequence[str],
        timeout_s: float,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> AgentReply:
        """Run one verb; raise AgentError/TransportError on failure, return the reply otherwise."""
        messages: list[dict[str, Any]] = []
        problems: list[AgentError] = []

        def on_line(line: str) -> None:
            line = line.strip()
            if not line:
                return
            try:
                message = parse_message(line)
            except AgentError as exc:
                problems.append(exc)
                return
            messages.append(message)
            if on_message is not None:
                on_message(message)

        argv = [self.python, self.agent_path(), verb, *args]
        result = self.transport.run(argv, timeout_s=timeout_s, on_stdout_line=on_line)
        reply = AgentReply(messages=messages, exit_code=result.exit_code, stderr=result.stderr)
        error = reply.first("error")
        if error is not None:
            raise AgentError(f"{self.transport.name}: {error.get('message')}", kind=str(error.get("kind") or "agent-error"))
        if problems:
            raise problems[0]
        if result.exit_code is None:
            raise TransportError(f"{self.transport.name}: connection closed before the agent finished", kind="disconnected")
        if result.exit_code in (137, -9):
            raise AgentError(f"{self.transport.name}: agent killed by SIGKILL (out of memory?)", kind="oom-killed")
        if result.exit_code == 127:
            raise AgentError(
                f"{self.transport.name}: {self.python!r} not found on the board (set `python` in the inventory)",
                kind="missing-runtime",
            )
        if result.exit_code != 0:
            tail = (result.stderr.strip().splitlines()[-1:] or [""])[0][:200]
            raise AgentError(
                f"{self.transport.name}: agent exited with status {result.exit_code} without a protocol answer: {tail}"
            )
        return reply

    def facts(self, timeout_s: float = 60.0, quick: bool = False) -> dict[str, Any]:
        """The board's facts; `quick` skips importing the runtimes on the board (versions only)."""
        args = ["--workdir", self.transport.workdir] + (["--quick"] if quick else [])
        reply = self.call("facts", args, timeout_s)
        message = reply.first("facts")
        if message is None or not isinstance(message.get("facts"), dict):
            raise AgentError(f"{self.transport.name}: agent sent no facts")
        return message["facts"]

