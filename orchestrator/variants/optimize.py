"""The `optimized` variant: onnxruntime's offline graph optimisation, saved as a portable ONNX file.

Level ORT_ENABLE_EXTENDED, on purpose:
- BASIC folds BatchNormalization (and Add/Mul) into the preceding Conv and folds constants;
  EXTENDED adds the activation fusions (Conv+Relu -> com.microsoft.FusedConv, Gemm+activation,
  MatMul+Add, GELU, LayerNorm ...): together the Conv+BN+activation ("CBR") fusion that took a
  Jetson TX1 from 3.9 to 11 FPS.
- ALL would add layout transforms (NCHWc, with reorder nodes chosen for this machine's SIMD
  width) that tie the file to the CPU it was made on; onnxruntime itself warns that such a
  file may not run elsewhere. A variant is made on the controller and run on the boards, so
  it must stay portable. The fused contrib ops are implemented by onnxruntime's CPU provider
  (and CUDA for FusedConv) on every board architecture.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from .calibration import CalibrationData
from .common import finish_record, load_prepared
from .errors import VariantBuildError
from .record import VariantRecord
from .spec import VariantSpec

OPTIMIZATION_LEVEL = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED


def make_optimized(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Let onnxruntime optimise the graph (CPU provider) and save the optimised graph."""
    model, actions = load_prepared(source, spec)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".optimize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        optimized = Path(tmp) / "optimized.onnx"
        onnx.save(model, str(prepared))
        options = ort.SessionOptions()
        options.graph_optimization_level = OPTIMIZATION_LEVEL
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3
        try:
            ort.InferenceSession(str(prepared), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime errors are plain Exception subclasses
            raise VariantBuildError(spec.text, f"onnxruntime could not optimise the model: {exc}") from exc
        if not optimized.is_file():
            raise VariantBuildError(spec.text, "onnxruntime wrote no optimised model")
        os.replace(optimized, out_path)
    actions.append(
        "onnxruntime offline graph optimisation, level ORT_ENABLE_EXTENDED, CPU provider "
        "(constant folding, Conv+BatchNormalization folding, Conv/Gemm+activation fusion; "
        "no NCHWc layout transforms, so the file is not tied to this CPU)"
    )
    return finish_record(source, out_path, spec, actions)
