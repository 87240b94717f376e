"""The gateway follows the server's session state, not the client's (issue 14, attacks 3 and 4).

Through a real gateway to a real PostgreSQL, as the engineer (alice, who sees no SSN): every way
of making the gateway's idea of a prepared statement, a portal or the search_path differ from
the server's, tried with hand-built wire messages, psycopg and asyncpg. Each test checks that no
raw SSN reaches the client and that the audit records the statement the server actually ran.

The database holds the demo's labelled ``public.patients`` and, in a schema named after the
target's login (what ``"$user"`` in the default search_path stands for), an unlabelled table
also called ``patients`` with harmless values: a session that makes the gateway resolve names in
the wrong schema sees ``public.patients`` raw.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
from psycopg import sql

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.masking.test_masking_gateway import demo_masking
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import Message, fields, login, message, query, wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import seed

SSN_QUERY = "SELECT ssn || '' FROM public.patients WHERE id = 1"
SELECT_SSN = "SELECT ssn || '' AS s FROM patients WHERE id = 1"


USER = "postgres"  # the target's login: "$user" in the default search_path


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    assert pg_server.user == USER
    with temporary_database(pg_server, "wardgate_state") as name:
        seed(pg_server.dsn(name), patients=5)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            schema = sql.Identifier(pg_server.user)
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            conn.execute(
                sql.SQL("CREATE TABLE {}.patients (id int, ssn text, last_name text)").format(
                    schema
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {}.patients VALUES (1, 'not-an-ssn', 'nobody')").format(schema)
            )
        yield name


@pytest.fixture(scope="module")
def ssn(pg_server: LocalPostgres, database: str) -> str:
    with psycopg.connect(pg_server.dsn(database)) as conn:
        row = conn.execute("SELECT ssn FROM public.patients WHERE id = 1").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    pki = tmp_path_factory.mktemp("pki")
    config = build_config(
        tmp_path_factory.mktemp("state"),
        pki,
        target_entry(pg_server, database),
        edit=demo_masking,
    )
    yield from running(config, pki / "ca.pem")


def parse(name: str, text: str) -> bytes:
    return message("P", name.encode() + b"\x00" + text.encode() + b"\x00" + struct.pack("!h", 0))


def bind(portal: str, statement: str) -> bytes:
    body = portal.encode() + b"\x00" + statement.encode() + b"\x00"
    return message("B", body + struct.pack("!hhh", 0, 0, 0))


def execute(portal: str = "") -> bytes:
    return message("E", portal.encode() + b"\x00" + struct.pack("!i", 0))


def close(which: str, name: str) -> bytes:
    return message("C", which.encode() + name.encode() + b"\x00")


SYNC = message("S")


def exchange(gw: RunningGateway, *batches: bytes, pipelined: bool = True) -> list[Message]:
    """Send the batches (each ending in Sync) at once, or each after the previous one's
    ReadyForQuery; every message the client gets back."""
    conn = login(gw, "alice", "test")
    got: list[Message] = []
    try:
        if pipelined:
            conn.send(b"".join(batches))
            for _ in batches:
                got += conn.until_ready()
        else:
            for batch in batches:
                conn.send(batch)
                got += conn.until_ready()
    finally:
        conn.close()
    return got


def seen(got: list[Message]) -> bytes:
    return b"".join(body for _, body in got)


def statements(gw: RunningGateway) -> list[tuple[str, str]]:
    return [(e.get("statement", ""), e.get("outcome", "")) for e in gw.events()]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
def test_a_duplicate_parse_does_not_replace_the_statement(
    gateway: RunningGateway, ssn: str, pipelined: bool
) -> None:
    got = exchange(
        gateway,
        parse("s1", SSN_QUERY) + SYNC,
        parse("s1", "SELECT 'x'::text") + SYNC,  # the server refuses: s1 exists
        bind("", "s1") + execute() + SYNC,
        pipelined=pipelined,
    )
    assert [k for k, _ in got if k == "E"] == ["E"]  # the duplicate Parse, 42P05
    assert b"42P05" in seen(got)
    rows = [body for kind, body in got if kind == "D"]
    assert len(rows) == 1
    assert ssn.encode() not in seen(got)
    event = wait_for_event(gateway, type="statement", statement=SSN_QUERY, outcome="ok")
    assert event["masking"]["masked"] == {"SSN": 1}
    assert ("SELECT 'x'::text", "ok") not in statements(gateway)


def test_a_duplicate_parse_cannot_smuggle_a_file_read(gateway: RunningGateway) -> None:
    read = "SELECT pg_read_file('/etc/hostname')"
    hostname = Path("/etc/hostname").read_bytes().strip()
    got = exchange(
        gateway,
        parse("f1", read) + SYNC,  # a Parse runs nothing: the Execute is what is judged
        parse("f1", "SELECT 'x'::text") + SYNC,
        bind("", "f1") + execute() + SYNC,
    )
    errors = [body for kind, body in got if kind == "E"]
    assert len(errors) == 2 and b"42501" in errors[1], got
    assert not [k for k, _ in got if k == "D"]
    assert hostname not in seen(got)
    wait_for_event(gateway, type="statement", statement=read, outcome="denied")


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
def test_close_and_parse_skipped_after_an_error_change_nothing(
    gateway: RunningGateway, ssn: str, pipelined: bool
) -> None:
    got = exchange(
        gateway,
        parse("s2", SSN_QUERY) + SYNC,
        # 1/0 fails; the server skips the Close and the Parse up to the Sync
        parse("", "SELECT 1/0") + bind("", "") + execute()
        + close("S", "s2") + parse("s2", "SELECT 'y'::text") + SYNC,
        bind("", "s2") + execute() + SYNC,
        pipelined=pipelined,
    )  # fmt: skip
    assert b"22012" in seen(got)  # division by zero
    assert len([k for k, _ in got if k == "D"]) == 1
    assert ssn.encode() not in seen(got)
    wait_for_event(gateway, type="statement", statement=SSN_QUERY, outcome="ok")
    assert ("SELECT 'y'::text", "ok") not in statements(gateway)


def test_sql_prepare_twice_keeps_the_first(gateway: RunningGateway, ssn: str) -> None:
    first = f"PREPARE w AS {SSN_QUERY}"
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        conn.execute(first)
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            conn.execute("PREPARE w AS SELECT 'a'::text")
        rows = conn.execute("EXECUTE w").fetchall()
    assert len(rows) == 1 and ssn not in str(rows)
    event = wait_for_event(gateway, type="statement", statement="EXECUTE w", outcome="ok")
    assert event["masking"]["masked"] == {"SSN": 1}


def test_sql_prepare_twice_in_one_query(gateway: RunningGateway, ssn: str) -> None:
    got = exchange(
        gateway,
        query(f"PREPARE v AS {SSN_QUERY}"),
        query("PREPARE v AS SELECT 'a'::text; EXECUTE v"),  # the second PREPARE fails
        query("EXECUTE v"),
    )
    assert b"42P05" in seen(got)
    assert len([k for k, _ in got if k == "D"]) == 1
    assert ssn.encode() not in seen(got)


def test_cursor_lineage_follows_the_server(gateway: RunningGateway, ssn: str) -> None:
    """A DECLARE the server refuses (the name is taken) does not lend its lineage to FETCH."""
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        with conn.transaction():
            conn.execute(f"DECLARE k CURSOR FOR {SSN_QUERY}")
            with pytest.raises(psycopg.errors.DuplicateCursor), conn.transaction():
                conn.execute("DECLARE k CURSOR FOR SELECT 'a'::text")
            rows = conn.execute("FETCH ALL FROM k").fetchall()
        # the transaction is over: the cursor is gone, its name is free again
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("FETCH ALL FROM k")
    assert len(rows) == 1 and ssn not in str(rows)


# ---- search_path (attack 4) ---------------------------------------------------------------------


def test_set_local_outside_a_transaction_changes_nothing(gateway: RunningGateway, ssn: str) -> None:
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        conn.execute("SET search_path = public")
        conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(USER)))
        rows = conn.execute(SELECT_SSN).fetchall()
        path = conn.execute("SHOW search_path").fetchone()
    assert path == ("public",)  # the server kept its search_path
    assert len(rows) == 1 and ssn not in str(rows)


def test_set_then_rollback(gateway: RunningGateway, ssn: str) -> None:
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        conn.execute("SET search_path = public")
        conn.execute("BEGIN")
        conn.execute('SET search_path = "$user"')
        conn.execute("ROLLBACK")
        rows = conn.execute(SELECT_SSN).fetchall()
    assert len(rows) == 1 and ssn not in str(rows)


def test_set_local_in_the_same_query_applies_to_the_rest(gateway: RunningGateway, ssn: str) -> None:
    """In one simple Query (an implicit transaction block), SET LOCAL does apply."""
    got = exchange(gateway, query(f"SET LOCAL search_path = public; {SELECT_SSN}"))
    assert len([k for k, _ in got if k == "D"]) == 1
    assert ssn.encode() not in seen(got)


def test_search_path_start_up_parameter(gateway: RunningGateway, ssn: str) -> None:
    async def scenario() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=gateway.port,
            user="alice",
            password=gateway.password["alice"],
            database="test",
            ssl=ssl.create_default_context(cafile=str(gateway.ca)),
            server_settings={"search_path": "public"},
        )
        try:
            assert await conn.fetchval("SHOW search_path") == "public"
            rows: list[asyncpg.Record] = await conn.fetch(SELECT_SSN)
            rows += await conn.fetch(SELECT_SSN)  # prepared by asyncpg, run again
            return rows
        finally:
            await conn.close()

    rows = asyncio.run(scenario())
    assert len(rows) == 2 and ssn not in str([tuple(r) for r in rows])


def test_set_config(gateway: RunningGateway, ssn: str) -> None:
    """set_config with constants is followed; with a computed value the search_path is not
    known, and a table's columns are masked whole until a RESET."""
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', 'public', false)")
        rows = conn.execute(SELECT_SSN).fetchall()
        conn.execute("RESET search_path")
        conn.execute("SELECT set_config('search_path', 'pub' || 'lic', false)")
        rows += conn.execute(SELECT_SSN).fetchall()
        conn.execute("RESET search_path")
        rows += conn.execute("SELECT ssn, last_name FROM patients WHERE id = 1").fetchall()
    assert len(rows) == 3 and ssn not in str(rows)
    assert rows[2] == ("not-an-ssn", "nobody")  # "$user".patients: unlabelled, raw


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
def test_a_statement_that_executes_itself_fails_on_the_server_and_the_session_goes_on(
    gateway: RunningGateway, pipelined: bool
) -> None:
    """A Parse named ``a`` of ``EXECUTE a`` (or two naming each other) runs itself: the server
    stops it at its stack depth limit (54001). The gateway's copy of the session used to
    follow it until Python's recursion limit, which ended the session."""
    got = exchange(
        gateway,
        parse("a", "EXECUTE a") + parse("b", "EXECUTE c") + parse("c", "EXECUTE b") + SYNC,
        bind("", "a") + execute() + SYNC,
        bind("", "b") + execute() + SYNC,
        parse("", "SELECT 41 + 1") + bind("", "") + execute() + SYNC,
        pipelined=pipelined,
    )
    errors = [fields(body) for kind, body in got if kind == "E"]
    assert [e["C"] for e in errors] == ["54001", "54001"], errors
    assert [body for kind, body in got if kind == "D"] == [b"\x00\x01\x00\x00\x00\x0242"]
