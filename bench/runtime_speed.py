"""Runtimes and provisioning: what `--runtime` and `farm inventory provision` cost.

1. Per demo model, median latency and load time on the local board (this machine), measured
   by `farm bench` itself, four ways (ARMS): onnxruntime; OpenVINO reading the same ONNX file at
   its default precision (bf16 on a CPU with bf16); OpenVINO pinned to f32; OpenVINO reading the
   `openvino-ir` variant. Interleaved in one run: the arms' order rotates every round, so the
   machine's drift hits all alike; ratios to onnxruntime are taken per round, then the median of
   the rounds is reported. One intra-op thread each (`--threads 1`). A model OpenVINO cannot
   convert (digits_mlp uses ai.onnx.ml operators) is reported as "not supported by OpenVINO",
   with OpenVINO's own reason, not as a failure of the script.
2. Provisioning a bare board (needs root + openssh-server: a one-board `bare` lab on
   127.78.0.11, taken down at the end): a fresh work directory provisioned with an EMPTY
   controller wheel cache (includes `pip download` from the index), another fresh work
   directory with the now-warm cache (push + venv + offline pip install on the board), then
   the idempotent second run on that directory (one probe command, nothing sent).

Run: python bench/runtime_speed.py [--rounds 3] [--skip-provision] [--record bench/RESULTS.md]
`--record` replaces this script's `## runtimes` section of RESULTS.md (read-modify-write: the
other sections are kept as they are).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from results_md import record_section  # noqa: E402

from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.models import DEMO_DIR  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402

MODELS = ("digits_mlp", "yolo_timing")
LAB_DIR = Path("/var/lib/farm-lab-bench-runtimes")
LAB_ADDRESS = "127.78.0.11"
SECTION = "runtimes"
ARM64_HEADING = "### arm64"
F32 = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})


@dataclasses.dataclass(frozen=True)
class Arm:
    """One way to run a model: a runtime, the file it reads (a variant) and its device options."""

    label: str
    runtime: str
    variant: str = "fp32"
    provider_options: str | None = None


ARMS = (
    Arm("onnxruntime", "onnxruntime"),
    Arm("OpenVINO", "openvino"),  # OpenVINO's default precision (bf16 on a CPU that has it)
    Arm("OpenVINO f32", "openvino", provider_options=F32),
    Arm("OpenVINO IR", "openvino", variant="openvino-ir"),
)
REFERENCE = ARMS[0]


@dataclasses.dataclass
class Cell:
    """One (model, arm) measurement: median latency and load time (ms), or why there is none."""

    p50_ms: float | None
    load_ms: float | None = None
    precision: str | None = None
    error: str | None = None


def measure(model: Path, arm: Arm, db_url: str, runs: int, min_seconds: float) -> Cell:
    settings = BenchSettings(runs=runs, min_seconds=min_seconds, warmup=20, threads=1, sample_interval_s=1.0,
                             runtime=arm.runtime, provider_options=arm.provider_options)
    request = BenchRequest(model_paths=[model], settings=settings, db_url=db_url, write_report=False,
                           variants=[arm.variant])
    outcome = run_bench(request)
    (job,) = outcome.run.outcomes
    if not job.ok:
        return Cell(None, error=f"{job.row.get('error_kind')}: {job.row.get('error_message')}")
    export = job.row["details"]["export"]
    return Cell(float(job.row["latency_ms_p50"]), float(job.row["load_ms"]), export.get("inference_precision"))


def not_supported(error: str) -> str:
    """OpenVINO's reason, shortened: the operators it has no conversion rule for, when it names them."""
    match = re.search(r"operations: ([A-Za-z0-9_.]+(?:, [A-Za-z0-9_.]+)*)", error)
    if match:
        return f"no conversion rule for {match.group(1)}"
    text = re.split(r"OpenVINO cannot (?:read|compile|convert)[^:]*:", error, maxsplit=1)[-1].strip()
    return (text.splitlines() or [""])[0][:160]


