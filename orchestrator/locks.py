"""Exclusive file locks between threads and processes (one download per wheel cache, one
`lab up/down` at a time)."""
from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block.

    Every call opens the file anew, and flock locks belong to the open file, so this
    excludes other threads of this process as well as other processes.
    """
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
