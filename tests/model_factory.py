"""Small real ONNX models made with onnx.helper for tests that need a particular shape of graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def dynamic_batch_matmul(path: Path, features: int = 16) -> Path:
    """y = x @ W with x of shape [batch, features] where `batch` is symbolic."""
    weight = numpy_helper.from_array(np.random.default_rng(1).random((features, 4), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "dynamic_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def dynamic_image_conv(path: Path, channels: int = 3) -> Path:
    """y = conv3x3(x) with x of shape [1, channels, "H", "W"]: a fully convolutional model whose
    input size the file leaves open (as text detectors' do)."""
    weight = numpy_helper.from_array(np.random.default_rng(2).random((4, channels, 3, 3), dtype=np.float32), "K")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "K"], ["y"], pads=[1, 1, 1, 1])],
        "dynamic_image",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, "H", "W"])],
        [weight],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def string_input(path: Path) -> Path:
    """A model whose input is a string tensor: farm cannot synthesise it."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["out"])],
        "string_input",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("out", TensorProto.STRING, [1])],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def transient_spike(path: Path, spike_bytes: int) -> Path:
    """Each inference briefly materialises a float32 tensor of `spike_bytes` (Expand → ReduceSum).

    The steady-state RSS stays small; only the kernel's peak (VmHWM) sees the spike.
    """
    elements = spike_bytes // 4
    shape = numpy_helper.from_array(np.array([elements], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["x", "shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0),
        ],
        "transient_spike",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [shape],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def heavy_load(path: Path, weight_bytes: int) -> Path:
    """A big initializer that inference barely touches: load allocates far more than inference.

    Only a [1, 1] slice of the weight is used per run, so the load-phase peak (protobuf parse
    plus the initializer copy) is much higher than the inference-phase peak.
    """
    elements = weight_bytes // 4
    weight = numpy_helper.from_array(np.ones((elements,), dtype=np.float32), "W")
    starts = numpy_helper.from_array(np.array([0], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([1], dtype=np.int64), "ends")
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["W", "starts", "ends"], ["w1"]),
            helper.make_node("Mul", ["x", "w1"], ["y"]),
        ],
        "heavy_load",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [weight, starts, ends],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def slow_matmul_chain(path: Path, size: int = 2048, layers: int = 10) -> Path:
    """Seconds per inference on one thread: `layers` size×size MatMuls sharing one weight."""
    weight = numpy_helper.from_array(np.full((size, size), 1.0 / size, dtype=np.float32), "W")
    nodes, prev = [], "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(
        nodes, "slow_matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [size, size])],
        [weight],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def endless_loop(path: Path) -> Path:
    """A model whose every inference runs a Loop of 2**62 iterations: it never finishes by itself.

    For tests that must stop a job while it runs: the job cannot end before the stop arrives,
    however late that is (waiting on its `first_inference` phase is then enough).
    """
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(2**62, dtype=np.int64), "M"), numpy_helper.from_array(np.array(True), "cond")],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def plain_digits_classifier(path: Path) -> Path:
    """The demo digits MLP with standard ONNX ops only: its Scaler (ai.onnx.ml) becomes Sub and Mul,
    and the label branch (ArgMax, ArrayFeatureExtractor) goes, so OpenVINO reads it too. The same
    weights and the same class probabilities: a real classifier (the shipped test set scores it)."""
    from orchestrator.models import DEMO_DIR

    source = onnx.load(str(DEMO_DIR / "digits_mlp.onnx"))
    graph = source.graph
    scaler = next(n for n in graph.node if n.op_type == "Scaler")
    attrs = {a.name: np.asarray(a.floats, dtype=np.float32) for a in scaler.attribute}
    first = [
        helper.make_node("Sub", [scaler.input[0], "scaler_offset"], ["scaler_centred"]),
        helper.make_node("Mul", ["scaler_centred", "scaler_scale"], [scaler.output[0]]),
    ]
    probabilities = next(o for o in graph.output if o.name == "probabilities")
    kept, needed = [], {"probabilities"}
    for node in reversed([n for n in graph.node if n is not scaler]):  # what `probabilities` depends on
        if needed & set(node.output):
            kept.insert(0, node)
            needed |= set(node.input)
    initializers = [i for i in graph.initializer if i.name in needed] + [
        numpy_helper.from_array(attrs["offset"], "scaler_offset"),
        numpy_helper.from_array(attrs["scale"], "scaler_scale"),
    ]
    plain = helper.make_graph(first + kept, "digits_mlp_plain", list(graph.input), [probabilities], initializers)
    return save(helper.make_model(plain, opset_imports=OPSET), path)


def conv_bn_relu(path: Path, layers: int = 4, channels: int = 32, size: int = 56) -> Path:
    """A small CNN of `layers` Conv → BatchNormalization → Relu blocks on a 1×channels×size×size
    input (random weights, timing only): the shape of graph where onnxruntime folds the
    BatchNormalization into the Conv, and dynamic int8 quantization turns each Conv into a
    ConvInteger. ~1-3 ms per inference on one x86 core: the convolutions dominate its time."""
    rng = np.random.default_rng(5)
    nodes, initializers, prev = [], [], "x"
    for i in range(layers):
        initializers += [
            numpy_helper.from_array((rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32), f"W{i}"),
            numpy_helper.from_array(rng.random(channels, dtype=np.float32) + 0.5, f"scale{i}"),
            numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, f"bias{i}"),
            numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, f"mean{i}"),
            numpy_helper.from_array(rng.random(channels, dtype=np.float32) + 0.5, f"var{i}"),
        ]
        nodes += [
            helper.make_node("Conv", [prev, f"W{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", [f"c{i}", f"scale{i}", f"bias{i}", f"mean{i}", f"var{i}"],
                             [f"b{i}"], name=f"bn{i}"),
            helper.make_node("Relu", [f"b{i}"], [f"r{i}"], name=f"relu{i}"),
        ]
        prev = f"r{i}"
    graph = helper.make_graph(
        nodes, "conv_bn_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, channels, size, size])],
        initializers,
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)
