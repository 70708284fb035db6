"""Model files the user gives farm, checked before any board sees them."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Sequence

from orchestrator.agent_client import file_sha256
from orchestrator.errors import BadInputError

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_MODELS = ("digits_mlp.onnx", "yolo_timing.onnx")


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A model identified across runs by `name` (the file stem); `sha256` says which weights."""

    name: str
    path: Path
    sha256: str
    size_bytes: int


def check_model_paths(paths: Sequence[Path | str]) -> None:
    """BadInputError for the first path that is not an existing file: cheap, so `farm bench -m
    typo.onnx` says so before onnx and the variant builders are imported."""
    for path in paths:
        path = Path(path).expanduser()
        if not path.exists():
            raise BadInputError(f"model file not found: {path}")
        if not path.is_file():
            raise BadInputError(f"model path is not a file: {path}")


def load_model_file(path: Path | str, name: str | None = None) -> ModelFile:
    """Check that `path` is a readable ONNX model; BadInputError with the reason otherwise."""
    from google.protobuf.message import DecodeError

    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(f"model file not found: {path}")
    if not path.is_file():
        raise BadInputError(f"model path is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path} is not a readable ONNX model: {exc.strerror or exc}") from exc
    try:
        model = _model_outline().FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BadInputError(f"{path} is not a readable ONNX model: its protobuf encoding is corrupt") from exc
    if not model.graph.node and not model.graph.output:
        raise BadInputError(f"{path} is not an ONNX model (it has no graph)")
    if not model.graph.input:
        raise BadInputError(f"{path}: the model has no inputs to feed")
    resolved = path.resolve()
    return ModelFile(name=name or path.stem, path=resolved, sha256=file_sha256(resolved), size_bytes=resolved.stat().st_size)


@functools.lru_cache(maxsize=1)
def _model_outline() -> type:
    """The outline of ONNX's ModelProto that the check above reads (graph: nodes, inputs, outputs),
    as a protobuf message class of its own. Parsing with it checks the whole file's wire format
    (every nested message, field types skipped as unknown) like `onnx.load`, without importing
    onnx (whose ml_dtypes import alone costs ~0.6 s of every `farm bench`)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="farm_onnx_outline.proto", package="farm_onnx_outline",
                                               syntax="proto2")
    model = proto.message_type.add(name="ModelProto")
    model.field.add(name="graph", number=7, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                    type_name=".farm_onnx_outline.GraphProto")
    graph = proto.message_type.add(name="GraphProto")
    for part, number, kind in (("node", 1, "NodeProto"), ("initializer", 5, "TensorProto"),
                               ("input", 11, "ValueInfoProto"), ("output", 12, "ValueInfoProto")):
        graph.field.add(name=part, number=number, label=field.LABEL_REPEATED, type=field.TYPE_MESSAGE,
                        type_name=f".farm_onnx_outline.{kind}")
    proto.message_type.add(name="NodeProto")  # no fields: its contents are parsed as unknown fields
    tensor = proto.message_type.add(name="TensorProto")
    tensor.field.add(name="name", number=8, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    # a graph input's name and shape, for orchestrator.shapes: ValueInfoProto.type.tensor_type.shape.dim
    value_info = proto.message_type.add(name="ValueInfoProto")
    value_info.field.add(name="name", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    value_info.field.add(name="type", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                         type_name=".farm_onnx_outline.TypeProto")
    type_proto = proto.message_type.add(name="TypeProto")
    type_proto.field.add(name="tensor_type", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                         type_name=".farm_onnx_outline.TensorTypeProto")
    tensor_type = proto.message_type.add(name="TensorTypeProto")
    tensor_type.field.add(name="shape", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                          type_name=".farm_onnx_outline.TensorShapeProto")
    shape = proto.message_type.add(name="TensorShapeProto")
    shape.field.add(name="dim", number=1, label=field.LABEL_REPEATED, type=field.TYPE_MESSAGE,
                    type_name=".farm_onnx_outline.Dimension")
    dim = proto.message_type.add(name="Dimension")
    dim.field.add(name="dim_value", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_INT64)
    dim.field.add(name="dim_param", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("farm_onnx_outline.ModelProto"))


def model_input_dims(path: Path | str) -> list[tuple[str, tuple[int | str | None, ...]]]:
    """(name, dims) of each graph input that is not an initializer: a dim is its size, its
    symbolic name, or None. Read with the outline (no onnx import), once per file version: a
    plan asks for them several times (shapes, batch, dataset size)."""
    stat = Path(path).stat()
    return list(_input_dims(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _input_dims(path: str, size_bytes: int, mtime_ns: int) -> tuple[tuple[str, tuple[int | str | None, ...]], ...]:
    del size_bytes, mtime_ns  # the cache key: a rewritten file is read again
    model = _model_outline().FromString(Path(path).read_bytes())
    initializers = {tensor.name for tensor in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims: list[int | str | None] = []
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
        found.append((value.name, tuple(dims)))
    return tuple(found)


def demo_models() -> list[ModelFile]:
    """The bundled demo models (see orchestrator/demo/PROVENANCE.md)."""
    return [load_model_file(DEMO_DIR / name) for name in DEMO_MODELS]
