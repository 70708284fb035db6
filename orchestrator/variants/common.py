"""Shared steps of every variant builder: load and normalise the source, then measure the result."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxconverter_common
import onnxruntime as ort
from google.protobuf.message import DecodeError

from . import fidelity, graph
from .errors import VariantBuildError
from .record import VariantRecord, file_sha256, measure_model
from .spec import VariantSpec


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that shape a variant's bytes (part of the cache key)."""
    return {
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "onnxconverter_common": onnxconverter_common.__version__,
        "numpy": np.__version__,
    }


def load_model(source: Path, spec: VariantSpec) -> onnx.ModelProto:
    try:
        model = onnx.load(str(source))
    except OSError as exc:
        raise VariantBuildError(spec.text, f"cannot read {source}: {exc}") from exc
    except DecodeError as exc:
        raise VariantBuildError(spec.text, f"{source} is not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise VariantBuildError(spec.text, f"{source} is not an ONNX model (it has no graph nodes)")
    return model


def load_prepared(source: Path, spec: VariantSpec) -> tuple[onnx.ModelProto, list[str]]:
    """The source model with Constant-node weights moved into initializers, and the action taken."""
    model = load_model(source, spec)
    before = graph.count_constant_nodes(model)
    prepared = graph.constants_to_initializers(model)
    moved = before - graph.count_constant_nodes(prepared)
    actions = [f"moved {moved} Constant-node tensor(s) into initializers (Paddle-style weights)"] if moved else []
    return prepared, actions


def op_changes(before: dict[str, int], after: dict[str, int]) -> str:
    """`nodes 20 -> 11: -BatchNormalization x3, +com.microsoft.FusedConv x3` (or 'no op changes')."""
    deltas = []
    for op in sorted(set(before) | set(after)):
        delta = after.get(op, 0) - before.get(op, 0)
        if delta:
            deltas.append(f"{'+' if delta > 0 else '-'}{op} x{abs(delta)}")
    if not deltas:
        return f"op types unchanged ({sum(after.values())} nodes)"
    return f"nodes {sum(before.values())} -> {sum(after.values())}: " + ", ".join(deltas)


def source_op_counts(source: Path, spec: VariantSpec) -> dict[str, int]:
    """op type -> node count of the original model (what a variant's op changes are measured from)."""
    return graph.op_counts(load_model(source, spec))


def finish_record(
    source: Path,
    out_path: Path,
    spec: VariantSpec,
    actions: list[str],
    measure_fidelity: bool = True,
) -> VariantRecord:
    """Measure the written variant, check it loads and runs in onnxruntime, and make its record.

    The variant must load and run on the synthetic input whenever the original does; if the
    original itself cannot run on it (e.g. a symbolic dim that must not be 1), fidelity is
    left out and the reason is added to `actions`.
    """
    model = load_model(out_path, spec)
    facts = measure_model(out_path, model)
    source_ops = source_op_counts(source, spec)
    actions = list(actions)
    if spec.name != "fp32":
        actions.append(op_changes(source_ops, facts.op_counts))
    result_fidelity = None
    if measure_fidelity:
        result_fidelity = measured_fidelity(source, spec, actions, lambda: _onnxruntime_runner(out_path))
    else:
        _check_loads(out_path, spec)
    return VariantRecord(
        variant=spec.text,
        source_sha256=file_sha256(source),
        path=str(out_path),
        **dataclasses.asdict(facts),  # sha256, sizes, parameters, sparsity, op counts
        actions=actions,
        fidelity=result_fidelity,
        source_op_counts=source_ops,
        tool_versions=tool_versions(),
    )


def _check_loads(path: Path, spec: VariantSpec) -> None:
    try:
        fidelity.open_session(path)
    except Exception as exc:  # noqa: BLE001 - onnxruntime errors are plain Exception subclasses
        raise VariantBuildError(spec.text, f"onnxruntime cannot load the model: {exc}") from exc


Outputs = dict[str, Any]


def _onnxruntime_runner(path: Path) -> Callable[[dict[str, np.ndarray]], Outputs]:
    session = fidelity.open_session(path)
    return lambda feeds: fidelity.run_outputs(session, feeds)


def measured_fidelity(
    source: Path,
    spec: VariantSpec,
    actions: list[str],
    open_variant: Callable[[], Callable[[dict[str, np.ndarray]], Outputs]],
    runtime: str = "onnxruntime",
) -> dict | None:
    """Fidelity of a variant to the original (onnxruntime) on the synthetic input, or None.

    `open_variant()` loads the variant in `runtime` (the one that reads its format) and returns
    feeds -> outputs by name. A variant that cannot load, or fails where the original runs, is a
    VariantBuildError; an original that does not run on the synthetic input only adds a reason to
    `actions`. A cosine below 0.99 adds a warning to `actions`.
    """
    # onnxruntime's and OpenVINO's errors are plain Exception subclasses (Fail, InvalidGraph,
    # RuntimeError...), hence the broad catches; each becomes a recorded reason or a VariantBuildError.
    try:
        feeds = fidelity.synthetic_inputs(source)
        reference = fidelity.run_outputs(fidelity.open_session(source), feeds)
    except Exception as exc:  # noqa: BLE001
        actions.append(f"fidelity not measured: the original does not run on a synthetic input ({exc})")
        return None
    try:
        run_variant = open_variant()
    except Exception as exc:  # noqa: BLE001
        raise VariantBuildError(spec.text, f"{runtime} cannot load the variant: {exc}") from exc
    try:
        candidate = run_variant(feeds)
    except Exception as exc:  # noqa: BLE001
        raise VariantBuildError(spec.text, f"the variant fails to run where the original runs: {exc}") from exc
    result = fidelity.compare_outputs(reference, candidate)
    if result is not None and result["cosine"] < 0.99:
        actions.append(f"WARNING: cosine to fp32 is {result['cosine']:.4f} (< 0.99) on the synthetic input")
    return result
