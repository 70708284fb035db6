"""Reading and normalising ONNX graphs: op counts, parameter counts, weight tensors, sparsity.

"Prunable weights" are the weight operands of the layers that carry a model's parameters:
Conv/ConvTranspose (input 1), Gemm (inputs 0 and 1 when constant) and MatMul (either
operand when constant), plus their fused (`com.microsoft.FusedConv`, ...) and quantized
(QDQ `DequantizeLinear`, `ConvInteger`, `MatMulInteger`) forms. Biases are not counted.
A quantized weight counts as zero when it equals its zero point, so the sparsity of any
variant can be compared with that of the original.
"""
from __future__ import annotations

import collections
from typing import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

# op type -> (weight input indices, zero-point input index for the weight or None)
_WEIGHT_INPUTS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "Conv": ((1,), None),
    "ConvTranspose": ((1,), None),
    "FusedConv": ((1,), None),
    "Gemm": ((0, 1), None),
    "FusedGemm": ((0, 1), None),
    "MatMul": ((0, 1), None),
    "FusedMatMul": ((0, 1), None),
    "ConvInteger": ((1,), 3),
    "MatMulInteger": ((1,), 3),
}

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}

# ONNX tensor element types and the numpy dtypes that hold them (inputs farm feeds).
NP_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.BOOL: np.bool_,
}


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graphs(sub)


def op_key(node: onnx.NodeProto) -> str:
    """`Conv` for the default domain, `com.microsoft.FusedConv` for others."""
    domain = node.domain
    return node.op_type if domain in ("", "ai.onnx") else f"{domain}.{node.op_type}"


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """op type -> number of nodes, over the graph and its subgraphs, sorted by name."""
    counts = collections.Counter(op_key(n) for g in _graphs(model.graph) for n in g.node)
    return dict(sorted(counts.items()))


def node_count(model: onnx.ModelProto) -> int:
    return sum(op_counts(model).values())


