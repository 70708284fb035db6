"""The plan (boards × models × variants × settings) and its execution.

Boards run in parallel (a bounded pool), one job at a time per board. Each job's result —
success or failure with a kind — is written to the store as soon as the job ends, so an
interrupted run keeps everything that finished. A failed board never stops the others.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orchestrator
from orchestrator.agent_client import AgentClient, agent_source_path, file_sha256
from orchestrator.analysis import summarize_latency
from orchestrator.boards import Board
from orchestrator.errors import AgentError, FarmError, TransportError
from orchestrator.lease import BoardLease, LeaseHolder, describe_lease
from orchestrator.plan import Job, ModelFiles
from orchestrator.repeats import PROCESS_P50_FIELD, merge_process_results, process_summary
from orchestrator.store import Store
from orchestrator.transport import Transport, open_transport

# Export fields measured per result beyond the latency summary (issue 6 names, kept stable).
MEASUREMENT_EXPORT_FIELDS = (
    "peak_rss_load_bytes",
    "peak_rss_inference_bytes",
    "rss_steady_bytes",
    "cpu_percent_mean",
    "temp_c_max",
    "freq_drop",
    "throttled",
    "sample_interval_s",
)


# Variant and accuracy export fields (issue 5 names, kept stable); None = not measured.
VARIANT_EXPORT_FIELDS = ("model_gzip_bytes", "sparsity", "variant_fidelity_cosine")
ACCURACY_EXPORT_FIELDS = ("accuracy_metric", "accuracy", "accuracy_delta", "fidelity_cosine")
# Which runtime and provider really ran the model, and at what precision (issue 10 names).
RUNTIME_EXPORT_FIELDS = ("runtime", "runtime_version", "provider", "provider_fallback", "inference_precision")
KNOWN_RUNTIMES = ("onnxruntime", "openvino")
# Failures of the connection, not of the measurement: worth a retry after a pause. A job's own
# timeout is not retried (a hung model would hang again); connecting can time out and be retried.
CONNECT_RETRYABLE_KINDS = ("unreachable", "timeout", "disconnected")
JOB_RETRYABLE_KINDS = ("unreachable", "disconnected")


def empty_export() -> dict[str, Any]:
    """Every optional export field present, so CSV columns and JSON keys never depend on luck."""
    fields = MEASUREMENT_EXPORT_FIELDS + VARIANT_EXPORT_FIELDS + ACCURACY_EXPORT_FIELDS + RUNTIME_EXPORT_FIELDS
    return {field: None for field in fields}


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """How each job measures. Units in the names; `threads=0` means the runtime's default."""

    runs: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 300.0
    warmup: int = 10
    threads: int = 0
    sample_interval_s: float = 1.0
    cooldown_s: float = 0.0
    cooldown_below_c: float | None = None
    cooldown_max_s: float = 60.0
    shapes: tuple[str, ...] = ()
    cpu_arena: bool = True
    runtime: str | None = None  # None: the board's (inventory) runtime, else onnxruntime
    providers: tuple[str, ...] = ()  # () : the board's providers, else the runtime's default (CPU)
    provider_options: str | None = None  # JSON {provider: {option: value}}
    strict: bool = False  # a provider fallback fails the job instead of being reported
    lease_ttl_s: float = 120.0  # a dead controller's lease on a board expires after this
    lease_wait_s: float = 60.0  # how long to wait for a board another controller holds
    workdir_max_bytes: int = 2 << 30  # staged files kept on a board (LRU beyond this)
    workdir_max_age_days: float = 14.0  # staged files not used by this run and older than this go
    repeats: int = 1  # fresh worker processes per cell, in rounds across the board's cells (pyperf-style)
    retries: int = 2  # connection-level failures only (never a failed measurement)
    retry_backoff_s: float = 1.0  # doubled after each retry
    load_timeout_s: float = 300.0

    def settings_hash(self) -> str:
        """Identifies settings that change what is measured (not timeouts)."""
        measured = dataclasses.asdict(self)
        for key in ("max_seconds", "load_timeout_s", "cooldown_max_s", "lease_ttl_s", "lease_wait_s", "retries",
                    "retry_backoff_s", "workdir_max_bytes", "workdir_max_age_days"):
            measured.pop(key)
        if measured["repeats"] == 1:
            measured.pop("repeats")  # one process, as before --repeats existed: stored hashes stay valid
        text = json.dumps(measured, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def job_timeout_s(self) -> float:
        return self.max_seconds + self.load_timeout_s + self.cooldown_s + self.cooldown_max_s

    def runtime_args(self, board: Board, variant_runtime: str | None = None) -> list[str]:
        """--runtime/--provider/--strict for this board: run settings first, then the inventory's.

        A variant whose format only one runtime reads (`variant_runtime`, an OpenVINO IR) runs on
        that runtime; the run's providers and provider options name another runtime's devices
        then, so that variant gets its runtime's default device.
        """
        run_runtime = self.runtime or board_runtime(board)
        runtime = variant_runtime or run_runtime
        args = ["--runtime", runtime, "--threads", str(self.threads)]
        if runtime == run_runtime:
            for provider in self.providers or board.providers:
                args += ["--provider", provider]
            if self.provider_options:
                args += ["--provider-options", self.provider_options]
        if self.strict:
            args.append("--strict")
        return args

    def agent_args(self, model_args: Sequence[str], board: Board, shapes: Sequence[str] = (),
                   variant_runtime: str | None = None) -> list[str]:
        """The bench verb's arguments; `model_args` are `--model PATH [--weights PATH]` on the board."""
        args = [
            *model_args,
            "--runs", str(self.runs),
            "--min-seconds", repr(self.min_seconds),
            "--max-seconds", repr(self.max_seconds),
            "--warmup", str(self.warmup),
            *self.runtime_args(board, variant_runtime),
            "--sample-interval", repr(self.sample_interval_s),
            "--cooldown-s", repr(self.cooldown_s),
            "--cooldown-max-s", repr(self.cooldown_max_s),
        ]
        if self.cooldown_below_c is not None:
            args += ["--cooldown-below-c", repr(self.cooldown_below_c)]
        for shape in shapes or self.shapes:
            args += ["--shape", shape]
        if not self.cpu_arena:
            args.append("--no-cpu-arena")
        return args


def parse_provider_options(text: str) -> dict[str, dict[str, Any]]:
    """`{"CUDA": {"device_id": "0"}}` -> the dict; ValueError saying what is wrong otherwise.

    Keys are onnxruntime provider names (CUDA, CUDAExecutionProvider, ...) or OpenVINO devices
    (CPU, GPU, NPU); values are that provider's options or that device's properties.
    """
    example = "e.g. '{\"CUDA\": {\"device_id\": \"0\"}}' or '{\"CPU\": {\"INFERENCE_PRECISION_HINT\": \"f32\"}}'"
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"is not JSON ({exc}); {example}") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"must be a JSON object of objects, {{provider: {{option: value}}}}; {example}")
    return options


