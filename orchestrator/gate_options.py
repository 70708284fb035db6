"""What a run is compared with and gated on, decided once for `farm bench` and `farm submit`.

`GateOptions` holds what the user asked (`--baseline`, `--fail-on-regression`, the memory
threshold, `--fail-on-inconclusive`, `--baseline-optional`, JUnit/Markdown, a suite's thresholds)
and derives the rest, so both paths mean the same by "comparing", "gating" and "optional":

* comparing: a baseline is compared with (named, or `latest`): a gate, a named baseline, or a
  JUnit/Markdown summary asks for it. A compared run measures each cell in GATE_REPEATS fresh
  processes unless the user said how many (`with_gate_defaults`).
* gating: the gate decides the exit status: a latency or memory threshold, or
  `--fail-on-inconclusive`, was given (on the command line or by a suite).
* optional: a baseline that cannot be found is fine (a first nightly) only with
  `--baseline-optional`, or when nothing on the command line asked for one (a suite's thresholds
  with no suite baseline, or JUnit/Markdown alone).

`baseline_before_run` finds the baseline before anything is measured, so a missing one (a
mistyped FARM_DB, a tag that does not exist, a baseline with no cell in common with the plan) is
exit 3 at once, and a gated run can measure beside the baseline's files (orchestrator.pairing).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from orchestrator.errors import BadInputError, UsageError
from orchestrator.settings import DEFAULT_MIN_EFFECT_PCT, GATE_REPEATS, BenchSettings


@dataclasses.dataclass(frozen=True)
class GateOptions:
    """The gate a user asked for; paths absolute (a submitted run is gated by `farm runs wait`)."""

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
        """The request's gate; UsageError for `--paired` where nothing is compared (it would
        silently do nothing)."""
        options = cls._of_request(request, suite_latency_pct, suite_memory_pct)
        if getattr(request, "paired", None) is True and not options.comparing:
            raise UsageError("--paired measures a baseline's model files beside the new ones: give --baseline RUN "
                             "(or --fail-on-regression PCT, which compares with the latest run)")
        return options

    @classmethod
    def _of_request(cls, request: Any, suite_latency_pct: float | None, suite_memory_pct: float | None) -> "GateOptions":
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
    def latency_pct(self) -> float:
        """The latency threshold (%) verdicts are judged with."""
        return self.fail_on_regression or self.suite_latency_pct or DEFAULT_MIN_EFFECT_PCT

    @property
    def memory_pct(self) -> float | None:
        """The peak-memory threshold (%); None: the latency one."""
        return self.fail_on_memory_regression or self.suite_memory_pct

    @property
    def gating(self) -> bool:
        return (self.fail_on_regression is not None or self.suite_latency_pct is not None
                or self.fail_on_memory_regression is not None or self.fail_on_inconclusive)

    def markdown_targets(self) -> list[Path]:
        from orchestrator import gating

        return gating.markdown_targets(self.markdown)

    @property
    def comparing(self) -> bool:
        return self.gating or self.baseline is not None or self.junit is not None or bool(self.markdown_targets())

    @property
    def optional(self) -> bool:
        asked = (self.baseline is not None or self.fail_on_regression is not None
                 or self.fail_on_memory_regression is not None or self.fail_on_inconclusive)
        return self.baseline_optional or not asked

    def thresholds(self) -> dict[str, float]:
        """compare_records' keyword arguments for these thresholds (the report's verdicts)."""
        found = {"min_effect_pct": self.latency_pct}
        if self.memory_pct is not None:
            found["memory_min_effect_pct"] = self.memory_pct
        return found

    def with_gate_defaults(self, settings: BenchSettings, repeats_chosen: bool) -> BenchSettings:
        """A compared run's settings: GATE_REPEATS processes per cell unless the user chose."""
        if self.comparing and not repeats_chosen:
            return settings.replace(repeats=GATE_REPEATS)
        return settings


def baseline_before_run(store: Any, options: GateOptions, boards: Sequence[str], models: Sequence[str],
                        variants: Sequence[str], *, exclude: str | None = None) -> str | None:
    """The baseline run id, found before measuring; None when nothing is compared or none exists
    and that is allowed. BadInputError when the output files cannot be written, the named run or
    tag does not exist (unless optional: a tag not set yet), it shares no board × model × variant
    with the plan, or `latest` finds no finished run that does (unless optional). `exclude`: the run being resumed."""
    from orchestrator import gating

    if options.junit is not None:
        gating.check_writable(options.junit)
    for target in options.markdown_targets():
        gating.check_writable(target)
    if not options.comparing:
        return None
    if options.baseline not in (None, "latest"):
        try:
            baseline = store.resolve_run_id(options.baseline)
        except BadInputError:
            if options.optional and options.baseline.startswith("tag:"):
                return None  # a tag nobody has set yet (the first night before a release is tagged)
            raise
        if baseline == exclude:
            raise BadInputError(f"the baseline {options.baseline!r} is the run being resumed ({exclude}): "
                                "pick an earlier run")
        if store.latest_run_measuring(boards, models, variants, run_id=baseline) is None and not options.optional:
            raise BadInputError(
                f"the baseline {baseline} in {store.safe_url} has no ok result for any board × model × variant of "
                "this plan: nothing would be compared; pick another --baseline, or pass --baseline-optional")
        return baseline
    found = store.latest_run_measuring(boards, models, variants, exclude=exclude)
    if found is None and not options.optional:
        raise BadInputError(
            f"--baseline latest: no finished run in {store.safe_url} measured a board × model × variant of this "
            "plan, so there is nothing to compare with; check --db / FARM_DB, or pass --baseline-optional for a "
            "first run")
    return found


def evaluate(store: Any, run_id: str, options: GateOptions, baseline: str | None):
    """The gating.GateResult of a finished run against `baseline` (found before it ran), with JUnit
    and Markdown written; None when nothing was asked to compare."""
    from orchestrator import gating

    if not options.comparing:
        return None
    gate = gating.evaluate_gate(store, run_id, baseline, options.latency_pct, memory_pct=options.memory_pct,
                                fail_on_inconclusive=options.fail_on_inconclusive,
                                baseline_optional=options.optional)
    if options.junit is not None:
        gating.write_junit(options.junit, gate)
    for target in options.markdown_targets():
        gating.write_markdown(target, gate)
    return gate


__all__ = ["GateOptions", "baseline_before_run", "evaluate"]
