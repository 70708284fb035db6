"""Variants on real models: a conv+BN net built here, the digits MLP (demo file or trained here),
a graph with Paddle-style Constant-node weights, and the YOLO-shaped timing model when present.

Every check runs the produced file in onnxruntime; accuracy is measured against real labels.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from orchestrator.errors import BadInputError, UsageError
from orchestrator.variants import (
    VARIANT_NAMES,
    CalibrationData,
    CalibrationRequiredError,
    VariantBuildError,
    VariantRecord,
    VariantSpec,
    build_variant,
    constants_to_initializers,
    layerwise_counts,
    parse_variant_list,
    parse_variant_spec,
    read_manifest,
)

DEMO_DIR = Path(__file__).resolve().parents[2] / "orchestrator" / "demo"
ALL_SPECS = ["fp32", "optimized", "fp16", "int8-dynamic", "int8-static", "prune-l1:0.5", "prune-l1-layerwise:0.5"]


# --------------------------------------------------------------------------- models made here


def _conv_bn(graph_nodes, inits, rng, name, x, c_in, c_out, stride):
    """Conv (He-initialised) + BatchNormalization + Relu, appended to the graph lists."""
    w = rng.normal(0.0, np.sqrt(2.0 / (c_in * 9)), (c_out, c_in, 3, 3)).astype(np.float32)
    inits += [
        numpy_helper.from_array(w, f"{name}.w"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c_out).astype(np.float32), f"{name}.gamma"),
        numpy_helper.from_array(rng.normal(0.0, 0.1, c_out).astype(np.float32), f"{name}.beta"),
        numpy_helper.from_array(rng.normal(0.0, 0.1, c_out).astype(np.float32), f"{name}.mean"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c_out).astype(np.float32), f"{name}.var"),
    ]
    graph_nodes += [
        helper.make_node("Conv", [x, f"{name}.w"], [f"{name}.conv"], name=f"{name}/conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]),
        helper.make_node("BatchNormalization", [f"{name}.conv", f"{name}.gamma", f"{name}.beta",
                                                f"{name}.mean", f"{name}.var"], [f"{name}.bn"], name=f"{name}/bn"),
        helper.make_node("Relu", [f"{name}.bn"], [f"{name}.out"], name=f"{name}/relu"),
    ]
    return f"{name}.out"


def make_conv_bn_net(path: Path) -> Path:
    """A 4-conv (+BN+Relu) classifier with a nearest Resize and a Concat, ~260 k parameters.

    Random weights: it has a real op mix and size, no accuracy meaning.
    """
    rng = np.random.default_rng(0)
    nodes: list = []
    inits: list = []
    x1 = _conv_bn(nodes, inits, rng, "c1", "images", 3, 32, 1)      # 32x32
    x2 = _conv_bn(nodes, inits, rng, "c2", x1, 32, 64, 2)           # 16x16
    x3 = _conv_bn(nodes, inits, rng, "c3", x2, 64, 128, 2)          # 8x8
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up.scales"))
    nodes += [
        helper.make_node("Resize", [x3, "", "up.scales"], ["up"], name="up", mode="nearest"),
        helper.make_node("Concat", ["up", x2], ["cat"], name="cat", axis=1),
    ]
    x4 = _conv_bn(nodes, inits, rng, "c4", "cat", 192, 96, 1)
    inits += [
        numpy_helper.from_array(rng.normal(0, np.sqrt(1 / 96), (10, 96)).astype(np.float32), "fc.w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [x4], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_bn_net",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_constant_weight_net(path: Path) -> Path:
    """Two Convs whose weights and biases come from Constant nodes, as PaddlePaddle exports them."""
    rng = np.random.default_rng(1)

    def const(name, array):
        return helper.make_node("Constant", [], [name], name=f"const/{name}",
                                value=numpy_helper.from_array(array.astype(np.float32), name))

    nodes = [
        const("w1", rng.normal(0, 0.3, (16, 3, 3, 3))),
        const("b1", rng.normal(0, 0.1, (16,))),
        const("w2", rng.normal(0, 0.1, (8, 16, 3, 3))),
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "paddle_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def train_digits_mlp(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """The digits MLP made here (when the demo file is absent): skl2onnx, raw 0..16 inputs."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    with threadpool_limits(1):  # 10x faster than fighting over 2 cores
        pipe = make_pipeline(StandardScaler(), MLPClassifier((64,), solver="lbfgs", max_iter=300, random_state=0))
        pipe.fit(x_train, y_train)
    onx = to_onnx(pipe, initial_types=[("input", FloatTensorType([None, 64]))],
                  options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 1})
    path = folder / "digits_mlp.onnx"
    onnx.save(onx, str(path))
    return path, x_test, y_test.astype(np.int64)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def cache_dir(workdir) -> Path:
    return workdir / "cache"