def staged_name(path: Path, suffix: str) -> str:
    """The name AgentClient.stage gives a file on the board: its content hash."""
    return f"{file_sha256(Path(path).resolve())[:16]}{suffix}"


def stage_model(client: AgentClient, files: ModelFiles) -> tuple[list[str], int]:
    """Put a model's file(s) on the board; returns the agent's `--model X [--weights Y]` and bytes sent."""
    args: list[str] = []
    bytes_sent = 0
    for option, path, suffix in files.uploads():
        board_path, sent = client.stage(path, suffix=suffix)
        args += [option, board_path]
        bytes_sent += sent
    return args, bytes_sent


def board_runtime(board: Board) -> str:
    """The runtime an inventory gives a board (`runtime: openvino`), else onnxruntime."""
    runtime = (board.tags or {}).get("runtime", "")
    return runtime if runtime in KNOWN_RUNTIMES else "onnxruntime"


@dataclasses.dataclass
class JobOutcome:
    board: str
    model: str
    variant: str
    status: str  # ok | failed
    row: dict[str, Any]
    result_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclasses.dataclass
class RunOutcome:
    run_id: str
    outcomes: list[JobOutcome]
    status: str  # finished | failed | interrupted

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


Event = Callable[[str, dict[str, Any]], None]


def _no_event(kind: str, info: dict[str, Any]) -> None:
    pass


def controller_record() -> dict[str, Any]:
    return {
        "farm_version": orchestrator.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "argv": sys.argv[1:],
    }


