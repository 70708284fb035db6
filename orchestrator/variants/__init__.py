"""Compressed variants of an ONNX model, each with a record of what was done.

    specs = parse_variant_list("fp32,fp16,int8-dynamic,prune-l1:0.5")
    record = build_variant(Path("model.onnx"), specs[1], cache_dir)      # cached by content
    record.path, record.size_bytes, record.gzip_bytes, record.fidelity

Every builder has the signature `(source, out_path, spec, calibration) -> VariantRecord`
(see BUILDERS); a failure raises VariantBuildError, which the runner records as a failed
variant ("variant-error") before going on with the others.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Where each public name lives. Imported on first use (PEP 562): the builders pull in onnx,
# onnxruntime.quantization and ml_dtypes (~0.6 s), which a `farm bench` of the original models
# (fp32) never needs; parsing variant names and the error types stay cheap.
_LOCATIONS = {
    "BUILDERS": "build", "VARIANTS_CODE_VERSION": "build", "build_variant": "build", "cache_key": "build",
    "make_variant": "build",
    "ArrayCalibrationReader": "calibration", "CalibrationData": "calibration",
    "CalibrationRequiredError": "errors", "VariantBuildError": "errors",
    "FP16_OP_BLOCK_LIST": "fp16", "make_fp16": "fp16",
    "constants_to_initializers": "graph", "op_counts": "graph", "parameter_count": "graph", "sparsity": "graph",
    "make_openvino_ir": "openvino_ir", "make_optimized": "optimize", "make_fp32": "original",
    "layerwise_counts": "prune", "make_prune_l1": "prune", "make_prune_l1_layerwise": "prune",
    "uniform_counts": "prune",
    "make_int8_dynamic": "quantize", "make_int8_static": "quantize",
    "VariantRecord": "record", "read_manifest": "record", "write_manifest": "record",
    "VARIANT_KINDS": "spec", "VARIANT_NAMES": "spec", "VariantKind": "spec", "VariantSpec": "spec",
    "parse_variant_list": "spec", "parse_variant_spec": "spec",
}


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LOCATIONS[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .build import BUILDERS, VARIANTS_CODE_VERSION, build_variant, cache_key, make_variant
    from .calibration import ArrayCalibrationReader, CalibrationData
    from .errors import CalibrationRequiredError, VariantBuildError
    from .fp16 import FP16_OP_BLOCK_LIST, make_fp16
    from .graph import constants_to_initializers, op_counts, parameter_count, sparsity
    from .openvino_ir import make_openvino_ir
    from .optimize import make_optimized
    from .original import make_fp32
    from .prune import layerwise_counts, make_prune_l1, make_prune_l1_layerwise, uniform_counts
    from .quantize import make_int8_dynamic, make_int8_static
    from .record import VariantRecord, read_manifest, write_manifest
    from .spec import VARIANT_KINDS, VARIANT_NAMES, VariantKind, VariantSpec, parse_variant_list, parse_variant_spec

__all__ = [
    "ArrayCalibrationReader",
    "BUILDERS",
    "CalibrationData",
    "CalibrationRequiredError",
    "FP16_OP_BLOCK_LIST",
    "VARIANTS_CODE_VERSION",
    "VARIANT_KINDS",
    "VARIANT_NAMES",
    "VariantBuildError",
    "VariantKind",
    "VariantRecord",
    "VariantSpec",
    "build_variant",
    "cache_key",
    "constants_to_initializers",
    "layerwise_counts",
    "make_fp16",
    "make_fp32",
    "make_int8_dynamic",
    "make_int8_static",
    "make_openvino_ir",
    "make_optimized",
    "make_prune_l1",
    "make_prune_l1_layerwise",
    "make_variant",
    "op_counts",
    "parameter_count",
    "parse_variant_list",
    "parse_variant_spec",
    "read_manifest",
    "sparsity",
    "uniform_counts",
    "write_manifest",
]
