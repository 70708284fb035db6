"""Files a submitted run needs, stored in the database by content hash, fetched by workers.

`farm submit` builds the variants once on the submitter and puts every file a board or the
scoring needs (models, variants, an OpenVINO IR's weights, datasets) here: a worker never
needs the submitter's files, and a file is stored once however many runs use it. A file is
split in chunks of CHUNK_BYTES (bounded memory on both sides; a PostgreSQL value is capped at
1 GB), written in one transaction with its header row last, so a reader never sees half a
file. A worker keeps what it fetched in its cache (`<cache>/fleet-artifacts/<sha256><suffix>`)
and checks the sha256 of every byte before using it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Mapping

import sqlalchemy as sa

from orchestrator.atomic import atomic_path
from orchestrator.errors import BadInputError, StoreError
from orchestrator.hashing import file_sha256
from orchestrator.paths import farm_cache_dir
from orchestrator.store.schema import fleet_artifact_chunks, fleet_artifacts
from orchestrator.store.timestamps import now_iso

CHUNK_BYTES = 4 << 20
MAX_ARTIFACT_BYTES = 8 << 30  # refused above: a fleet is not a file store
_SHA_RE_CHARS = set("0123456789abcdef")


def artifacts_cache_dir() -> Path:
    return farm_cache_dir() / "fleet-artifacts"


def put_file(store, path: Path) -> str:
    """Store `path` by content (nothing is written when it is already there); returns its sha256."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_ARTIFACT_BYTES:
        raise BadInputError(f"{path}: {size} bytes is more than a submission may carry ({MAX_ARTIFACT_BYTES} bytes)")
    sha = file_sha256(path)
    if has_artifact(store, sha):
        return sha
    with store._begin() as conn:  # noqa: SLF001 - a write transaction of farm's store
        if conn.dialect.name == "postgresql":  # two submitters storing the same file: one writes it
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:sha, 0))"), {"sha": sha})
        if conn.execute(sa.select(fleet_artifacts.c.sha256).where(fleet_artifacts.c.sha256 == sha)).first():
            return sha
        digest = hashlib.sha256()
        chunks = 0
        with open(path, "rb") as handle:
            while True:
                data = handle.read(CHUNK_BYTES)
                if not data and chunks:
                    break
                digest.update(data)
                conn.execute(fleet_artifact_chunks.insert().values(sha256=sha, seq=chunks, data=data))
                chunks += 1
                if not data:
                    break
        if digest.hexdigest() != sha:
            raise BadInputError(f"{path} changed while it was being stored; submit again")
        conn.execute(fleet_artifacts.insert().values(sha256=sha, size_bytes=size, chunks=chunks, created_at=now_iso()))
    return sha


def has_artifact(store, sha: str) -> bool:
    with store._connect() as conn:  # noqa: SLF001
        return conn.execute(sa.select(fleet_artifacts.c.sha256).where(fleet_artifacts.c.sha256 == sha)).first() is not None


def fetch_file(store, sha: str, suffix: str = "", cache_dir: Path | None = None) -> Path:
    """The artifact `sha` as a local file (fetched once into the cache, its sha256 checked)."""
    if len(sha) != 64 or not set(sha) <= _SHA_RE_CHARS:
        raise StoreError(f"bad artifact id {sha!r} in a submitted plan")
    folder = cache_dir or artifacts_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha}{suffix}"
    if target.is_file():
        return target
    with store._connect() as conn:  # noqa: SLF001
        header = conn.execute(sa.select(fleet_artifacts.c.size_bytes, fleet_artifacts.c.chunks)
                              .where(fleet_artifacts.c.sha256 == sha)).first()
        if header is None:
            raise StoreError(f"{store.safe_url} has no stored file {sha[:12]}… that a submitted run needs")
        digest = hashlib.sha256()
        with atomic_path(target) as tmp, open(tmp, "wb") as out:
            for seq in range(int(header.chunks)):  # one chunk in memory at a time
                data = conn.execute(sa.select(fleet_artifact_chunks.c.data).where(
                    fleet_artifact_chunks.c.sha256 == sha, fleet_artifact_chunks.c.seq == seq)).scalar()
                if data is None:
                    raise StoreError(f"stored file {sha[:12]}… is missing chunk {seq}")
                digest.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
            if digest.hexdigest() != sha:
                raise StoreError(f"stored file {sha[:12]}… does not match its sha256: not used")
    return target


def put_tree(store, files: Mapping[str, Path]) -> dict[str, str]:
    """Store several files under relative names (a dataset folder); returns {name: sha256}."""
    return {name: put_file(store, path) for name, path in sorted(files.items())}


def fetch_tree(store, manifest: Mapping[str, str], cache_dir: Path | None = None) -> Path:
    """A folder holding the files of `manifest` under their names (made once per content)."""
    folder = cache_dir or artifacts_cache_dir()
    key = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in sorted(manifest.items())).encode()).hexdigest()
    root = folder / "trees" / key[:24]
    if (root / ".complete").is_file():
        return root
    for name, sha in manifest.items():
        relative = safe_relative(name)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = fetch_file(store, sha, cache_dir=folder)
        with atomic_path(target) as tmp:
            os.unlink(tmp)
            try:
                os.link(source, tmp)  # the cache and the tree share a file system: no copy
            except OSError:
                shutil.copyfile(source, tmp)
    (root / ".complete").write_text("")
    return root


def safe_relative(name: str) -> PurePosixPath:
    """A relative name from a plan: no absolute path, no '..' (a plan is data, not a path to write to)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise StoreError(f"refused file name {name!r} in a submitted plan")
    return path


__all__ = ["CHUNK_BYTES", "artifacts_cache_dir", "fetch_file", "fetch_tree", "has_artifact", "put_file", "put_tree",
           "safe_relative"]
