"""The agent session: one agent process per board per run, spoken to over one channel.

labgrid's agent is the model. The controller starts the agent once (`serve`) and sends it
requests as JSON lines (facts, lease, stage checks, every bench cell, dataset outputs, bye); the
agent answers each with messages tagged by the request's id. Per board and run that is one
Python start and one exec channel, plus the SFTP channel when files must be uploaded, whatever
the number of cells.

Starting it costs no extra command. The channel's command creates the work dir, picks the
Python (the provisioned venv's when it was made from the board's `python`, as
orchestrator.agent_client explains), and runs a few lines of bootstrap Python (`_BOOT`) that
check the agent file by its sha256 and, only when it is missing or different, ask for it on the
same channel (`__farm_need_agent__`), write it under a temporary name, and rename it. The
bootstrap then runs the agent in the same process.

Liveness, both ways. The agent sends a heartbeat line every `heartbeat_s`; any line counts. After
`dead_after_s` of silence the controller declares the board `disconnected` (a half-open link is
found that way: paramiko's keepalive never notices one) and drops the connection. The controller
sends a `beat` every `heartbeat_s`; an agent that hears nothing for its controller timeout (the
lease ttl), or reads end-of-file, kills its workers, frees its lease and exits on its own.

Every line is validated (orchestrator.agent_messages) before anything is kept; an invalid line
fails the request it belongs to as `agent-error`. Results come in bounded chunks: the samples and
time series of a bench, the dataset outputs (written to a temporary file as they arrive). The
controller bounds what one board can make it hold: at most `max_samples` latencies and
`max_series_rows` sampler rows (the agent sends an exact summary of all of them and says how many
it kept), and at most MAX_OUTPUTS_BYTES of outputs.
"""
from __future__ import annotations

import array
import base64
import binascii
import dataclasses
import hashlib
import json
import posixpath
import queue
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from agents.farm_common import (
    DEFAULT_DISCONNECT_AFTER_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_TTL_S,
    VENV_DIR_NAME,
    agent_file_name,
)
from orchestrator.agent_bundle import agent_bundle_bytes, agent_bundle_path
from orchestrator.agent_client import PICK_VENV_PYTHON_SH
from orchestrator.agent_messages import (
    Bye,
    CleanedMessage,
    ErrorMessage,
    FactsMessage,
    Hello,
    LatencyChunk,
    LeaseMessage,
    OutputsChunk,
    OutputsMessage,
    PhaseMessage,
    ResultMessage,
    SamplesChunk,
    StagedMessage,
    parse_agent_line,
)
from orchestrator.errors import AgentError, TransportError
from orchestrator.transport.base import MAX_LINE_BYTES, LineSplitter, Stream, Transport

NEED_AGENT_MARKER = "__farm_need_agent__"
START_TIMEOUT_S = 60.0
QUICK_TIMEOUT_S = 60.0  # facts, lease, stage checks, clean
SEND_TIMEOUT_S = 30.0
CANCEL_GRACE_S = 10.0  # after a cancel, how long the agent has to say the job stopped
BYE_TIMEOUT_S = 5.0
MAX_OUTPUTS_BYTES = 4 << 30

# Runs in the channel's command: $1 the work dir as configured (~ expanded here), $2 the board's
# python, $3 the venv's folder name ("" when the venv must not be used), then python's argv. The
# venv's python is picked as the one-shot client picks it (agent_client.PICK_VENV_PYTHON_SH).
_SESSION_SH = (
    'd=$1; p=$2; v=$3; shift 3; '
    'case $d in "~") d=$HOME;; "~/"*) d=$HOME/${d#"~/"};; esac; '
    'mkdir -p -- "$d" && cd -- "$d" || exit 125; '
    f'if [ -n "$v" ]; then v=$PWD/$v; {PICK_VENV_PYTHON_SH}fi; '
    'exec "$p" "$@"'
)

