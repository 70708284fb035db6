"""A board's agent output is untrusted: garbage, wrong versions and huge lines become agent-errors."""
from __future__ import annotations

import resource
import stat
from pathlib import Path

import pytest

from agents.farm_common import PROTOCOL_VERSION
from orchestrator.boards import Board
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store

MiB = 1024 * 1024


def liar(tmp_path: Path, body: str) -> str:
    """A stand-in for the board's python that ignores the agent and prints `body`'s output."""
    script = tmp_path / "liar.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("echo 'hello, I am not JSON'", "not protocol JSON: 'hello, I am not JSON'"),
        ("echo '{\"v\": 99, \"type\": \"facts\", \"facts\": {}}'", "speaks protocol 99"),
        (f"echo '{{\"v\": {PROTOCOL_VERSION}, \"type\": \"rm -rf\"}}'", "unknown agent message type"),
        ("head -c 104857600 /dev/zero | tr '\\0' 'x'; echo", "exceeds the"),
    ],
    ids=["garbage", "version", "type", "100MB-line"],
)
def test_untrusted_output_is_an_agent_error_and_memory_stays_bounded(tmp_path, db_url, digits_model, body, fragment):
    store = open_store(db_url)
    jobs = plan_cells([ModelTask(load_model_file(digits_model))], ["fp32"])
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = BenchRunner(store, [Board(name="liar", python=liar(tmp_path, body))], jobs,
                         BenchSettings(runs=1, min_seconds=0, warmup=0))
    outcome = runner.run()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    [job] = outcome.outcomes
    assert job.row["error_kind"] == "agent-error"
    assert fragment in job.row["error_message"]
    assert len(job.row["error_message"]) < 600  # the first bytes are quoted, not the whole line
    assert grown_mib < 40, f"the controller grew by {grown_mib:.0f} MiB reading the agent"
    assert store.count_results(outcome.run_id) == 1
