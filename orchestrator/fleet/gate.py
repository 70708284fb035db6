"""Gating a submitted run: `farm submit` resolves the baseline before anything is measured and
stores the gate options with the run; `farm runs wait` evaluates them when the run ends — with
the functions `farm bench` uses (orchestrator.gate_options, orchestrator.gating), so a run gates
the same whether one controller or the fleet measured it."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from orchestrator.gate_options import GateOptions, baseline_before_run
from orchestrator.gate_options import evaluate as evaluate_with


def resolve_at_submit(store: Any, options: GateOptions, boards: Sequence[str], models: Sequence[str],
                      variants: Sequence[str]) -> GateOptions:
    """The options to store with a submitted run: the baseline found now (as farm bench finds it
    before measuring, same errors), so `latest` means the run that was latest at submit time."""
    baseline = baseline_before_run(store, options, boards, models, variants)
    if baseline is None:
        return options
    return dataclasses.replace(options, baseline=baseline)


def evaluate(store: Any, run_id: str, options: GateOptions):
    """The gating.GateResult of a finished submitted run (None when nothing was asked to compare)."""
    baseline = options.baseline if options.baseline not in (None, "latest") else None
    if baseline is not None and baseline.startswith("tag:") and options.optional:
        # submit replaces a tag it finds by the run's id: this one was not set yet when the run was
        # submitted (--baseline-optional), so there is nothing to compare with, as in farm bench
        return evaluate_with(store, run_id, options, None)
    if baseline is None and options.comparing:  # stored by an older submit: resolve it now
        from orchestrator import gating

        baseline = gating.resolve_baseline(store, options.baseline or "latest", run_id, optional=options.optional)
    return evaluate_with(store, run_id, options, baseline)


__all__ = ["GateOptions", "evaluate", "resolve_at_submit"]