@pytest.fixture(scope="module")
def conv_net(workdir) -> Path:
    return make_conv_bn_net(workdir / "conv_bn_net.onnx")


@pytest.fixture(scope="module")
def conv_calibration() -> CalibrationData:
    """Image-like inputs for the random-weight conv net (it has no real data: timing-only model)."""
    rng = np.random.default_rng(7)
    return CalibrationData({"images": rng.random((32, 3, 32, 32), dtype=np.float32)}, "synthetic images")


@pytest.fixture(scope="module")
def digits(workdir) -> tuple[Path, np.ndarray, np.ndarray]:
    """(model, test inputs, test labels): the demo files when present, else trained here."""
    model, data = DEMO_DIR / "digits_mlp.onnx", DEMO_DIR / "digits_test.npz"
    if model.is_file() and data.is_file():
        with np.load(data, allow_pickle=False) as npz:
            return model, npz["inputs"].astype(np.float32), npz["labels"]
    return train_digits_mlp(workdir)


@pytest.fixture(scope="module")
def digits_calibration(digits, workdir) -> CalibrationData:
    model, inputs, _ = digits
    npz = workdir / "digits_calibration.npz"
    np.savez(npz, inputs=inputs)
    return CalibrationData.from_npz(npz, model)


@pytest.fixture(scope="module")
def build(cache_dir):
    """build_variant through one module-wide cache (each variant is built once for all tests)."""

    def _build(model: Path, spec: str, calibration: CalibrationData | None = None) -> VariantRecord:
        return build_variant(model, spec, cache_dir, calibration)

    return _build


