"""What a client sees through the gateway is what it sees directly: other client encodings,
notifications from its own backend, errors in the middle of COPY or a rollback, and a server that
ends the session. Real clients, real PostgreSQL, TLS to the gateway."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import RunningGateway
from tests.protocols.postgres.raw import fields, login, query
from wardgate.demo.postgres import LocalPostgres, pg_bin


@pytest.fixture(params=["plain", "admin-store"])
def gw(request: pytest.FixtureRequest) -> RunningGateway:
    """Each gateway in turn: the plain one, and the administrator one with the audit store."""
    name = "gateway" if request.param == "plain" else "admin_gateway"
    found: RunningGateway = request.getfixturevalue(name)
    return found


# ---- client_encoding ----------------------------------------------------------------------------


def test_latin9_queries_columns_and_errors(gw: RunningGateway) -> None:
    with psycopg.connect(gw.dsn(client_encoding="LATIN9"), autocommit=True) as conn:
        assert conn.info.encoding == "iso8859-15"
        conn.execute('DROP TABLE IF EXISTS enc_latin9; CREATE TABLE enc_latin9 ("prénom" text)')
        conn.execute('CREATE UNIQUE INDEX ON enc_latin9 ("prénom")')
        conn.execute('INSERT INTO enc_latin9 ("prénom") VALUES (%s)', ("Müller €",))
        cur = conn.execute('SELECT "prénom", \'café\' AS "coût" FROM enc_latin9')
        assert [d.name for d in cur.description or ()] == ["prénom", "coût"]
        assert cur.fetchall() == [("Müller €", "café")]
        with pytest.raises(errors.UniqueViolation) as caught:
            conn.execute('INSERT INTO enc_latin9 ("prénom") VALUES (%s)', ("Müller €",))
        assert caught.value.diag.message_detail == 'Key ("prénom")=(Müller €) already exists.'
        with pytest.raises(errors.InvalidTextRepresentation) as raised:
            conn.execute("SELECT 'ungültig: €'::int")
        assert raised.value.diag.message_primary == (
            'invalid input syntax for type integer: "ungültig: €"'
        )
        assert conn.execute("SELECT 'still here ä'").fetchone() == ("still here ä",)


def test_client_encoding_changed_in_the_session(
    gateway: RunningGateway, admin_gateway: RunningGateway
) -> None:
    """An administrator may change the encoding in the session, and the gateway follows it; for
    other roles it stays what masking reads (UTF-8), as the trust boundary refuses the SET."""
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="client_encoding"):
            conn.execute("SET client_encoding TO 'WIN1252'")
        conn.execute("SET client_encoding TO 'UTF8'")  # what drivers send stays allowed
    with psycopg.connect(admin_gateway.dsn(), autocommit=True) as conn:
        conn.execute("SET client_encoding TO 'WIN1252'")
        assert conn.info.encoding == "cp1252"
        text = "naïve \u2013 \u201cquoted\u201d"  # an en dash and quotes cp1252 has, latin-1 not
        assert conn.execute("SELECT %s::text", (text,)).fetchone() == (text,)
        assert conn.execute(f"SELECT '{text}'").fetchone() == (text,)
        conn.execute("RESET client_encoding")
        assert conn.info.encoding == "utf-8"
        assert conn.execute("SELECT 'żółw'").fetchone() == ("żółw",)


def test_encoding_changed_behind_pipelined_statements_ends_the_session(
    admin_gateway: RunningGateway,
) -> None:
    gw = admin_gateway  # SET client_encoding is an administrator's (the trust boundary)
    # The SELECT was read by the gateway in UTF-8; the server reads it in LATIN1.
    with login(gw) as conn:
        conn.send(query("SET client_encoding TO 'LATIN1'") + query("SELECT 'read twice'"))
        errors_seen = [fields(body) for kind, body in conn.rest() if kind == "E"]
    assert errors_seen[-1]["C"] == "08P01"
    assert "client_encoding changed" in errors_seen[-1]["M"]


def test_an_encoding_the_gateway_cannot_read_ends_the_session(
    admin_gateway: RunningGateway,
) -> None:
    gw = admin_gateway  # SET client_encoding is an administrator's (the trust boundary)
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.FeatureNotSupported) as caught:
            conn.execute("SET client_encoding TO 'EUC_TW'")
            conn.execute("SELECT 1")
        assert "cannot read client_encoding EUC_TW" in str(caught.value)
        assert conn.closed


def test_psql_with_latin9(gw: RunningGateway) -> None:
    result = subprocess.run(
        [
            pg_bin("psql"),
            "-X",
            "-At",
            gw.dsn(),
            "-c",
            "SELECT 'été ' || chr(8364)".encode("latin9"),
        ],
        capture_output=True,
        timeout=60,
        env={"PGCLIENTENCODING": "LATIN9", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr.decode("iso8859-15")
    assert (
        result.stdout.decode("iso8859-15") == "été €\n"
    )  # chr(8364) is the euro sign in the UTF8 database


def test_start_up_parameters_in_the_declared_encoding(
    gw: RunningGateway, pg_server: LocalPostgres, target_db: str
) -> None:
    # What psql sends from a LATIN9 environment: the name in LATIN9 bytes.
    env = {b"PGCLIENTENCODING": b"LATIN9", b"PGAPPNAME": "ward é".encode("latin9")}
    env[b"PATH"] = b"/usr/bin:/bin"
    outputs = []
    for dsn in (gw.dsn(), pg_server.dsn(target_db)):
        done = subprocess.run(
            [pg_bin("psql"), "-X", "-At", dsn, "-c", "SHOW application_name"],
            capture_output=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr.decode("latin9")
        outputs.append(done.stdout)
    # The server keeps only ASCII of it: "?" for the byte up to PostgreSQL 15, "\xe9" from 16.
    assert outputs[0] == outputs[1] in (b"ward ?\n", b"ward \\xe9\n")


# ---- notifications ------------------------------------------------------------------------------


def test_notification_from_own_backend_carries_the_pid_the_client_knows(
    gw: RunningGateway,
) -> None:
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        conn.execute("LISTEN own_channel")
        conn.execute("NOTIFY own_channel, 'mine'")
        notes = list(conn.notifies(timeout=5, stop_after=1))
        assert [(n.payload, n.pid) for n in notes] == [("mine", conn.info.backend_pid)]


def test_notification_from_another_session_carries_the_pid_its_sender_knows(
    gw: RunningGateway, pg_server: LocalPostgres, target_db: str
) -> None:
    with psycopg.connect(gw.dsn(), autocommit=True) as listener:
        listener.execute("LISTEN shared_channel")
        with (
            psycopg.connect(gw.dsn(), autocommit=True) as sender,
            psycopg.connect(pg_server.dsn(target_db), autocommit=True) as direct,
        ):
            sender.execute("NOTIFY shared_channel, 'through the gateway'")
            direct.execute("NOTIFY shared_channel, 'direct'")
            sender_pid = sender.info.backend_pid
            direct_pid = direct.info.backend_pid  # not a client of the gateway: its real pid
            notes = list(listener.notifies(timeout=5, stop_after=2))
    assert [(n.payload, n.pid) for n in notes] == [
        ("through the gateway", sender_pid),
        ("direct", direct_pid),
    ]


# ---- error paths --------------------------------------------------------------------------------


def test_error_in_the_middle_of_copy_to_stdout(gw: RunningGateway) -> None:
    with psycopg.connect(gw.dsn()) as conn:
        got: list[bytes] = []
        cur = conn.cursor()
        with (
            pytest.raises(errors.DivisionByZero),
            cur.copy("COPY (SELECT 10 / (6 - i) FROM generate_series(1, 10) i) TO STDOUT") as copy,
        ):
            for chunk in copy:
                got.append(bytes(chunk))
        assert b"".join(got).split() == [b"2", b"2", b"3", b"5", b"10"]
        conn.rollback()
        assert conn.execute("SELECT 'after copy'").fetchone() == ("after copy",)


def test_original_error_survives_the_context_managers_rollback(gw: RunningGateway) -> None:
    with psycopg.connect(gw.dsn()) as conn:
        with pytest.raises(errors.DivisionByZero), conn.transaction():
            conn.execute("SELECT 1 / 0")
        assert conn.execute("SELECT 'after rollback'").fetchone() == ("after rollback",)
        # The inner block is a savepoint, rolled back inside an aborted transaction.
        with pytest.raises(errors.UndefinedTable), conn.transaction(), conn.transaction():
            conn.execute("SELECT * FROM no_such_table_at_all")
        assert conn.execute("SELECT 'after savepoint'").fetchone() == ("after savepoint",)


def test_copy_from_stdin_through_a_client_side_binding_cursor(gw: RunningGateway) -> None:
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_client; CREATE TABLE copy_client (n int, t text)")
        cur = psycopg.ClientCursor(conn)
        with cur.copy("COPY copy_client (n, t) FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"row {i} \u2013 ü"))
        assert cur.execute("SELECT count(*), sum(n) FROM copy_client").fetchone() == (1000, 499500)
        cur.execute("SELECT t FROM copy_client WHERE n = %s", (7,))
        assert cur.fetchone() == ("row 7 \u2013 ü",)


def test_a_failing_copy_source_leaves_the_next_statement_alone(gw: RunningGateway) -> None:
    """asyncpg answers a failing COPY source with CopyFail and a CancelRequest, and waits for the
    cancel connection to close before its next statement; that one must not be cancelled."""

    async def source() -> AsyncIterator[bytes]:
        yield b"a\tb\n"
        raise RuntimeError("failure in source")

    async def scenario() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=gw.port,
            user="alice",
            password=gw.password["alice"],
            database="test",
            ssl=ssl.create_default_context(cafile=str(gw.ca)),
        )
        try:
            await conn.execute(
                "DROP TABLE IF EXISTS copy_fail; CREATE TABLE copy_fail (a text, b text)"
            )
            for _ in range(5):
                with pytest.raises(RuntimeError, match="failure in source"):
                    await conn.copy_to_table("copy_fail", source=source())
                assert await conn.fetchval("SELECT 1 FROM pg_sleep(0.2)") == 1
        finally:
            await conn.close()

    asyncio.run(scenario())


def _backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("attempt", range(3))  # the FATAL used to race the close: try again
def test_server_ending_the_session_reaches_the_client(
    gw: RunningGateway, pg_server: LocalPostgres, target_db: str, attempt: int
) -> None:
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        server_pid = _backend_pid(conn)
        with psycopg.connect(pg_server.dsn(target_db), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (server_pid,))
        time.sleep(0.3)
        with pytest.raises(errors.AdminShutdown) as caught:
            conn.execute("SELECT 1")
        assert "administrator command" in str(caught.value)
        assert conn.closed


@pytest.mark.parametrize("attempt", range(5))  # the FATAL used to race the close: try again
def test_terminating_own_backend_ends_the_session(
    admin_gateway: RunningGateway, attempt: int
) -> None:
    with psycopg.connect(admin_gateway.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.AdminShutdown):
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert conn.closed
    with psycopg.connect(admin_gateway.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 'next session'").fetchone() == ("next session",)


@pytest.mark.parametrize("attempt", range(5))
def test_server_error_inside_a_transaction_block_reaches_the_client(
    admin_gateway: RunningGateway, attempt: int
) -> None:
    """The session ends inside ``with conn.transaction()``: the context manager's rollback fails
    on the closed connection, and the client must see the server's error, not that one."""
    with psycopg.connect(admin_gateway.dsn()) as conn:
        with pytest.raises(errors.AdminShutdown), conn.transaction():
            conn.execute("CREATE TEMP TABLE doomed (x int)")
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert conn.closed
