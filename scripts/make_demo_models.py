#!/usr/bin/env python3
"""Make the demo models and data shipped in ``orchestrator/demo/``.

Run from the repository root::

    python scripts/make_demo_models.py

Why this exists: farm's tests and demos need real ONNX models without any
download from a model hub at run time. This script builds them from things
that ship inside packages (scikit-learn's digits data set) or from a fixed
random seed, so that anyone can rebuild them and check the result.

Files written (all deterministic: running twice gives byte-identical files on
the same platform and library versions):

* ``digits_mlp.onnx``  - StandardScaler + MLPClassifier trained on
  scikit-learn's ``load_digits``, converted with skl2onnx (no ZipMap, so the
  outputs are plain tensors ``label`` int64 [N] and ``probabilities``
  float32 [N, 10]).
* ``digits_test.npz``  - the held-out test split: ``inputs`` float32 [N, 64]
  (raw pixel values 0..16), ``labels`` int64 [N], ``input_name`` 0-d str.
* ``yolo_timing.onnx`` - a YOLOv8-shaped detector built with onnx.helper from
  random weights. TIMING ONLY: it has the real shapes and op mix
  (Conv+BatchNormalization+SiLU, MaxPool SPPF, Resize+Concat neck, DFL head)
  but its outputs mean nothing.
* ``PROVENANCE.md``    - origin, licence, shapes, sizes, sha256 and the
  measured fp32 test accuracy of ``digits_mlp.onnx`` (onnxruntime).

This script imports scikit-learn and skl2onnx (test/dev extras); the farm
package never imports it at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "orchestrator" / "demo"

SEED = 0
DIGITS_TEST_SIZE = 0.3
AI_ONNX_OPSET = 17
AI_ONNX_ML_OPSET = 1
# IR 8 is the oldest IR that carries opset 17; onnxruntime >= 1.14 loads it,
# which keeps the models usable on boards with older onnxruntime wheels.
IR_VERSION = 8
PRODUCER_NAME = "farm/scripts/make_demo_models.py"

YOLO_IMAGE_SIZE_PX = 160
YOLO_NUM_CLASSES = 80
YOLO_REG_MAX = 16
YOLO_STRIDES = (8, 16, 32)
# Constant date for zip members so that the .npz is byte-identical on rerun
# (numpy.savez stamps the current time into every member).
ZIP_FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------
# digits MLP
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsSplit:
    """The digits data set split into a train and a held-out test part."""

    train_inputs: np.ndarray  # float32 [N_train, 64], pixel values 0..16
    train_labels: np.ndarray  # int64 [N_train]
    test_inputs: np.ndarray  # float32 [N_test, 64]
    test_labels: np.ndarray  # int64 [N_test]


def load_digits_split() -> DigitsSplit:
    """Split scikit-learn's bundled digits data (no download) with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    inputs = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs,
        labels,
        test_size=DIGITS_TEST_SIZE,
        random_state=SEED,
        stratify=labels,
    )
    return DigitsSplit(
        train_inputs=np.ascontiguousarray(x_train),
        train_labels=np.ascontiguousarray(y_train),
        test_inputs=np.ascontiguousarray(x_test),
        test_labels=np.ascontiguousarray(y_test),
    )


