"""The `fp16` variant: float16 weights and compute, with precision-sensitive ops kept in float32.

onnxconverter-common does the conversion. Kept in float32 (`op_block_list`):
- onnxconverter-common's defaults (ML ops, NonMaxSuppression, TopK, Range, Resize, ...);
- BatchNormalization: a DBNet text detector dropped to cosine 0.70 when BN ran in fp16;
- Resize/Upsample: their scales/coordinates lose precision.
Graph inputs/outputs stay float32 (`keep_io_types=True`), so boards feed the same tensors.
Cast nodes whose target type is float32 (skl2onnx graphs start with one) are kept as they
are (`node_block_list`), and the converter adds a cast to float16 after them: it never
rewrites a Cast's `to`, so converting one leaves a node that says float32 but is typed
float16 (onnxruntime refuses the model) or, right after the input, gets removed with the
inserted input cast so the first MatMul sees float32 next to float16 weights.
Weights are clamped to the fp16 range (±65504) instead of the converter's default ±1e4.
"""
from __future__ import annotations

import collections
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnxconverter_common import float16

from . import graph
from .calibration import CalibrationData
from .common import finish_record, load_prepared
from .record import VariantRecord, save_model_atomic
from .spec import VariantSpec

FP16_OP_BLOCK_LIST: tuple[str, ...] = tuple(
    sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | {"BatchNormalization", "Resize", "Upsample"})
)
FP16_MAX = float(np.finfo(np.float16).max)
_FLOAT = onnx.TensorProto.FLOAT


def _cast_target(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def make_fp16(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Convert to float16 (inputs/outputs float32), keeping precision-sensitive ops in float32."""
    model, actions = load_prepared(source, spec)
    graph.name_unnamed_nodes(model)
    float_casts = [n.name for n in model.graph.node if n.op_type == "Cast" and _cast_target(n) == _FLOAT]
    kept = collections.Counter(n.op_type for n in model.graph.node if n.op_type in FP16_OP_BLOCK_LIST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model,
            max_finite_val=FP16_MAX,
            keep_io_types=True,
            op_block_list=list(FP16_OP_BLOCK_LIST),
            node_block_list=float_casts,
        )
    clamped = sum(1 for w in caught if "truncated to" in str(w.message))
    save_model_atomic(converted, out_path)
    actions.append("converted float weights and compute to float16 (onnxconverter-common), inputs/outputs kept float32")
    if kept:
        actions.append("kept in float32: " + ", ".join(f"{op} x{n}" for op, n in sorted(kept.items())))
    if float_casts:
        actions.append(f"kept {len(float_casts)} Cast-to-float32 node(s) as they were (e.g. skl2onnx's first Cast)")
    if clamped:
        actions.append(f"{clamped} tensor(s) had values outside the float16 range or below 1e-7 and were clamped")
    return finish_record(source, out_path, spec, actions)
