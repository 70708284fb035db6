"""Closing a board's connection chain never raises, and closes every hop, board first."""
from __future__ import annotations

import paramiko
import pytest

from orchestrator.transport.ssh.connect import close_clients


class _Client:
    def __init__(self, name: str, closed: list[str], error: BaseException | None = None) -> None:
        self.name, self._closed, self._error = name, closed, error

    def close(self) -> None:
        self._closed.append(self.name)
        if self._error is not None:
            raise self._error


@pytest.mark.parametrize("error", [EOFError(), OSError(32, "Broken pipe"), paramiko.SSHException("gone")])
def test_a_hop_whose_link_died_does_not_stop_the_others_closing(error):
    closed: list[str] = []
    # The board's socket is a channel of the jump host's connection: closing it fails when that link died.
    clients = [_Client("jump", closed), _Client("board", closed, error)]
    close_clients(clients)  # type: ignore[arg-type]
    assert closed == ["board", "jump"]


def test_an_interrupt_while_closing_is_not_swallowed():
    closed: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        close_clients([_Client("board", closed, KeyboardInterrupt())])  # type: ignore[list-item]
