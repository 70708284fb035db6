"""Variant names as the user writes them (`fp16`, `prune-l1:0.5`) and their parsed form.

A spec has one canonical text (lower case, the amount written as Python writes the float),
used in file names, manifests, cache keys and reports, so `PRUNE-L1:0.50` and `prune-l1:0.5`
are the same variant everywhere.
"""
from __future__ import annotations

import dataclasses
import math

from ..errors import UsageError


@dataclasses.dataclass(frozen=True)
class VariantKind:
    """One kind of variant: its name, whether it takes `:AMOUNT`, whether it needs calibration.

    `runtime` is the one runtime that reads the variant's format (None: any runtime that reads
    ONNX); `file_suffix` is the suffix of its model file (an OpenVINO IR's `.xml`, whose weights
    are a `.bin` beside it).
    """

    name: str
    summary: str
    takes_amount: bool = False
    needs_calibration: bool = False
    runtime: str | None = None
    file_suffix: str = ".onnx"

    @property
    def usage(self) -> str:
        return f"{self.name}:AMOUNT" if self.takes_amount else self.name


VARIANT_KINDS: dict[str, VariantKind] = {
    kind.name: kind
    for kind in (
        VariantKind("fp32", "the original model, unchanged"),
        VariantKind("optimized", "onnxruntime offline graph optimisation (Conv+BN+activation fusion)"),
        VariantKind("fp16", "float16 weights and compute, precision-sensitive ops kept fp32"),
        VariantKind("int8-dynamic", "int8 weights (uint8), activations quantized at run time"),
        VariantKind(
            "int8-static",
            "int8 QDQ weights and activations, calibrated on real inputs",
            needs_calibration=True,
        ),
        VariantKind(
            "prune-l1",
            "zero the AMOUNT fraction of smallest-|w| weights in every layer",
            takes_amount=True,
        ),
        VariantKind(
            "prune-l1-layerwise",
            "zero AMOUNT of all weights by a global |w| threshold, per-layer sparsity follows",
            takes_amount=True,
        ),
        VariantKind(
            "openvino-ir",
            "OpenVINO IR (.xml + .bin), float32 weights; runs on OpenVINO",
            runtime="openvino",
            file_suffix=".xml",
        ),
        VariantKind(
            "openvino-ir-fp16",
            "OpenVINO IR with float16-compressed weights (OpenVINO's default); runs on OpenVINO",
            runtime="openvino",
            file_suffix=".xml",
        ),
    )
}

VARIANT_NAMES: tuple[str, ...] = tuple(VARIANT_KINDS)


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """A parsed variant: `name` is one of VARIANT_NAMES; `amount` is in (0, 1) for pruning, else None."""

    name: str
    amount: float | None = None

    def __post_init__(self) -> None:
        kind = VARIANT_KINDS.get(self.name)
        if kind is None:
            raise UsageError(_unknown_message(self.name))
        if kind.takes_amount:
            if self.amount is None or not (0.0 < self.amount < 1.0) or math.isnan(self.amount):
                raise UsageError(
                    f"variant {kind.usage}: AMOUNT must be a fraction strictly between 0 and 1 "
                    f"(e.g. {kind.name}:0.5), got {self.amount!r}"
                )
        elif self.amount is not None:
            raise UsageError(f"variant {self.name} takes no ':AMOUNT'")

    @property
    def kind(self) -> VariantKind:
        return VARIANT_KINDS[self.name]

    @property
    def needs_calibration(self) -> bool:
        return self.kind.needs_calibration

    @property
    def text(self) -> str:
        """The canonical spelling, e.g. `prune-l1:0.5`."""
        return self.name if self.amount is None else f"{self.name}:{self.amount!r}"

    @property
    def file_tag(self) -> str:
        """The canonical text made safe for a file name (`prune-l1-0.5`)."""
        return self.text.replace(":", "-")

    def __str__(self) -> str:
        return self.text


def _unknown_message(name: str) -> str:
    valid = ", ".join(kind.usage for kind in VARIANT_KINDS.values())
    return f"unknown variant {name!r}; valid variants: {valid}"


def parse_variant_spec(text: str) -> VariantSpec:
    """Parse one variant (`fp16`, `prune-l1:0.5`); raise UsageError naming the valid ones."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(_unknown_message(str(text).strip() if text is not None else ""))
    name, sep, amount_text = text.strip().lower().partition(":")
    name = name.strip()
    if name not in VARIANT_KINDS:
        raise UsageError(_unknown_message(name))
    kind = VARIANT_KINDS[name]
    if not sep:
        if kind.takes_amount:
            raise UsageError(f"variant {name} needs an amount: {kind.usage}, e.g. {name}:0.5")
        return VariantSpec(name)
    try:
        amount = float(amount_text.strip())
    except ValueError:
        raise UsageError(
            f"variant {kind.usage}: AMOUNT must be a number between 0 and 1, got {amount_text.strip()!r}"
        ) from None
    return VariantSpec(name, amount)


def parse_variant_list(text: str) -> list[VariantSpec]:
    """Parse a comma-separated list (`fp32,fp16,prune-l1:0.5`); duplicates and empty items are errors."""
    items = [item.strip() for item in (text or "").split(",")]
    if not any(items):
        raise UsageError(
            "no variants given; valid variants: " + ", ".join(k.usage for k in VARIANT_KINDS.values())
        )
    specs: list[VariantSpec] = []
    for item in items:
        if not item:
            raise UsageError(f"empty variant name in list {text!r}")
        spec = parse_variant_spec(item)
        if spec in specs:
            raise UsageError(f"variant {spec.text} is listed twice in {text!r}")
        specs.append(spec)
    return specs
