"""Operator profiles: where a result's time went, and which operator types explain a change.

`farm bench --profile` ends each cell's worker with a profiling pass (agents/farm_agent.py:
onnxruntime's profiler or OpenVINO's performance counters on a second session, after the timed
runs) and the record keeps its compact summary in `details["profile"]` (the schema is
orchestrator.agent_messages.Profile). This module reads it back for `farm ops`, the report,
gating and the export:

* `CellProfile`: one result's profile — time per inference per operator type and provider, its
  share, the top nodes, the nodes per provider (a partial fallback to the CPU is visible even when
  the session's preferred provider is the accelerator), and what the runtime did to the file's
  graph (`rewrites`: operator types it fused, rewrote or made, from the variant's op counts);
* `diff_profiles`: a latency change attributed to operator types (the `--vs` view): time added,
  removed and changed per type, types one replaced by another (Conv → ConvInteger), and
  fusions the runtime made on one side only;
* `ops_records`: the long-form export (`farm runs export --ops`), one row per result × operator
  type × provider, field names in `OPS_EXPORT_FIELDS` (a contract: add, never rename).

Times are per inference: `*_ms` in milliseconds, each node's median over the profiled
inferences (a preempted or throttled inference does not land on one node), compared with the
timed runs' median; shares are fractions of the operator sum.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from orchestrator.record import IDENTITY_EXPORT_FIELDS, export_of, identity_of, input_shapes_of, same_identity, same_shapes

#: Long-form export fields (`farm runs export --ops`): a stable contract, append only.
OPS_EXPORT_FIELDS = (
    "run_id", "result_id", "board", "model", "variant", "runtime", "profiler", "op_type", "provider", "nodes",
    "op_ms", "op_share", "profile_runs",
)

#: Identity fields that may differ between the variants of one board × model (an OpenVINO IR runs
#: on OpenVINO beside onnxruntime's fp32): `--vs VARIANT` pairs cells that agree on the others.
_RUNTIME_FIELDS = ("runtime", "provider", "inference_precision")

# Display names of onnxruntime's execution providers (the rest: the name without its suffix).
_PROVIDER_NAMES = {
    "TensorrtExecutionProvider": "TensorRT", "XnnpackExecutionProvider": "XNNPACK", "DmlExecutionProvider": "DML",
    "NnapiExecutionProvider": "NNAPI", "ROCMExecutionProvider": "ROCm", "CoreMLExecutionProvider": "CoreML",
    "ArmNNExecutionProvider": "ArmNN",
}


def provider_name(provider: str) -> str:
    """`CPUExecutionProvider` -> `CPU`, `TensorrtExecutionProvider` -> `TensorRT`; devices as they are."""
    return _PROVIDER_NAMES.get(provider, provider.removesuffix("ExecutionProvider") or provider)


@dataclasses.dataclass(frozen=True)
class OpTime:
    """One operator type on one provider: ms per inference, nodes executed, share of the op sum."""

    op_type: str
    provider: str
    ms: float
    nodes: int
    share: float
    kernels: tuple[str, ...] = ()  # OpenVINO's exec types (brgconv_avx512_f32, jit_avx512_i8), slowest first


@dataclasses.dataclass(frozen=True)
class NodeTime:
    name: str
    op_type: str
    provider: str
    ms: float
    share: float
    kernel: str | None = None


@dataclasses.dataclass(frozen=True)
class ProviderSplit:
    """The nodes one provider executed (a compiled subgraph, e.g. TensorRT's, counts as one)."""

    provider: str
    nodes: int
    ms: float
    share: float
    op_types: tuple[str, ...]

    @property
    def name(self) -> str:
        return provider_name(self.provider)


@dataclasses.dataclass(frozen=True)
class Rewrites:
    """What the runtime executed against what the model file holds, per operator type (node
    counts): types it fused into others or rewrote as other types (ran fewer of), and types it
    made (its fused kernels, layout changes, rewritten operators)."""

    fewer: tuple[tuple[str, int, int], ...]  # (op type, in the file, executed), executed < file
    made: tuple[tuple[str, int], ...]  # (op type, executed) absent from the file

    def text(self, limit: int = 6) -> str:
        parts = []
        if self.made:
            parts.append("made " + ", ".join(f"{op} ×{n}" for op, n in self.made[:limit]))
        if self.fewer:
            parts.append("fused or rewrote " + ", ".join(f"{op} {file}→{ran}" for op, file, ran in self.fewer[:limit]))
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class CellProfile:
    """One result's profiling pass, with what it is compared against (the timed latency)."""

    result_id: int | None
    run_id: str | None
    board: str
    model: str
    variant: str
    identity: tuple[Any, ...]
    runtime: str | None
    session_provider: str | None  # the provider the session preferred and reported (record `provider`)
    providers_requested: tuple[str, ...]
    latency_ms_p50: float | None  # the timed runs (never profiled)
    latency_ms_mean: float | None
    profiler: str
    runs: int
    runs_asked: int
    truncated: bool
    run_ms_p50: float | None  # median wall time of a profiled inference (the profiler on)
    op_ms: float  # sum of the node times per inference
    wall_s: float  # the whole pass
    cost_ratio: float | None  # wall_s over the measured phase of the same worker
    nodes_executed: int
    nodes_not_run: int | None
    ops: tuple[OpTime, ...]
    top_nodes: tuple[NodeTime, ...]
    providers: tuple[ProviderSplit, ...]
    file_op_counts: Mapping[str, int]  # the variant's graph (manifest op_counts)
    source_op_counts: Mapping[str, int]  # the original model's graph
    input_shapes: str = ""  # what the timed runs fed (record.input_shapes_of): a shape sweep's point

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.board, self.model, self.variant)

    @property
    def label(self) -> str:
        return f"{self.board} / {self.model} / {self.variant}"

    @property
    def coverage(self) -> float | None:
        """The operator sum over the timed median latency: how much of a timed inference the
        profile accounts for (the rest: the runtime's own work between nodes)."""
        if not self.latency_ms_p50:
            return None
        return self.op_ms / self.latency_ms_p50

    def op_types(self) -> dict[str, tuple[float, int]]:
        """op type -> (ms per inference, nodes), over every provider."""
        merged: dict[str, tuple[float, int]] = {}
        for op in self.ops:
            ms, nodes = merged.get(op.op_type, (0.0, 0))
            merged[op.op_type] = (ms + op.ms, nodes + op.nodes)
        return merged

    def kernels(self, op_type: str) -> tuple[str, ...]:
        """The kernels the runtime chose for an operator type, slowest first: OpenVINO's exec
        types, onnxruntime's `NCHWc` (channel-blocked layout) where it used them; () when it
        did not say (onnxruntime's default kernels)."""
        found: list[str] = []
        for op in self.ops:
            if op.op_type == op_type:
                found.extend(k for k in op.kernels if k not in found)
        return tuple(found)

    def fallback_text(self) -> str:
        """`CUDA 212 nodes 91 %, CPU 37 nodes 9 %: Resize, NonMaxSuppression, …` (one provider:
        `all 249 nodes on CPU`), and when the session asked for another provider first, says so."""
        if not self.providers:
            return ""
        if len(self.providers) == 1:
            only = self.providers[0]
            text = f"all {only.nodes} nodes on {only.name}"
        else:
            parts = []
            for split in self.providers:
                part = f"{split.name} {split.nodes} nodes {split.share * 100:.0f} %"
                if split.provider in ("CPUExecutionProvider", "CPU") and split.op_types:
                    part += ": " + ", ".join(split.op_types[:4]) + (" …" if len(split.op_types) > 4 else "")
                parts.append(part)
            text = ", ".join(parts)
        wanted = self.providers_requested[0] if self.providers_requested else None
        if wanted and all(split.provider != wanted for split in self.providers):
            text += f" (asked for {provider_name(wanted)} first: no node ran there)"
        return text

    def rewrites(self) -> Rewrites | None:
        """What onnxruntime did to the file's graph (None for OpenVINO, whose layer names are not
        ONNX operator names, or without the variant's op counts)."""
        if self.profiler != "onnxruntime-profiler" or not self.file_op_counts:
            return None
        executed = {op: nodes for op, (_, nodes) in self.op_types().items()}
        fewer = tuple(sorted(((op, n, executed.get(op, 0)) for op, n in self.file_op_counts.items()
                              if executed.get(op, 0) < n), key=lambda item: item[2] - item[1]))
        made = tuple(sorted(((op, n) for op, n in executed.items() if op not in self.file_op_counts),
                            key=lambda item: -item[1]))
        return Rewrites(fewer, made)

    def variant_changes(self) -> dict[str, tuple[int, int]]:
        """op type -> (nodes in the original, nodes in this variant's file), where they differ."""
        types = set(self.file_op_counts) | set(self.source_op_counts)
        if not self.source_op_counts:
            return {}
        return {op: (self.source_op_counts.get(op, 0), self.file_op_counts.get(op, 0)) for op in sorted(types)
                if self.source_op_counts.get(op, 0) != self.file_op_counts.get(op, 0)}

    def as_dict(self) -> dict[str, Any]:
        rewrites = self.rewrites()
        return {
            "result_id": self.result_id, "run_id": self.run_id, "board": self.board, "model": self.model,
            "variant": self.variant, "identity": dict(zip(IDENTITY_EXPORT_FIELDS, self.identity)),
            "runtime": self.runtime, "session_provider": self.session_provider,
            "providers_requested": list(self.providers_requested),
            "latency_ms_p50": self.latency_ms_p50, "latency_ms_mean": self.latency_ms_mean,
            "profiler": self.profiler, "runs": self.runs, "runs_asked": self.runs_asked, "truncated": self.truncated,
            "run_ms_p50": self.run_ms_p50, "op_ms": self.op_ms, "coverage": self.coverage, "wall_s": self.wall_s,
            "cost_ratio": self.cost_ratio, "nodes_executed": self.nodes_executed, "nodes_not_run": self.nodes_not_run,
            "ops": [dataclasses.asdict(op) for op in self.ops],
            "top_nodes": [dataclasses.asdict(node) for node in self.top_nodes],
            "providers": [dataclasses.asdict(split) for split in self.providers],
            "fallback": self.fallback_text(),
            "runtime_rewrites": None if rewrites is None else {
                "fewer": [{"op_type": op, "file": n, "executed": ran} for op, n, ran in rewrites.fewer],
                "made": [{"op_type": op, "executed": n} for op, n in rewrites.made]},
            "variant_changes": {op: {"source": a, "variant": b} for op, (a, b) in self.variant_changes().items()},
        }


