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
    for kind in ("NodeProto", "TensorProto", "ValueInfoProto"):
        proto.message_type.add(name=kind)  # no fields: their contents are parsed as unknown fields
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("farm_onnx_outline.ModelProto"))


def demo_models() -> list[ModelFile]:
    """The bundled demo models (see orchestrator/demo/PROVENANCE.md)."""
    return [load_model_file(DEMO_DIR / name) for name in DEMO_MODELS]
