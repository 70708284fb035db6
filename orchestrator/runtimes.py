"""The runtimes farm can measure with: one registry of names, aliases and what each needs.

Every place that names a runtime (command-line options, suite files, inventories, provisioning,
variants whose format only one runtime reads, the agent) takes it from here; the agent's own
list (agents.farm_common.RUNTIME_NAMES) must be the same names, which the registry checks.
Pure and light to import: tables and the terminal import it.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Mapping, Sequence

from agents.farm_common import ORT_PROVIDER_ALIASES, RUNTIME_NAMES


@dataclasses.dataclass(frozen=True)
class RuntimeInfo:
    """One runtime: its name, the Python distribution and module that provide it on a board,
    the other names a user may type for it, and what it calls an execution target."""

    name: str
    distribution: str
    module: str
    aliases: tuple[str, ...]
    targets: str  # "execution providers" (onnxruntime) or "devices" (OpenVINO)
    summary: str


RUNTIMES: dict[str, RuntimeInfo] = {
    info.name: info
    for info in (
        RuntimeInfo("onnxruntime", "onnxruntime", "onnxruntime", ("ort",), "execution providers",
                    "ONNX Runtime: ONNX files, execution providers (CPU, CUDA, TensorRT, QNN, ...)"),
        RuntimeInfo("openvino", "openvino", "openvino", ("ov",), "devices",
                    "OpenVINO: ONNX files and OpenVINO IR, devices (CPU, GPU, NPU)"),
    )
}
DEFAULT_RUNTIME = "onnxruntime"
if tuple(RUNTIMES) != tuple(RUNTIME_NAMES):  # pragma: no cover - a programming error caught at import
    raise RuntimeError(f"runtime registry {tuple(RUNTIMES)} differs from the agent's {tuple(RUNTIME_NAMES)}")

# Execution providers that onnxruntime ships, for "did you mean" hints.
KNOWN_ORT_PROVIDERS = tuple(dict.fromkeys([
    *ORT_PROVIDER_ALIASES.values(),
    "MIGraphXExecutionProvider", "RknpuExecutionProvider", "SNPEExecutionProvider", "VitisAIExecutionProvider",
    "DnnlExecutionProvider", "CANNExecutionProvider", "WebGpuExecutionProvider",
]))


def runtime_names_text() -> str:
    """`onnxruntime or openvino`, for messages."""
    names = list(RUNTIMES)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def resolve_runtime(text: str) -> str:
    """A runtime's name from what a user typed (name or alias, any case); ValueError naming the
    known runtimes (and the closest one) otherwise."""
    wanted = str(text).strip().lower()
    for info in RUNTIMES.values():
        if wanted == info.name or wanted in info.aliases:
            return info.name
    close = difflib.get_close_matches(wanted, [n for i in RUNTIMES.values() for n in (i.name, *i.aliases)], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"{text!r} is not a runtime farm knows: use {runtime_names_text()}{hint}")


def board_runtime(tags: Mapping[str, str] | None) -> str:
    """The runtime an inventory gives a board (its `runtime:` setting, kept in its tags), else the
    default. The inventory loader has already refused unknown names."""
    return resolve_runtime((tags or {}).get("runtime") or DEFAULT_RUNTIME)


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
