"""The controller's side of the agent protocol: untrusted lines are validated."""
from __future__ import annotations

import json

import pytest

from orchestrator.agent_client import MAX_LINE_BYTES, PROTOCOL_VERSION, parse_message
from orchestrator.errors import AgentError


def line(**fields) -> str:
    return json.dumps(fields)


def test_valid_message_is_returned():
    message = parse_message(line(v=PROTOCOL_VERSION, type="phase", phase="load"))
    assert message == {"v": PROTOCOL_VERSION, "type": "phase", "phase": "load"}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Traceback (most recent call last):", "not protocol JSON"),
        ("[1, 2, 3]", "without a type"),
        (line(v=PROTOCOL_VERSION), "without a type"),
        (line(v=PROTOCOL_VERSION + 1, type="result"), "speaks protocol"),
        (line(type="result"), "speaks protocol"),
        (line(v=PROTOCOL_VERSION, type="launch_missiles"), "unknown agent message type"),
    ],
)
def test_untrusted_lines_become_agent_errors(text, fragment):
    with pytest.raises(AgentError) as info:
        parse_message(text)
    assert fragment in str(info.value)
    assert info.value.kind == "agent-error"


def test_oversized_line_is_refused_and_quoted_briefly():
    huge = '{"v": 1, "type": "result", "x": "' + "a" * MAX_LINE_BYTES + '"}'
    with pytest.raises(AgentError) as info:
        parse_message(huge)
    assert "exceeds" in str(info.value)
    assert len(str(info.value)) < 300
