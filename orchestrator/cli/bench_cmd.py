"""`farm bench`: parse options, build the plan, run it with a progress display, print a summary."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from orchestrator.cli import render, state


def bench(
    model: Optional[List[Path]] = typer.Option(None, "--model", "-m", help="ONNX model file (repeatable). Default: the bundled demo models."),
    variants: str = typer.Option("fp32", "--variants", "-V", help="Comma-separated variants: fp32, optimized, fp16, int8-dynamic, int8-static, prune-l1:AMOUNT, prune-l1-layerwise:AMOUNT, openvino-ir, openvino-ir-fp16 (these two run on OpenVINO)."),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="Labelled data for accuracy: PATH (one model) or MODEL=PATH; .npz (classification) or a COCO folder (detection)."),
    detection: Optional[List[str]] = typer.Option(None, "--detection", help="How a detector reads its COCO dataset: [MODEL=]KEY=VALUE,... with layout=auto|yolov5|yolov8|yolox, decoded=true|false, pixel-max=1|255, letterbox=center|top-left|stretch, channels=RGB|BGR, pad=114, postprocess=MODULE:FUNC."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration inputs (.npz with `inputs`) for int8-static; default: the model's dataset."),
    runs: int = typer.Option(100, "--runs", "-n", min=1, help="Measure at least this many runs..."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", min=0.0, help="...and at least this many seconds."),
    max_seconds: float = typer.Option(300.0, "--max-seconds", min=0.1, help="Stop measuring after this long even if --runs is not reached (marked truncated)."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Unmeasured runs after the first inference."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Measure each cell in this many fresh worker processes, in rounds across a board's cells; comparisons then test the process medians (use 3 or more for gating on a noisy machine)."),
    threads: int = typer.Option(0, "--threads", "-t", min=0, help="Intra-op threads on the board (0: the runtime's default)."),
    shape: Optional[List[str]] = typer.Option(None, "--shape", help="Input shape for dynamic dims, NAME=1x3x224x224 (repeatable)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="onnxruntime or openvino (default: the board's inventory runtime, else onnxruntime)."),
    providers: Optional[str] = typer.Option(None, "--providers", help="Ordered execution providers (onnxruntime: CUDA,TensorRT,OpenVINO,QNN,XNNPACK,ACL,CPU…) or OpenVINO devices (CPU,GPU,NPU)."),
    provider_options: Optional[str] = typer.Option(None, "--provider-options", help='JSON per provider, e.g. \'{"CUDA": {"device_id": "0"}}\'.'),
    strict: bool = typer.Option(False, "--strict", help="Fail a job whose requested provider is not what ran (onnxruntime falls back to CPU silently)."),
    cpu_arena: bool = typer.Option(True, "--cpu-arena/--no-cpu-arena", help="onnxruntime's CPU memory arena (off: buffers return to the OS after each run)."),
    sample_interval: float = typer.Option(1.0, "--sample-interval", min=0.0, help="Memory/CPU/thermal sampling interval in seconds (0.01–; 0 turns sampling off)."),
    cooldown: float = typer.Option(0.0, "--cooldown", min=0.0, help="Seconds to rest the board before each job."),
    cooldown_below: Optional[float] = typer.Option(None, "--cooldown-below", help="Also wait (capped) until the hottest thermal zone is below this °C."),
    inventory: Optional[str] = typer.Option(None, "--inventory", "-i", envvar="FARM_INVENTORY", help="Inventory YAML (default: the built-in local board)."),
    limit: Optional[str] = typer.Option(None, "--limit", "-l", help="Boards to use: names, groups, globs, tag:key=value; comma-separated; !pattern excludes."),
    forks: int = typer.Option(8, "--forks", "-f", min=1, help="Boards benchmarked in parallel."),
    lease_wait: float = typer.Option(60.0, "--lease-wait", min=0.0, help="Seconds to wait for a board another controller holds (0: skip it at once)."),
    lease_ttl: float = typer.Option(120.0, "--lease-ttl", min=5.0, help="Our lease on a board expires this long after our last renewal (renewed every third of it)."),
    accept_new_host_keys: bool = typer.Option(False, "--accept-new-host-keys", help="Accept (and record) host keys not yet in known_hosts. Changed keys are always refused."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", help="Results database: SQLAlchemy URL or SQLite file path."),
    suite: Optional[Path] = typer.Option(None, "--suite", help="A suite file (models, datasets, variants, boards, settings, baseline, thresholds)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Measure only the cells of this run (id, prefix, latest, tag:NAME) that have no result yet."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Compare with this run: RUN_ID, latest (the newest other run with common cells) or tag:NAME."),
    fail_on_regression: Optional[float] = typer.Option(None, "--fail-on-regression", min=0.1, help="Exit 5 when a cell's median latency (or peak memory) regressed by at least this %% against the baseline."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML file: one test case per board × model × variant."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Where to write the HTML report (default: reports/<run id>.html)."),
    no_report: bool = typer.Option(False, "--no-report", help="Do not write an HTML report."),
) -> int:
    """Benchmark models on boards, store the results, print a summary and write an HTML report."""
    from orchestrator.bench import BenchRequest, run_bench
    from orchestrator.runner import BenchSettings, parse_provider_options

    if runtime is not None and runtime not in ("onnxruntime", "openvino"):
        raise typer.BadParameter(f"{runtime!r} is not a runtime farm knows (use onnxruntime or openvino)", param_hint="--runtime")
    if provider_options is not None:
        try:
            parse_provider_options(provider_options)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--provider-options") from None
    if min_seconds > max_seconds:
        raise typer.BadParameter("--min-seconds must not exceed --max-seconds", param_hint="--min-seconds")
    if 0 < sample_interval < 0.01:
        raise typer.BadParameter("use 0 (off) or at least 0.01 s", param_hint="--sample-interval")
    settings = BenchSettings(
        runs=runs, min_seconds=min_seconds, max_seconds=max_seconds, warmup=warmup, repeats=repeats, threads=threads,
        sample_interval_s=sample_interval, cooldown_s=cooldown, cooldown_below_c=cooldown_below,
        shapes=tuple(shape or ()), cpu_arena=cpu_arena, runtime=runtime,
        providers=tuple(p.strip() for p in (providers or "").split(",") if p.strip()),
        provider_options=provider_options, strict=strict, lease_wait_s=lease_wait, lease_ttl_s=lease_ttl,
    )
    request = BenchRequest(
        model_paths=list(model or []), settings=settings, inventory=inventory, limit=limit, forks=forks,
        accept_new_host_keys=accept_new_host_keys, db_url=db, report_path=report, write_report=not no_report,
        suite=suite, resume=resume, baseline=baseline, fail_on_regression=fail_on_regression, junit=junit,
        markdown=markdown,
        variants=[v for v in variants.split(",") if v.strip()], datasets=list(dataset or []), detection=list(detection or []),
        calibration=calibration,
    )
    with render.BenchProgress(state.err) as progress:
        try:
            outcome = run_bench(request, on_event=progress.on_event)
        except KeyboardInterrupt:
            if progress.run_id:
                state.err.print(f"run {progress.run_id} interrupted; finish it with: farm bench <same options> "
                                f"--resume {progress.run_id}")
            raise
    state.out.print(f"run [bold]{outcome.run.run_id}[/bold] ({outcome.run.status})")
    state.out.print(render.summary_table([o.row for o in outcome.run.outcomes]))
    for failure in outcome.run.failed:
        state.err.print(
            f"[red]failed[/red] {render.escape(failure.board)} / {render.escape(failure.model)} / "
            f"{render.escape(failure.variant)}: [bold]{failure.row.get('error_kind')}[/bold] "
            f"{render.escape(str(failure.row.get('error_message')))}",
            highlight=False,
        )
    for job in outcome.run.outcomes:
        export = (job.row.get("details") or {}).get("export") or {}
        if job.ok and export.get("provider_fallback"):
            requested = ((job.row.get("details") or {}).get("providers_requested") or ["?"])[0]
            state.err.print(
                f"[yellow]fallback[/yellow] {render.escape(job.board)} / {render.escape(job.model)} / "
                f"{render.escape(job.variant)}: asked for {render.escape(requested)}, ran on "
                f"{render.escape(str(export.get('provider')))} (use --strict to make this a failure)",
                highlight=False,
            )
    if outcome.gate is not None:
        state.out.print(render.escape(outcome.gate.summary_line()))
    if outcome.report_path is not None:
        state.out.print(f"report: {outcome.report_path}")
    state.out.print(f"database: {outcome.db_url}", style="dim")
    return outcome.exit_status
