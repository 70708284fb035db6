"""Why the detector's int8-static variant is slower than fp32, by operator type, and what profiling costs.

ddddocr's YOLOX detector (common_det.onnx; skipped without ddddocr) in fp32, int8-static
(calibrated on the synthetic letters dataset, as bench/variant_table.py builds it) and
int8-dynamic on the local board, 1 thread. `--rounds` rounds; each round runs the three variants
twice, once with `--profile` and once without, in alternating order (so drift hits both alike):

1. the attribution: `farm ops --vs fp32` of int8-static, per operator type the median over the
   profiled rounds of its ms per inference in each variant (what the change is made of);
2. the profiling pass's cost: its wall time and that over the measured phase (what a cell takes
   longer), the profiled inference over the timed one (the profiler's own overhead per inference),
   the operator sum over the timed median (how much of an inference the profile accounts for);
3. that the timed figures do not carry it: each variant's timed median with --profile over the
   one without, same round (1.00 but for the machine's noise: the pass runs after the timed runs).

Run: python bench/profile_cost.py [--rounds 3] [--runs 20] [--min-seconds 2] [--record bench/RESULTS.md]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from orchestrator.profiles import cell_profiles, diff_profiles, signed_ms_text  # noqa: E402
from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402
from results_md import record_section  # noqa: E402

SECTION = "profiles"
VARIANTS = ["fp32", "int8-static", "int8-dynamic"]


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    import onnxruntime

    return (f"{os.cpu_count()}-core {cpu}, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}; "
            f"load average {os.getloadavg()[0]:.1f} when it started")


def detector() -> tuple[Path, list[str], list[str]]:
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    import detector_support as support

    model = support.common_det_path()
    if model is None:
        raise SystemExit("ddddocr is not installed: pip install --no-deps ddddocr==1.6.1")
    data = support.make_dataset(Path(tempfile.mkdtemp(prefix="farm-det-")), images=24, seed=0)
    return model, [str(data)], [support.YOLOX_DETECTION_SPEC]


def measure(rounds: int, runs: int, min_seconds: float, profile_runs: int, db: str) -> dict:
    model, datasets, detection = detector()
    store = open_store(db)
    profiled: list[list[dict]] = []  # per round: the stored results of the profiled run
    p50s: dict[str, dict[bool, list[float]]] = {v: {True: [], False: []} for v in VARIANTS}
    try:
        for round_index in range(rounds):
            for profile in ((True, False) if round_index % 2 == 0 else (False, True)):
                settings = BenchSettings(runs=runs, min_seconds=min_seconds, warmup=5, threads=1, sample_interval_s=0,
                                         profile=profile, profile_runs=profile_runs)
                outcome = run_bench(BenchRequest(model_paths=[model], variants=VARIANTS, datasets=datasets,
                                                 detection=detection, write_report=False, settings=settings),
                                    store=store)
                results = store.results(outcome.run.run_id)
                for result in results:
                    if result["status"] == "ok":
                        p50s[result["variant"]][profile].append(result["latency_ms_p50"])
                if profile:
                    profiled.append(results)
                print(f"round {round_index + 1}/{rounds} {'with' if profile else 'without'} --profile: "
                      + ", ".join(f"{r['variant']} {r['latency_ms_p50']:.1f} ms" for r in results if r["status"] == "ok"),
                      flush=True)
    finally:
        store.close()
    return {"profiled": profiled, "p50s": p50s}


def section(found: dict, args: argparse.Namespace, where: str) -> str:
    rounds = [{p.variant: p for p in cell_profiles(results)} for results in found["profiled"]]
    diffs = [diff_profiles(r["fp32"], r["int8-static"]) for r in rounds]
    med = statistics.median
    ops: dict[str, dict[str, list]] = {}
    for diff in diffs:
        for change in diff.changes:
            entry = ops.setdefault(change.op_type, {"base": [], "new": [], "nodes": [], "note": []})
            entry["base"].append(change.base_ms)
            entry["new"].append(change.new_ms)
            entry["nodes"].append(f"{change.base_nodes}→{change.new_nodes}")
            entry["note"].append("; ".join(part for part in (
                f"replaces {'/'.join(change.replaces)}" if change.replaces else "", change.note,
                change.kernels_text()) if part))
    def ms(values: list) -> float | None:  # None: the variant never ran this operator type
        present = [v for v in values if v is not None]
        return med(present) if present else None

    table = sorted(((op, ms(e["base"]), ms(e["new"]), e["nodes"][-1], e["note"][-1]) for op, e in ops.items()),
                   key=lambda row: -abs((row[2] or 0.0) - (row[1] or 0.0)))
    timed = {v: med(found["p50s"][v][True] + found["p50s"][v][False]) for v in VARIANTS}
    op_sum = {v: med(r[v].op_ms for r in rounds) for v in VARIANTS}
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/profile_cost.py --rounds {args.rounds} --runs {args.runs} --min-seconds {args.min_seconds:g}` — "
        "ddddocr's YOLOX detector (common_det.onnx, 1×3×416×416) in fp32, int8-static (QDQ, calibrated on the 24 "
        "synthetic letter images as in `## variants`) and int8-dynamic on the local board, 1 thread; each round "
        "runs the three variants with `--profile` "
        f"(--profile-runs {args.profile_runs}) and without, in alternating order.",
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {where}",
        "",
        "### Why int8-static is slower (`farm ops latest --vs fp32`)",
        "",
        f"Timed median: fp32 {timed['fp32']:.1f} ms, int8-static {timed['int8-static']:.1f} ms "
        f"({timed['int8-static'] / timed['fp32']:.2f}×); operator sums {op_sum['fp32']:.1f} → "
        f"{op_sum['int8-static']:.1f} ms. Per operator type, ms per inference (medians over the "
        f"{len(rounds)} profiled rounds):",
        "",
        "| operator type | nodes fp32→int8-static | fp32 ms | int8-static ms | Δ ms | what happened |",
        "|---|---:|---:|---:|---:|---|",
    ]
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for op, base, new, nodes, note in table[:12]:
        lines.append(f"| {op} | {nodes} | {cell(base)} | {cell(new)} | {signed_ms_text((new or 0.0) - (base or 0.0))} "
                     f"| {note} |")
    rest = table[12:]
    if rest:
        delta = sum((n or 0.0) - (b or 0.0) for _, b, n, _, _ in rest)
        lines.append(f"| {len(rest)} other types | | | | {signed_ms_text(delta)} | |")
    lines += [
        "",
        "### What the profiling pass costs",
        "",
        "| variant | timed p50 ms | operators ms (of timed) | profiled inference / timed | pass wall s | pass / measured "
        "phase | timed p50 with / without --profile |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        profiles = [r[variant] for r in rounds]
        ratio_with = med(found["p50s"][variant][True]) / med(found["p50s"][variant][False])
        lines.append(
            f"| {variant} | {timed[variant]:.1f} | {op_sum[variant]:.1f} ({med(p.coverage for p in profiles) * 100:.0f} %) "
            f"| {med(p.run_ms_p50 / p.latency_ms_p50 for p in profiles):.2f} | {med(p.wall_s for p in profiles):.2f} "
            f"| {med(p.cost_ratio for p in profiles):.2f} | {ratio_with:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--profile-runs", type=int, default=20)
    parser.add_argument("--record", type=Path, help="RESULTS.md to update (only its ## profiles section)")
    args = parser.parse_args()
    where = machine()
    with tempfile.TemporaryDirectory(prefix="farm-bench-profiles-") as tmp:
        found = measure(args.rounds, args.runs, args.min_seconds, args.profile_runs, f"sqlite:///{tmp}/farm.db")
    text = section(found, args, where)
    print(text)
    if args.record:
        record_section(args.record, SECTION, text, keep_heading="### What it says")
        print(f"updated the ## {SECTION} section of {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
