"""Content hashes of files: what farm names staged files, variants and datasets by."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks.

    Remembered per (path, size, mtime): a run hashes the same model for every board and job,
    and a file rewritten in place gets a new hash.
    """
    stat = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _sha256_of(path: str, size_bytes: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
