from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from wardgate.demo.postgres import LocalPostgres


@pytest.fixture(scope="session")
def target_db(pg_server: LocalPostgres) -> Iterator[str]:
    """A database of its own on the real server, for this test run."""
    name = f"wardgate_pgtest_{os.getpid()}"
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def target_entry(pg: LocalPostgres, database: str, name: str = "test") -> dict[str, object]:
    entry: dict[str, object] = {
        "name": name,
        "host": pg.host,
        "port": pg.port,
        "database": database,
        "user": pg.user,
        "tls": "disable",
    }
    if pg.password:
        entry["password"] = pg.password
    return entry


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("gw")
    config = build_config(tmp, pki_dir, target_entry(pg_server, target_db), handshake_timeout=2.0)
    yield from running(config, pki_dir / "ca.pem")


@pytest.fixture(scope="module")
def admin_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
) -> Iterator[RunningGateway]:
    """As ``wardgate serve`` is run for a conformance run: alice (engineer) is an administrator of
    the target (no function is refused her), and the signed audit store holds every result back
    until its record is durable."""
    tmp = tmp_path_factory.mktemp("gw-admin")

    def admin(raw: dict[str, Any]) -> None:
        raw["policy"] = {"admin_roles": ["engineer"]}
        raw["audit"].update(store=str(tmp / "store" / "audit.db"))

    config = build_config(tmp, pki_dir, target_entry(pg_server, target_db), edit=admin)
    yield from running(config, pki_dir / "ca.pem")
