"""L1 (magnitude) unstructured pruning: `prune-l1:AMOUNT` and `prune-l1-layerwise:AMOUNT`.

Only layer weights are pruned: float initializers that are the weight operand of a Conv,
ConvTranspose, Gemm or MatMul (graph.prunable_initializers); biases and other tensors are left.

- Uniform (`prune-l1`, the studies' "static" sparsity): in every layer, zero the AMOUNT
  fraction of its weights with the smallest |w| (round(AMOUNT * n) of them).
- Layerwise (`prune-l1-layerwise`, the "dynamic", per-layer computed sparsity): one global
  magnitude threshold over all prunable layers zeroes round(AMOUNT * N) weights in total, so
  layers with many small weights lose more and sensitive layers with large weights lose
  less. Cap: no layer loses more than (1 + AMOUNT) / 2 of its weights (halfway between the
  target and all of them) and every layer keeps at least one. A layer the threshold would
  take past its cap is held at the cap and the rest of the budget is spread by the same
  global threshold over the other layers, repeated until no layer exceeds its cap. Because
  every cap is above AMOUNT, the global target stays reachable.

A pruned ONNX file is still dense: its size and latency do not change, only its gzip size
does. The record says so rather than hiding it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from onnx import numpy_helper

from . import graph
from .calibration import CalibrationData
from .common import finish_record, load_prepared
from .errors import VariantBuildError
from .record import VariantRecord, save_model_atomic
from .spec import VariantSpec

PlanFn = Callable[[dict[str, np.ndarray], float], dict[str, int]]


def uniform_counts(magnitudes: dict[str, np.ndarray], amount: float) -> dict[str, int]:
    """Weights to zero per layer: round(amount * n) in each."""
    return {name: int(round(amount * m.size)) for name, m in magnitudes.items()}


def layer_cap(size: int, amount: float) -> int:
    """Most weights a layer may lose under the layerwise rule: (1 + amount) / 2 of them, keeping one."""
    return max(0, min(size - 1, math.floor(size * (1.0 + amount) / 2.0)))


def layerwise_counts(magnitudes: dict[str, np.ndarray], amount: float) -> dict[str, int]:
    """Weights to zero per layer from a global |w| threshold, capped per layer (see module doc)."""
    names = list(magnitudes)
    target = int(round(amount * sum(m.size for m in magnitudes.values())))
    caps = {name: layer_cap(magnitudes[name].size, amount) for name in names}
    fixed: dict[str, int] = {}
    while True:
        free = [name for name in names if name not in fixed]
        remaining = target - sum(fixed.values())
        if remaining <= 0 or not free:
            return {**{name: 0 for name in free}, **fixed}
        pool = np.concatenate([magnitudes[name].ravel() for name in free])
        owner = np.repeat(np.arange(len(free)), [magnitudes[name].size for name in free])
        remaining = min(remaining, pool.size)
        chosen = np.argpartition(pool, remaining - 1)[:remaining]
        counts = np.bincount(owner[chosen], minlength=len(free))
        over = [name for i, name in enumerate(free) if counts[i] > caps[name]]
        if not over:
            return {**{name: int(counts[i]) for i, name in enumerate(free)}, **fixed}
        for name in over:
            fixed[name] = caps[name]


def _zero_smallest(weights: np.ndarray, count: int) -> np.ndarray:
    """A copy of `weights` with its `count` smallest-|w| entries set to zero."""
    pruned = weights.copy()
    if count <= 0:
        return pruned
    flat = pruned.reshape(-1)
    index = np.argpartition(np.abs(flat.astype(np.float64)), count - 1)[:count]
    flat[index] = 0
    return pruned


def _prune(source: Path, out_path: Path, spec: VariantSpec, plan: PlanFn, rule: str) -> VariantRecord:
    assert spec.amount is not None  # VariantSpec guarantees it for pruning variants
    model, actions = load_prepared(source, spec)
    names = graph.prunable_initializers(model)
    if not names:
        raise VariantBuildError(spec.text, "the model has no Conv/Gemm/MatMul weight initializers to prune")
    inits = {init.name: init for init in model.graph.initializer}
    weights = {name: numpy_helper.to_array(inits[name]) for name in names}
    magnitudes = {name: np.abs(w.astype(np.float32)) for name, w in weights.items()}
    counts = plan(magnitudes, spec.amount)
    for name in names:
        pruned = _zero_smallest(weights[name], counts[name])
        inits[name].CopyFrom(numpy_helper.from_array(pruned, name))
    save_model_atomic(model, out_path)
    zeroed = sum(counts.values())
    total = sum(w.size for w in weights.values())
    per_layer = [counts[n] / weights[n].size for n in names]
    actions.append(
        f"L1 unstructured pruning ({rule}): zeroed {zeroed} of {total} weights in {len(names)} "
        f"Conv/Gemm/MatMul weight tensor(s), target {spec.amount:g}; per-layer sparsity "
        f"{min(per_layer):.3f}-{max(per_layer):.3f}"
    )
    actions.append("the file stays dense: its size and latency do not change, only its gzip size does")
    return finish_record(source, out_path, spec, actions)


def make_prune_l1(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Uniform L1 pruning: the same AMOUNT in every layer."""
    return _prune(source, out_path, spec, uniform_counts, "uniform, same sparsity in every layer")


def make_prune_l1_layerwise(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Layerwise L1 pruning: a global |w| threshold with per-layer caps (see module doc)."""
    return _prune(
        source,
        out_path,
        spec,
        layerwise_counts,
        "layerwise, global |w| threshold, no layer beyond (1+AMOUNT)/2",
    )
