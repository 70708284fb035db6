"""Speak to the board agent one verb at a time: upload it by content hash, run a verb, validate
every message. (`farm bench` talks to a long-running agent instead: orchestrator.agent_session;
this one-shot client serves `farm inventory check` and tools that need a single answer.)

Agent output is untrusted: lines are size-bounded and validated against the protocol's schema
(orchestrator.agent_messages); anything else becomes an AgentError quoting the field or the
first bytes.

Which Python runs the agent. `farm inventory provision` (orchestrator.provision) makes a
virtualenv `<workdir>/venv` on the board from the inventory's `python` and writes that
setting to `<workdir>/venv/farm-python`. The agent then runs with `<workdir>/venv/bin/python`
when that marker holds exactly the board's `python` (the default `python3` included), and
with the board's `python` otherwise. The check costs no extra command: the agent command
itself becomes

    sh -c '<pick>' farm-python <workdir>/venv <python> agent-<sha>.py VERB ARGS...

where <pick> reads the marker with the shell's `read` builtin, tests `-x venv/bin/python`,
and `exec`s the chosen interpreter (same process, same exit status; a missing `python`
still exits 127). A board whose inventory names another interpreter than the one
provisioned keeps using that interpreter: provisioning again makes a venv from it.

A board that lacks numpy or the runtime fails with kind "missing-runtime"; its message ends
with the command that fixes it: `farm inventory provision -i <inventory> -l <board>`.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from pathlib import Path
from typing import Any, Callable, Sequence

from agents.farm_common import (  # noqa: F401 - PROTOCOL_VERSION: re-exported for callers
    PROTOCOL_VERSION,
    PYTHON_MARKER_NAME,
    VENV_DIR_NAME,
    staged_name,
)
from orchestrator.agent_bundle import agent_bundle_path, agent_bundle_sha256
from orchestrator.agent_messages import parse_agent_line
from orchestrator.boards import Board
from orchestrator.errors import AgentError, TransportError
from orchestrator.hashing import file_sha256
from orchestrator.transport.base import MAX_LINE_BYTES, LineSplitter, Transport

#: Shell code that picks the Python (see the module docstring): with $v the venv's folder and $p
#: the board's python, it sets p to the venv's python when the venv's marker names $p. The one
#: definition of that choice: this client's command and the agent session's
#: (orchestrator.agent_session) both run it.
PICK_VENV_PYTHON_SH = (
    f'm=; {{ IFS= read -r m < "$v/{PYTHON_MARKER_NAME}"; }} 2>/dev/null; '
    'if [ "$m" = "$p" ] && [ -x "$v/bin/python" ]; then p=$v/bin/python; fi; '
)
# $1 venv folder, $2 the board's python, then the agent's argv; `exec` keeps the exit status.
_PICK_PYTHON = 'v=$1; p=$2; shift 2; ' + PICK_VENV_PYTHON_SH + 'exec "$p" "$@"'


@dataclasses.dataclass
class AgentReply:
    """The messages of one agent invocation, validated."""

    messages: list[dict[str, Any]]
    exit_code: int | None
    stderr: str

    def first(self, message_type: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m["type"] == message_type), None)


def staged_file_name(local_path: Path | str, suffix: str) -> str:
    """The name a staged file has on the board: its content hash and `suffix`."""
    return staged_name(file_sha256(Path(local_path).resolve()), suffix)


def parse_message(line: str) -> dict[str, Any]:
    """One protocol line → the validated message as a dict, or AgentError saying what was wrong."""
    if len(line) > MAX_LINE_BYTES or line.endswith(LineSplitter.MARKER.format(limit=MAX_LINE_BYTES)):
        raise AgentError(f"agent line exceeds the {MAX_LINE_BYTES} byte limit; it began: {line[:80]!r}")
    return parse_agent_line(line).model_dump(exclude_unset=True)


def provision_hint(board: Board, transport: Transport, inventory: str | None, args: Sequence[str] = ()) -> str:
    """"; make the board ready with: farm inventory provision -i INV -l BOARD" (empty for the
    built-in local board, which runs farm's own Python)."""
    if _is_local_process(board.python, transport):
        return ""
    from orchestrator.provision import provision_command

    runtime = None
    args = list(args)
    if "--runtime" in args[:-1]:
        runtime = args[args.index("--runtime") + 1]
    inventory = inventory or os.environ.get("FARM_INVENTORY") or None
    return "; make the board ready with: " + provision_command(transport.name, inventory, runtime)


def _is_local_process(python: str, transport: Transport) -> bool:
    """The built-in local board: the agent runs with the controller's own interpreter."""
    import sys

    return python == sys.executable and type(transport).__name__ == "LocalTransport"


class AgentClient:
    """Runs agent verbs on one board through its transport."""

    def __init__(
        self,
        transport: Transport,
        python: str = "python3",
        *,
        inventory: str | None = None,
        use_venv: bool = True,
    ) -> None:
        """`inventory`: the inventory file the board came from, for the provisioning hint of a
        missing-runtime error (default: $FARM_INVENTORY). `use_venv`: run the agent with the
        board's provisioned venv when it was made from `python` (see the module docstring)."""
        self.transport = transport
        self.python = python
        self.inventory = inventory
        self.use_venv = use_venv
        self._agent_path: str | None = None

    def agent_path(self) -> str:
        if self._agent_path is None:
            bundle = agent_bundle_path()
            self._agent_path, _ = self.transport.stage_file(bundle, bundle.name, agent_bundle_sha256())
        return self._agent_path

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

        argv = self.agent_argv(verb, args)
        result = self.transport.run(argv, timeout_s=timeout_s, on_stdout_line=on_line)
        reply = AgentReply(messages=messages, exit_code=result.exit_code, stderr=result.stderr)
        error = reply.first("error")
        if error is not None:
            message = f"{self.transport.name}: {error.get('message')}"
            if error["kind"] == "missing-runtime":
                message += self.provision_hint(args)
            raise AgentError(message, kind=error["kind"])
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

    def agent_argv(self, verb: str, args: Sequence[str]) -> list[str]:
        """The command that runs the agent: through the venv picker when the venv may be used."""
        agent = self.agent_path()
        if not self.use_venv or self._is_local_process():
            return [self.python, agent, verb, *args]
        venv = posixpath.join(self.transport.workdir, VENV_DIR_NAME)
        return ["sh", "-c", _PICK_PYTHON, "farm-python", venv, self.python, agent, verb, *args]

    def provision_hint(self, args: Sequence[str] = ()) -> str:
        """The provisioning hint of a missing-runtime error (see `provision_hint`)."""
        return provision_hint(Board(name=self.transport.name, python=self.python), self.transport,
                              self.inventory, args)

    def _is_local_process(self) -> bool:
        return _is_local_process(self.python, self.transport)

    def facts(self, timeout_s: float = 60.0, quick: bool = False) -> dict[str, Any]:
        """The board's facts; `quick` skips importing the runtimes on the board (versions only)."""
        args = ["--workdir", self.transport.workdir] + (["--quick"] if quick else [])
        reply = self.call("facts", args, timeout_s)
        message = reply.first("facts")
        if message is None or not isinstance(message.get("facts"), dict):
            raise AgentError(f"{self.transport.name}: agent sent no facts")
        return message["facts"]

