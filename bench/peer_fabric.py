"""The peer farm is measured against: the fabric script a user would write by hand.

For each board: connect with fabric, `put` the model, run a bare onnxruntime loop over it with
the board's Python and read back the median; boards in parallel, a thread each (as fabric's
ThreadingGroup, which cannot give each board its own remote path: simulated boards share a disk).
It does what `farm bench -m MODEL --runs N --min-seconds 0 --warmup W --threads 1
--sample-interval 0 --no-report` does at its core and nothing more: no facts, no lease, no
memory sampling, no store, no checks of what comes back. That is the point of comparison.

Used by bench scripts (`run_fabric_peer`), or on its own:
    python bench/peer_fabric.py -i /var/lib/farm-lab/inventory.yaml -m model.onnx [--runs 20]
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabric import Connection  # noqa: E402

from orchestrator.boards import Board  # noqa: E402

BARE_LOOP = r"""
import sys, time, statistics, numpy as np, onnxruntime as ort
path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16}
feeds = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape]).astype(
         types.get(i.type, np.float32)) for i in s.get_inputs()}
for _ in range(warmup): s.run(None, feeds)
t = []
for _ in range(runs):
    a = time.perf_counter_ns(); s.run(None, feeds); t.append(time.perf_counter_ns() - a)
print(statistics.median(t) / 1e6)
"""


def connection(board: Board) -> Connection:
    """A fabric Connection to a lab/inventory board (its key; fabric's own host-key policy)."""
    return Connection(board.host or board.name, user=board.user, port=board.port,
                      connect_kwargs={"key_filename": board.identity_file, "look_for_keys": False,
                                      "allow_agent": False})


def run_fabric_peer(boards: Sequence[Board], model: Path, runs: int = 20, warmup: int = 2) -> dict[str, float]:
    """Push `model` to every board and time `runs` inferences there; board name -> median ms.

    Boards run in parallel, one thread each (what fabric's ThreadingGroup does); each board gets
    the model at a path of its own (its work dir), since simulated boards share one file system.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(board: Board) -> float:
        remote = f"{board.workdir or '/tmp'}/farm-peer-{model.name}"
        command = f"{shlex.quote(board.python)} -c {shlex.quote(BARE_LOOP)} {shlex.quote(remote)} {runs} {warmup}"
        with connection(board) as conn:
            conn.put(str(model), remote=remote)
            return float(conn.run(command, hide=True).stdout.split()[-1])

    with ThreadPoolExecutor(max_workers=len(boards)) as pool:
        return dict(zip([b.name for b in boards], pool.map(one, boards)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("-l", "--limit")
    parser.add_argument("-m", "--model", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    from orchestrator.inventory import load_inventory, select_boards

    boards = select_boards(load_inventory(Path(args.inventory)), args.limit)
    started = time.perf_counter()
    medians = run_fabric_peer(boards, args.model, args.runs, args.warmup)
    wall_s = time.perf_counter() - started
    for name, median_ms in medians.items():
        print(f"{name}: median {median_ms:.3f} ms")
    print(f"{len(boards)} board(s), wall {wall_s:.2f} s (median per board {statistics.median(medians.values()):.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
