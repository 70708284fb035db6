"""`--repeats`: does testing process medians stop A/A false alarms, and still catch a slowdown?

Per round, three jobs of `farm bench` (core API, local board, temporary SQLite store) in each
mode, interleaved: A, A, B (order rotated every round), where A is a 30-layer MatMul chain and
B the same chain with 39 layers (+30 % FLOPs). Mode 1 measures each job in one worker process
(`repeats=1`) and compares with `compare_samples` on the pooled samples, as farm did before;
mode N (`--processes`, default 5) measures each job in N fresh processes and compares their
medians with `compare_process_medians` (`analysis.compare_latency` picks it). Both at the
gating defaults: min effect 5 %, alpha 0.01. An A/A pair that comes out regressed or improved
is a false alarm; B vs the adjacent A should come out regressed.

Run: python bench/repeat_gating.py [--rounds 10] [--processes 5] [--record bench/RESULTS.md]
`--record` replaces the `## repeats` section of RESULTS.md (the others are kept).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from measurement_truth import matmul_chain  # noqa: E402
from results_md import record_section  # noqa: E402

from orchestrator.analysis import compare_latency  # noqa: E402
from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.record import process_p50s  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402

SECTION = "repeats"
LAYERS_A, LAYERS_B = 30, 39
FLAGS = ("regressed", "improved")


def measure(db_url: str, model: Path, repeats: int) -> tuple[list[float], list[float]]:
    """(pooled latency samples, per-process medians) of one job."""
    settings = BenchSettings(runs=100, min_seconds=0.3, warmup=10, threads=1, sample_interval_s=0, repeats=repeats)
    outcome = run_bench(BenchRequest(model_paths=[model], settings=settings, db_url=db_url, write_report=False))
    (job,) = outcome.run.outcomes
    if not job.ok:
        raise SystemExit(f"{model.name} failed: {job.row.get('error_kind')}: {job.row.get('error_message')}")
    store = open_store(db_url)
    try:
        (result,) = store.results(outcome.run.run_id)
        (samples,) = store.latency_samples([result["result_id"]]).values()
    finally:
        store.close()
    return list(samples), process_p50s(result)


def verdict(base: tuple[list[float], list[float]], new: tuple[list[float], list[float]]):
    return compare_latency(base[0], new[0], base[1], new[1], min_effect_pct=5.0, alpha=0.01)


def run(rounds: int, processes: int) -> dict[int, dict[str, list]]:
    modes = (1, processes)
    found: dict[int, dict[str, list]] = {m: {"aa": [], "ab": []} for m in modes}
    with tempfile.TemporaryDirectory(prefix="farm-bench-repeats-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'farm.db'}"
        model_a = matmul_chain(Path(tmp) / "chain_a.onnx", LAYERS_A)
        model_b = matmul_chain(Path(tmp) / "chain_b.onnx", LAYERS_B)
        for index in range(rounds):
            for mode in (modes if index % 2 == 0 else modes[::-1]):
                order = ["a1", "a2", "b"]
                shift = index % 3
                jobs = {}
                for name in order[shift:] + order[:shift]:
                    jobs[name] = measure(db_url, model_b if name == "b" else model_a, mode)
                aa, ab = verdict(jobs["a1"], jobs["a2"]), verdict(jobs["a2"], jobs["b"])
                found[mode]["aa"].append(aa)
                found[mode]["ab"].append(ab)
                print(f"round {index + 1} repeats={mode}: A/A {aa.verdict} ({aa.change_pct:+.1f} %), "
                      f"B/A {ab.verdict} ({ab.change_pct:+.1f} %)", flush=True)
    return found


def counts(comparisons: list) -> str:
    tally = Counter(c.verdict for c in comparisons)
    return ", ".join(f"{v} {tally[v]}" for v in ("regressed", "improved", "unchanged", "inconclusive") if tally[v])


def section(found: dict[int, dict[str, list]], rounds: int, processes: int, duration_s: float) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/repeat_gating.py --rounds {rounds} --processes {processes}` ({duration_s:.0f} s) — A = "
        f"{LAYERS_A}-layer MatMul chain, B = {LAYERS_B} layers (+{100 * (LAYERS_B / LAYERS_A - 1):.0f} % FLOPs); per",
        "round A, A, B (rotated) in each mode, the modes alternating; 100 runs and ≥ 0.3 s per process,",
        "1 thread, gating defaults (min effect 5 %, α 0.01). One process: `compare_samples` on the",
        f"pooled samples (farm before `--repeats`); {processes} processes: `compare_process_medians`.",
        "",
        f"- Date: {time.strftime('%Y-%m-%d')}",
        f"- Machine: 2-core AMD EPYC VM, Debian 12, Python {platform.python_version()}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.",
        "",
        "| processes per job | A/A false alarms | A/A verdicts | B vs A found regressed | B vs A verdicts |",
        "|---:|---:|---|---:|---|",
    ]
    for mode, pairs in found.items():
        alarms = sum(c.verdict in FLAGS for c in pairs["aa"])
        detected = sum(c.verdict == "regressed" for c in pairs["ab"])
        lines.append(f"| {mode} | {alarms}/{len(pairs['aa'])} | {counts(pairs['aa'])} | "
                     f"{detected}/{len(pairs['ab'])} | {counts(pairs['ab'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--record", type=Path, help="RESULTS.md to update (only its ## repeats section)")
    args = parser.parse_args()
    started = time.monotonic()
    found = run(args.rounds, args.processes)
    text = section(found, args.rounds, args.processes, time.monotonic() - started)
    print(text)
    if args.record:
        record_section(args.record, SECTION, text)
        print(f"updated the ## {SECTION} section of {args.record}")


if __name__ == "__main__":
    main()
