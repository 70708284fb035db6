"""Reading paramiko's failures: was it a timeout, and a one-line description for the message.

Shared by connecting, running commands and moving files, which all turn these into
`TransportError` kinds ("timeout" versus "disconnected" and the rest).
"""
from __future__ import annotations

import socket

import paramiko


def is_timeout(exc: BaseException | None) -> bool:
    """True when `exc`, or the error it was raised while handling, is a timeout."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return True
        if isinstance(exc, paramiko.SSHException) and "timed out" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def describe(exc: BaseException | None) -> str:
    """`TypeName: text` of `exc` (the type alone when it has no text)."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
