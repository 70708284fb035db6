"""The fault scenarios against an 8-board lab: one line each, nothing lost.

For each scenario one board misbehaves while the seven others run the same short bench. Per
scenario it prints the failure kind farm recorded for the faulty board, the time from the start
of the run until that board's failure was recorded, how many of the other boards finished
unaffected, and how many stored rows are missing (must be 0).

Run (root, openssh-server installed): python bench/fault_scenarios.py
The lab lives in /var/lib/farm-lab-faults-<pid> on 127.79.N.x and is always taken down.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import lab as lab_mod  # noqa: E402
from orchestrator.boards import Board  # noqa: E402
from orchestrator.models import DEMO_DIR, load_model_file  # noqa: E402
from orchestrator.plan import ModelTask, plan_cells  # noqa: E402
from orchestrator.runner import BenchRunner  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402
from tests.integration.tcp_proxy import TcpProxy  # noqa: E402

SETTINGS = BenchSettings(runs=5, min_seconds=0, warmup=0, threads=1, sample_interval_s=0.2, retries=1,
                         retry_backoff_s=0.2, lease_wait_s=2)
MiB = 1024 * 1024


def board(lab, lab_board, **overrides) -> Board:
    return dataclasses.replace(
        Board(name=lab_board.name, transport="ssh", host=lab_board.address, port=lab_board.port,
              user=lab_mod.BOARD_USER, identity_file=str(lab.identity_file),
              known_hosts_file=str(lab.known_hosts_path), python=lab_board.python, workdir=lab_board.workdir,
              connect_timeout_s=3.0),
        **overrides)


@dataclasses.dataclass
class Scenario:
    name: str
    faulty: Callable[[object, object, Path], Board]  # (lab, lab board, tmp) -> the misbehaving Board
    model: Callable[[Path], Path] = lambda tmp: DEMO_DIR / "digits_mlp.onnx"
    faulty_model: bool = False  # the model is the fault (it runs next to a good one on every board)
    settings: BenchSettings = SETTINGS


def scenarios(tmp: Path, proxies: list[TcpProxy]) -> list[Scenario]:
    def proxied(lab, b, **options):
        proxy = TcpProxy((b.address, b.port), lifetime_s=120, **options).start()
        proxies.append(proxy)
        return board(lab, b, name=f"{b.name}-proxied", host="127.0.0.1", port=proxy.port, accept_new_host_keys=True,
                     known_hosts_file=str(tmp / f"kh-{proxy.port}"))

    def stranger_key():
        key = tmp / "stranger"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        return str(key)

    def changed_known_hosts(lab, b):
        other = next(line for line in lab.known_hosts_path.read_text().splitlines() if b.address not in line)
        path = tmp / f"changed-{b.name}"
        path.write_text(f"[{b.address}]:{b.port} {other.split(None, 1)[1]}\n")
        return str(path)

    def empty_known_hosts():
        path = tmp / "empty_known_hosts"
        path.write_text("")
        return str(path)

    def garbage_python():
        script = tmp / "garbage.sh"
        script.write_text("#!/bin/sh\necho 'this is not the farm protocol'\n")
        script.chmod(0o755)
        return str(script)

    def corrupt(tmp_dir: Path) -> Path:
        path = tmp_dir / "rejected.onnx"
        if not path.exists():
            import onnx
            from onnx import TensorProto, helper

            graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="farm.test")], "bad",
                                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                              helper.make_opsetid("farm.test", 1)]), str(path))
        return path

    return [
        Scenario("refused port", lambda lab, b, t: board(lab, b, port=1)),
        Scenario("silent port", lambda lab, b, t: _silent(lab, b, proxies)),
        Scenario("wrong key", lambda lab, b, t: board(lab, b, identity_file=stranger_key())),
        Scenario("unknown host key", lambda lab, b, t: board(lab, b, known_hosts_file=empty_known_hosts())),
        Scenario("changed host key", lambda lab, b, t: board(lab, b, known_hosts_file=changed_known_hosts(lab, b))),
        Scenario("cut mid-upload (retried)", lambda lab, b, t: proxied(lab, b, cut_after_bytes=1 * MiB, cut_once=True),
                 model=lambda t: _fresh(DEMO_DIR / "yolo_timing.onnx", t)),
        Scenario("onnxruntime missing", lambda lab, b, t: board(lab, b, python="/usr/bin/python3",
                                                                workdir=b.workdir + "/bare")),
        Scenario("agent answers garbage", lambda lab, b, t: board(lab, b, python=garbage_python())),
        Scenario("model rejected by runtime", lambda lab, b, t: board(lab, b), model=corrupt, faulty_model=True),
    ]


def _silent(lab, b, proxies):
    proxy = TcpProxy(mode="silent", lifetime_s=120).start()
    proxies.append(proxy)
    return board(lab, b, name=f"{b.name}-silent", host="127.0.0.1", port=proxy.port)


def _fresh(model: Path, tmp: Path) -> Path:
    copy = tmp / f"fresh-{time.time_ns()}.onnx"
    import onnx

    proto = onnx.load(str(model))
    proto.doc_string = copy.name
    onnx.save(proto, str(copy))
    return copy


def run_scenario(lab, scenario: Scenario, tmp: Path, proxies: list[TcpProxy]) -> str:
    victim, *healthy = lab.boards
    boards = [scenario.faulty(lab, victim, tmp)] + [board(lab, b) for b in healthy]
    bad_model = scenario.model(tmp)
    models = [bad_model, DEMO_DIR / "digits_mlp.onnx"] if scenario.faulty_model else [bad_model]
    store = open_store(f"sqlite:///{tmp / 'faults.db'}")
    before = store.count_results()
    detected: dict[str, float] = {}
    started = time.monotonic()

    def is_fault(board_name: str, model_name: str) -> bool:
        return model_name == bad_model.stem if scenario.faulty_model else board_name == boards[0].name

    def on_event(kind, info):
        if kind in ("cell_failed", "cell_finished") and is_fault(info.get("board"), info.get("model")):
            detected.setdefault("t", time.monotonic() - started)

    jobs = plan_cells([ModelTask(load_model_file(m)) for m in models], ["fp32"])
    outcome = BenchRunner(store, boards, jobs, scenario.settings, on_event=on_event).run()
    faulty = [o for o in outcome.outcomes if is_fault(o.board, o.model)]
    others = [o for o in outcome.outcomes if not is_fault(o.board, o.model)]
    kind = faulty[0].row.get("error_kind") or ("ok (recovered)" if faulty[0].ok else "?")
    lost = len(boards) * len(models) - (store.count_results() - before)
    store.close()
    return (f"{scenario.name:<28} {kind:<16} {detected.get('t', float('nan')):>7.2f} s "
            f"{sum(o.ok for o in others)}/{len(others):<4} {lost}")


def main() -> None:
    lab_dir = Path(f"/var/lib/farm-lab-faults-{os.getpid()}")
    block = os.getpid() % 250 + 1
    proxies: list[TcpProxy] = []
    try:
        lab = lab_mod.lab_up(lab_dir, ["rpi4", "jetson-nano", "snapdragon", "unlimited"], 2,
                             first_address=f"127.79.{block}.11", venv_dir=Path("/var/lib/farm-lab-test-venv"))
        print(f"# fault scenarios on an {len(lab.boards)}-board lab (1 faulty + {len(lab.boards) - 1} healthy each), "
              f"cgroup limits {'on' if lab.limits_enforced else 'off'}")
        print(f"{'scenario':<28} {'kind':<16} {'detect':>9} {'others ok':<9} rows lost")
        with tempfile.TemporaryDirectory(prefix="farm-faults-") as tmp:
            for scenario in scenarios(Path(tmp), proxies):
                print(run_scenario(lab, scenario, Path(tmp), proxies), flush=True)
    finally:
        for proxy in proxies:
            proxy.stop()
        lab_mod.lab_down(lab_dir, remove_files=True)


if __name__ == "__main__":
    main()