class BenchRunner:
    """Runs one `farm bench`: stores a run, executes every job, never loses a finished result."""

    def __init__(
        self,
        store: Store,
        boards: Sequence[Board],
        jobs: Sequence[Job],
        settings: BenchSettings,
        forks: int = 8,
        on_event: Event = _no_event,
        transport_factory: Callable[[Board], Transport] = open_transport,
        resume_run_id: str | None = None,
        done_cells: Iterable[tuple[str, str, str, str]] = (),
        inventory: str | None = None,
    ) -> None:
        self.store = store
        self.boards = list(boards)
        self.jobs = list(jobs)
        self.settings = settings
        self.forks = max(1, forks)
        self.on_event = on_event
        self.transport_factory = transport_factory
        self._cancel = threading.Event()
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self.inventory = inventory  # named in hints such as the provision command
        self.resume_run_id = resume_run_id
        self.done_cells = {tuple(cell) for cell in done_cells}

    def jobs_for(self, board: Board) -> list[Job]:
        """The board's cells still to measure (all of them, unless resuming a run)."""
        settings_hash = self.settings.settings_hash()
        return [j for j in self.jobs if (board.name, j.model.name, j.variant, settings_hash) not in self.done_cells]

    def run(self) -> RunOutcome:
        settings_record = {
            **dataclasses.asdict(self.settings),
            "boards": [b.name for b in self.boards],
            "models": list(dict.fromkeys(j.model.name for j in self.jobs)),
            "variants": sorted({j.variant for j in self.jobs}),
        }
        if self.resume_run_id is not None:
            run_id = self.resume_run_id  # reopened by the caller; only missing cells are measured
        else:
            run_id = self.store.create_run(settings_record, controller_record(), orchestrator.__version__)
        self.on_event("run_started", {"run_id": run_id, "jobs": sum(len(self.jobs_for(b)) for b in self.boards)})
        outcomes: list[JobOutcome] = []
        status = "finished"
        pool = ThreadPoolExecutor(max_workers=min(self.forks, len(self.boards)) or 1, thread_name_prefix="farm-board")
        futures: dict[Future, Board] = {pool.submit(self._run_board, run_id, b): b for b in self.boards}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    outcomes.extend(future.result())
        except KeyboardInterrupt:
            status = "interrupted"
            self._cancel.set()
            with self._lock:
                for transport in self._transports.values():
                    transport.close()  # stops the command running on the board
            for future in futures:
                future.cancel()
            for future in futures:
                if not future.cancelled():
                    try:
                        outcomes.extend(future.result(timeout=30))
                    except Exception:  # the board thread was cut mid-job; its job is not stored
                        pass
            pool.shutdown(wait=False, cancel_futures=True)
            self.store.finish_run(run_id, status)
            raise
        pool.shutdown(wait=True)
        if outcomes and all(not o.ok for o in outcomes):
            status = "failed"
        self.store.finish_run(run_id, status)
        self.on_event("run_finished", {"run_id": run_id, "status": status})
        return RunOutcome(run_id=run_id, outcomes=outcomes, status=status)

    # --- one board ----------------------------------------------------------------------

    def _run_board(self, run_id: str, board: Board) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        jobs = self.jobs_for(board)
        if not jobs:
            return outcomes
        transport = self.transport_factory(board)
        with self._lock:
            self._transports[board.name] = transport
        client = AgentClient(transport, python=board.python, inventory=self.inventory)
        try:
            try:
                self.on_event("board_connecting", {"board": board.name})
                facts = self._with_retries(
                    board, "connect", lambda: client.facts(timeout_s=max(60.0, board.connect_timeout_s * 3), quick=True),
                    CONNECT_RETRYABLE_KINDS)
            except (TransportError, AgentError) as exc:
                return self._fail_all(run_id, board, jobs, exc, {})  # the board is unusable
            lease = BoardLease(
                client,
                lambda: AgentClient(self.transport_factory(board), python=board.python, inventory=self.inventory),
                LeaseHolder.for_this_process(run_id),
                ttl_s=self.settings.lease_ttl_s,
                wait_s=self.settings.lease_wait_s,
                cancel=self._cancel,
                on_wait=lambda held, waited_s: self.on_event(
                    "board_waiting", {"board": board.name, "lease": describe_lease(held), "waited_s": waited_s}),
            )
            try:
                lease.acquire()
            except (TransportError, AgentError) as exc:
                return self._fail_all(run_id, board, jobs, exc, facts)  # busy, or lost on the way
            self.on_event("board_ready", {"board": board.name, "facts": facts})
            self._clean_workdir(client, jobs)
            try:
                outcomes.extend(self._run_rounds(run_id, board, client, facts, jobs, lease))
            finally:
                lease.release()
        finally:
            transport.close()
            with self._lock:
                self._transports.pop(board.name, None)
        return outcomes

    def _run_rounds(self, run_id: str, board: Board, client: AgentClient, facts: dict, jobs: Sequence[Job],
                    lease: BoardLease) -> list[JobOutcome]:
        """Every job of the board, `repeats` rounds of one fresh worker process each (A B A B ...);
        a job's result is stored after its last round, a failure as soon as it happens."""
        accuracy = BoardAccuracy(client, self.settings, board)
        outcomes: list[JobOutcome] = []
        measured: dict[int, list[tuple[dict[str, Any], int]]] = {index: [] for index in range(len(jobs))}
        ended: set[int] = set()
        for _ in range(self.settings.repeats):
            for index, job in enumerate(jobs):
                if index in ended:
                    continue
                if self._cancel.is_set():
                    return outcomes
                if lease.lost.is_set():  # another controller took the board: measure nothing more
                    lost = AgentError(f"{board.name}: our lease on the board was taken over "
                                      "(renewals failed for a whole --lease-ttl)", kind="busy")
                    rest = [j for i, j in enumerate(jobs) if i not in ended]
                    return outcomes + self._fail_all(run_id, board, rest, lost, facts)
                outcome = self._run_job(run_id, board, client, facts, job, accuracy, measured[index])
                if outcome is not None:
                    outcomes.append(outcome)
                    ended.add(index)
        return outcomes

    def _run_job(
        self, run_id: str, board: Board, client: AgentClient, facts: dict, job: Job, accuracy: "BoardAccuracy",
        measured: list[tuple[dict[str, Any], int]],
    ) -> JobOutcome | None:
        """One round of a job: one fresh worker process. Returns the stored outcome when the job
        ended (its last round measured, or a failure), None while rounds remain (`measured` grows)."""
        if job.build_error is not None:
            return self._store_failure(run_id, board, job, "variant-error", job.build_error, facts)
        info = {"board": board.name, "model": job.model.name, "variant": job.variant,
                "round": len(measured) + 1, "rounds": self.settings.repeats}
        self.on_event("job_started", info)

        def attempt():
            model_args, bytes_sent = stage_model(client, job.files)
            self.on_event("job_staged", {**info, "bytes_sent": bytes_sent})
            reply = client.call(
                "bench",
                self.settings.agent_args(model_args, board, job.shapes, job.runtime),
                timeout_s=self.settings.job_timeout_s,
                on_message=lambda m: self._on_agent_message(info, m),
            )
            return reply, bytes_sent

        try:
            # a job cut by the connection is re-run from its start, never half-counted
            reply, bytes_sent = self._with_retries(board, f"{job.model.name}/{job.variant}", attempt)
        except (TransportError, AgentError) as exc:
            if self._cancel.is_set():
                raise
            return self._store_failure(run_id, board, job, exc.kind, str(exc), facts)
        message = reply.first("result")
        if message is None or not isinstance(message.get("result"), dict):
            return self._store_failure(run_id, board, job, "agent-error", "agent sent no result", facts)
        measured.append((message["result"], bytes_sent))
        if len(measured) < self.settings.repeats:
            return None
        try:
            merged = merge_process_results([result for result, _ in measured])
            row, latency_ms, timeseries = result_row(merged, job, facts, sum(sent for _, sent in measured))
        except (KeyError, TypeError, ValueError) as exc:
            return self._store_failure(run_id, board, job, "agent-error", f"malformed bench result: {exc}", facts)
        row.update(board=board.name, settings_hash=self.settings.settings_hash())
        if job.dataset is not None:
            self.on_event("job_phase", {**info, "phase": "accuracy"})
            row["details"]["export"].update(accuracy.evaluate(job))
        result_id = self.store.add_result(run_id, row, latency_ms, timeseries)
        outcome = JobOutcome(board.name, job.model.name, job.variant, "ok", row, result_id)
        self.on_event("job_finished", {**info, "row": row})
        return outcome

    def _fail_all(self, run_id: str, board: Board, jobs: Sequence[Job], exc: TransportError | AgentError,
                  facts: dict) -> list[JobOutcome]:
        """Every job of a board that cannot be used fails with the same kind and reason."""
        return [self._store_failure(run_id, board, job, exc.kind, str(exc), facts) for job in jobs]

    def _clean_workdir(self, client: AgentClient, jobs: Sequence[Job]) -> None:
        """Under our lease: drop interrupted uploads and old staged files (size/age policy),
        keeping everything this run uses. Best effort: a board that cannot clean still runs."""
        keep = {f"agent-{file_sha256(agent_source_path())[:12]}.py"}
        keep |= {staged_name(path, suffix) for job in jobs if job.build_error is None
                 for _, path, suffix in job.files.uploads()}
        keep |= {staged_name(job.dataset.inputs_npz, ".npz") for job in jobs if job.dataset is not None}
        args = ["--workdir", client.transport.workdir, "--max-bytes", str(self.settings.workdir_max_bytes),
                "--max-age-days", repr(self.settings.workdir_max_age_days)]
        for name in sorted(keep):
            args += ["--keep", name]
        try:
            client.call("clean", args, timeout_s=60)
        except (TransportError, AgentError):
            pass

    def _with_retries(self, board: Board, what: str, call: Callable[[], Any],
                      kinds: tuple[str, ...] = JOB_RETRYABLE_KINDS) -> Any:
        """Run `call`, retrying connection-level failures with exponential backoff (bounded)."""
        delay_s = self.settings.retry_backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return call()
            except TransportError as exc:
                retryable = exc.kind in kinds and attempt < self.settings.retries
                if not retryable or self._cancel.is_set():
                    raise
                self.on_event("board_retry", {"board": board.name, "what": what, "kind": exc.kind,
                                              "attempt": attempt + 1, "delay_s": delay_s})
                if self._cancel.wait(delay_s):
                    raise
                delay_s *= 2
        raise AssertionError("unreachable")

    def _on_agent_message(self, info: dict[str, Any], message: dict[str, Any]) -> None:
        if message["type"] == "phase":
            self.on_event("job_phase", {**info, "phase": message.get("phase")})

    def _store_failure(self, run_id: str, board: Board, job: Job, kind: str, message: str, facts: dict) -> JobOutcome:
        row = {
            "board": board.name,
            "model": job.model.name,
            "model_sha256": job.model.sha256,
            "variant": job.variant,
            "settings_hash": self.settings.settings_hash(),
            "status": "failed",
            "error_kind": kind,
            "error_message": message[:2000],
            "model_size_bytes": job.variant_details.get("size_bytes", job.model.size_bytes),
            "facts": facts,
            "details": {"variant": job.variant_details,
                        "export": {**empty_export(), **variant_export_fields(job.variant_details)}},
        }
        result_id = self.store.add_result(run_id, row)
        outcome = JobOutcome(board.name, job.model.name, job.variant, "failed", row, result_id)
        self.on_event("job_failed", {"board": board.name, "model": job.model.name, "variant": job.variant,
                                     "kind": kind, "message": message})
        return outcome