def cell_profile(result: Mapping[str, Any]) -> CellProfile | None:
    """The profile of a stored result (orchestrator.store `results` row with details), or None."""
    details = result.get("details") or {}
    profile = details.get("profile")
    if result.get("status") != "ok" or not isinstance(profile, Mapping) or not profile.get("ops"):
        return None
    export = export_of(result)
    op_ms = float(profile.get("op_ms_per_run") or 0.0)

    def share(us: float) -> float:
        return us / 1000.0 / op_ms if op_ms > 0 else 0.0

    manifest = details.get("variant") or {}
    return CellProfile(
        result_id=result.get("result_id"), run_id=result.get("run_id"), board=str(result["board"]),
        model=str(result["model"]), variant=str(result["variant"]), identity=identity_of(result),
        input_shapes=input_shapes_of(result),
        runtime=export.get("runtime"), session_provider=export.get("provider") or details.get("provider"),
        providers_requested=tuple(details.get("providers_requested") or ()),
        latency_ms_p50=_float(result.get("latency_ms_p50")), latency_ms_mean=_float(result.get("latency_ms_mean")),
        profiler=str(profile.get("source")), runs=int(profile.get("runs") or 0),
        runs_asked=int(profile.get("runs_asked") or 0), truncated=bool(profile.get("truncated")),
        run_ms_p50=_float(profile.get("run_ms_p50")), op_ms=op_ms, wall_s=float(profile.get("wall_s") or 0.0),
        cost_ratio=_float(profile.get("cost_ratio")), nodes_executed=int(profile.get("nodes_executed") or 0),
        nodes_not_run=profile.get("nodes_not_run"),
        ops=tuple(OpTime(str(o["op_type"]), str(o["provider"]), float(o["us_per_run"]) / 1000.0, int(o["nodes"]),
                         share(float(o["us_per_run"])), tuple(o.get("kernels") or ())) for o in profile["ops"]),
        top_nodes=tuple(NodeTime(str(n["name"]), str(n["op_type"]), str(n["provider"]), float(n["us_per_run"]) / 1000.0,
                                 share(float(n["us_per_run"])), n.get("kernel")) for n in profile.get("top_nodes") or ()),
        providers=tuple(ProviderSplit(str(p["provider"]), int(p["nodes"]), float(p["us_per_run"]) / 1000.0,
                                      share(float(p["us_per_run"])), tuple(p.get("op_types") or ()))
                        for p in profile.get("providers") or ()),
        file_op_counts=dict(manifest.get("op_counts") or {}),
        source_op_counts=dict(manifest.get("source_op_counts") or {}),
    )


