"""File locks, so two `lab up/down` (or two labs sharing a venv or an arm64 root) never interleave."""
from __future__ import annotations

import contextlib
from pathlib import Path

from orchestrator.locks import file_lock


def locked(directory: Path, name: str = ".lock") -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on `directory/name`, so two `lab up/down` never interleave."""
    return file_lock(directory / name)