class BoardAccuracy:
    """Runs a job's dataset on the board and scores it; keeps fp32 outputs for fidelity.

    The agent runs the inputs and saves the outputs on the board; they are fetched and scored
    here. A failure of this step never discards the latency result: it is reported in
    `accuracy_error` and the accuracy columns stay empty.
    """

    def __init__(self, client: AgentClient, settings: BenchSettings, board: Board) -> None:
        self.client = client
        self.settings = settings
        self.board = board
        self._fp32: dict[str, tuple[float, Any]] = {}  # model name -> (fp32 accuracy, scored output)

    def evaluate(self, job: Job) -> dict[str, Any]:
        from orchestrator.task_dataset import score_outputs

        task = job.dataset
        assert task is not None
        try:
            if job.variant != "fp32" and job.model.name not in self._fp32 and job.reference_path is not None:
                reference = score_outputs(task, self._outputs(ModelFiles(job.reference_path), task), None)
                self._fp32[job.model.name] = (reference.value, reference.scored_output)
            baseline = self._fp32.get(job.model.name)
            outputs = self._outputs(job.files, task, job.runtime)
            score = score_outputs(task, outputs, baseline[1] if baseline else None)
        except (TransportError, AgentError, FarmError, ValueError, OSError) as exc:
            return {"accuracy_metric": task.metric, "accuracy": None, "accuracy_error": str(exc)[:500]}
        if job.variant == "fp32":
            self._fp32[job.model.name] = (score.value, score.scored_output)
            baseline = self._fp32[job.model.name]
        fields: dict[str, Any] = {
            "accuracy_metric": score.metric,
            "accuracy": score.value,
            "accuracy_delta": None if baseline is None else score.value - baseline[0],
            "accuracy_samples": task.count,
            "dataset_sha256": task.sha256,
        }
        fields.update(score.extra)
        if job.variant == "fp32":
            fields.update(fidelity_cosine=1.0)
        return fields

    def _outputs(self, files: ModelFiles, task, variant_runtime: str | None = None) -> list[Any]:
        """Run the dataset through the model on the board; return the outputs in model order."""
        import secrets
        import tempfile

        import numpy as np

        model_args, _ = stage_model(self.client, files)
        board_data, _ = self.client.stage(task.inputs_npz, suffix=".npz")
        board_out = f"{self.client.transport.workdir}/outputs-{secrets.token_hex(6)}.npz"
        args = [*model_args, "--dataset", board_data, "--out", board_out,
                *self.settings.runtime_args(self.board, variant_runtime)]
        self.client.call("outputs", args, timeout_s=self.settings.job_timeout_s)
        with tempfile.TemporaryDirectory(prefix="farm-outputs-") as tmp:
            local = Path(tmp) / "outputs.npz"
            try:
                self.client.transport.fetch_file(board_out, local)
            finally:
                self.client.transport.run(["rm", "-f", board_out], timeout_s=30)
            with np.load(local, allow_pickle=False) as data:
                return [data[f"output_{i}"] for i in range(len(data.files))]