def cell_profiles(results: Iterable[Mapping[str, Any]], *, board: str | None = None, model: str | None = None,
                  variant: str | None = None) -> list[CellProfile]:
    """The profiles among `results` (ok results with a profiling pass), optionally narrowed.

    The fp32 variant is the original file, measured without building a manifest: its op counts
    are the `source_op_counts` any other variant of the same weights recorded."""
    results = list(results)
    originals: dict[tuple[Any, Any], dict[str, int]] = {}
    for result in results:
        manifest = (result.get("details") or {}).get("variant") or {}
        if manifest.get("source_op_counts"):
            originals.setdefault((result.get("model"), result.get("model_sha256")), dict(manifest["source_op_counts"]))
    found = []
    for result in results:
        if board is not None and result.get("board") != board or model is not None and result.get("model") != model \
                or variant is not None and result.get("variant") != variant:
            continue
        profile = cell_profile(result)
        if profile is None:
            continue
        original = originals.get((result.get("model"), result.get("model_sha256")))
        if original and result.get("variant") == "fp32" and not profile.file_op_counts:
            profile = dataclasses.replace(profile, file_op_counts=original, source_op_counts=original)
        found.append(profile)
    return found


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --------------------------------------------------------------------------- attribution


@dataclasses.dataclass(frozen=True)
class OpChange:
    """One operator type in two profiles: ms per inference (None: not executed there) and nodes."""

    op_type: str
    base_ms: float | None
    new_ms: float | None
    base_nodes: int
    new_nodes: int
    replaces: tuple[str, ...] = ()  # base types whose nodes this new type took over (Conv for ConvInteger)
    note: str = ""  # why it appears or goes (a fusion the runtime made on one side only)
    base_kernels: tuple[str, ...] = ()
    new_kernels: tuple[str, ...] = ()

    @property
    def kernels_changed(self) -> bool:
        return self.kind == "changed" and self.base_kernels != self.new_kernels

    def kernels_text(self) -> str:
        """`NCHWc → default`, `brgconv_avx512_f32 → jit_avx512_i8`, or "" when they are the same."""
        if not self.kernels_changed:
            return ""
        return f"{'/'.join(self.base_kernels[:2]) or 'default'} → {'/'.join(self.new_kernels[:2]) or 'default'}"

    @property
    def delta_ms(self) -> float:
        return (self.new_ms or 0.0) - (self.base_ms or 0.0)

    @property
    def kind(self) -> str:
        if self.base_ms is None:
            return "added"
        if self.new_ms is None:
            return "removed"
        return "changed"

    def text(self) -> str:
        """`DequantizeLinear +15.1 ms (new, 494 nodes)`, `Conv +14.5 ms`, `QuickGelu -5.5 ms (gone)`."""
        text = f"{self.op_type} {signed_ms_text(self.delta_ms)} ms"
        if self.kind == "added":
            extra = f"new, {self.new_nodes} nodes"
            if self.replaces:
                extra += f", replacing {'/'.join(self.replaces)}"
            text += f" ({extra})"
        elif self.kind == "removed":
            text += " (gone)"
        elif self.kernels_changed:
            text += f" ({self.kernels_text()})"
        return text


