"""`farm submit`: validate a bench request as `farm bench` does, build its variants once, store the
run and its files, and queue one job per board. Returns at once with the run id.

Everything `farm bench` checks before it touches a board is checked here, with the same
one-line errors (the same functions run): models, variants, datasets, shapes, inventory and
`--limit`, output paths, the baseline. Then the variants are built on the submitter (cached by
content, as for bench) and stored by content hash in the database with the models and datasets
(orchestrator.fleet.artifacts), so a worker needs none of the submitter's files.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import orchestrator
from orchestrator.errors import StoreError
from orchestrator.fleet import state
from orchestrator.fleet.gate import GateOptions, resolve_at_submit
from orchestrator.fleet.manifest import build_plan, check_submittable
from orchestrator.fleet.queue import board_queue, defer_board_jobs, ensure_queue_schema, make_app, require_postgresql
from orchestrator.resume import plan_record
from orchestrator.runner import controller_record
from orchestrator.store import open_store


LIVE_WORKER_S = 300.0  # a worker seen this recently counts as serving its queues


@dataclasses.dataclass(frozen=True)
class SubmitOutcome:
    run_id: str
    jobs: list[tuple[str, str, int]]  # (board, queue, procrastinate job id)
    cells_per_board: int
    db_url: str
    unserved_queues: list[str] = dataclasses.field(default_factory=list)  # no live worker serves them now


def submit_run(request: Any, on_event: Callable[[str, dict[str, Any]], None] = lambda kind, info: None) -> SubmitOutcome:
    """Queue a `BenchRequest` on the fleet (see the module docstring)."""
    from orchestrator.pairing import paired_baselines
    from orchestrator.plan import plan_cells, plan_tasks
    from orchestrator.request import SuitePlan, apply_suite, resolve_boards, resolve_models
    from orchestrator.sweep import expand_cells
    from orchestrator.variants import parse_variant_list

    url = require_postgresql(request.db_url, "farm submit")
    plan = SuitePlan([], {}, None, None)
    if request.suite is not None:
        request, plan = apply_suite(request)
    parse_variant_list(",".join(request.variants))  # unknown names fail before anything is built
    models = resolve_models(request.model_paths, plan.model_names)
    batches = request.sweep.batch or ((request.settings.batch,) if request.settings.batch is not None else ())
    tasks = plan_tasks(models, request.datasets, request.detection, request.settings.shapes, plan.shapes, batches)
    check_submittable(tasks)
    boards = resolve_boards(request.inventory, request.limit, False)  # names only: workers have their own keys
    queued = [(board, board_queue(board)) for board in boards]
    gate_options = GateOptions.from_request(request, plan.latency_pct, plan.memory_pct)
    repeats_chosen = "repeats" in request.explicit or request.settings.repeats != 1 or plan.sets_repeats
    request = dataclasses.replace(request, settings=gate_options.with_gate_defaults(request.settings, repeats_chosen))
    asked = gate_options
    with open_store(url) as store:
        gate_options = resolve_at_submit(store, gate_options, [b.name for b in boards], [m.name for m in models],
                                         [spec.text for spec in parse_variant_list(",".join(request.variants))])
        ensure_queue_schema(store)
        cells = expand_cells(plan_cells(tasks, request.variants, request.calibration, on_event=on_event), tasks,
                             request.settings, request.sweep)  # a sweep: one cell per point, as farm bench
        baseline_id = None if gate_options is asked else gate_options.baseline  # the run found now
        pairs = {}
        if baseline_id is not None and request.paired is not False:  # as farm bench pairs (orchestrator.pairing)
            pairs = paired_baselines(store, baseline_id, boards, cells, request.settings)
        fleet_plan = build_plan(store, queued, tasks, cells, pairs)
        settings_record = {  # what BenchRunner.run stores for a run, so reports and --resume read it alike
            **request.settings.record(),
            "boards": [board.name for board in boards],
            "models": list(dict.fromkeys(cell.model.name for cell in cells)),
            "variants": sorted({cell.variant for cell in cells}),
            "plan": plan_record(request, [m.name for m in models], shapes=plan.shapes, suite=request.suite,
                                gate=asked, baseline_run=None if gate_options is asked else gate_options.baseline),
        }
        run_id = store.create_run(settings_record, {**controller_record(), "submitted": True},
                                  orchestrator.__version__, status="queued")
        state.create_fleet_run(store, run_id, fleet_plan.to_json(), gate_options.to_json(),
                               [(board.name, queue, len(cells)) for board, queue in queued])
        jobs = _defer(store, url, run_id, queued)
        on_event("run_submitted", {"run_id": run_id, "jobs": jobs, "cells": len(cells)})
        return SubmitOutcome(run_id, jobs, len(cells), store.safe_url, _unserved(store, {q for _b, q in queued}))


def _unserved(store, queues: set[str]) -> list[str]:
    """Queues no worker seen in the last LIVE_WORKER_S seconds serves (the run waits for one)."""
    import datetime as dt

    recent = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=LIVE_WORKER_S)).isoformat(timespec="milliseconds")
    served = {q for w in state.live_workers(store) if w.last_seen_at >= recent for q in w.queues}
    return sorted(queues - served)


def _defer(store, url: str, run_id: str, queued) -> list[tuple[str, str, int]]:
    """One procrastinate job per board (lock = board, queue = its site). If the queue fails half
    way, the run is cancelled rather than left half queued."""
    app = make_app(url, max_connections=2)
    jobs: list[tuple[str, str, int]] = []
    try:
        app.open()
        ids = defer_board_jobs(app, run_id, [(board.name, queue) for board, queue in queued])
        jobs = [(board.name, queue, job_id) for (board, queue), job_id in zip(queued, ids, strict=True)]
        state.set_job_ids(store, run_id, {board: job_id for board, _queue, job_id in jobs})
    except Exception as exc:
        try:
            state.request_cancel(store, run_id)
            for _board, _queue, job_id in jobs:
                app.job_manager.cancel_job_by_id(job_id, abort=True)
            for board, _queue in queued:
                state.cancel_waiting_job(store, run_id, board.name)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise StoreError(f"could not queue run {run_id} in {store.safe_url}: {exc}") from exc
    finally:
        app.close()
    return jobs


__all__ = ["SubmitOutcome", "submit_run"]
