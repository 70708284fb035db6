"""Model files the user gives farm, checked before any board sees them."""
from __future__ import annotations

import dataclasses
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
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(f"model file not found: {path}")
    if not path.is_file():
        raise BadInputError(f"model path is not a file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise BadInputError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not model.graph.node and not model.graph.output:
        raise BadInputError(f"{path} is not an ONNX model (it has no graph)")
    if not model.graph.input:
        raise BadInputError(f"{path}: the model has no inputs to feed")
    resolved = path.resolve()
    return ModelFile(name=name or path.stem, path=resolved, sha256=file_sha256(resolved), size_bytes=resolved.stat().st_size)


def demo_models() -> list[ModelFile]:
    """The bundled demo models (see orchestrator/demo/PROVENANCE.md)."""
    return [load_model_file(DEMO_DIR / name) for name in DEMO_MODELS]