def signed_ms_text(value: float) -> str:
    """A change in ms with a sign and the digits its size needs: +15.1, -0.52, +0.013."""
    digits = 1 if abs(value) >= 1 else 2 if abs(value) >= 0.1 else 3
    return f"{value:+.{digits}f}"


@dataclasses.dataclass(frozen=True)
class ProfileDiff:
    """`new` against `base`: the change of each operator type's time, largest first."""

    base: CellProfile
    new: CellProfile
    changes: tuple[OpChange, ...]

    @property
    def latency_change_ms(self) -> float | None:
        """The change of the timed median latency (what the profile explains)."""
        if self.base.latency_ms_p50 is None or self.new.latency_ms_p50 is None:
            return None
        return self.new.latency_ms_p50 - self.base.latency_ms_p50

    @property
    def op_change_ms(self) -> float:
        return self.new.op_ms - self.base.op_ms

    @property
    def same_profiler(self) -> bool:
        """Both sides name operators the same way (both onnxruntime, or both OpenVINO)."""
        return self.base.profiler == self.new.profiler

    def top(self, count: int, min_ms: float = 0.0) -> list[OpChange]:
        return [c for c in self.changes if abs(c.delta_ms) >= min_ms][:count]

    def explanation(self, count: int = 3) -> str:
        """The operator types that moved the most, in the direction of the latency change first:
        `DequantizeLinear +15.1 ms (new, 494 nodes), Conv +14.5 ms, QuantizeLinear +9.8 ms (new, 246 nodes)`."""
        direction = self.latency_change_ms if self.latency_change_ms is not None else self.op_change_ms
        sign = 1.0 if direction >= 0 else -1.0
        picked = sorted((c for c in self.changes if c.delta_ms * sign > 0), key=lambda c: -c.delta_ms * sign)[:count]
        return ", ".join(c.text() for c in picked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "board": self.new.board, "model": self.new.model, "variant": self.new.variant,
            "base": {"run_id": self.base.run_id, "result_id": self.base.result_id, "board": self.base.board,
                     "variant": self.base.variant},
            "new": {"run_id": self.new.run_id, "result_id": self.new.result_id},
            "latency_ms_p50": [self.base.latency_ms_p50, self.new.latency_ms_p50],
            "latency_change_ms": self.latency_change_ms,
            "op_ms": [self.base.op_ms, self.new.op_ms], "op_change_ms": self.op_change_ms,
            "same_profiler": self.same_profiler,
            "explanation": self.explanation(),
            "changes": [{"op_type": c.op_type, "kind": c.kind, "base_ms": c.base_ms, "new_ms": c.new_ms,
                         "delta_ms": c.delta_ms, "base_nodes": c.base_nodes, "new_nodes": c.new_nodes,
                         "replaces": list(c.replaces), "note": c.note, "base_kernels": list(c.base_kernels),
                         "new_kernels": list(c.new_kernels)} for c in self.changes],
        }


