"""One cell's rounds on one board: what was measured so far, and when the cell is done.

The runner measures a board's cells in rounds of one fresh worker process each. A cell takes
`--repeats` rounds; one paired with its baseline's file (orchestrator.pairing) measures that file
too in each round and takes rounds until the paired rounds decide, or the cap.
"""
from __future__ import annotations

import dataclasses

from orchestrator.agent_session import BenchReply
from orchestrator.analysis import paired_decided
from orchestrator.pairing import PairedBaseline, round_bounds
from orchestrator.plan import Cell
from orchestrator.record import PAIRED_BASE_FIELD, PAIRED_BASE_P50_FIELD, ResultRecord
from orchestrator.repeats import process_summary
from orchestrator.settings import DEFAULT_MIN_EFFECT_PCT


def process_p50(reply: BenchReply) -> float:
    """A worker process's median latency (ms), as repeats.process_summary reads it."""
    return float(process_summary(reply.as_bench_result())["latency_ms_p50"])


@dataclasses.dataclass
class CellRounds:
    """One cell's rounds on one board: what was measured so far, and when it is done."""

    cell: Cell
    twin: PairedBaseline | None
    repeats: int
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT  # the threshold the paired rounds must decide at
    measured: list[tuple[BenchReply, int]] = dataclasses.field(default_factory=list)
    twin_p50s: list[float] = dataclasses.field(default_factory=list)
    unpaired_because: str | None = None
    ended: bool = False
    extras_done: bool = False  # a round's worker ran the dataset and the profiling pass

    def runs_extras(self) -> bool:
        """Whether this round's worker also runs the dataset and the profiling pass, after it
        measured (no second process or load; once per cell): in the last round when the number of
        rounds is known, else in the first — and never again after a twin that failed changed
        the number of rounds."""
        if self.extras_done:
            return False
        return len(self.measured) == (0 if self.fewest != self.most else self.most - 1)

    def add_round(self, reply: BenchReply, bytes_sent: int, ran_extras: bool) -> None:
        """A round's worker measured (`ran_extras`: it was the one runs_extras picked)."""
        self.measured.append((reply, bytes_sent))
        self.extras_done = self.extras_done or ran_extras

    def __post_init__(self) -> None:
        self.fewest, self.most = round_bounds(self.repeats, self.twin is not None)

    def unpair(self, why: str) -> None:
        """Go on without the baseline's file (it could not be measured): `repeats` rounds."""
        self.twin, self.twin_p50s, self.unpaired_because = None, [], why
        self.fewest, self.most = round_bounds(self.repeats, False)

    def done(self) -> bool:
        rounds = len(self.measured)
        if rounds >= self.most:
            return True
        if rounds < self.fewest:
            return False
        if self.twin is None:
            return True
        own = [process_p50(reply) for reply, _ in self.measured]
        return paired_decided(self.twin_p50s[:rounds], own[:len(self.twin_p50s)], min_effect_pct=self.min_effect_pct)

    def add_pairing(self, record: ResultRecord) -> None:
        """The paired rounds (or why there are none) in the record's export and details."""
        export = record.row["details"]["export"]
        if self.twin is not None and len(self.twin_p50s) == len(self.measured):
            export[PAIRED_BASE_FIELD] = self.twin.result_id
            export[PAIRED_BASE_P50_FIELD] = list(self.twin_p50s)
            record.row["details"]["paired"] = {"baseline_run_id": self.twin.run_id, "rounds": len(self.twin_p50s),
                                               "baseline_model": str(self.twin.files.model)}
        elif self.unpaired_because:
            record.row["details"]["paired"] = {"unpaired_because": self.unpaired_because}
