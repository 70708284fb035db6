"""A throw-away PostgreSQL server for tests and bench/store_speed.py: initdb, pg_ctl start, stop.

The cluster lives in a fresh temp folder. As root, it is owned by and runs as the `postgres`
system user (PostgreSQL refuses to run as root), through `runuser -u postgres --`. It listens
on 127.0.0.1 at a free port and on a unix socket inside the temp folder, with trust auth, so
nothing outside the test touches it and nothing is left behind after `stop()`.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server did not start; the message says why."""


def find_bindir() -> Path:
    """The folder with initdb and pg_ctl: $FARM_PG_BINDIR, Debian's layout, or PATH."""
    if os.environ.get("FARM_PG_BINDIR"):
        return Path(os.environ["FARM_PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH; "
        "install the postgresql package or set FARM_PG_BINDIR)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """`start()` a private cluster, `create_database()` as many as needed, `stop()` it."""

    def __init__(self, fsync: bool = False, max_connections: int = 60) -> None:
        self.bindir = find_bindir()
        self.fsync = fsync
        self.max_connections = max_connections
        self.root: Path | None = None
        self.port = 0
        self._as_postgres = os.geteuid() == 0

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "socket"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=str(self.root))
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed ({proc.returncode}): "
                                      f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    def start(self) -> "PostgresServer":
        self.root = Path(tempfile.mkdtemp(prefix="farm-pg-"))
        data = self.root / "data"
        self.socket_dir.mkdir()
        if self._as_postgres:
            try:
                shutil.chown(self.root, "postgres", "postgres")
                shutil.chown(self.socket_dir, "postgres", "postgres")
            except (LookupError, PermissionError) as exc:
                self._cleanup()
                raise PostgresUnavailable(f"cannot hand the cluster folder to the postgres user: {exc}") from exc
        try:
            self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-locale", "--no-sync")
            self.port = _free_port()
            self.start_server()
        except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            self._cleanup()
            raise PostgresUnavailable(f"{exc}{' | server log: ' + tail if tail else ''}") from exc
        return self

    def start_server(self) -> None:
        """Start the cluster's server (again, after `stop_server`), on the same port and data."""
        assert self.root is not None
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                   f"-c max_connections={self.max_connections} -c fsync={'on' if self.fsync else 'off'}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start", timeout=90)

    def stop_server(self) -> None:
        """Stop the server as a crash would (`pg_ctl -m immediate`), keeping its data: an outage."""
        assert self.root is not None
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "-t", "30",
                  "stop", timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET lock_timeout = '20s'")
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def reset_database(self, name: str) -> str:
        """Empty a database in place (much faster than CREATE DATABASE on a slow disk): end its
        other sessions, drop and recreate the public schema. Returns its URL."""
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid();"
            "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public",
            database=name,
        )
        return self.url(name)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = name or f"farm_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                     "-t", "30", "stop"), capture_output=True, timeout=60, cwd=str(self.root))
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
