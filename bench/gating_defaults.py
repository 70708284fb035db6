"""Nightly gating at farm's DEFAULT settings on this noisy machine: false alarms and misses.

Each pair is one "night" of a nightly job on the local board: a baseline run of model A (gated
against nothing, as a first night is: `--fail-on-regression 5 --baseline-optional`), then two
gated runs against it, in alternating order: A again (an A/A pair: nothing changed; a `regressed`
or `improved` verdict is a false alarm) and B under the same model name (A with 10 % more
MatMul layers: a real slowdown that should come out `regressed`). Everything else is farm's
default for a gated run (the repeats and pairing a baseline brings, thresholds 5 %, alpha 1 %).
The bare-loop slowdown of B over A is measured in the same run (interleaved onnxruntime loops
in fresh processes), so "+10 %" is a measured figure, not a FLOP count.

pyperf's approach is run beside it on the same models: `pyperf` worker processes (its defaults:
20 processes, calibrated loops) per model, judged like `pyperf compare_to` (Student's t-test on
the values at 95 %, no minimum effect): a significant A/A difference is a false alarm, a
significant slower B a detection.

Run: python bench/gating_defaults.py [--pairs 20] [--no-pyperf] [--record bench/RESULTS.md]
(long: about 2 minutes per pair on a 2-core VM; needs `pip install pyperf` for the peer).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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

from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402

SECTION = "gating_defaults"
LAYERS_A, LAYERS_B = 20, 22
FLAGS = ("regressed", "improved")

BARE_LOOP = r"""
import sys, time, statistics, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
for _ in range(20): s.run(None, {i.name: x})
t = []
for _ in range(300):
    a = time.perf_counter_ns(); s.run(None, {i.name: x}); t.append(time.perf_counter_ns() - a)
print(statistics.median(t) / 1e6)
"""

def bare_ratio(model_a: Path, model_b: Path, rounds: int = 12) -> float:
    """Median over interleaved rounds of (B's bare-loop median / A's), fresh processes each."""
    ratios = []
    for index in range(rounds):
        order = (model_a, model_b) if index % 2 == 0 else (model_b, model_a)
        medians = {}
        for model in order:
            out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(model)], capture_output=True, text=True,
                                 check=True, timeout=300).stdout
            medians[model] = float(out.split()[-1])
        ratios.append(medians[model_b] / medians[model_a])
    return statistics.median(ratios)


def night(db_url: str, model: Path, baseline: str | None) -> tuple[str, str, float]:
    """One gated run at farm's defaults: (run id, the cell's gate outcome, wall seconds)."""
    started = time.monotonic()
    request = BenchRequest(model_paths=[model], settings=BenchSettings(), db_url=db_url, write_report=False,
                           baseline=baseline, fail_on_regression=5.0, baseline_optional=baseline is None,
                           explicit=frozenset())
    outcome = run_bench(request)
    wall_s = time.monotonic() - started
    (job,) = outcome.run.outcomes
    if not job.ok:
        raise SystemExit(f"{model} failed: {job.row.get('error_kind')}: {job.row.get('error_message')}")
    gate = outcome.gate
    (cell,) = gate.cells
    verdict = cell.comparison.verdict if cell.comparison is not None else cell.outcome
    return outcome.run.run_id, verdict, wall_s


def pyperf_values(model: Path, out: Path) -> list[float]:
    """pyperf's own measurement of one model (its default processes and loops), in seconds."""
    script = out.with_suffix(".py")
    script.write_text(
        "import sys, numpy as np, onnxruntime as ort, pyperf\n"
        "runner = pyperf.Runner()\n"
        f"s = ort.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider'])\n"
        "i = s.get_inputs()[0]\n"
        "x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)\n"
        "runner.bench_func('run', s.run, None, {i.name: x})\n")
    subprocess.run([sys.executable, str(script), "--quiet", "-o", str(out)], check=True, timeout=900,
                   capture_output=True)
    import pyperf

    return list(pyperf.Benchmark.load(str(out)).get_values())


def pyperf_verdict(base: list[float], new: list[float]) -> str:
    """`pyperf compare_to`'s judgement: significant (t-test, 95 %) and which way, else not."""
    from pyperf._utils import is_significant

    significant, _ = is_significant(base, new)
    if not significant:
        return "not significant"
    return "slower" if statistics.mean(new) > statistics.mean(base) else "faster"


