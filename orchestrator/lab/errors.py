"""The one error of the lab: what to install or do, shown by the CLI's single error handler."""
from __future__ import annotations

from orchestrator.errors import ExitStatus, FarmError


class LabError(FarmError):
    """The lab cannot be brought up or down here; the message says what to install or do."""

    exit_status = ExitStatus.USAGE
