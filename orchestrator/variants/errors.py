"""Errors raised while making a variant.

A `VariantBuildError` is a per-variant failure: the runner records the variant as failed
(failure kind "variant-error") and goes on with the others.
"""
from __future__ import annotations

from ..errors import ExitStatus, FarmError


class VariantBuildError(FarmError):
    """A variant could not be made from a model; `variant` and `reason` say which and why."""

    exit_status = ExitStatus.BAD_INPUT
    kind = "variant-error"

    def __init__(self, variant: str, reason: str) -> None:
        super().__init__(f"variant {variant!r} could not be built: {reason}")
        self.variant = variant
        self.reason = reason


class CalibrationRequiredError(VariantBuildError):
    """The variant needs calibration inputs and none were given (a usage problem)."""

    exit_status = ExitStatus.USAGE

    def __init__(self, variant: str) -> None:
        super().__init__(
            variant,
            "it needs calibration inputs: pass --calibration FILE.npz "
            "(an .npz of real model inputs, e.g. the 'inputs' array of a labelled test set)",
        )
