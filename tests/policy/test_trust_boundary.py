"""Attacks 1, 2 and 6 of issue 14 through a real gateway in front of the local PostgreSQL, as
the demo's engineer (alice) would run them with psycopg and asyncpg: each is refused with
SQLSTATE 42501 and a reason, nothing reaches the server, and the audit records the refusal. An
administrator role (dan, ``dba``) may run the same, and its audit event says so."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import RunningGateway
from tests.policy.conftest import policy_gateway
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres, pg_bin

ONLY_ADMINS = "only an administrator role of target 'test' may run this"


@pytest.fixture(scope="module")
def bare(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    """No policy rules at all (the fast path is on), and an administrator role."""
    tmp, pki = tmp_path_factory.mktemp("bare"), tmp_path_factory.mktemp("pki")
    yield from policy_gateway(tmp, pki, pg_server, database, {"admin_roles": ["dba"]})


def refusal(gw: RunningGateway, user: str, statement: str) -> str:
    with (
        psycopg.connect(gw.dsn(user), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege) as caught,
    ):
        conn.execute(statement)
    assert caught.value.sqlstate == "42501"
    message = caught.value.diag.message_primary or ""
    event = wait_for_event(gw, statement=statement, decision="deny")
    assert event["outcome"] == "denied" and event["reason"] in message
    assert user in str(event["who"])
    return message


def test_attack_1_code_execution_through_do(gateway: RunningGateway) -> None:
    proof = Path("/tmp") / f"wardgate-pwned-{uuid.uuid4().hex}"
    program = f"DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PRO'||'GRAM ''id > {proof}'''; END $$"
    message = refusal(gateway, "alice", program)
    assert "DO runs procedural code" in message and ONLY_ADMINS in message
    assert not proof.exists()
    read = "DO $$BEGIN RAISE NOTICE '%',pg_read_file('/etc/hostname');END$$"
    assert "DO runs procedural code" in refusal(gateway, "alice", read)
    # A SQL-standard function body is refused too (tests/sql finds the call in its body).
    body = (
        "CREATE FUNCTION wardgate_f() RETURNS text LANGUAGE sql"
        " BEGIN ATOMIC SELECT pg_catalog.pg_read_file('/etc/hostname'); END"
    )
    assert "CREATE FUNCTION" in refusal(gateway, "alice", body)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("ALTER SYSTEM SET statement_timeout = '0'", "ALTER SYSTEM"),
        ("CREATE FUNCTION wardgate_c() RETURNS int LANGUAGE c AS 'x', 'y'", "CREATE FUNCTION"),
        ("CREATE EXTENSION file_fdw", "CREATE EXTENSION"),
        ("CREATE SERVER wardgate_s FOREIGN DATA WRAPPER file_fdw", "foreign server"),
        (
            "CREATE FOREIGN TABLE wardgate_ft (a text) SERVER wardgate_s OPTIONS (program 'id')",
            "foreign table",
        ),
        ("LOAD 'auto_explain'", "LOAD"),
        ("CALL wardgate_p()", "CALL"),
        ("SET session_preload_libraries = 'auto_explain'", "loads libraries"),
        ("SELECT set_config('role', 'postgres', false)", "set_config(role)"),
        ("COPY (SELECT 1) TO '/tmp/wardgate-copy'", "COPY reads or writes a file"),
    ],
)
def test_attack_2_server_changes(gateway: RunningGateway, statement: str, reason: str) -> None:
    message = refusal(gateway, "alice", statement)
    assert reason in message and ONLY_ADMINS in message


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_terminate_backend(0)",
        "SELECT pg_reload_conf()",
        "SELECT lo_from_bytea(0, 'x'::bytea)",
        "SELECT * FROM pg_ls_waldir()",
        "SELECT pg_catalog.pg_cancel_backend(0)",
        'SELECT U&"\\0070g_rotate_logfile"()',
        "DO $$BEGIN PERFORM 1; END$$",
    ],
)
def test_attack_6_no_rules_fast_path(bare: RunningGateway, statement: str) -> None:
    assert ONLY_ADMINS in refusal(bare, "alice", statement)


def test_attack_6_extended_protocol_with_asyncpg(bare: RunningGateway) -> None:
    async def attempt() -> Any:
        tls = ssl.create_default_context(cafile=str(bare.ca))
        conn = await asyncpg.connect(
            host="127.0.0.1", port=bare.port, user="alice", password="alice-secret",
            database="test", ssl=tls,
        )  # fmt: skip
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                await conn.fetch("SELECT lo_from_bytea(0, $1::bytea)", b"x")
            return caught.value
        finally:
            await conn.close()

    error = asyncio.run(attempt())
    assert error.sqlstate == "42501" and "large objects" in str(error)
    wait_for_event(bare, statement="SELECT lo_from_bytea(0, $1::bytea)", decision="deny")


def test_an_administrator_may_and_is_audited_as_such(bare: RunningGateway) -> None:
    statement = "DO $$BEGIN PERFORM 2; END$$"
    with psycopg.connect(bare.dsn("dan"), autocommit=True) as conn:
        conn.execute(statement)
    event = wait_for_event(bare, statement=statement, outcome="ok")
    assert event["decision"] == "allow"
    assert event["reason"] == (
        "administrator (dba) override: DO runs procedural code, which the gateway cannot judge"
    )


def test_psql_large_objects_are_refused(bare: RunningGateway) -> None:
    """psql's \\lo_import: libpq calls the large-object functions with FunctionCall messages,
    which name a function by OID only; refused, and nothing is imported."""
    done = subprocess.run(
        [pg_bin("psql"), "-X", "-At", bare.dsn("alice"), "-c", "\\lo_import /etc/hostname"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "wardgate: a function call message names its function by OID only" in done.stderr
    with psycopg.connect(bare.dsn("dan"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    assert row == (0,)  # nothing was imported