def build_digits_mlp(split: DigitsSplit) -> onnx.ModelProto:
    """Train StandardScaler + MLPClassifier and convert it with skl2onnx."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "mlp",
                MLPClassifier(
                    hidden_layer_sizes=(64,),
                    max_iter=500,
                    random_state=SEED,
                ),
            ),
        ]
    )
    # One BLAS thread: multi-threaded BLAS sums in a different order, and the
    # trained weights (so the file's sha256) would depend on the core count.
    with threadpool_limits(limits=1):
        pipeline.fit(split.train_inputs, split.train_labels)

    model = convert_sklearn(
        pipeline,
        name="digits_mlp",
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(pipeline.named_steps["mlp"]): {"zipmap": False}},
        target_opset={"": AI_ONNX_OPSET, "ai.onnx.ml": AI_ONNX_ML_OPSET},
    )
    model.ir_version = IR_VERSION
    model.producer_name = PRODUCER_NAME
    model.producer_version = ""
    model.doc_string = (
        "8x8 handwritten digit classifier: scikit-learn StandardScaler + "
        "MLPClassifier(64 hidden) trained on sklearn.datasets.load_digits "
        f"(train/test split test_size={DIGITS_TEST_SIZE}, random_state={SEED}, "
        "stratified). Input 'input' float32 [N,64] raw pixels 0..16; outputs "
        "'label' int64 [N], 'probabilities' float32 [N,10]."
    )
    _set_metadata(
        model,
        {
            "farm.task": "classification",
            "farm.dataset": "sklearn.datasets.load_digits (BSD-3-Clause; UCI optdigits)",
            "farm.test_set": "digits_test.npz",
            "farm.timing_only": "false",
        },
    )
    onnx.checker.check_model(model)
    return model


def write_digits_test_npz(path: Path, split: DigitsSplit) -> None:
    """Write the test split as an .npz with constant zip timestamps."""
    arrays = {
        "inputs": split.test_inputs.astype(np.float32),
        "labels": split.test_labels.astype(np.int64),
        "input_name": np.array("input"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    path.write_bytes(buffer.getvalue())


# --------------------------------------------------------------------------
# YOLO-shaped timing graph
# --------------------------------------------------------------------------


class GraphBuilder:
    """Collects nodes and initializers for a hand-built ONNX graph.

    Weights come from one seeded generator, so the graph is reproducible.
    Conv and BatchNormalization stay separate nodes (not pre-fused) so that
    onnxruntime's graph optimiser has real work to do, as with an exported
    detector.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = 0

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name=name))
        return name

    def node(self, op_type: str, inputs: list[str], prefix: str, **attrs) -> str:
        output = self.name(prefix)
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=f"{output}/{op_type}", **attrs)
        )
        return output

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int, prefix: str,
             bias: bool = False) -> str:
        fan_in = c_in * k * k
        weight = (self.rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / fan_in))
        inputs = [x, self.const(f"{prefix}.w", weight.astype(np.float32))]
        if bias:
            inputs.append(self.const(f"{prefix}.b", np.zeros(c_out, dtype=np.float32)))
        pad = k // 2
        return self.node(
            "Conv", inputs, prefix,
            kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad],
        )

    def conv_bn_silu(self, x: str, c_in: int, c_out: int, k: int, stride: int,
                     prefix: str) -> str:
        """YOLOv8 ``Conv`` module: Conv (no bias) -> BatchNorm -> SiLU (x*sigmoid(x))."""
        y = self.conv(x, c_in, c_out, k, stride, prefix)
        scale = self.rng.uniform(0.5, 1.0, c_out).astype(np.float32)
        shift = self.rng.uniform(-0.1, 0.1, c_out).astype(np.float32)
        mean = self.rng.uniform(-0.1, 0.1, c_out).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, c_out).astype(np.float32)
        y = self.node(
            "BatchNormalization",
            [y, self.const(f"{prefix}.bn.scale", scale), self.const(f"{prefix}.bn.bias", shift),
             self.const(f"{prefix}.bn.mean", mean), self.const(f"{prefix}.bn.var", var)],
            f"{prefix}.bn", epsilon=1e-3,
        )
        s = self.node("Sigmoid", [y], f"{prefix}.sig")
        return self.node("Mul", [y, s], f"{prefix}.silu")

    def bottleneck(self, x: str, c: int, prefix: str) -> str:
        """Residual block: two 3x3 Conv-BN-SiLU and an Add shortcut."""
        y = self.conv_bn_silu(x, c, c, 3, 1, f"{prefix}.cv1")
        y = self.conv_bn_silu(y, c, c, 3, 1, f"{prefix}.cv2")
        return self.node("Add", [x, y], f"{prefix}.add")

    def c2f(self, x: str, c_in: int, c_out: int, prefix: str, shortcut: bool = True) -> str:
        """YOLOv8 C2f: 1x1 conv, split in two, one bottleneck, concat, 1x1 conv."""
        half = c_out // 2
        y = self.conv_bn_silu(x, c_in, c_out, 1, 1, f"{prefix}.cv1")
        split_sizes = self.const(f"{prefix}.split", np.array([half, half], dtype=np.int64))
        a, b = self.name(f"{prefix}.a"), self.name(f"{prefix}.b")
        self.nodes.append(
            helper.make_node("Split", [y, split_sizes], [a, b], name=f"{a}/Split", axis=1)
        )
        if shortcut:
            m = self.bottleneck(b, half, f"{prefix}.m")
        else:
            m = self.conv_bn_silu(b, half, half, 3, 1, f"{prefix}.m.cv1")
            m = self.conv_bn_silu(m, half, half, 3, 1, f"{prefix}.m.cv2")
        cat = self.node("Concat", [a, b, m], f"{prefix}.cat", axis=1)
        return self.conv_bn_silu(cat, half * 3, c_out, 1, 1, f"{prefix}.cv2")

    def sppf(self, x: str, c: int, prefix: str) -> str:
        """YOLOv8 SPPF: 1x1 conv, three chained 5x5 max-pools, concat, 1x1 conv."""
        half = c // 2
        y = self.conv_bn_silu(x, c, half, 1, 1, f"{prefix}.cv1")
        pools = [y]
        for _ in range(3):
            pools.append(self.node(
                "MaxPool", [pools[-1]], f"{prefix}.pool",
                kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2],
            ))
        cat = self.node("Concat", pools, f"{prefix}.cat", axis=1)
        return self.conv_bn_silu(cat, half * 4, c, 1, 1, f"{prefix}.cv2")

    def upsample2x(self, x: str, prefix: str) -> str:
        scales = self.const(f"{prefix}.scales", np.array([1, 1, 2, 2], dtype=np.float32))
        return self.node("Resize", [x, "", scales], prefix, mode="nearest")