def variant_export_fields(details: dict[str, Any]) -> dict[str, Any]:
    """What the variant's manifest adds to the export (sizes, sparsity, build fidelity)."""
    return {
        "model_gzip_bytes": details.get("gzip_bytes"),
        "sparsity": details.get("sparsity"),
        "variant_fidelity_cosine": (details.get("fidelity") or {}).get("cosine"),
    }


def result_row(
    result: dict[str, Any], job: Job, facts: dict[str, Any], bytes_sent: int
) -> tuple[dict[str, Any], list[float], list[dict[str, Any]]]:
    """Turn the agent's bench result into a store row, the raw latencies and the time series."""
    latency_ms = [float(x) for x in result["latency_ms"]]
    processes = result.get("processes") or [process_summary(result)]
    summary = summarize_latency(latency_ms)
    stats = summary.as_dict()
    timeseries = list(result.get("samples") or [])
    export = empty_export()
    export.update({field: result.get(field) for field in MEASUREMENT_EXPORT_FIELDS})
    export.update(variant_export_fields(job.variant_details))
    export.update({field: result.get(field) for field in RUNTIME_EXPORT_FIELDS})
    export.update(
        latency_ms_cv=stats["cv"],
        latency_ms_median_ci_low=stats["median_ci_low_ms"],
        latency_ms_median_ci_high=stats["median_ci_high_ms"],
        noisy=stats["noisy"],
        truncated=bool(result.get("truncated")),
        processes=len(processes),
    )
    export[PROCESS_P50_FIELD] = [p["latency_ms_p50"] for p in processes]
    details = {
        "export": export,
        "variant": job.variant_details,
        "inputs": result.get("inputs"),
        "provider": result.get("provider"),
        "providers_requested": result.get("providers_requested"),
        "providers_active": result.get("providers_active"),
        "available_providers": result.get("available_providers"),
        "phase_marks": result.get("phase_marks"),
        "measure_s": result.get("measure_s"),
        "cooldown_s": result.get("cooldown_s"),
        "peak_rss_reset_supported": result.get("peak_rss_reset_supported"),
        "bytes_sent": bytes_sent,
        "model_path": str(job.model.path),
        "processes": processes,
    }
    row = {
        "model": job.model.name,
        "model_sha256": job.model.sha256,
        "variant": job.variant,
        "status": "ok",
        "runs": summary.runs,
        **{k: stats[k] for k in (
            "latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90",
            "latency_ms_p99", "latency_ms_max", "latency_ms_stdev", "fps",
        )},
        "load_ms": float(result["load_ms"]),
        "first_inference_ms": float(result["first_inference_ms"]),
        "peak_rss_bytes": result.get("peak_rss_bytes"),
        "model_size_bytes": job.variant_details.get("size_bytes", job.model.size_bytes),
        "facts": facts,
        "details": details,
    }
    return row, latency_ms, timeseries


__all__ = ["BenchRunner", "BenchSettings", "Job", "JobOutcome", "RunOutcome", "FarmError"]
