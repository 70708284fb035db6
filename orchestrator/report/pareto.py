"""Pareto fronts: the variants no other variant beats on every objective at once.

Deciding which variant ships on a board is a trade-off between size, latency and accuracy;
a variant that is bigger, slower AND less accurate than another is never the answer, so the
report highlights the rest (the non-dominated set).
"""
from __future__ import annotations

from typing import Literal, Sequence

Sense = Literal["min", "max"]


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[Sense]) -> bool:
    """True when `a` is at least as good as `b` on every objective and strictly better on one."""
    strictly = False
    for x, y, sense in zip(a, b, senses, strict=True):
        if sense == "max":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            strictly = True
    return strictly


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[Sense]) -> list[int]:
    """Indices (in input order) of the points no other point dominates.

    `senses[i]` says whether objective i is minimised ("min": latency ms, size bytes) or
    maximised ("max": accuracy). Equal points do not dominate each other, so duplicates are
    all on the front. Quadratic, which is fine for the handful of variants of one board.
    """
    if any(len(p) != len(senses) for p in points):
        raise ValueError("pareto_front: every point needs one value per objective")
    return [
        i for i, p in enumerate(points)
        if not any(dominates(q, p, senses) for j, q in enumerate(points) if j != i)
    ]
