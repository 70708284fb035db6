"""Store tests run on both databases farm supports: a SQLite file and a real PostgreSQL server.

`postgres_server` (session): a private cluster started with initdb + pg_ctl in a temp folder
(see pgserver.py), stopped at the end. When it cannot start the PostgreSQL tests are skipped
with the reason, except under CI=true, where that is a failure: CI must test both databases.

`db_url`: parametrized over sqlite and postgresql; each test starts from an empty database.
"""
from __future__ import annotations

import os

import pytest

from tests.store.pgserver import PostgresServer, PostgresUnavailable


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        message = f"PostgreSQL server could not start: {exc}"
        if _in_ci():
            pytest.fail(message + " (CI=true: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _pg_database(postgres_server) -> str:
    return postgres_server.create_database("farm_test").rsplit("/", 1)[1]


@pytest.fixture
def pg_url(postgres_server, _pg_database) -> str:
    """An empty PostgreSQL database: the session's test database, emptied before each test
    (its other sessions ended, its schema dropped and recreated)."""
    return postgres_server.reset_database(_pg_database)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind farm supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    return request.getfixturevalue("pg_url")