# The bootstrap (Python >= 3.8, any): argv = agent file, its sha256, its size, then serve's options.
_BOOT = (
    "import binascii, hashlib, os, sys\n"
    "name, sha, size = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "def same():\n"
    "    try:\n"
    "        with open(name, 'rb') as f:\n"
    "            return hashlib.sha256(f.read()).hexdigest() == sha\n"
    "    except OSError:\n"
    "        return False\n"
    "if not same():\n"
    f"    sys.stdout.write('{NEED_AGENT_MARKER}\\n'); sys.stdout.flush()\n"
    "    data = sys.stdin.buffer.read(size)\n"
    "    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:\n"
    "        sys.stderr.write('farm-agent: the agent file arrived incomplete\\n'); sys.exit(3)\n"
    "    part = '%s.part-%s' % (name, binascii.hexlify(os.urandom(6)).decode())\n"
    "    with open(part, 'wb') as f:\n"
    "        f.write(data)\n"
    "    os.replace(part, name)\n"
    "sys.argv = [os.path.abspath(name), 'serve'] + sys.argv[4:]\n"
    "import runpy\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@dataclasses.dataclass
class BoardOutputs:
    """Dataset outputs a board sent back: an .npz in a temporary folder of ours (remove with `discard`)."""

    path: Path
    count: int
    output_names: list[str]
    runtime: dict[str, Any]

    def arrays(self) -> list[Any]:
        import numpy as np

        with np.load(self.path, allow_pickle=False) as data:
            return [data[f"output_{i}"] for i in range(len(data.files))]

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


@dataclasses.dataclass
class BenchReply:
    """One bench job: the agent's result (validated, as a dict), the latencies and sampler rows it
    sent (at most what was asked), and the dataset's outputs when it ran one."""

    result: dict[str, Any]
    latency_ms: Sequence[float]
    samples: list[dict[str, Any]]
    outputs: BoardOutputs | None = None

    def as_bench_result(self) -> dict[str, Any]:
        """The result as orchestrator.record and orchestrator.repeats read it."""
        return {**self.result, "latency_ms": self.latency_ms, "samples": self.samples}


class AgentSession:
    """The agent on one board, started once (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        python: str = "python3",
        *,
        use_venv: bool = True,
        workdir: str | None = None,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        dead_after_s: float = DEFAULT_DISCONNECT_AFTER_S,
        controller_timeout_s: float = DEFAULT_LEASE_TTL_S,
        provision_hint: Callable[[Sequence[str]], str] = lambda args: "",
        on_lease_lost: Callable[[], None] = lambda: None,
    ) -> None:
        """`workdir`: the work dir as the inventory gives it (`~` allowed), for SSH boards whose
        work dir is not known yet. `controller_timeout_s`: how long the agent waits for a word from
        us before it cleans up on its own (the lease ttl)."""
        self.transport = transport
        self.name = transport.name
        self.python = python
        self.use_venv = use_venv
        self.workdir_setting = workdir
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = max(dead_after_s, 2 * heartbeat_s)
        self.controller_timeout_s = controller_timeout_s
        self.provision_hint = provision_hint
        self.on_lease_lost = on_lease_lost
        self.hello: Hello | None = None
        self.lease_lost = threading.Event()
        self._stream: Stream | None = None
        self._reader: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._pending: dict[int, queue.Queue] = {}
        self._next_id = 0
        self._in_flight: int | None = None
        self._stray: AgentError | None = None
        self._hello_event = threading.Event()
        self._need_agent = threading.Event()
        self._last_heard = time.monotonic()

    # ------------------------------------------------------------------ starting and stopping

    @property
    def alive(self) -> bool:
        return self._stream is not None and self._failure is None and not self._closing

    @property
    def workdir(self) -> str:
        assert self.hello is not None, "start() the session first"
        return self.hello.workdir

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Hello:
        """Start the agent (uploading it on the same channel when the board lacks it); its hello."""
        data, digest = agent_bundle_bytes()
        local = type(self.transport).__name__ == "LocalTransport"
        name = str(agent_bundle_path()) if local else agent_file_name(digest)
        python_argv = ["-c", _BOOT, name, digest, str(len(data)), "--heartbeat-s", repr(self.heartbeat_s),
                       "--controller-timeout-s", repr(self.controller_timeout_s)]
        if local:
            argv = [self.python, *python_argv]
        else:
            workdir = getattr(self.transport, "known_workdir", None) or self.workdir_setting or "~/.farm"
            venv = VENV_DIR_NAME if self.use_venv else ""
            argv = ["sh", "-c", _SESSION_SH, "farm-session", workdir, self.python, venv, *python_argv]
        self._stream = self.transport.open_stream(argv)
        self._last_heard = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=f"farm-session-{self.name}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._hello_event.wait(0.05):
            if self._need_agent.is_set():
                self._need_agent.clear()
                self._send_raw(data)
            self._raise_if_failed()
            if time.monotonic() > deadline:
                self.abort()
                raise TransportError(f"{self.name}: the agent did not start within {timeout_s:g} s", kind="timeout")
        assert self.hello is not None
        self.transport.learn_workdir(self.hello.workdir)
        return self.hello

    def close(self) -> None:
        """Say bye (the agent frees its lease and exits), then make sure the command is gone."""
        stream = self._stream
        if stream is None or self._closing:
            return
        alive = self.alive
        self._closing = True
        if alive:
            try:
                self._exchange("bye", {}, BYE_TIMEOUT_S, lambda message: True if isinstance(message, Bye) else None)
            except (AgentError, TransportError):
                pass
        stream.close_input()
        if stream.wait(BYE_TIMEOUT_S) is None:
            stream.stop()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def abort(self) -> None:
        """Stop now (Ctrl-C, a dead link): end the agent's input — it cleans up by itself — and
        kill the command if it is still there shortly after."""
        stream = self._stream
        if stream is None or self._closing:
            return
        self._closing = True
        stream.close_input()
        if stream.wait(2.0) is None:
            stream.stop()

    def begin_abort(self) -> None:
        """The first half of `abort` for many sessions at once: end every agent's input first."""
        if self._stream is not None and not self._closing:
            self._stream.close_input()

    # ------------------------------------------------------------------ requests

    def facts(self, quick: bool = False) -> dict[str, Any]:
        message = self._exchange("facts", {"args": ["--quick"] if quick else []}, QUICK_TIMEOUT_S,
                                 lambda m: m if isinstance(m, FactsMessage) else None)
        return message.facts.model_dump(exclude_unset=True)

    def lease(self, action: str, holder_json: str, ttl_s: float) -> LeaseMessage:
        args = [action, "--holder", holder_json, "--ttl", repr(ttl_s)]
        return self._exchange("lease", {"args": args}, QUICK_TIMEOUT_S,
                              lambda m: m if isinstance(m, LeaseMessage) else None)

    def clean(self, args: Sequence[str]) -> dict[str, Any]:
        message = self._exchange("clean", {"args": list(args)}, QUICK_TIMEOUT_S,
                                 lambda m: m if isinstance(m, CleanedMessage) else None)
        return message.model_dump()

    def stage(self, files: Sequence[tuple[Path, str, str]]) -> tuple[list[str], int]:
        """Make each (local file, name in the work dir, sha256) present on the board: checked by
        the agent (hashes remembered for the session), uploaded only when missing or different,
        checked again and renamed into place by the agent. Returns (paths on the board, bytes sent)."""
        if getattr(self.transport, "shares_files", False):  # the local board reads our files in place
            return [self.transport.stage_file(path, name, sha)[0] for path, name, sha in files], 0
        unique = {name: (Path(path), sha) for path, name, sha in files}
        check = [{"name": name, "sha256": sha} for name, (_, sha) in unique.items()]
        answer = self._exchange("stage_check", {"files": check}, QUICK_TIMEOUT_S,
                                lambda m: m if isinstance(m, StagedMessage) else None)
        present = {f.name for f in answer.files if f.present}
        commits, sent = [], 0
        for name, (path, sha) in unique.items():
            if name in present:
                continue
            part = f"{name}.part-{secrets.token_hex(6)}"
            sent += self.transport.put_file(path, part)
            commits.append({"part": part, "name": name, "sha256": sha})
        if commits:
            timeout_s = QUICK_TIMEOUT_S + sent / 20e6  # hashing on a slow SD card
            self._exchange("stage_commit", {"files": commits}, timeout_s,
                           lambda m: m if isinstance(m, StagedMessage) else None)
        return [posixpath.join(self.workdir, name) for _, name, _ in files], sent

    def bench(self, args: Sequence[str], timeout_s: float, *, max_samples: int, max_series_rows: int,
              on_phase: Callable[[str], None] = lambda phase: None, more: bool = False) -> BenchReply:
        """One bench job (`args`: the agent's bench arguments). The agent is told the limits, and
        sending more than them is an agent error. `more`: another bench job follows on this board
        (the agent then starts the next worker ahead)."""
        args = [*args, "--max-samples", str(max_samples), "--max-series-rows", str(max_series_rows)]
        latency = array.array("d")
        samples: list[dict[str, Any]] = []
        seqs = {"latency_ms": 0, "samples": 0, "outputs_npz": 0}
        sink = _OutputsSink(self.name)
        outputs: list[BoardOutputs] = []

        def next_seq(field: str, seq: int) -> None:
            if seq != seqs[field]:
                raise AgentError(f"{self.name}: agent sent {field} chunk {seq} where {seqs[field]} was due")
            seqs[field] += 1

        def handle(message: Any) -> Any:
            if isinstance(message, PhaseMessage):
                on_phase(message.phase)
            elif isinstance(message, LatencyChunk):
                next_seq("latency_ms", message.seq)
                if len(latency) + len(message.values) > max_samples:
                    raise AgentError(f"{self.name}: agent sent more than the {max_samples} latency samples asked for")
                latency.extend(message.values)
            elif isinstance(message, SamplesChunk):
                next_seq("samples", message.seq)
                if len(samples) + len(message.values) > max_series_rows:
                    raise AgentError(f"{self.name}: agent sent more than the {max_series_rows} sampler rows asked for")
                samples.extend(row.model_dump() for row in message.values)
            elif isinstance(message, OutputsChunk):
                next_seq("outputs_npz", message.seq)
                sink.write(message.data)
            elif isinstance(message, OutputsMessage):
                outputs.append(sink.finish(message))
            elif isinstance(message, ResultMessage):
                return message
            return None

        try:
            message = self._exchange("bench", {"args": args, "more": more}, timeout_s, handle)
        except BaseException:
            sink.discard()
            for item in outputs:
                item.discard()
            raise
        result = message.result
        if len(latency) != result.latency_samples_kept or len(samples) != result.samples_kept:
            sink.discard()
            raise AgentError(f"{self.name}: agent said it kept {result.latency_samples_kept} latency samples and "
                             f"{result.samples_kept} sampler rows but sent {len(latency)} and {len(samples)}")
        if len(latency) == result.latency_samples_total:
            _check_summary(self.name, result.latency, latency, outputs)
        return BenchReply(result.model_dump(), latency, samples, outputs[0] if outputs else None)

    def outputs(self, args: Sequence[str], timeout_s: float) -> BoardOutputs:
        """Run a dataset through a model on the board (the outputs verb); the outputs come back."""
        sink = _OutputsSink(self.name)
        expected = [0]

        def handle(message: Any) -> Any:
            if isinstance(message, OutputsChunk):
                if message.seq != expected[0]:
                    raise AgentError(f"{self.name}: agent sent outputs chunk {message.seq} where {expected[0]} was due")
                expected[0] += 1
                sink.write(message.data)
            elif isinstance(message, OutputsMessage):
                return sink.finish(message)
            return None

        try:
            return self._exchange("outputs", {"args": list(args)}, timeout_s, handle)
        except BaseException:
            sink.discard()
            raise

    # ------------------------------------------------------------------ the exchange

    def _exchange(self, op: str, fields: dict[str, Any], timeout_s: float, handle: Callable[[Any], Any]) -> Any:
        """Send one request; feed its messages to `handle` until it returns something (the
        answer) or the agent answers an error, the session dies, or `timeout_s` passes (then the
        job is cancelled on the board and a TransportError "timeout" raised)."""
        self._raise_if_failed()
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            answers: queue.Queue = queue.Queue()
            self._pending[request_id] = answers
            self._in_flight = request_id
            stray, self._stray = self._stray, None
        try:
            if stray is not None:
                raise stray
            self._send({"id": request_id, "op": op, **fields})
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._cancel(request_id, answers, timeout_s)
                try:
                    item = answers.get(timeout=min(0.5, max(0.01, remaining)))
                except queue.Empty:
                    self._raise_if_failed()
                    continue
                if isinstance(item, BaseException):
                    if isinstance(item, AgentError):
                        self._send_quietly({"op": "cancel", "target": request_id, "kind": "interrupted",
                                            "message": "the controller refused one of its messages"})
                    raise item
                if isinstance(item, ErrorMessage):
                    raise self._agent_error(item, fields.get("args") or [])
                try:
                    answer = handle(item)
                except AgentError:
                    self._send_quietly({"op": "cancel", "target": request_id, "kind": "interrupted",
                                        "message": "the controller refused one of its messages"})
                    raise
                if answer is not None:
                    return answer
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
                if self._in_flight == request_id:
                    self._in_flight = None

    def _cancel(self, request_id: int, answers: queue.Queue, timeout_s: float) -> None:
        """The request ran out of time: stop it on the board and raise the timeout."""
        self._send_quietly({"op": "cancel", "target": request_id, "kind": "timeout",
                            "message": f"took longer than {timeout_s:g} s"})
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline and self._failure is None:
            try:
                item = answers.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, (ErrorMessage, BaseException)):
                break
        else:
            self.abort()  # the agent did not stop the job: end the session (it cleans up on end-of-file)
        raise TransportError(f"{self.name}: the job timed out after {timeout_s:g} s and was stopped", kind="timeout")

    def _agent_error(self, message: ErrorMessage, args: Sequence[str]) -> AgentError:
        text = f"{self.name}: {message.message}"
        if message.kind == "missing-runtime":
            text += self.provision_hint(args)
        return AgentError(text, kind=message.kind)

    def _send(self, request: dict[str, Any]) -> None:
        self._send_raw((json.dumps(request, separators=(",", ":")) + "\n").encode())

    def _send_raw(self, data: bytes) -> None:
        assert self._stream is not None
        try:
            self._stream.send(data, SEND_TIMEOUT_S)
        except TransportError as exc:
            self._fail(exc)
            raise

    def _send_quietly(self, request: dict[str, Any]) -> None:
        try:
            self._send(request)
        except TransportError:
            pass

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
            pending = list(self._pending.values())
        for answers in pending:
            answers.put(self._failure)

    # ------------------------------------------------------------------ reading (one thread)

    def _read_loop(self) -> None:
        stream = self._stream
        assert stream is not None
        splitter = LineSplitter(self._on_line, max_line_bytes=MAX_LINE_BYTES)
        next_beat = time.monotonic() + self.heartbeat_s
        while True:
            now = time.monotonic()
            if now >= next_beat and self._hello_event.is_set() and not self._closing:
                next_beat = now + self.heartbeat_s
                try:
                    stream.send(b'{"op":"beat"}\n', min(SEND_TIMEOUT_S, self.dead_after_s))
                except TransportError as exc:
                    self._fail(exc)
                    return
            silent_s = now - self._last_heard
            if silent_s > self.dead_after_s and not self._closing:
                self._fail(TransportError(
                    f"{self.name}: no word from the agent for {silent_s:.0f} s (heartbeats stopped: the link is "
                    "down or half-open)", kind="disconnected"))
                self._drop_connection()
                return
            data = stream.receive(min(0.5, max(0.01, next_beat - now)))
            if data is None:
                splitter.finish()
                if self._closing:
                    self._fail(TransportError(f"{self.name}: the agent session was closed", kind="interrupted"))
                else:
                    self._fail(self._ended(stream))
                return
            if data:
                self._last_heard = time.monotonic()
                splitter.feed(data)

    def _drop_connection(self) -> None:
        """A silent link: drop the whole connection at once (nothing can reach the board through it;
        the agent cleans up by itself), so that a retry makes a new one."""
        self._closing = True
        drop = getattr(self.transport, "drop_connection", None)
        try:
            if drop is not None:
                drop()
            elif self._stream is not None:
                self._stream.stop()  # a local agent gone silent: kill it
        except (TransportError, OSError):
            pass

    def _ended(self, stream: Stream) -> TransportError | AgentError:
        """Why the agent's output ended before we closed it."""
        code = stream.wait(2.0)
        tail = (stream.stderr_text().strip().splitlines()[-1:] or [""])[0][:300]
        if code is None:
            return TransportError(f"{self.name}: the connection closed while the agent was running", kind="disconnected")
        if code in (137, -9):
            return AgentError(f"{self.name}: the agent was killed by SIGKILL (out of memory?)", kind="oom-killed")
        if code == 127:
            return AgentError(f"{self.name}: {self.python!r} not found on the board (set `python` in the inventory)"
                              + self.provision_hint(()), kind="missing-runtime")
        if code == 125:
            kind = "disk-full" if "No space left" in tail else "agent-error"
            return AgentError(f"{self.name}: cannot create the work directory on the board: {tail}", kind=kind)
        return AgentError(f"{self.name}: the agent exited with status {code}: {tail or 'no message'}")

    def _on_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if not self._hello_event.is_set() and line == NEED_AGENT_MARKER:
            self._need_agent.set()
            return
        if line.endswith(LineSplitter.MARKER.format(limit=MAX_LINE_BYTES).strip()):
            self._route_problem(AgentError(f"{self.name}: agent line exceeds the {MAX_LINE_BYTES} byte limit; "
                                           f"it began: {line[:80]!r}"))
            return
        try:
            message = parse_agent_line(line)
        except AgentError as exc:
            exc.args = (f"{self.name}: {exc.args[0]}",)
            self._route_problem(exc)
            return
        kind = message.type
        if kind == "heartbeat":
            return
        if kind == "hello":
            self.hello = message
            self._hello_event.set()
            return
        if kind == "lease" and message.id is None and message.lost:
            self.lease_lost.set()
            self.on_lease_lost()
            return
        with self._lock:
            answers = self._pending.get(message.id) if message.id is not None else None
        if answers is not None:
            answers.put(message)

    def _route_problem(self, exc: AgentError) -> None:
        """An invalid line fails the request in flight (or the next one, or the start)."""
        with self._lock:
            answers = self._pending.get(self._in_flight) if self._in_flight is not None else None
            if answers is None:
                self._stray = self._stray or exc
        if answers is not None:
            answers.put(exc)
        elif not self._hello_event.is_set():
            self._fail(exc)


