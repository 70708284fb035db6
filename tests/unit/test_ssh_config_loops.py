"""A ProxyJump loop is the same (host, port, user) twice; the same host on another port is not one."""
from __future__ import annotations

import pytest

from orchestrator.boards import Board
from orchestrator.errors import BadInputError
from orchestrator.transport.ssh.config import resolve_ssh_settings


@pytest.fixture(autouse=True)
def no_user_ssh_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_a_jump_host_on_the_boards_address_with_another_port_is_not_a_loop():
    board = Board(name="b", transport="ssh", host="127.0.0.21", port=2222, user="pi", proxy_jump="pi@127.0.0.21:2223")
    resolved = resolve_ssh_settings(board)
    assert [(h.hostname, h.port, h.user) for h in resolved.jump_hosts] == [("127.0.0.21", 2223, "pi")]


def test_the_same_host_port_and_user_twice_is_a_loop_without_naming_an_ssh_config():
    board = Board(name="b", transport="ssh", host="127.0.0.21", port=2222, user="pi", proxy_jump="pi@127.0.0.21:2222")
    with pytest.raises(BadInputError) as info:
        resolve_ssh_settings(board)
    assert "loops" in str(info.value) and "pi@127.0.0.21:2222" in str(info.value)
    assert "ssh/config" not in str(info.value)  # there is no ssh config: do not blame one


def test_another_user_on_the_same_host_and_port_is_not_a_loop():
    board = Board(name="b", transport="ssh", host="127.0.0.21", port=22, user="pi", proxy_jump="jump@127.0.0.21:22")
    assert resolve_ssh_settings(board).jump_hosts[0].user == "jump"
