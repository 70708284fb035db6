"""Fidelity of a variant to its fp32 original on one synthetic input.

This is a sanity check that the file still computes roughly the same function (it catches
a broken fp16 conversion, cosine 0.70), NOT a quality measure: a 50 %-pruned detector kept
cosine 0.97 and found nothing. Quality is judged with the task metric on labelled data
(orchestrator.accuracy); fidelity is the second column.
"""
from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .graph import NP_TYPES

SYNTHETIC_SEED = 0

_NP_TYPES = NP_TYPES

# The input shapes a model is measured at (orchestrator.shapes: NAME -> dims), set by
# build_variant for the build it runs: fidelity is measured on the real input size, not on
# symbolic dims set to 1 (an OpenVINO IR of a text detector got "cosine 0.0000" at 1x3x1x1).
INPUT_SHAPES: contextvars.ContextVar[Mapping[str, Sequence[int]]] = contextvars.ContextVar("input_shapes", default={})


def synthetic_input_text() -> str:
    shapes = INPUT_SHAPES.get()
    given = ", ".join(f"{name}={'x'.join(map(str, dims))}" for name, dims in sorted(shapes.items()))
    return f"synthetic uniform[0,1) seed {SYNTHETIC_SEED}, " + (given or "symbolic dims = 1")


def synthetic_inputs(model_path: Path) -> dict[str, np.ndarray]:
    """One deterministic input per model input: floats uniform in [0, 1), integers zero, at the
    shapes given (INPUT_SHAPES), else with symbolic dims = 1."""
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(SYNTHETIC_SEED)
    feeds: dict[str, np.ndarray] = {}
    given = INPUT_SHAPES.get()
    for value_info in model.graph.input:
        if value_info.name in inits:
            continue
        tensor_type = value_info.type.tensor_type
        shape = list(given[value_info.name]) if value_info.name in given else [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor_type.shape.dim]
        dtype = _NP_TYPES.get(tensor_type.elem_type, np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[value_info.name] = rng.random(shape, dtype=np.float32).astype(dtype)
        else:
            feeds[value_info.name] = np.zeros(shape, dtype=dtype)
    return feeds


def open_session(model_path: Path) -> ort.InferenceSession:
    """A CPU session with one intra-op thread (fidelity needs correctness, not speed)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def run_outputs(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays (1.0 when both are all-zero)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def compare_outputs(reference: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any] | None:
    """Worst cosine and largest absolute error over the float tensor outputs both models share.

    Non-float outputs (class labels) and non-tensor ones (ZipMap dictionaries) are skipped;
    None when there is nothing comparable.
    """
    cosines: list[float] = []
    max_abs = 0.0
    compared: list[str] = []
    for name, ref in reference.items():
        cand = candidate.get(name)
        if not isinstance(ref, np.ndarray) or not isinstance(cand, np.ndarray):
            continue
        if not np.issubdtype(ref.dtype, np.floating) or ref.shape != cand.shape:
            continue
        diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
        max_abs = max(max_abs, float(diff.max()) if diff.size else 0.0)
        cosines.append(cosine(ref, cand))
        compared.append(name)
    if not compared:
        return None
    return {
        "cosine": round(min(cosines), 6),
        "max_abs_error": float(f"{max_abs:.6g}"),
        "outputs": compared,
        "input": synthetic_input_text(),
    }
