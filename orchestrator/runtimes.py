"""Which runtime ran a result, in the words tables and reports show (pure, light to import)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence


def runtime_label(export: Mapping[str, Any]) -> str | None:
    """`onnxruntime`, `openvino bf16`: the runtime that ran a job and the precision it computed
    in when the runtime chose one (OpenVINO runs float32 models in bf16 on CPUs that have it)."""
    runtime = export.get("runtime")
    if not runtime:
        return None
    precision = export.get("inference_precision")
    return f"{runtime} {precision}" if precision else str(runtime)


def mixes_runtimes(rows: Sequence[Any], label: Callable[[Any], str | None]) -> bool:
    """True when the rows ran on more than one runtime (or precision): then each says which."""
    return len({label(row) for row in rows} - {None}) > 1