def run(pairs: int, with_pyperf: bool) -> dict:
    found: dict = {"aa": [], "ab": [], "wall_s": [], "pyperf_aa": [], "pyperf_ab": []}
    with tempfile.TemporaryDirectory(prefix="farm-bench-gating-") as tmp:
        tmp_path = Path(tmp)
        db_url = f"sqlite:///{tmp_path / 'farm.db'}"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        model_a = matmul_chain(tmp_path / "a" / "net.onnx", LAYERS_A)
        model_b = matmul_chain(tmp_path / "b" / "net.onnx", LAYERS_B)
        found["bare_ratio"] = bare_ratio(model_a, model_b)
        print(f"bare-loop B/A: {found['bare_ratio']:.3f}", flush=True)
        for index in range(pairs):
            base, _, _ = night(db_url, model_a, None)
            order = (("aa", model_a), ("ab", model_b))
            for name, model in (order if index % 2 == 0 else order[::-1]):
                _, verdict, wall_s = night(db_url, model, base)
                found[name].append(verdict)
                found["wall_s"].append(wall_s)
            line = f"pair {index + 1}: A/A {found['aa'][-1]}, B/A {found['ab'][-1]}"
            if with_pyperf:
                a1 = pyperf_values(model_a, tmp_path / f"a1-{index}.json")
                a2 = pyperf_values(model_a, tmp_path / f"a2-{index}.json")
                b = pyperf_values(model_b, tmp_path / f"b-{index}.json")
                found["pyperf_aa"].append(pyperf_verdict(a1, a2))
                found["pyperf_ab"].append(pyperf_verdict(a1, b))
                line += f"; pyperf A/A {found['pyperf_aa'][-1]}, B/A {found['pyperf_ab'][-1]}"
            print(line, flush=True)
    return found


def section(found: dict, pairs: int, duration_s: float, with_pyperf: bool) -> str:
    aa, ab = Counter(found["aa"]), Counter(found["ab"])
    alarms = sum(aa[v] for v in FLAGS)
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/gating_defaults.py --pairs {pairs}` ({duration_s / 60:.0f} min) — per pair a baseline run of",
        f"A ({LAYERS_A}-layer MatMul chain), then gated runs of A (A/A) and of B ({LAYERS_B} layers, same model",
        "name) against it, at farm's default gated settings (local board, thresholds 5 %, α 1 %).",
        "",
        f"- Date: {time.strftime('%Y-%m-%d')}",
        f"- Machine: 2-core VM, Debian 12, Python {platform.python_version()}, shared with other jobs; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.",
        f"- B's bare-loop slowdown over A, measured in this run: {100 * (found['bare_ratio'] - 1):+.1f} %.",
        "",
        "| | farm defaults | pyperf (compare_to) |",
        "|---|---|---|",
        f"| A/A false alarms | {alarms}/{pairs} ({', '.join(f'{v} {n}' for v, n in aa.items())}) | "
        + (f"{sum(v != 'not significant' for v in found['pyperf_aa'])}/{pairs} significant" if with_pyperf else "—")
        + " |",
        f"| +10 % found | {ab['regressed']}/{pairs} regressed ({', '.join(f'{v} {n}' for v, n in ab.items())}) | "
        + (f"{found['pyperf_ab'].count('slower')}/{pairs} significantly slower" if with_pyperf else "—") + " |",
        f"| time per gated cell | median {statistics.median(found['wall_s']):.0f} s, max {max(found['wall_s']):.0f} s | "
        "— |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--no-pyperf", action="store_true")
    parser.add_argument("--record", type=Path, help="RESULTS.md to update (only its ## gating_defaults section)")
    args = parser.parse_args()
    started = time.monotonic()
    found = run(args.pairs, not args.no_pyperf)
    text = section(found, args.pairs, time.monotonic() - started, not args.no_pyperf)
    print(text)
    print(json.dumps({k: v for k, v in found.items()}, default=str))
    if args.record:
        record_section(args.record, SECTION, text)
        print(f"updated the ## {SECTION} section of {args.record}")


if __name__ == "__main__":
    main()