def _anchors_and_strides(image_size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid-cell centres [2, A] (in cells) and per-anchor stride [1, A] (in px)."""
    points, strides = [], []
    for stride in YOLO_STRIDES:
        cells = image_size_px // stride
        ys, xs = np.meshgrid(np.arange(cells) + 0.5, np.arange(cells) + 0.5, indexing="ij")
        points.append(np.stack([xs.reshape(-1), ys.reshape(-1)], axis=0))
        strides.append(np.full((1, cells * cells), stride))
    return (np.concatenate(points, axis=1).astype(np.float32),
            np.concatenate(strides, axis=1).astype(np.float32))


def yolo_num_anchors(image_size_px: int = YOLO_IMAGE_SIZE_PX) -> int:
    """Anchor count over strides 8/16/32: 400 + 100 + 25 = 525 for 160 px."""
    return sum((image_size_px // s) ** 2 for s in YOLO_STRIDES)


def build_yolo_timing() -> onnx.ModelProto:
    """A small YOLOv8-style detector with random weights, for timing only.

    Backbone: Conv-BN-SiLU stride-2 stages with C2f blocks and SPPF.
    Neck: PAN-FPN with nearest Resize upsampling and Concat.
    Head: decoupled box (DFL, reg_max 16) and class branches per stride,
    decoded to ``output0`` [1, 84, 525] = (cx, cy, w, h in px, 80 sigmoid scores).
    """
    g = GraphBuilder(seed=SEED)
    size = YOLO_IMAGE_SIZE_PX
    # Channel widths per stage (/2, /4, /8, /16, /32): narrower than YOLOv8n
    # (16, 32, 64, 128, 256) so the file stays under 3 MB.
    widths = (16, 32, 48, 64, 96)

    # Backbone
    x = g.conv_bn_silu("images", 3, widths[0], 3, 2, "b0")  # /2 80x80
    x = g.conv_bn_silu(x, widths[0], widths[1], 3, 2, "b1")  # /4 40x40
    x = g.c2f(x, widths[1], widths[1], "b2")
    x = g.conv_bn_silu(x, widths[1], widths[2], 3, 2, "b3")  # /8 20x20
    p3 = g.c2f(x, widths[2], widths[2], "b4")
    x = g.conv_bn_silu(p3, widths[2], widths[3], 3, 2, "b5")  # /16 10x10
    p4 = g.c2f(x, widths[3], widths[3], "b6")
    x = g.conv_bn_silu(p4, widths[3], widths[4], 3, 2, "b7")  # /32 5x5
    x = g.c2f(x, widths[4], widths[4], "b8")
    p5 = g.sppf(x, widths[4], "b9")

    # Neck (top-down then bottom-up)
    up = g.upsample2x(p5, "n10.up")
    x = g.node("Concat", [up, p4], "n11.cat", axis=1)
    n4 = g.c2f(x, widths[4] + widths[3], widths[3], "n12", shortcut=False)
    up = g.upsample2x(n4, "n13.up")
    x = g.node("Concat", [up, p3], "n14.cat", axis=1)
    out3 = g.c2f(x, widths[3] + widths[2], widths[2], "n15", shortcut=False)  # 20x20
    x = g.conv_bn_silu(out3, widths[2], widths[2], 3, 2, "n16")
    x = g.node("Concat", [x, n4], "n17.cat", axis=1)
    out4 = g.c2f(x, widths[2] + widths[3], widths[3], "n18", shortcut=False)  # 10x10
    x = g.conv_bn_silu(out4, widths[3], widths[3], 3, 2, "n19")
    x = g.node("Concat", [x, p5], "n20.cat", axis=1)
    out5 = g.c2f(x, widths[3] + widths[4], widths[4], "n21", shortcut=False)  # 5x5

    # Detect head
    box_ch, cls_ch = 32, 48  # hidden channels of the box / class branches
    box_outputs, cls_outputs = [], []
    flat_shape = lambda c: g.const("head.shape", np.array([1, c, -1], dtype=np.int64))  # noqa: E731
    for level, (feat, c_in) in enumerate(zip((out3, out4, out5), widths[2:])):
        p = f"head{level}"
        b = g.conv_bn_silu(feat, c_in, box_ch, 3, 1, f"{p}.box.0")
        b = g.conv_bn_silu(b, box_ch, box_ch, 3, 1, f"{p}.box.1")
        b = g.conv(b, box_ch, 4 * YOLO_REG_MAX, 1, 1, f"{p}.box.2", bias=True)
        c = g.conv_bn_silu(feat, c_in, cls_ch, 3, 1, f"{p}.cls.0")
        c = g.conv_bn_silu(c, cls_ch, cls_ch, 3, 1, f"{p}.cls.1")
        c = g.conv(c, cls_ch, YOLO_NUM_CLASSES, 1, 1, f"{p}.cls.2", bias=True)
        box_outputs.append(g.node("Reshape", [b, flat_shape(4 * YOLO_REG_MAX)], f"{p}.box.flat"))
        cls_outputs.append(g.node("Reshape", [c, flat_shape(YOLO_NUM_CLASSES)], f"{p}.cls.flat"))
    box = g.node("Concat", box_outputs, "head.box.cat", axis=2)  # [1, 64, A]
    cls = g.node("Concat", cls_outputs, "head.cls.cat", axis=2)  # [1, 80, A]

    # DFL: softmax over 16 bins per side, expectation via a fixed 1x1 conv.
    num_anchors = yolo_num_anchors(size)
    x = g.node("Reshape", [box, g.const("dfl.shape", np.array([1, 4, YOLO_REG_MAX, num_anchors],
                                                                dtype=np.int64))], "dfl.reshape")
    x = g.node("Transpose", [x], "dfl.transpose", perm=[0, 2, 1, 3])  # [1, 16, 4, A]
    x = g.node("Softmax", [x], "dfl.softmax", axis=1)
    bins = np.arange(YOLO_REG_MAX, dtype=np.float32).reshape(1, YOLO_REG_MAX, 1, 1)
    x = g.node("Conv", [x, g.const("dfl.w", bins)], "dfl.conv", kernel_shape=[1, 1])  # [1,1,4,A]
    dist = g.node("Reshape", [x, g.const("dfl.out_shape", np.array([1, 4, num_anchors],
                                                                      dtype=np.int64))], "dfl.dist")

    # dist2bbox: (l, t, r, b) distances -> (cx, cy, w, h), scaled by stride to px.
    anchors, strides = _anchors_and_strides(size)
    lt, rb = g.name("dist.lt"), g.name("dist.rb")
    g.nodes.append(helper.make_node(
        "Split", [dist, g.const("dist.split", np.array([2, 2], dtype=np.int64))], [lt, rb],
        name=f"{lt}/Split", axis=1,
    ))
    anchor_points = g.const("anchors", anchors[np.newaxis])  # [1, 2, A]
    x1y1 = g.node("Sub", [anchor_points, lt], "bbox.x1y1")
    x2y2 = g.node("Add", [anchor_points, rb], "bbox.x2y2")
    centre = g.node("Div", [g.node("Add", [x1y1, x2y2], "bbox.sum"),
                            g.const("two", np.array(2.0, dtype=np.float32))], "bbox.c_xy")
    wh = g.node("Sub", [x2y2, x1y1], "bbox.wh")
    xywh = g.node("Concat", [centre, wh], "bbox.xywh", axis=1)
    xywh_px = g.node("Mul", [xywh, g.const("strides", strides[np.newaxis])], "bbox.px")
    scores = g.node("Sigmoid", [cls], "cls.sigmoid")
    g.nodes.append(helper.make_node(
        "Concat", [xywh_px, scores], ["output0"], name="output0/Concat", axis=1,
    ))

    graph = helper.make_graph(
        g.nodes,
        "yolo_timing",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(
            "output0", TensorProto.FLOAT, [1, 4 + YOLO_NUM_CLASSES, num_anchors])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", AI_ONNX_OPSET)],
        producer_name=PRODUCER_NAME,
        ir_version=IR_VERSION,
    )
    model.doc_string = (
        "TIMING ONLY - random weights, no accuracy meaning. YOLOv8-shaped detector "
        f"graph (Conv+BatchNormalization+SiLU backbone with C2f and SPPF, Resize+Concat "
        f"PAN neck, DFL detect head) generated by {PRODUCER_NAME} with seed {SEED}. "
        f"Input 'images' float32 [1,3,{size},{size}]; output 'output0' float32 "
        f"[1,84,{num_anchors}] = (cx, cy, w, h in px, 80 class scores) per anchor."
    )
    _set_metadata(
        model,
        {
            "farm.timing_only": "true",
            "farm.task": "detection",
            "farm.note": "random weights (seed 0); outputs have no accuracy meaning",
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# checks, provenance
# --------------------------------------------------------------------------


def _set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def digits_accuracy(model_path: Path, npz_path: Path) -> float:
    """Top-1 accuracy of the ONNX model on the shipped test set (onnxruntime)."""
    with np.load(npz_path, allow_pickle=False) as data:
        inputs, labels = data["inputs"], data["labels"]
    session = _session(model_path)
    predicted, _ = session.run(["label", "probabilities"], {"input": inputs})
    return float(np.mean(predicted == labels))


def check_yolo(model_path: Path) -> tuple[int, ...]:
    """Run the timing graph once on a seeded input; return the output shape."""
    session = _session(model_path)
    images = np.random.default_rng(SEED).random((1, 3, YOLO_IMAGE_SIZE_PX, YOLO_IMAGE_SIZE_PX),
                                                dtype=np.float32)
    (output,) = session.run(["output0"], {"images": images})
    if not np.all(np.isfinite(output)):
        raise RuntimeError(f"{model_path.name}: output has non-finite values")
    return tuple(output.shape)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _opsets(model_path: Path) -> str:
    model = onnx.load(model_path, load_external_data=False)
    return ", ".join(f"{op.domain or 'ai.onnx'} {op.version}" for op in model.opset_import)


def _versions() -> str:
    import onnxruntime
    import skl2onnx
    import sklearn

    return (f"Python {sys.version.split()[0]}, numpy {np.__version__}, scikit-learn "
            f"{sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def write_provenance(out_dir: Path, accuracy: float, n_test: int, n_train: int,
                     yolo_shape: tuple[int, ...], yolo_params: int) -> Path:
    """Write PROVENANCE.md: origin, licence, shapes, size and sha256 of each file."""
    def row(name: str) -> str:
        path = out_dir / name
        return f"| `{name}` | {path.stat().st_size} | `{_sha256(path)}` |"

    text = f"""# Demo models and data: provenance

All files in this folder are made by one deterministic script (fixed seeds; no
download at build or run time):

    python scripts/make_demo_models.py

Running it twice gives byte-identical files (checked by sha256) with the
library versions below; the MLP is trained with one BLAS thread so the result
does not depend on the core count, but other versions of scikit-learn /
skl2onnx / numpy's BLAS may train slightly different weights.

Made with: {_versions()}.

| file | size_bytes | sha256 |
|---|---|---|
{row("digits_mlp.onnx")}
{row("digits_test.npz")}
{row("yolo_timing.onnx")}

## digits_mlp.onnx

- What: 8x8 handwritten digit classifier, scikit-learn `Pipeline(StandardScaler,
  MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state={SEED}))`,
  converted with skl2onnx (`zipmap=False`, target opsets ai.onnx {AI_ONNX_OPSET} /
  ai.onnx.ml {AI_ONNX_ML_OPSET}); opsets used: {_opsets(out_dir / "digits_mlp.onnx")},
  IR version {IR_VERSION}.
- Data: `sklearn.datasets.load_digits` (ships inside scikit-learn, BSD-3-Clause;
  origin: UCI ML "Optical Recognition of Handwritten Digits" data set, E. Alpaydin
  and C. Kaynak, 1998). Split with `train_test_split(test_size={DIGITS_TEST_SIZE},
  random_state={SEED}, stratify=labels)`: {n_train} train / {n_test} test samples.
- Input: `input` float32 [N, 64], raw pixel values 0..16 (the scaler is in the graph;
  the graph starts with a Cast).
- Outputs: `label` int64 [N]; `probabilities` float32 [N, 10].
- Measured fp32 top-1 accuracy on `digits_test.npz` with onnxruntime (CPU):
  **{accuracy:.4f}** ({round(accuracy * n_test)}/{n_test}).
- Licence of the trained weights: same as this repository (Apache-2.0); data BSD-3-Clause.

## digits_test.npz

- The held-out test split above, written without timestamps (so it is reproducible).
- Arrays: `inputs` float32 [{n_test}, 64], `labels` int64 [{n_test}], `input_name`
  0-d str array (`'input'`). Load with `numpy.load(path, allow_pickle=False)`.
- Origin and licence: scikit-learn digits data set, BSD-3-Clause, UCI origin.

## yolo_timing.onnx  (TIMING ONLY)

- What: a YOLOv8-shaped detector graph generated with `onnx.helper`, **random
  weights (seed {SEED}), no accuracy meaning**. Marked in the model's `doc_string`
  and by metadata_props `farm.timing_only=true`.
- Op mix: Conv + BatchNormalization (kept separate, not pre-fused, so onnxruntime's
  graph optimiser has something to fuse) + SiLU (Sigmoid*Mul), stride-2
  downsampling, C2f blocks (Split/Concat, residual Add), SPPF (MaxPool), PAN neck
  with nearest Resize upsampling and Concat, decoupled detect head with DFL
  (Reshape/Transpose/Softmax/Conv) and box decoding.
- Input: `images` float32 [1, 3, {YOLO_IMAGE_SIZE_PX}, {YOLO_IMAGE_SIZE_PX}].
- Output: `output0` float32 {list(yolo_shape)} = 4 box values (cx, cy, w, h in px) +
  {YOLO_NUM_CLASSES} sigmoid class scores for each of
  {" + ".join(str((YOLO_IMAGE_SIZE_PX // s) ** 2) for s in YOLO_STRIDES)} = {yolo_shape[-1]}
  anchors (strides {"/".join(map(str, YOLO_STRIDES))}).
- Parameters: {yolo_params} float32 values. Opsets used:
  {_opsets(out_dir / "yolo_timing.onnx")}, IR version {IR_VERSION}.
- Licence: generated by this repository (Apache-2.0); no third-party weights.
"""
    path = out_dir / "PROVENANCE.md"
    path.write_text(text, encoding="utf-8")
    return path


def make_all(out_dir: Path) -> dict[str, Path]:
    """Build every demo file into ``out_dir`` and check it with onnxruntime."""
    out_dir.mkdir(parents=True, exist_ok=True)

    split = load_digits_split()
    digits_path = out_dir / "digits_mlp.onnx"
    onnx.save_model(build_digits_mlp(split), digits_path)
    npz_path = out_dir / "digits_test.npz"
    write_digits_test_npz(npz_path, split)
    accuracy = digits_accuracy(digits_path, npz_path)

    yolo = build_yolo_timing()
    yolo_params = sum(int(np.prod(t.dims)) for t in yolo.graph.initializer)
    yolo_path = out_dir / "yolo_timing.onnx"
    onnx.save_model(yolo, yolo_path)
    yolo_shape = check_yolo(yolo_path)
    expected = (1, 4 + YOLO_NUM_CLASSES, yolo_num_anchors())
    if yolo_shape != expected:
        raise RuntimeError(f"yolo_timing output shape {yolo_shape}, expected {expected}")

    provenance = write_provenance(out_dir, accuracy, len(split.test_labels),
                                  len(split.train_labels), yolo_shape, yolo_params)
    print(f"digits_mlp fp32 top-1 accuracy on digits_test.npz (onnxruntime): {accuracy:.4f}")
    print(f"yolo_timing output0 shape: {list(yolo_shape)}, {yolo_params} parameters")
    return {"digits_mlp": digits_path, "digits_test": npz_path,
            "yolo_timing": yolo_path, "provenance": provenance}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"where to write the files (default: {DEFAULT_OUT_DIR})")
    args = parser.parse_args(argv)
    written = make_all(args.out_dir)
    for path in written.values():
        print(f"wrote {path}  {path.stat().st_size} bytes  sha256 {_sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
