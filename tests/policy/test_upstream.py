"""Least privilege upstream against the local PostgreSQL: the gateway refuses to start, and
``wardgate check`` fails, when a target's login is a superuser or holds a role that reaches the
server's files or programs, unless the target sets ``allow_superuser``; a least-privileged
login (the demo's, made by `create_gateway_login`) is accepted and works."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from tests.databases import temporary_database
from tests.gateway_harness import build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import wardgate
from wardgate.config import Config
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import create_database_if_missing, create_gateway_login, seed
from wardgate.policy import upstream
from wardgate.policy.upstream import UnsafeUpstream


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    with temporary_database(pg_server, "wardgate_upstream") as name:
        seed(pg_server.dsn(name), patients=5)
        yield name


@pytest.fixture(scope="module")
def login(pg_server: LocalPostgres, database: str) -> Iterator[tuple[str, str]]:
    """The demo's least-privileged login, under a name of this module's own."""
    name, password = f"wardgate_lp_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    create_gateway_login(pg_server.dsn(database), password, name)
    yield name, password
    _drop(pg_server, database, name)


def _drop(pg: LocalPostgres, database: str, name: str) -> None:
    with psycopg.connect(pg.dsn(database), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


def config(tmp: Path, pg: LocalPostgres, database: str, **target: Any) -> Config:
    entry = {**target_entry(pg, database), **target}
    return build_config(tmp, tmp / "pki", entry)


def test_a_superuser_target_refuses_the_start_and_the_check(
    tmp_path: Path, pg_server: LocalPostgres, database: str
) -> None:
    cfg = config(tmp_path, pg_server, database, allow_superuser=False)
    with pytest.raises(UnsafeUpstream) as caught:
        next(running(cfg, tmp_path / "pki" / "ca.pem"))
    message = str(caught.value)
    assert f"target 'test': its login {pg_server.user!r} is a superuser" in message
    assert "allow_superuser: true" in message
    checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
    assert checked.returncode == 1 and "is a superuser" in checked.stderr, checked.stderr
    assert "configuration OK" not in checked.stdout


def test_allow_superuser_accepts_it(
    tmp_path: Path, pg_server: LocalPostgres, database: str
) -> None:
    config(tmp_path, pg_server, database, allow_superuser=True)
    checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
    assert checked.returncode == 0, checked.stderr


def test_a_login_reaching_server_files_is_refused(
    tmp_path: Path, pg_server: LocalPostgres, database: str
) -> None:
    name = f"wardgate_files_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x'").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT pg_read_server_files TO {}").format(sql.Identifier(name)))
    try:
        cfg = config(tmp_path, pg_server, database, user=name, password="x", allow_superuser=False)
        with pytest.raises(UnsafeUpstream, match="is a member of pg_read_server_files"):
            next(running(cfg, tmp_path / "pki" / "ca.pem"))
        checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
        assert checked.returncode == 1 and "pg_read_server_files" in checked.stderr
    finally:
        _drop(pg_server, database, name)


def test_the_least_privileged_login_is_accepted_and_works(
    tmp_path: Path, pg_server: LocalPostgres, database: str, login: tuple[str, str]
) -> None:
    name, password = login
    cfg = config(tmp_path, pg_server, database, user=name, password=password, allow_superuser=False)
    checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
    assert checked.returncode == 0, checked.stderr
    for gw in running(cfg, tmp_path / "pki" / "ca.pem"):
        with psycopg.connect(gw.dsn("alice"), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM patients").fetchone() == (5,)
            assert conn.execute("SELECT current_user").fetchone() == (name,)
            # What the login was not granted, the server refuses even when policy allows it
            # (not CREATE in public: PUBLIC may do that before PostgreSQL 15).
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("ALTER TABLE patients ADD COLUMN wardgate_not_mine int")


def test_an_unreachable_target_is_reported_not_refused(
    tmp_path: Path, pg_server: LocalPostgres, database: str
) -> None:
    config(tmp_path, pg_server, "wardgate_no_such_database", allow_superuser=False)
    checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
    assert checked.returncode == 0, checked.stderr
    assert "warning: target 'test': cannot check its login's privileges" in checked.stderr


@pytest.mark.parametrize("superuser", [False, True], ids=["least-privileged", "superuser"])
def test_a_target_unreachable_at_start_is_refused_until_verified(
    tmp_path: Path,
    pg_server: LocalPostgres,
    login: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    superuser: bool,
) -> None:
    """The target's database does not exist yet when the gateway starts: its statements are
    refused (fail closed) until a check in the background verifies the login; a superuser
    found then stays refused."""
    monkeypatch.setattr(upstream, "RECHECK_SECONDS", 0.2)
    late = f"wardgate_late_{uuid.uuid4().hex[:8]}"
    name, password = (pg_server.user, pg_server.password or "") if superuser else login
    fields: dict[str, Any] = {"user": name, "allow_superuser": False}
    if password:
        fields["password"] = password
    cfg = config(tmp_path, pg_server, late, **fields)
    for gw in running(cfg, tmp_path / "pki" / "ca.pem"):
        create_database_if_missing(pg_server.dsn("postgres"), late)
        try:
            with psycopg.connect(gw.dsn("alice"), autocommit=True) as conn:
                with pytest.raises(errors.InsufficientPrivilege, match="not yet verified"):
                    conn.execute("SELECT 1")
                deadline = time.monotonic() + 10
                while True:
                    try:
                        answer = conn.execute("SELECT 1").fetchone()
                        break
                    except errors.InsufficientPrivilege as exc:
                        if "not yet verified" not in str(exc) or time.monotonic() > deadline:
                            message = str(exc)
                            answer = None
                            break
                        time.sleep(0.1)
            if superuser:
                assert answer is None and "is a superuser" in message
            else:
                assert answer == (1,)
        finally:
            with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(late))
                )