def run_model(path: Path | str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def top1(path: Path | str, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label = session.run(["label"], {"input": inputs})[0]
    return float(np.mean(label == labels))


# --------------------------------------------------------------------------- parsing


def test_parse_variant_list_gives_canonical_specs():
    specs = parse_variant_list(" fp32, FP16 ,int8-dynamic,prune-l1:0.50, prune-l1-layerwise:.3")
    assert [s.text for s in specs] == ["fp32", "fp16", "int8-dynamic", "prune-l1:0.5", "prune-l1-layerwise:0.3"]
    assert specs[3] == VariantSpec("prune-l1", 0.5) and specs[3].file_tag == "prune-l1-0.5"
    assert parse_variant_spec("int8-static").needs_calibration


def test_unknown_variant_lists_every_valid_name():
    with pytest.raises(UsageError) as err:
        parse_variant_list("fp32,int4")
    message = str(err.value)
    assert "'int4'" in message
    for name in VARIANT_NAMES:
        assert name in message
    assert "prune-l1:AMOUNT" in message


@pytest.mark.parametrize("text", ["prune-l1:0", "prune-l1:1", "prune-l1:1.5", "prune-l1:-0.2", "prune-l1:abc",
                                  "prune-l1:nan", "prune-l1", "prune-l1-layerwise:", "fp16:0.5", "", "fp32,,fp16",
                                  "fp16,FP16"])
def test_bad_variant_text_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_variant_list(text)


# --------------------------------------------------------------------------- every variant


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_variant_of_the_conv_net_builds_loads_and_runs(build, conv_net, conv_calibration, spec):
    record = build(conv_net, spec, conv_calibration)
    feeds = {"images": np.random.default_rng(3).random((1, 3, 32, 32), dtype=np.float32)}
    (out,) = run_model(record.path, feeds)
    assert out.shape == (1, 10) and np.all(np.isfinite(out))
    assert record.variant == parse_variant_spec(spec).text
    assert record.size_bytes == Path(record.path).stat().st_size
    assert 0 < record.gzip_bytes < record.size_bytes
    assert record.parameters > 200_000 and record.actions and record.op_counts
    if spec == "fp32":
        assert record.sha256 == record.source_sha256 and record.fidelity is None
    else:
        assert record.fidelity is not None and record.fidelity["cosine"] > 0.9
    manifest = json.loads(Path(record.path + ".manifest.json").read_text())
    assert manifest["variant"] == record.variant and manifest["sha256"] == record.sha256
    assert read_manifest(Path(record.path)).to_dict() == {**record.to_dict(), "cached": False}


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_variant_of_the_digits_mlp_keeps_real_accuracy(build, digits, digits_calibration, spec):
    model, inputs, labels = digits
    baseline = top1(model, inputs, labels)
    assert baseline > 0.9
    record = build(model, spec, digits_calibration)
    accuracy = top1(record.path, inputs, labels)
    assert accuracy >= baseline - 0.03, (spec, accuracy, baseline, record.actions)


# --------------------------------------------------------------------------- what each variant must achieve


@pytest.mark.parametrize("spec", ["int8-dynamic", "int8-static"])
def test_int8_shrinks_the_conv_net_at_least_3x(build, conv_net, conv_calibration, spec):
    fp32 = build(conv_net, "fp32")
    record = build(conv_net, spec, conv_calibration)
    assert fp32.size_bytes / record.size_bytes >= 3.0, (fp32.size_bytes, record.size_bytes)
    if spec == "int8-static":
        assert record.op_counts.get("QuantizeLinear") and record.op_counts.get("DequantizeLinear")
        assert "BatchNormalization" not in record.op_counts  # folded before quantizing
        assert any("per-channel" in action for action in record.actions)
    else:
        assert record.op_counts.get("ConvInteger") == 4


@pytest.mark.skipif(not (DEMO_DIR / "yolo_timing.onnx").is_file(), reason="demo yolo_timing.onnx not made yet")
def test_int8_dynamic_shrinks_the_yolo_timing_model_at_least_3x(build):
    model = DEMO_DIR / "yolo_timing.onnx"
    fp32, record = build(model, "fp32"), build(model, "int8-dynamic")
    assert fp32.size_bytes / record.size_bytes >= 3.0
    (out,) = run_model(record.path, {"images": np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)})
    assert np.all(np.isfinite(out))


def test_int8_static_leaves_nothing_in_the_working_directory(digits, digits_calibration, tmp_path, monkeypatch):
    """onnxruntime's symbolic shape inference dumps a file into the cwd when it fails (it does on
    the skl2onnx MLP); the variant must still build, with the failure recorded, and litter nothing."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    record = build_variant(digits[0], "int8-static", tmp_path / "cache", digits_calibration)
    assert list(cwd.iterdir()) == []
    assert any("quant_pre_process" in action for action in record.actions)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []


def test_int8_static_needs_calibration(conv_net, tmp_path):
    with pytest.raises(CalibrationRequiredError) as err:
        build_variant(conv_net, "int8-static", tmp_path / "cache")
    assert isinstance(err.value, VariantBuildError) and err.value.variant == "int8-static"
    assert "--calibration" in str(err.value)


def test_fp16_halves_the_conv_net_and_keeps_bn_and_resize_in_fp32(build, conv_net):
    fp32, fp16 = build(conv_net, "fp32"), build(conv_net, "fp16")
    assert 0.45 < fp16.size_bytes / fp32.size_bytes < 0.6
    assert fp16.fidelity["cosine"] > 0.99
    model = onnx.load(fp16.path)
    bn_params = {i for n in model.graph.node if n.op_type == "BatchNormalization" for i in n.input[1:]}
    dtypes = {i.name: i.data_type for i in model.graph.initializer}
    assert bn_params and all(dtypes[name] == TensorProto.FLOAT for name in bn_params)
    assert dtypes["c4.w"] == TensorProto.FLOAT16
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # keep_io_types


def test_optimized_folds_batchnorm_into_conv(build, conv_net):
    fp32, optimized = build(conv_net, "fp32"), build(conv_net, "optimized")
    assert sum(optimized.op_counts.values()) < sum(fp32.op_counts.values())
    assert fp32.op_counts["BatchNormalization"] == 4 and "BatchNormalization" not in optimized.op_counts
    assert optimized.source_op_counts == fp32.op_counts
    assert not any(op.endswith("NchwcConv") or "ReorderInput" in op for op in optimized.op_counts)  # portable
    assert optimized.fidelity["cosine"] > 0.999


@pytest.mark.parametrize("amount", [0.5, 0.8])
def test_pruning_reaches_the_asked_sparsity(build, conv_net, amount):
    uniform = build(conv_net, f"prune-l1:{amount}")
    layerwise = build(conv_net, f"prune-l1-layerwise:{amount}")
    assert abs(uniform.sparsity - amount) <= 0.02 and abs(layerwise.sparsity - amount) <= 0.02
    assert set(uniform.sparsity_per_layer) == {"c1.w", "c2.w", "c3.w", "c4.w", "fc.w"}
    assert all(abs(s - amount) <= 0.01 for s in uniform.sparsity_per_layer.values())
    per_layer = layerwise.sparsity_per_layer.values()
    assert max(per_layer) - min(per_layer) > 0.1  # the rule computed different sparsities
    assert max(per_layer) <= (1 + amount) / 2 + 1e-6  # the cap: no layer loses (nearly) everything
    # Honest: a dense file does not shrink, only its compressed size does.
    fp32 = build(conv_net, "fp32")
    assert uniform.size_bytes == pytest.approx(fp32.size_bytes, rel=0.01)
    assert uniform.gzip_bytes < fp32.gzip_bytes * (1 - amount / 3)


def test_layerwise_counts_follow_a_global_threshold_with_caps():
    rng = np.random.default_rng(0)
    mags = {"small": np.abs(rng.normal(0, 0.01, 1000)), "large": np.abs(rng.normal(0, 1.0, 1000)),
            "tiny": np.full(10, 1e-6)}
    counts = layerwise_counts(mags, 0.5)
    assert sum(counts.values()) == round(0.5 * 2010)
    assert counts["tiny"] == 7  # capped at floor(10 * 0.75), not all 10
    assert counts["small"] == 750  # capped too; the rest of the budget went to "large"
    assert counts["large"] == 1005 - 757


def test_heavy_pruning_wrecks_the_digits_mlp_accuracy(build, digits):
    """90 % of the weights gone: top-1 on the real test set falls, whatever the fidelity says."""
    model, inputs, labels = digits
    baseline = top1(model, inputs, labels)
    accuracy = {}
    for spec in ("prune-l1:0.9", "prune-l1-layerwise:0.9"):
        record = build(model, spec)
        assert abs(record.sparsity - 0.9) <= 0.02
        accuracy[spec] = top1(record.path, inputs, labels)
        warned = any(a.startswith("WARNING: cosine to fp32") for a in record.actions)
        assert warned == (record.fidelity["cosine"] < 0.99), (record.fidelity, record.actions)
    assert accuracy["prune-l1:0.9"] < baseline - 0.15, (accuracy, baseline)
    assert accuracy["prune-l1-layerwise:0.9"] < baseline - 0.05, (accuracy, baseline)


# --------------------------------------------------------------------------- cache


def test_second_build_is_a_cache_hit(conv_net, tmp_path):
    cache = tmp_path / "cache"
    first = build_variant(conv_net, "fp16", cache)
    mtime = os.stat(first.path).st_mtime_ns
    second = build_variant(conv_net, "FP16", cache)
    assert not first.cached and second.cached
    assert second.path == first.path and second.sha256 == first.sha256
    assert os.stat(second.path).st_mtime_ns == mtime
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left behind
    # A corrupted cache entry is rebuilt, not trusted.
    Path(first.path).write_bytes(b"garbage")
    third = build_variant(conv_net, "fp16", cache)
    assert not third.cached and third.sha256 == first.sha256


def test_cache_key_covers_calibration_only_where_it_is_used(conv_net, conv_calibration, tmp_path):
    cache = tmp_path / "cache"
    other = CalibrationData({"images": conv_calibration.arrays["images"][:8] * 0.5}, "other")
    a = build_variant(conv_net, "int8-static", cache, conv_calibration)
    b = build_variant(conv_net, "int8-static", cache, other)
    assert a.cache_key != b.cache_key and not b.cached
    assert build_variant(conv_net, "int8-static", cache, conv_calibration).cached
    f1 = build_variant(conv_net, "fp16", cache, conv_calibration)
    assert build_variant(conv_net, "fp16", cache, other).cached
    assert build_variant(conv_net, "fp16", cache).path == f1.path


def test_changed_model_bytes_give_a_new_variant(conv_net, tmp_path):
    cache = tmp_path / "cache"
    copy = tmp_path / "conv_bn_net.onnx"
    copy.write_bytes(conv_net.read_bytes())
    first = build_variant(copy, "prune-l1:0.3", cache)
    model = onnx.load(str(copy))
    model.graph.doc_string = "retrained"
    onnx.save(model, str(copy))
    second = build_variant(copy, "prune-l1:0.3", cache)
    assert not second.cached and second.source_sha256 != first.source_sha256 and second.path != first.path


# --------------------------------------------------------------------------- Constant-node weights


def test_constants_to_initializers_moves_paddle_style_weights(tmp_path):
    path = make_constant_weight_net(tmp_path / "paddle.onnx")
    model = onnx.load(str(path))
    moved = constants_to_initializers(model)
    assert [n.op_type for n in model.graph.node].count("Constant") == 3  # input left untouched
    assert [n.op_type for n in moved.graph.node] == ["Conv", "Relu", "Conv"]
    assert {i.name for i in moved.graph.initializer} == {"w1", "b1", "w2"}
    feeds = {"x": np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)}
    moved_path = tmp_path / "moved.onnx"
    onnx.save(moved, str(moved_path))
    np.testing.assert_allclose(run_model(moved_path, feeds)[0], run_model(path, feeds)[0], rtol=1e-6)


def test_constant_weights_are_pruned_and_quantized(tmp_path):
    path = make_constant_weight_net(tmp_path / "paddle.onnx")
    cache = tmp_path / "cache"
    original = build_variant(path, "fp32", cache)
    assert set(original.sparsity_per_layer) == {"w1", "w2"}  # Constant weights are seen as weights
    pruned = build_variant(path, "prune-l1:0.6", cache)
    assert abs(pruned.sparsity - 0.6) <= 0.02 and set(pruned.sparsity_per_layer) == {"w1", "w2"}
    assert any("Constant-node" in action for action in pruned.actions)
    quantized = build_variant(path, "int8-dynamic", cache)
    assert quantized.op_counts.get("ConvInteger") == 2 and "Constant" not in quantized.op_counts
    assert quantized.fidelity["cosine"] > 0.99


# --------------------------------------------------------------------------- failures and inputs


def test_unbuildable_variants_raise_variant_build_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(512))
    with pytest.raises(VariantBuildError) as err:
        build_variant(junk, "fp16", tmp_path / "cache")
    assert err.value.variant == "fp16" and "junk.onnx" in str(err.value)
    no_weights = tmp_path / "relu.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(no_weights))
    with pytest.raises(VariantBuildError, match="no Conv/Gemm/MatMul"):
        build_variant(no_weights, "prune-l1:0.5", tmp_path / "cache")
    with pytest.raises(BadInputError):
        build_variant(tmp_path / "missing.onnx", "fp32", tmp_path / "cache")


def test_wrong_calibration_inputs_fail_the_variant(conv_net, tmp_path):
    bad = CalibrationData({"not_images": np.zeros((4, 3, 32, 32), np.float32)})
    with pytest.raises(VariantBuildError, match="images"):
        build_variant(conv_net, "int8-static", tmp_path / "cache", bad)


def test_calibration_from_npz_maps_inputs_and_limits_samples(digits, tmp_path):
    model, inputs, _ = digits
    npz = tmp_path / "data.npz"
    big = np.concatenate([inputs] * 2)
    np.savez(npz, inputs=big, labels=np.zeros(len(big)))
    data = CalibrationData.from_npz(npz, model, max_samples=150)
    assert list(data.arrays) == ["input"] and data.sample_count == 150
    assert data.sha256() == CalibrationData.from_npz(npz, model, max_samples=150).sha256()
    assert data.sha256() != CalibrationData.from_npz(npz, model, max_samples=100).sha256()
    with pytest.raises(BadInputError):
        CalibrationData.from_npz(npz, model, key="images")


def test_bench_help_names_every_variant():
    import inspect

    from orchestrator.cli.bench_cmd import bench
    from orchestrator.variants import VARIANT_KINDS

    help_text = inspect.signature(bench).parameters["variants"].default.help
    for kind in VARIANT_KINDS.values():
        assert kind.usage in help_text