def diff_profiles(base: CellProfile, new: CellProfile) -> ProfileDiff:
    """Attribute the change from `base` to `new` to operator types (largest |Δ| first).

    A type only `new` executes "replaces" the base types whose name it contains and of which
    `new` runs fewer nodes (ConvInteger replaces Conv; QLinearConv replaces some of them); a type
    only one side executes that its own file does not hold was made by the runtime (a fusion
    such as onnxruntime's QuickGelu, a layout change such as its ReorderInput), and one that its
    file holds but it did not run was fused into another or rewritten as another (Resize run as
    Upsample): the note says which, and on which side.
    """
    base_types, new_types = base.op_types(), new.op_types()
    base_rewrites, new_rewrites = base.rewrites() or Rewrites((), ()), new.rewrites() or Rewrites((), ())
    base_made, new_made = {op for op, _ in base_rewrites.made}, {op for op, _ in new_rewrites.made}
    base_fused = {op for op, _, ran in base_rewrites.fewer if ran == 0}
    new_fused = {op for op, _, ran in new_rewrites.fewer if ran == 0}
    changes = []
    for op in sorted(set(base_types) | set(new_types)):
        base_ms, base_nodes = base_types.get(op, (None, 0))
        new_ms, new_nodes = new_types.get(op, (None, 0))
        replaces: tuple[str, ...] = ()
        note = ""
        if base_ms is None:
            replaces = tuple(other for other in sorted(base_types)
                             if len(other) >= 3 and other != op and other in op
                             and new_types.get(other, (0.0, 0))[1] < base_types[other][1])
            if op in new_made:
                note = f"made by {_runtime_word(new)}"
            elif op in base_fused:
                note = f"fused or rewritten in {base.variant}"
        elif new_ms is None:
            if op in base_made:
                note = f"made by {_runtime_word(base)} for {base.variant} only"
            elif op in new_fused:
                note = "fused or rewritten here"
        changes.append(OpChange(op, base_ms, new_ms, base_nodes, new_nodes, replaces, note, base.kernels(op),
                                new.kernels(op)))
    changes.sort(key=lambda c: (-abs(c.delta_ms), c.op_type))
    return ProfileDiff(base, new, tuple(changes))