def _check_summary(board: str, summary: Any, latency: Sequence[float], outputs: list[BoardOutputs]) -> None:
    """The agent sent every sample: its summary must be theirs (a board cannot claim a better one)."""
    mean = sum(latency) / len(latency)
    if (min(latency), max(latency)) != (summary.min_ms, summary.max_ms) or abs(mean - summary.mean_ms) > 1e-6 * mean:
        for item in outputs:
            item.discard()
        raise AgentError(f"{board}: the agent's latency summary (min {summary.min_ms}, mean {summary.mean_ms}, max "
                         f"{summary.max_ms} ms) is not that of the samples it sent (min {min(latency)}, mean {mean}, "
                         f"max {max(latency)} ms)")


class _OutputsSink:
    """Dataset outputs arriving in base64 chunks, written to a temporary file, bounded in size."""

    def __init__(self, board: str) -> None:
        self.board = board
        self.folder: Path | None = None
        self.handle = None
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: str) -> None:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AgentError(f"{self.board}: agent sent an outputs chunk that is not base64") from exc
        self.size += len(raw)
        if self.size > MAX_OUTPUTS_BYTES:
            raise AgentError(f"{self.board}: the dataset outputs exceed {MAX_OUTPUTS_BYTES} bytes")
        if self.handle is None:
            self.folder = Path(tempfile.mkdtemp(prefix="farm-outputs-"))
            self.handle = open(self.folder / "outputs.npz", "wb")  # noqa: SIM115 - closed in finish/discard
        self.handle.write(raw)
        self.digest.update(raw)

    def finish(self, message: OutputsMessage) -> BoardOutputs:
        if self.handle is None:
            self.folder = Path(tempfile.mkdtemp(prefix="farm-outputs-"))
            self.handle = open(self.folder / "outputs.npz", "wb")  # noqa: SIM115
        self.handle.close()
        assert self.folder is not None
        if message.size_bytes != self.size or message.sha256 != self.digest.hexdigest():
            self.discard()
            raise AgentError(f"{self.board}: the dataset outputs arrived as {self.size} bytes, "
                             f"not the {message.size_bytes} the agent announced (or a different hash)")
        outputs = BoardOutputs(self.folder / "outputs.npz", message.count, list(message.output_names),
                               message.runtime.model_dump())
        self.handle = None
        return outputs

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


__all__ = ["AgentSession", "BenchReply", "BoardOutputs"]
