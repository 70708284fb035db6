"""`farm` exactly as users run it, plus every progress event as a JSON line on stdout.

For tests that must act at a given moment of a run (send a signal while a job is measuring):
they wait on the agent's own phase messages, as the progress display receives them, instead of
guessing from the clock or from the processes they can see.

    python tests/e2e/cli_with_events.py bench ...   (same arguments as `farm`)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orchestrator.cli import render  # noqa: E402

EVENT_FIELDS = ("run_id", "board", "model", "variant", "phase", "kind")
_shown = render.BenchProgress.on_event


def on_event(self, kind, info):  # noqa: ANN001, ANN201 - BenchProgress.on_event's signature
    event = {"event": kind, **{k: info[k] for k in EVENT_FIELDS if isinstance(info.get(k), (str, int))}}
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()
    _shown(self, kind, info)


render.BenchProgress.on_event = on_event

if __name__ == "__main__":
    from orchestrator.cli import run

    sys.argv = ["farm", *sys.argv[1:]]
    run()
