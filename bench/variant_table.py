"""The studies' variant table on the local board, with latency relative to fp32 measured interleaved.

For the demo classifier (digits_mlp, scored top-1 on its shipped test set) and a real detector
(ddddocr's YOLOX common_det.onnx on the synthetic letters dataset, scored mAP50; skipped when
ddddocr is not installed): size, gzip size, sparsity, accuracy and its change vs fp32, then the
median latency of each variant relative to fp32. Latency comes from `--rounds` rounds; each round
runs every variant once, in a rotated order (A B C, B C A, ...), so drift hits all alike; the
ratio is the median over rounds of variant p50 / fp32 p50 of the same round.

Run: python bench/variant_table.py [--rounds 5] [--runs 100]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.request import BenchRequest, run_bench  # noqa: E402
from orchestrator.models import DEMO_DIR  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402

VARIANTS = ["fp32", "optimized", "fp16", "int8-dynamic", "int8-static", "prune-l1:0.5", "prune-l1-layerwise:0.5"]


def detector() -> tuple[Path, list[str], list[str]] | None:
    """(model, dataset args, detection args) for the real detector, or None without ddddocr."""
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    try:
        import detector_support as support
    except ImportError:
        return None
    model = support.common_det_path()
    if model is None:
        return None
    data = support.make_dataset(Path(tempfile.mkdtemp(prefix="farm-det-")), images=24, seed=0)
    return model, [str(data)], [support.YOLOX_DETECTION_SPEC]


def measure(model: Path, datasets: list[str], detection: list[str], rounds: int, runs: int, db: str) -> None:
    store = open_store(db)
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    records: dict[str, dict] = {}
    for round_index in range(rounds):
        order = VARIANTS[round_index % len(VARIANTS):] + VARIANTS[:round_index % len(VARIANTS)]
        request = BenchRequest(
            model_paths=[model], variants=order, datasets=datasets if round_index == 0 else [],
            detection=detection if round_index == 0 else [], write_report=False,
            settings=BenchSettings(runs=runs, min_seconds=0.5, warmup=5, threads=1, sample_interval_s=0),
        )
        outcome = run_bench(request, store=store)
        p50 = {o.variant: o.row.get("latency_ms_p50") for o in outcome.run.outcomes if o.ok}
        for variant in VARIANTS:
            if variant in p50 and "fp32" in p50:
                ratios[variant].append(p50[variant] / p50["fp32"])
        if round_index == 0:
            records = {r["variant"]: r for r in store.export_records(outcome.run.run_id)}
    store.close()
    fp32 = records["fp32"]
    print(f"\n## {model.name} ({rounds} interleaved rounds, >= {runs} runs and >= 0.5 s each, 1 thread)")
    print(f"{'variant':<24} {'size MB':>8} {'gzip MB':>8} {'sparsity':>8} {'metric':>7} {'accuracy':>8} "
          f"{'Δ vs fp32':>9} {'p50 ms':>8} {'vs fp32':>8}")
    for variant in VARIANTS:
        r = records.get(variant, {})
        if r.get("status") != "ok":
            print(f"{variant:<24} failed: {r.get('error_kind')} {str(r.get('error_message'))[:60]}")
            continue
        ratio = statistics.median(ratios[variant]) if ratios[variant] else float("nan")
        accuracy = "—" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"
        delta = "—" if r.get("accuracy_delta") is None else f"{r['accuracy_delta']:+.3f}"
        print(f"{variant:<24} {r['model_size_bytes'] / 1e6:>8.2f} {(r.get('model_gzip_bytes') or fp32['model_size_bytes']) / 1e6:>8.2f} "
              f"{(r.get('sparsity') or 0):>8.2f} {str(r.get('accuracy_metric') or '—'):>7} {accuracy:>8} {delta:>9} "
              f"{r['latency_ms_p50']:>8.3f} {ratio:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-variants-") as tmp:
        db = f"sqlite:///{tmp}/variants.db"
        measure(DEMO_DIR / "digits_mlp.onnx", [], [], args.rounds, args.runs, db)
        found = detector()
        if found is None:
            print("\n(real detector skipped: pip install --no-deps ddddocr==1.6.1)")
        else:
            measure(*found, rounds=args.rounds, runs=max(10, args.runs // 10), db=db)


if __name__ == "__main__":
    main()
