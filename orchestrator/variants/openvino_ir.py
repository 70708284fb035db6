"""The `openvino-ir` and `openvino-ir-fp16` variants: the model converted to OpenVINO's own format.

An IR is two files, `NAME.xml` (the graph) and `NAME.bin` (the weights) with the same stem, as
OpenVINO's tools expect them. A board reads it with OpenVINO only (the variant's runtime), and
skips the ONNX front end at load time; the report's `load_ms` shows what that saves.

- `openvino-ir`: float32 weights (`compress_to_fp16=False`), the same numbers as the ONNX file.
- `openvino-ir-fp16`: float16-compressed weights, OpenVINO's own default when it saves a model:
  half the file, decompressed to float32 when the CPU plugin loads it.

OpenVINO is an optional extra on the controller (`pip install 'farm[openvino]'`); without it the
variant fails to build with that hint and the rest of the matrix runs. Fidelity is measured with
OpenVINO on the CPU at f32 inference precision (a CPU with bf16 would otherwise run in bf16 and
mix the runtime's precision into the file's).
"""
from __future__ import annotations

import collections
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from agents.farm_common import openvino_reason  # the agent's reading of OpenVINO errors, shared
from orchestrator.hashing import file_sha256

from .calibration import CalibrationData
from .common import load_prepared, measured_fidelity, source_op_counts, tool_versions
from .errors import VariantBuildError
from .record import ModelFacts, VariantRecord, gzip_size_bytes, weights_path_for
from .spec import VariantSpec

# OpenVINO op -> inputs that carry layer weights (the IR names of graph.py's Conv/Gemm/MatMul).
_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Convolution": (1,),
    "GroupConvolution": (1,),
    "ConvolutionBackpropData": (1,),
    "GroupConvolutionBackpropData": (1,),
    "MatMul": (0, 1),
}
# Ops that hold data or mark the graph's ends rather than compute (like ONNX initializers and I/O).
_NOT_COMPUTE = {"Constant", "Parameter", "Result"}
# Where OpenVINO's CPU plugin may compute in bf16 by default, fidelity pins f32.
_FIDELITY_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "1"}


def import_openvino(spec: VariantSpec) -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise VariantBuildError(
            spec.text, "OpenVINO is not installed on the controller: pip install 'farm[openvino]'"
        ) from exc
    return openvino


def make_openvino_ir(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Convert with openvino.convert_model and save `out_path` (.xml) with its .bin beside it."""
    ov = import_openvino(spec)
    compress_to_fp16 = spec.name == "openvino-ir-fp16"
    model, actions = load_prepared(source, spec)
    weights_path = weights_path_for(out_path)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".openvino-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(model, str(prepared))
        try:
            ov_model = ov.convert_model(str(prepared))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises plain RuntimeError-like types
            raise VariantBuildError(spec.text, f"OpenVINO cannot convert the model: {openvino_reason(exc)}") from exc
        staged_xml = Path(tmp) / "model.xml"
        ov.save_model(ov_model, str(staged_xml), compress_to_fp16=compress_to_fp16)
        os.replace(weights_path_for(staged_xml), weights_path)  # the weights first: an .xml means a whole pair
        os.replace(staged_xml, out_path)
    ir = _read_ir(ov, out_path, spec)
    facts = measure_ir(out_path, ir)
    actions.append(
        f"converted to OpenVINO IR {ov.get_version().split('-')[0]} (openvino.convert_model), "
        + ("weights compressed to float16 (compress_to_fp16=True)" if compress_to_fp16 else
           "float32 weights kept (compress_to_fp16=False)")
    )
    source_ops = source_op_counts(source, spec)
    actions.append(
        f"{sum(source_ops.values())} ONNX nodes became {sum(facts.op_counts.values())} OpenVINO ops: "
        + ", ".join(f"{op} x{n}" for op, n in collections.Counter(facts.op_counts).most_common(6))
    )
    result_fidelity = measured_fidelity(source, spec, actions, lambda: _ir_runner(ov, ir), runtime="OpenVINO")
    return VariantRecord(
        variant=spec.text,
        source_sha256=file_sha256(source),
        path=str(out_path),
        **dataclasses.asdict(facts),
        weights_path=str(weights_path),
        actions=actions,
        fidelity=result_fidelity,
        source_op_counts=source_ops,
        tool_versions={**tool_versions(), "openvino": ov.__version__},
    )


def _read_ir(ov: Any, xml_path: Path, spec: VariantSpec) -> Any:
    try:
        return ov.Core().read_model(str(xml_path), str(weights_path_for(xml_path)))
    except Exception as exc:  # noqa: BLE001
        raise VariantBuildError(spec.text, f"OpenVINO cannot read the IR it wrote: {openvino_reason(exc)}") from exc


def _ir_runner(ov: Any, ir: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Compile the IR on the CPU (f32, one thread) and return feeds -> {output name: array}."""
    compiled = ov.Core().compile_model(ir, "CPU", _FIDELITY_CONFIG)
    request = compiled.create_infer_request()
    names = [port.get_any_name() for port in compiled.outputs]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = request.infer(feeds)
        return {name: np.asarray(result[port]) for name, port in zip(names, compiled.outputs)}

    return run


def measure_ir(xml_path: Path, ir: Any) -> ModelFacts:
    """Sizes and hashes of both files; parameters, sparsity and op counts read from the OpenVINO graph.

    Parameters are the elements of every Constant (as graph.py counts every ONNX initializer);
    the layer weights are the Constant inputs of Convolution/MatMul ops (through the Convert of
    fp16-compressed weights); op counts leave out Constant, Parameter and Result.
    """
    weights_path = weights_path_for(xml_path)
    counts: collections.Counter[str] = collections.Counter()
    parameters = 0
    per_layer: dict[str, float] = {}
    zeros = total = 0
    for op in ir.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            parameters += int(np.prod(op.get_output_shape(0), dtype=np.int64))
            continue
        if kind not in _NOT_COMPUTE:
            counts[kind] += 1
        for index in _WEIGHT_INPUTS.get(kind, ()):
            weight = _constant_input(op, index)
            if weight is None or weight.ndim < 2:
                continue
            z = int(np.count_nonzero(weight == 0))
            per_layer[f"{op.get_friendly_name()}:{index}"] = round(z / weight.size, 6) if weight.size else 0.0
            zeros += z
            total += weight.size
    return ModelFacts(
        sha256=file_sha256(xml_path),
        size_bytes=xml_path.stat().st_size + weights_path.stat().st_size,
        gzip_bytes=gzip_size_bytes(xml_path) + gzip_size_bytes(weights_path),
        parameters=parameters,
        sparsity=round(zeros / total, 6) if total else 0.0,
        sparsity_per_layer=per_layer,
        op_counts=dict(sorted(counts.items())),
        weights_sha256=file_sha256(weights_path),
    )


def _constant_input(op: Any, index: int) -> np.ndarray | None:
    """The constant data feeding `op`'s input `index` (through Convert nodes), else None."""
    node = op.input_value(index).get_node()
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Constant":
        return None
    return np.asarray(node.get_data())
