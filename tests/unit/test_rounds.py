"""A cell's rounds (orchestrator.rounds): which round's worker runs the dataset and the
profiling pass — once per cell, however the number of rounds changes."""
from __future__ import annotations

from orchestrator.pairing import PairedBaseline
from orchestrator.rounds import CellRounds


def _extras_rounds(state: CellRounds, rounds: int, unpair_at: int | None = None) -> list[int]:
    """Play `rounds` rounds as the runner does (the replies' content does not matter here); the
    rounds whose worker ran the extras."""
    ran = []
    for index in range(rounds):
        if unpair_at is not None and index == unpair_at:
            state.unpair("the baseline's file could not be measured")
        extras = state.runs_extras()
        state.add_round(None, 0, ran_extras=extras)
        if extras:
            ran.append(index)
    return ran


def test_an_unpaired_cell_runs_its_extras_in_its_last_round():
    assert _extras_rounds(CellRounds(cell=None, twin=None, repeats=5), 5) == [4]


def test_a_paired_cell_runs_them_in_its_first_round_its_number_of_rounds_unknown():
    twin = PairedBaseline(1, "run-a", None)
    assert _extras_rounds(CellRounds(cell=None, twin=twin, repeats=5), 8) == [0]


def test_a_twin_that_fails_later_never_makes_the_extras_run_twice():
    twin = PairedBaseline(1, "run-a", None)
    state = CellRounds(cell=None, twin=twin, repeats=5)
    # round 0 ran them while paired; the failure at round 2 makes the cell a 5-round one, whose
    # "last round" (4) must not run them again
    assert _extras_rounds(state, 5, unpair_at=2) == [0]