def _runtime_word(profile: CellProfile) -> str:
    return "OpenVINO" if profile.profiler == "openvino-perf-counters" else "onnxruntime"


def _identity_dict(profile: CellProfile) -> dict[str, Any]:
    return dict(zip(IDENTITY_EXPORT_FIELDS, profile.identity))


def pair_with_variant(profiles: Sequence[CellProfile], base_variant: str) -> list[tuple[CellProfile, CellProfile]]:
    """(base, new) for every profile whose board and model also have `base_variant` profiled,
    under the same settings apart from the runtime (an OpenVINO IR beside onnxruntime's fp32)."""
    def setting_key(profile: CellProfile) -> tuple[Any, ...]:
        values = _identity_dict(profile)
        return (*(v for k, v in sorted(values.items()) if k not in _RUNTIME_FIELDS), profile.input_shapes)

    bases: dict[tuple[Any, ...], CellProfile] = {}
    for profile in profiles:
        if profile.variant == base_variant:
            bases.setdefault((profile.board, profile.model, *setting_key(profile)), profile)
    pairs = []
    for profile in profiles:
        base = bases.get((profile.board, profile.model, *setting_key(profile)))
        if base is not None and profile.variant != base_variant:
            pairs.append((base, profile))
    return pairs


def pair_across_runs(bases: Sequence[CellProfile], news: Sequence[CellProfile]) -> list[tuple[CellProfile, CellProfile]]:
    """(base, new) for every cell (board × model × variant, same identity and input shapes)
    profiled in both runs."""
    pairs = []
    for new in news:
        base = next((b for b in bases if b.key == new.key and same_identity(b.identity, new.identity)
                     and same_shapes(b.input_shapes, new.input_shapes)), None)
        if base is not None:
            pairs.append((base, new))
    return pairs


def explain_pairs(base_results: Sequence[Mapping[str, Any]], new_results: Sequence[Mapping[str, Any]],
                  keys: Iterable[tuple[int | None, int | None]], count: int = 3) -> dict[tuple[int, int], str]:
    """(base result id, new result id) -> the operator types that explain the change, for the
    pairs in `keys` where both results were profiled (gating names them in its messages)."""
    base_by_id = {r.get("result_id"): r for r in base_results}
    new_by_id = {r.get("result_id"): r for r in new_results}
    found: dict[tuple[int, int], str] = {}
    for base_id, new_id in keys:
        if base_id is None or new_id is None:
            continue
        base = cell_profile(base_by_id.get(base_id) or {})
        new = cell_profile(new_by_id.get(new_id) or {})
        if base is not None and new is not None:
            text = diff_profiles(base, new).explanation(count)
            if text:
                found[(base_id, new_id)] = text
    return found


# --------------------------------------------------------------------------- export


def ops_records(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per result × operator type × provider (OPS_EXPORT_FIELDS), slowest first per result."""
    records = []
    for result in results:
        profile = cell_profile(result)
        if profile is None:
            continue
        for op in profile.ops:
            records.append({
                "run_id": result.get("run_id"), "result_id": result.get("result_id"), "board": profile.board,
                "model": profile.model, "variant": profile.variant, "runtime": profile.runtime,
                "profiler": profile.profiler, "op_type": op.op_type, "provider": op.provider, "nodes": op.nodes,
                "op_ms": op.ms, "op_share": op.share, "profile_runs": profile.runs,
            })
    return records


__all__ = [
    "CellProfile", "NodeTime", "OPS_EXPORT_FIELDS", "OpChange", "OpTime", "ProfileDiff", "ProviderSplit", "Rewrites",
    "cell_profile", "cell_profiles", "diff_profiles", "explain_pairs", "ops_records", "pair_across_runs",
    "pair_with_variant", "provider_name", "signed_ms_text",
]
