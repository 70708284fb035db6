"""The one error of provisioning, shared by the controller side (wheels) and the board side."""
from __future__ import annotations

from orchestrator.errors import ExitStatus, FarmError


class ProvisionError(FarmError):
    """A board cannot be provisioned; the message says what to do. `kind` names the cause
    (`usage`, `missing-runtime`, `unsupported`, `download`, `no-wheel`, `install`, `disk-full`,
    `oom-killed`, `provision-error`), which the CLI shows and outcomes record."""

    exit_status = ExitStatus.BOARD_FAILURE

    def __init__(self, message: str, kind: str = "provision-error") -> None:
        super().__init__(message)
        self.kind = kind
