"""Runtimes and provisioning: what `--runtime` and `farm inventory provision` cost.

1. Per demo model, onnxruntime vs OpenVINO median latency on the local board (this machine),
   measured by `farm bench` itself (`BenchSettings.runtime`), interleaved in one run: round r
   runs onnxruntime then OpenVINO (order swapped every other round), so the machine's drift
   hits both alike; the ratio is taken per round, then the median of the rounds is reported.
   One intra-op thread each (`--threads 1`). A model OpenVINO cannot convert (digits_mlp uses
   ai.onnx.ml operators: ZipMap, LinearClassifier, ...) is reported as "not supported by
   OpenVINO", with OpenVINO's own first line, not as a failure of the script.
2. Provisioning a bare board (needs root + openssh-server: a one-board `bare` lab on
   127.78.0.11, taken down at the end): a fresh work directory provisioned with an EMPTY
   controller wheel cache (includes `pip download` from the index), another fresh work
   directory with the now-warm cache (push + venv + offline pip install on the board), then
   the idempotent second run on that directory (one probe command, nothing sent).

Run: python bench/runtimes.py [--rounds 3] [--skip-provision] [--record bench/RESULTS.md]
`--record` replaces this script's `## runtimes` section of RESULTS.md (read-modify-write: the
other sections are kept as they are).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
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

from orchestrator.bench import BenchRequest, run_bench  # noqa: E402
from orchestrator.models import DEMO_DIR  # noqa: E402
from orchestrator.runner import BenchSettings  # noqa: E402

RUNTIMES = ("onnxruntime", "openvino")
MODELS = ("digits_mlp", "yolo_timing")
LAB_DIR = Path("/var/lib/farm-lab-bench-runtimes")
LAB_ADDRESS = "127.78.0.11"
SECTION = "runtimes"
ARM64_HEADING = "### arm64"


@dataclasses.dataclass
class Cell:
    """One (model, runtime) measurement: median latency (ms) or why there is none."""

    p50_ms: float | None
    error: str | None = None


def measure(model: Path, runtime: str, db_url: str, runs: int, min_seconds: float) -> Cell:
    settings = BenchSettings(runs=runs, min_seconds=min_seconds, warmup=20, threads=1, sample_interval_s=1.0,
                             runtime=runtime)
    request = BenchRequest(model_paths=[model], settings=settings, db_url=db_url, write_report=False)
    outcome = run_bench(request)
    (job,) = outcome.run.outcomes
    if not job.ok:
        return Cell(None, f"{job.row.get('error_kind')}: {job.row.get('error_message')}")
    return Cell(float(job.row["latency_ms_p50"]))


def not_supported(error: str) -> str:
    """OpenVINO's reason, shortened: the operators it has no conversion rule for, when it names them."""
    match = re.search(r"operations: ([A-Za-z0-9_.]+(?:, [A-Za-z0-9_.]+)*)", error)
    if match:
        return f"no conversion rule for {match.group(1)}"
    text = error.split("OpenVINO cannot load", 1)[-1].strip()
    return (text.splitlines() or [""])[0][:160]


def compare_runtimes(rounds: int, runs: int, min_seconds: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-bench-runtimes-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'farm.db'}"
        for name in MODELS:
            model = DEMO_DIR / f"{name}.onnx"
            cells: dict[str, list[Cell]] = {r: [] for r in RUNTIMES}
            unsupported: str | None = None
            for index in range(rounds):
                order = RUNTIMES if index % 2 == 0 else tuple(reversed(RUNTIMES))
                for runtime in order:
                    if runtime == "openvino" and unsupported is not None:
                        continue
                    cell = measure(model, runtime, db_url, runs, min_seconds)
                    if cell.p50_ms is None and runtime == "openvino" and "model-error" in (cell.error or ""):
                        unsupported = not_supported(cell.error or "")
                        continue
                    if cell.p50_ms is None:
                        raise SystemExit(f"{name} with {runtime} failed: {cell.error}")
                    cells[runtime].append(cell)
            ort = [c.p50_ms for c in cells["onnxruntime"]]
            row = {"model": name, "ort_ms": statistics.median(ort), "ort_all": ort}
            if unsupported is not None:
                row.update(ov_ms=None, ratio=None, unsupported=unsupported)
            else:
                ov = [c.p50_ms for c in cells["openvino"]]
                ratios = [o / r for o, r in zip(ov, ort)]
                row.update(ov_ms=statistics.median(ov), ov_all=ov, ratio=statistics.median(ratios),
                           ratios=ratios, unsupported=None)
            rows.append(row)
            print(_runtime_line(row), flush=True)
    return rows


def _runtime_line(row: dict) -> str:
    if row["unsupported"]:
        return f"{row['model']}: onnxruntime p50 {row['ort_ms']:.3f} ms; OpenVINO: not supported ({row['unsupported']})"
    return (f"{row['model']}: onnxruntime p50 {row['ort_ms']:.3f} ms, OpenVINO {row['ov_ms']:.3f} ms, "
            f"OpenVINO/onnxruntime {row['ratio']:.2f} (rounds: {', '.join(f'{r:.2f}' for r in row['ratios'])})")


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
        f"`python bench/runtimes.py --rounds {rounds}` — (1) per demo model, onnxruntime vs OpenVINO on the local",
        f"board through `farm bench --runtime`, interleaved (ORT, OV, OV, ORT, …), {runs} runs and ≥ {min_seconds:g} s",
        "per measurement, 20 warm-up, 1 intra-op thread; median of the per-round medians and of the",
        "per-round ratios. (2) `farm inventory provision` of a bare lab board (real sshd on loopback,",
        "system Python 3.11 without numpy/onnxruntime): first run with an empty controller wheel cache",
        "(includes `pip download` from PyPI), first run on a fresh work dir with the warm cache, and the",
        "idempotent second run.",
        "",
        "- Date: 2026-11-25",
        f"- Machine: 2-core AMD EPYC VM, Debian 12, Python 3.11 (onnxruntime {ort_version}, OpenVINO {ov_version});",
        "  shared with other test runs while measuring.",
        "",
        "| model | onnxruntime p50 | OpenVINO p50 | OpenVINO / onnxruntime |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        if row["unsupported"]:
            lines.append(f"| {row['model']} | {row['ort_ms']:.3f} ms | not supported by OpenVINO | — |")
        else:
            lines.append(f"| {row['model']} | {row['ort_ms']:.3f} ms | {row['ov_ms']:.3f} ms | {row['ratio']:.2f} |")
    unsupported = [r for r in rows if r["unsupported"]]
    for row in unsupported:
        lines += ["", (f"{row['model']}: OpenVINO cannot convert it ({row['unsupported']}); farm stores that job "
                       "as `model-error` and the other runtime's result stands.")]
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


def record(path: Path, text: str) -> None:
    """Replace (or append) the `## runtimes` section of RESULTS.md, keeping every other section."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {SECTION}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = pattern.search(current)
    if found:
        # The "### arm64" part comes from tests/slow/test_arm64.py (printed with -s), not from
        # this script: keep it as it is.
        old = found.group(0)
        kept = old[old.index(ARM64_HEADING):].rstrip("\n") + "\n" if ARM64_HEADING in old else ""
        new = text + ("\n" + kept if kept else "")
        updated = current[:found.start()] + new + ("\n" if current[found.end():] else "") + current[found.end():]
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(updated)
    os.replace(tmp, path)


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
        record(args.record, text)
        print(f"updated the ## {SECTION} section of {args.record}")


if __name__ == "__main__":
    main()