def parameter_count(model: onnx.ModelProto) -> int:
    """Number of elements in all initializers, plus Constant-node tensors (weights in Paddle exports)."""
    total = 0
    for graph in _graphs(model.graph):
        for init in graph.initializer:
            total += int(np.prod(init.dims, dtype=np.int64))
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value":
                        total += int(np.prod(attr.t.dims, dtype=np.int64))
    return total


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` whose main-graph Constant-node tensors are initializers.

    PaddlePaddle exports keep weights in Constant nodes; quantizers and the pruner only look
    at initializers, so without this those weights would silently stay untouched. Constants
    whose output is also a graph output are left alone (an initializer may not be one in
    every runtime); so are sparse constants. The input model is not modified.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    graph_outputs = {o.name for o in graph.output}
    taken = {i.name for i in graph.initializer}
    keep: list[onnx.NodeProto] = []
    moved: list[onnx.TensorProto] = []
    for node in graph.node:
        tensor = _constant_tensor(node) if node.output[0] not in graph_outputs else None
        if tensor is None or node.output[0] in taken:
            keep.append(node)
            continue
        tensor.name = node.output[0]
        moved.append(tensor)
        taken.add(tensor.name)
    if not moved:
        return out
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(moved)
    if out.ir_version < 4:  # before IR 4 every initializer also had to be a graph input
        graph.input.extend(
            onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in moved
        )
    return out


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a dense Constant node produces, or None when it is not one."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    if attr.name == "value":
        tensor = onnx.TensorProto()
        tensor.CopyFrom(attr.t)
        return tensor
    if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
        value = onnx.helper.get_attribute_value(attr)
        dtype = np.float32 if "float" in attr.name else np.int64
        return numpy_helper.from_array(np.asarray(value, dtype=dtype))
    return None


def count_constant_nodes(model: onnx.ModelProto) -> int:
    return sum(1 for n in model.graph.node if n.op_type == "Constant" and n.domain in ("", "ai.onnx"))


def name_unnamed_nodes(model: onnx.ModelProto) -> int:
    """Give every main-graph node a unique, non-empty name (tools select nodes by name).

    Returns how many nodes were (re)named.
    """
    taken = {n.name for n in model.graph.node if n.name}
    seen: set[str] = set()
    renamed = 0
    for index, node in enumerate(model.graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        base = f"{node.op_type}_{index}"
        name, suffix = base, 0
        while name in taken or name in seen:
            suffix += 1
            name = f"{base}_{suffix}"
        node.name = name
        seen.add(name)
        renamed += 1
    return renamed


def prunable_initializers(model: onnx.ModelProto) -> list[str]:
    """Names of float initializers used as a layer's weight operand (what the pruner may zero)."""
    inits = {i.name: i for i in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        slots = _WEIGHT_INPUTS.get(node.op_type)
        if slots is None or slots[1] is not None:
            continue
        for idx in slots[0]:
            if idx < len(node.input) and node.input[idx] in inits:
                init = inits[node.input[idx]]
                if init.data_type in _FLOAT_TYPES and len(init.dims) >= 2 and init.name not in names:
                    names.append(init.name)
    return names


def weight_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every layer weight of the main graph, as an array that is zero exactly where the weight is.

    Float weights are returned as they are; quantized ones as (q - zero_point). Keys are the
    names of the stored tensors (initializer or Constant output).
    """
    graph = model.graph
    stored: dict[str, onnx.TensorProto] = {i.name: i for i in graph.initializer}
    for node in graph.node:
        tensor = _constant_tensor(node)
        if tensor is not None:
            stored[node.output[0]] = tensor
    producer = {out: node for node in graph.node for out in node.output}
    result: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray | None:
        tensor = stored.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def resolve(name: str, zero_point_name: str | None, axis: int) -> tuple[str, np.ndarray] | None:
        if name in stored:
            value = array(name)
            if value is None or value.ndim < 2:
                return None
            if zero_point_name:
                return name, _centered(value, array(zero_point_name), axis)
            if stored[name].data_type in _FLOAT_TYPES:
                return name, value
            return None
        node = producer.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
            q_axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            return resolve(node.input[0], zp, q_axis) if zp else resolve_int(node.input[0])
        if node.op_type in ("Cast", "Identity", "Transpose"):
            return resolve(node.input[0], zero_point_name, axis)
        return None

    def resolve_int(name: str) -> tuple[str, np.ndarray] | None:
        value = array(name)
        return None if value is None or value.ndim < 2 else (name, value)

    for node in graph.node:
        slots = _WEIGHT_INPUTS.get(node.op_type)
        if slots is None:
            continue
        indices, zp_index = slots
        for idx in indices:
            if idx >= len(node.input) or not node.input[idx]:
                continue
            zp_name = None
            if zp_index is not None and zp_index < len(node.input) and node.input[zp_index]:
                zp_name = node.input[zp_index]
            found = resolve(node.input[idx], zp_name, 0)
            if found is None and zp_index is not None:
                found = resolve_int(node.input[idx])
            if found is not None and found[0] not in result:
                result[found[0]] = found[1]
    return result


def _centered(q: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """q - zero_point, broadcasting a per-channel zero point along `axis`."""
    values = q.astype(np.int32)
    if zero_point is None:
        return values
    zp = np.asarray(zero_point).astype(np.int32)
    if zp.ndim == 0 or zp.size == 1:
        return values - int(zp.reshape(-1)[0])
    shape = [1] * values.ndim
    shape[axis % values.ndim] = zp.size
    return values - zp.reshape(shape)


def sparsity(model: onnx.ModelProto) -> tuple[float, dict[str, float]]:
    """(overall fraction of zero weights, {layer weight name: its fraction}) over the layer weights."""
    weights = weight_tensors(model)
    per_layer: dict[str, float] = {}
    zeros = 0
    total = 0
    for name, value in weights.items():
        z = int(np.count_nonzero(value == 0))
        per_layer[name] = z / value.size if value.size else 0.0
        zeros += z
        total += value.size
    return (zeros / total if total else 0.0), per_layer
