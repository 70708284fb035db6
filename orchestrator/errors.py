"""Errors the core raises and the exit status each one maps to.

The core raises these; only the CLI turns them into a message and an exit code
(one table, like httpie's ExitStatus), so scripts can rely on the numbers.
"""
from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes of `farm`, documented in the README."""

    OK = 0
    ERROR = 1  # an unexpected internal error (a bug: please report it)
    USAGE = 2  # bad command line: unknown option, bad option value
    BAD_INPUT = 3  # a model, dataset, inventory, suite or output path that cannot be used
    BOARD_FAILURE = 4  # at least one board or job failed; the others' results are stored
    REGRESSION = 5  # a regression against the baseline was found (and no board failed)
    STORE = 6  # the results database cannot be opened, is newer than farm, or is locked
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: finished results are kept; resume with --resume


class FarmError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_status = ExitStatus.ERROR


class UsageError(FarmError):
    exit_status = ExitStatus.USAGE


class BadInputError(FarmError):
    """Input the user gave us (model file, inventory, path) cannot be used."""

    exit_status = ExitStatus.BAD_INPUT


class StoreError(FarmError):
    exit_status = ExitStatus.STORE


class TransportError(FarmError):
    """Talking to a board failed. `kind` is one of the failure kinds in FAILURE_KINDS."""

    exit_status = ExitStatus.BOARD_FAILURE

    def __init__(self, message: str, kind: str = "unreachable") -> None:
        super().__init__(message)
        self.kind = kind


class AgentError(FarmError):
    """The agent on a board reported an error or answered something we cannot trust."""

    exit_status = ExitStatus.BOARD_FAILURE

    def __init__(self, message: str, kind: str = "agent-error") -> None:
        super().__init__(message)
        self.kind = kind


# Every failed job is stored with exactly one of the kinds in agents.farm_common.FAILURE_KINDS.
