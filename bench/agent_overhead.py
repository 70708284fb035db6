"""How much does farm add to what it measures?

1. Per demo model: the median latency farm reports vs a bare `session.run` loop in a fresh
   process with the same threads and inputs, interleaved (bare, farm, bare, farm, ...) so the
   machine's drift hits both alike. Target: ratio <= 1.03.
2. The wall time of `farm bench` (a fresh CLI process) for a ~1 ms model with 100 runs, minus the
   time spent inside measured runs: start-up + orchestration overhead. Target: <= 2 s.

Run: python bench/agent_overhead.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.models import DEMO_DIR, DEMO_MODELS  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402

BARE_LOOP = r"""
import sys, time, json, numpy as np, onnxruntime as ort
path, runs, min_s, warmup = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = rng.random(shape, dtype=np.float32) if "float" in i.type else np.zeros(shape, dtype=np.int64)
s.run(None, feeds)
for _ in range(warmup): s.run(None, feeds)
samples = []; start = time.perf_counter_ns()
while True:
    t0 = time.perf_counter_ns(); s.run(None, feeds); t1 = time.perf_counter_ns(); samples.append(t1 - t0)
    if len(samples) >= runs and t1 - start >= min_s * 1e9: break
samples.sort(); print(json.dumps(samples[len(samples) // 2] / 1e6))
"""


def bare_median_ms(model: Path, runs: int, min_s: float, warmup: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(model), str(runs), str(min_s), str(warmup)],
                         capture_output=True, text=True, check=True, timeout=600)
    return float(out.stdout)


def farm_median_ms(model: Path, db: str, settings: BenchSettings) -> float:
    store = open_store(db)
    try:
        outcome = run_bench(BenchRequest(model_paths=[model], settings=settings, write_report=False), store=store)
    finally:
        store.close()
    [job] = outcome.run.outcomes
    assert job.ok, job.row
    return float(job.row["latency_ms_p50"])


def one_ms_model(path: Path) -> Path:
    """A chain of 256×256 MatMul+Relu layers sized to take ~1 ms on one thread here."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(24):
        inits.append(numpy_helper.from_array((rng.standard_normal((256, 256)) * 0.06).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "one_ms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 256])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [8, 256])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = BenchSettings(runs=100, min_seconds=1.0, warmup=10, threads=1, sample_interval_s=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        print(f"# agent overhead, {args.rounds} interleaved rounds, 1 intra-op thread, >= 100 runs and >= 1 s each")
        print(f"{'model':<14} {'bare p50 ms':>12} {'farm p50 ms':>12} {'ratio':>7}")
        for name in DEMO_MODELS:
            model = DEMO_DIR / name
            bare, farm = [], []
            for _ in range(args.rounds):
                bare.append(bare_median_ms(model, 100, 1.0, 10))
                farm.append(farm_median_ms(model, db, settings))
            b, f = statistics.median(bare), statistics.median(farm)
            print(f"{model.stem:<14} {b:>12.4f} {f:>12.4f} {f / b:>7.3f}")

        model = one_ms_model(Path(tmp) / "one_ms.onnx")
        overheads = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "orchestrator.cli", "bench", "--model", str(model), "--runs", "100",
                            "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--no-report", "--db", db],
                           check=True, capture_output=True, cwd=REPO, timeout=600)
            wall = time.perf_counter() - started
            store = open_store(db)
            record = store.export_records("latest")[0]
            latencies, _ = store.series(store.results("latest")[0]["result_id"])
            store.close()
            overheads.append((wall, sum(latencies) / 1000.0, record["latency_ms_p50"]))
        wall, inside, p50 = (statistics.median(x) for x in zip(*overheads))
        print(f"\n# `farm bench` of a {p50:.2f} ms model, 100 runs, fresh CLI process, median of {args.rounds}")
        print(f"wall {wall:.2f} s, inside measured runs {inside:.2f} s, overhead {wall - inside:.2f} s")
        print(json.dumps({"overhead_s": round(wall - inside, 3), "wall_s": round(wall, 3)}))


if __name__ == "__main__":
    main()
