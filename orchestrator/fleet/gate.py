"""Gating a submitted run: `farm submit` checks and stores the gate options, `farm runs wait`
evaluates them when the run ends, with the functions `farm bench` uses (orchestrator.gating),
so a run gates the same whether one controller or the fleet measured it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from orchestrator.errors import BadInputError
from orchestrator.settings import DEFAULT_MIN_EFFECT_PCT


@dataclasses.dataclass(frozen=True)
class GateOptions:
    """The gate a submitter asked for (`--baseline`, `--fail-on-regression`, …); paths absolute."""

    baseline: str | None = None
    fail_on_regression: float | None = None
    fail_on_memory_regression: float | None = None
    fail_on_inconclusive: bool = False
    baseline_optional: bool = False
    junit: str | None = None
    markdown: str | None = None
    suite_latency_pct: float | None = None  # a suite's thresholds
    suite_memory_pct: float | None = None

    @classmethod
    def from_request(cls, request: Any, suite_latency_pct: float | None = None,
                     suite_memory_pct: float | None = None) -> "GateOptions":
        return cls(
            baseline=request.baseline, fail_on_regression=request.fail_on_regression,
            fail_on_memory_regression=request.fail_on_memory_regression,
            fail_on_inconclusive=request.fail_on_inconclusive, baseline_optional=request.baseline_optional,
            junit=None if request.junit is None else str(Path(request.junit).expanduser().resolve()),
            markdown=None if request.markdown is None else str(Path(request.markdown).expanduser().resolve()),
            suite_latency_pct=suite_latency_pct, suite_memory_pct=suite_memory_pct,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GateOptions":
        data = json.loads(text or "{}")
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}})

    def overridden(self, **changes: Any) -> "GateOptions":
        """These options with what `farm runs wait` was given on its own command line."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v not in (None, False)})

    @property
    def latency_pct(self) -> float | None:
        return self.fail_on_regression or self.suite_latency_pct

    @property
    def gating(self) -> bool:
        return self.latency_pct is not None

    def markdown_targets(self) -> list[Path]:
        from orchestrator import gating

        return gating.markdown_targets(self.markdown)

    @property
    def comparing(self) -> bool:
        return self.gating or self.baseline is not None or self.junit is not None or bool(self.markdown_targets())

    @property
    def optional(self) -> bool:
        # as farm bench: a named baseline or a command-line gate must exist
        return self.baseline_optional or not (self.fail_on_regression is not None or self.baseline is not None)


def check_gate(store, options: GateOptions) -> None:
    """What `farm bench` checks before measuring, checked at submit time (same messages)."""
    from orchestrator import gating

    if options.junit is not None:
        gating.check_writable(options.junit)
    for target in options.markdown_targets():
        gating.check_writable(target)
    if options.baseline not in (None, "latest"):
        store.resolve_run_id(options.baseline)
    elif options.comparing and not options.optional and not store.has_finished_run():
        raise BadInputError(
            f"--baseline latest: {store.safe_url} holds no finished run to compare with; check --db / FARM_DB, "
            "or pass --baseline-optional for a first run")


def evaluate(store, run_id: str, options: GateOptions):
    """The gating.GateResult of a finished run (None when nothing was asked to compare), with
    JUnit and Markdown written as `farm bench` writes them."""
    from orchestrator import gating

    if not options.comparing:
        return None
    baseline = gating.resolve_baseline(store, options.baseline or "latest", run_id, optional=options.optional)
    memory_pct = options.fail_on_memory_regression or options.suite_memory_pct
    gate = gating.evaluate_gate(store, run_id, baseline, options.latency_pct or DEFAULT_MIN_EFFECT_PCT,
                                memory_pct=memory_pct, fail_on_inconclusive=options.fail_on_inconclusive,
                                baseline_optional=options.optional)
    if options.junit is not None:
        gating.write_junit(options.junit, gate)
    for target in options.markdown_targets():
        gating.write_markdown(target, gate)
    return gate


__all__ = ["GateOptions", "check_gate", "evaluate"]
