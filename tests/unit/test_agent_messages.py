"""Every agent message is checked by schema before anything is kept (orchestrator.agent_messages)."""
from __future__ import annotations

import json

import pytest

from agents.farm_common import PROTOCOL_VERSION
from orchestrator.agent_messages import parse_agent_line, strip_controls
from orchestrator.errors import AgentError

V = PROTOCOL_VERSION

RESULT = {
    "runtime": "onnxruntime", "runtime_version": "1.32.0", "provider": "CPUExecutionProvider",
    "providers_requested": ["CPUExecutionProvider"], "providers_active": ["CPUExecutionProvider"],
    "provider_fallback": False, "available_providers": ["CPUExecutionProvider"], "inference_precision": None,
    "latency": {"count": 3, "min_ms": 1.0, "max_ms": 3.0, "mean_ms": 2.0, "stdev_ms": 1.0, "p50_ms": 2.0,
                "p90_ms": 2.8, "p99_ms": 2.98},
    "latency_samples_total": 3, "latency_samples_kept": 3, "load_ms": 10.0, "first_inference_ms": 1.5,
    "measure_s": 0.006, "truncated": False, "peak_rss_load_bytes": 1 << 20, "peak_rss_inference_bytes": 1 << 20,
    "peak_rss_reset_supported": True, "peak_rss_bytes": 1 << 20, "worker_pid": 42,
    "inputs": [{"name": "x", "shape": [1, 3], "dtype": "float32"}], "outputs_error": None, "cooldown_s": 0.0,
    "temp_c_after_cooldown": None, "sample_interval_s": 1.0,
    "phase_marks": [{"phase": "load", "t_s": 0.01}], "temp_c_max": None, "freq_drop": False, "throttled": False,
    "cpu_percent_mean": None, "rss_steady_bytes": None, "samples_total": 0, "samples_kept": 0,
}


def line(message_type: str, **fields) -> str:
    return json.dumps({"v": V, "type": message_type, **fields})


def result_with(**changes) -> str:
    result = json.loads(json.dumps(RESULT))
    for path, value in changes.items():
        target = result
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = value
    return line("result", id=1, result=result)


def test_an_honest_result_passes():
    message = parse_agent_line(result_with())
    assert message.result.latency.p50_ms == 2.0 and message.id == 1


@pytest.mark.parametrize("changes, field", [
    ({"peak_rss_bytes": "lots"}, ".peak_rss_bytes"),
    ({"phase_marks__0__t_s": "soon"}, ".phase_marks.0.t_s"),
    ({"load_ms": float("nan")}, ".load_ms"),
    ({"load_ms": float("inf")}, ".load_ms"),
    ({"latency_samples_total": 10**30}, ".latency_samples_total"),
    ({"peak_rss_bytes": -1}, ".peak_rss_bytes"),
    ({"truncated": "no"}, ".truncated"),
    ({"worker_pid": 1.5}, ".worker_pid"),
    ({"phase_marks__0__phase": "launch"}, ".phase_marks.0.phase"),
    ({"runtime": "tensorflow"}, ".runtime"),
    ({"latency__p50_ms": 9.0}, ".latency"),  # p50 above max: not a summary of anything
    ({"latency_samples_kept": 4}, ""),  # kept more than measured
    ({"unexpected": 1}, ".unexpected"),
])
def test_a_lying_result_is_refused_naming_the_field(changes, field):
    with pytest.raises(AgentError) as info:
        parse_agent_line(result_with(**changes))
    assert f"invalid result message: field result{field}" in str(info.value)
    assert info.value.kind == "agent-error"


@pytest.mark.parametrize("text, fragment", [
    (line("chunk", id=1, field="latency_ms", seq=0, values=[0.5, float("nan")]), "field values.1"),
    (line("chunk", id=1, field="latency_ms", seq=0, values=[0.5, 0.0]), "field values.1"),
    (line("chunk", id=1, field="samples", seq=0, values=[{"t_s": "soon", "phase": "measure"}]), "values.0.t_s"),
    (line("chunk", id=1, field="outputs_npz", seq=0, data="not base64!"), "field data"),
    (line("chunk", id=1, field="secrets", seq=0, values=[]), "field"),
    (line("error", kind="world-domination", message="x"), "field kind"),
    (line("heartbeat", id=-1), "field id"),
    (json.dumps({"v": V + 1, "type": "result"}), "speaks protocol"),
    (line("launch_missiles"), "unknown agent message type"),
    ("Traceback (most recent call last):", "not protocol JSON"),
])
def test_invalid_messages_become_agent_errors(text, fragment):
    with pytest.raises(AgentError) as info:
        parse_agent_line(text)
    assert fragment in str(info.value)


def test_board_text_loses_its_control_characters():
    hostile = "\x1b]0;owned\x07\x1b[2J\rboard\u202e\x00\x9b"
    message = parse_agent_line(line("error", kind="model-error", message=hostile, traceback="a\n\tb\x1b[1m"))
    assert message.message == "]0;owned[2Jboard"
    assert message.traceback == "a\n\tb[1m"  # tabs and newlines stay
    assert strip_controls("plain text, ünïcode") == "plain text, ünïcode"


def test_quotes_in_errors_are_bounded_and_printable():
    with pytest.raises(AgentError) as info:
        parse_agent_line(result_with(peak_rss_bytes="\x1b[2J" + "x" * 10_000))
    text = str(info.value)
    assert len(text) < 300 and "\x1b" not in text