def compare_runtimes(rounds: int, runs: int, min_seconds: float) -> list[dict]:
    """Every arm on every model, the arms' order rotated each round; ratios vs onnxruntime per round."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-bench-runtimes-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'farm.db'}"
        for name in MODELS:
            model = DEMO_DIR / f"{name}.onnx"
            cells: dict[Arm, list[Cell]] = {arm: [] for arm in ARMS}
            unsupported: str | None = None
            for index in range(rounds):
                shift = index % len(ARMS)
                for arm in ARMS[shift:] + ARMS[:shift]:
                    if arm.runtime == "openvino" and unsupported is not None:
                        continue
                    cell = measure(model, arm, db_url, runs, min_seconds)
                    failed_kind = (cell.error or "").split(":", 1)[0]
                    cannot_convert = failed_kind in ("model-error", "variant-error")
                    if cell.p50_ms is None and arm.runtime == "openvino" and cannot_convert:
                        unsupported = not_supported(cell.error or "")
                        continue
                    if cell.p50_ms is None:
                        raise SystemExit(f"{name} with {arm.label} failed: {cell.error}")
                    cells[arm].append(cell)
            row = {"model": name, "unsupported": unsupported, "arms": {}}
            reference = [c.p50_ms for c in cells[REFERENCE]]
            for arm, measured in cells.items():
                if not measured:
                    continue
                p50s = [c.p50_ms for c in measured]
                row["arms"][arm.label] = {
                    "p50_ms": statistics.median(p50s),
                    "load_ms": statistics.median(c.load_ms for c in measured),
                    "ratio": statistics.median(a / r for a, r in zip(p50s, reference)),
                    "ratios": [a / r for a, r in zip(p50s, reference)],
                    "precision": measured[0].precision,
                }
            rows.append(row)
            print(_runtime_line(row), flush=True)
    return rows


def _runtime_line(row: dict) -> str:
    parts = [f"{label} p50 {a['p50_ms']:.3f} ms (x{a['ratio']:.2f}, rounds "
             f"{', '.join(f'{r:.2f}' for r in a['ratios'])}), load {a['load_ms']:.0f} ms"
             for label, a in row["arms"].items()]
    if row["unsupported"]:
        parts.append(f"OpenVINO: not supported ({row['unsupported']})")
    return f"{row['model']}: " + "; ".join(parts)


def provision_times() -> dict:
    """Cold-cache first, warm-cache first and idempotent second provisioning of a bare lab board."""
    from orchestrator import lab as lab_mod
    from orchestrator import provision as prov
    from orchestrator.boards import Board

    problems = lab_mod.missing_prerequisites()
    if problems:
        return {"skipped": " ".join(problems)}
    state = lab_mod.lab_up(LAB_DIR, ["bare"], 1, first_address=LAB_ADDRESS)
    try:
        (board_info,) = state.boards
        stamp = time.strftime("%H%M%S")

        def board(workdir_name: str) -> Board:
            return Board(name="bare-1", transport="ssh", host=board_info.address, port=board_info.port,
                         user=lab_mod.BOARD_USER, identity_file=str(state.identity_file),
                         known_hosts_file=str(state.known_hosts_path), workdir=f"{board_info.workdir}/{workdir_name}")

        cold_cache = LAB_DIR / f"wheels-cold-{stamp}"
        try:
            started = time.monotonic()
            cold = prov.provision_board(board(f"cold-{stamp}"), cache_root=cold_cache)
            cold_s = time.monotonic() - started
            started = time.monotonic()
            warm = prov.provision_board(board(f"warm-{stamp}"), cache_root=cold_cache)
            warm_s = time.monotonic() - started
            started = time.monotonic()
            second = prov.provision_board(board(f"warm-{stamp}"), cache_root=cold_cache)
            second_s = time.monotonic() - started
        finally:
            shutil.rmtree(cold_cache, ignore_errors=True)
        assert cold.changed and cold.downloaded and warm.changed and not warm.downloaded and not second.changed
        return {
            "cold_s": cold_s, "warm_s": warm_s, "second_s": second_s,
            "sent_mb": warm.bytes_sent / 1e6, "packages": warm.packages, "python": warm.python_version,
            "arch": warm.arch,
        }
    finally:
        lab_mod.lab_down(LAB_DIR, remove_files=True)


def section(rows: list[dict], prov_times: dict | None, rounds: int, runs: int, min_seconds: float) -> str:
    ort_version = metadata.version("onnxruntime")
    ov_version = metadata.version("openvino").split("-")[0]
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/runtime_speed.py --rounds {rounds}` — (1) per demo model, four ways to run it on the local",
        "board through `farm bench`: onnxruntime; OpenVINO on the same ONNX file at its default precision;",
        "OpenVINO pinned to f32 (`--provider-options '{\"CPU\": {\"INFERENCE_PRECISION_HINT\": \"f32\"}}'`);",
        "OpenVINO on the `openvino-ir` variant (default precision). The arms' order rotates every round",
        f"(the machine's drift hits all alike); {runs} runs and ≥ {min_seconds:g} s per measurement, 20 warm-up,",
        "1 intra-op thread; medians of the per-round medians, ratios to onnxruntime taken per round.",
        "(2) `farm inventory provision` of a bare lab board (real sshd on loopback, system Python 3.11",
        "without numpy/onnxruntime): first run with an empty controller wheel cache (includes `pip",
        "download` from PyPI), first run on a fresh work dir with the warm cache, and the idempotent second run.",
        "",
        f"- Date: {time.strftime('%Y-%m-%d')}",
        f"- Machine: 2-core AMD EPYC VM (avx512_bf16), Debian 12, Python 3.11 (onnxruntime {ort_version},",
        f"  OpenVINO {ov_version}); shared with other work while measuring.",
        "",
        "| model | run as | precision | p50 | ÷ onnxruntime | load |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        for label, arm in row["arms"].items():
            lines.append(f"| {row['model']} | {label} | {arm['precision'] or 'model types'} | {arm['p50_ms']:.3f} ms | "
                         f"{arm['ratio']:.2f} | {arm['load_ms']:.0f} ms |")
        if row["unsupported"]:
            lines.append(f"| {row['model']} | OpenVINO (ONNX and IR) | — | not supported | — | — |")
    for row in rows:
        arms = row["arms"]
        if {"OpenVINO", "OpenVINO f32", "OpenVINO IR"} <= set(arms):
            lines += ["", (
                f"{row['model']}: OpenVINO's default {arms['OpenVINO']['precision']} ran at "
                f"{arms['OpenVINO']['ratio']:.2f}× onnxruntime's latency, pinned to f32 at "
                f"{arms['OpenVINO f32']['ratio']:.2f}×; the IR variant loaded in "
                f"{arms['OpenVINO IR']['load_ms'] / arms['OpenVINO']['load_ms']:.2f}× the time OpenVINO took to "
                f"read and compile the ONNX file, at {arms['OpenVINO IR']['ratio']:.2f}× onnxruntime's latency.")]
    for row in (r for r in rows if r["unsupported"]):
        lines += ["", (f"{row['model']}: OpenVINO cannot convert it ({row['unsupported']}); farm stores the "
                       "OpenVINO job as `model-error` (the IR variant as `variant-error`) and onnxruntime's stands.")]
    if prov_times:
        lines += ["", "| provisioning a bare board | time |", "|---|---:|"]
        if "skipped" in prov_times:
            lines.append(f"| skipped | {prov_times['skipped']} |")
        else:
            packages = ", ".join(f"{n} {v}" for n, v in sorted(prov_times["packages"].items())
                                 if n in ("numpy", "onnxruntime"))
            lines += [
                f"| first, empty controller cache (pip download + push + venv + install) | {prov_times['cold_s']:.1f} s |",
                (f"| first, warm cache (push {prov_times['sent_mb']:.1f} MB + venv + offline install) | "
                 f"{prov_times['warm_s']:.1f} s |"),
                f"| second (idempotent: one probe, nothing sent) | {prov_times['second_s']:.1f} s |",
            ]
            lines += ["", f"Installed: {packages} for Python {prov_times['python']} on {prov_times['arch']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--skip-provision", action="store_true")
    parser.add_argument("--record", type=Path, help="RESULTS.md to update (only its ## runtimes section)")
    args = parser.parse_args()
    print(f"{platform.node()}: {platform.machine()}, Python {platform.python_version()}", flush=True)
    rows = compare_runtimes(args.rounds, args.runs, args.min_seconds)
    prov_times = None
    if not args.skip_provision:
        prov_times = provision_times()
        print(f"provisioning: {prov_times}", flush=True)
    text = section(rows, prov_times, args.rounds, args.runs, args.min_seconds)
    print(text)
    if args.record:
        # The "### arm64" part comes from tests/slow/test_arm64.py (printed with -s): kept as it is.
        record_section(args.record, SECTION, text, keep_heading=ARM64_HEADING)
        print(f"updated the ## {SECTION} section of {args.record}")


if __name__ == "__main__":
    main()
