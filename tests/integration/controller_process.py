"""A farm controller in a process of its own, for tests that kill it (`kill -9`: no handler runs).

    python tests/integration/controller_process.py SPEC_JSON

SPEC_JSON: {"db": URL, "boards": [Board fields], "models": [paths], "settings": {BenchSettings}}.
Runs one BenchRunner and prints every event as a JSON line on stdout, flushed, so the test waits
on the agent's own phase messages rather than on the clock.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orchestrator.boards import Board  # noqa: E402
from orchestrator.models import load_model_file  # noqa: E402
from orchestrator.plan import ModelTask, plan_cells  # noqa: E402
from orchestrator.runner import BenchRunner  # noqa: E402
from orchestrator.settings import BenchSettings  # noqa: E402
from orchestrator.store import open_store  # noqa: E402

EVENT_FIELDS = ("run_id", "board", "model", "variant", "phase", "kind", "status")


def main(spec_json: str) -> None:
    spec = json.loads(spec_json)

    def on_event(kind: str, info: dict) -> None:
        event = {"event": kind, **{k: info[k] for k in EVENT_FIELDS if isinstance(info.get(k), (str, int))}}
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    boards = [Board(**fields) for fields in spec["boards"]]
    cells = plan_cells([ModelTask(load_model_file(m)) for m in spec["models"]], ["fp32"])
    BenchRunner(open_store(spec["db"]), boards, cells, BenchSettings(**spec["settings"]), on_event=on_event).run()


if __name__ == "__main__":
    main(sys.argv[1])
