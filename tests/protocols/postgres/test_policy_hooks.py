"""Pipeline hooks seen from real clients: a denial behaves like a PostgreSQL error, a row hook
rewrites rows, and an addon that breaks never lets a session carry on unchecked."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import extended, fields, login, message, query, wait_for_event
from wardgate.core.model import Decision, Statement, Verdict
from wardgate.core.pipeline import Addon
from wardgate.demo.postgres import LocalPostgres, pg_bin

REASON = "statements about forbidden things are not allowed"


class DenyForbidden(Addon):
    name = "deny-forbidden"

    def statement(self, request: Statement) -> Decision | None:
        if re.search(r"\bforbidden\b", request.text, re.IGNORECASE):
            return Decision(Verdict.DENY, REASON, self.name)
        return None


class Uppercase(Addon):
    """Every text-format value, upper-cased as text (so 'ß' becomes 'SS': the length changes)."""

    name = "uppercase"

    def row(self, request: Statement, values: list[bytes | None]) -> list[bytes | None]:
        assert len(request.columns) == len(values)
        return [
            v if v is None or column.binary else v.decode().upper().encode()
            for v, column in zip(values, request.columns, strict=True)
        ]


class BrokenPolicy(Addon):
    name = "broken-policy"

    def statement(self, request: Statement) -> Decision | None:
        if "explode" in request.text:
            raise RuntimeError("policy engine fell over")
        return None


class BrokenRecorder(Addon):
    name = "broken-recorder"

    def statement_end(self, request: Statement) -> None:
        if "boom" in request.text:
            raise RuntimeError("could not record")


def gateway_with(
    addons: list[Addon],
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg: LocalPostgres,
    database: str,
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("gw-hooks")
    config = build_config(tmp, pki_dir, target_entry(pg, database))
    yield from running(config, pki_dir / "ca.pem", addons)


@pytest.fixture(scope="module")
def deny_gw(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
) -> Iterator[RunningGateway]:
    yield from gateway_with([DenyForbidden()], tmp_path_factory, pki_dir, pg_server, target_db)


@pytest.fixture(scope="module")
def upper_gw(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
) -> Iterator[RunningGateway]:
    yield from gateway_with([Uppercase()], tmp_path_factory, pki_dir, pg_server, target_db)


@pytest.fixture(scope="module")
def broken_gw(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
) -> Iterator[RunningGateway]:
    addons: list[Addon] = [BrokenPolicy(), BrokenRecorder()]
    yield from gateway_with(addons, tmp_path_factory, pki_dir, pg_server, target_db)


@pytest.fixture
def table(pg_server: LocalPostgres, target_db: str) -> Iterator[str]:
    """A new table ``(v text)``, made directly on the server."""
    name = f"hooks_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.dsn(target_db), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (v text)")
        yield name
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def on_server(pg: LocalPostgres, database: str, table: str) -> list[str]:
    """The rows of ``table``, read on the server itself, not through the gateway."""
    with psycopg.connect(pg.dsn(database), autocommit=True) as conn:
        return [row[0] for row in conn.execute(f"SELECT v FROM {table} ORDER BY v")]


def psql(gw: RunningGateway, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pg_bin("psql"), "-X", "-At", "-v", "VERBOSITY=verbose", gw.dsn()],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )


def statements(gw: RunningGateway, needle: str) -> list[dict[str, Any]]:
    return [e for e in gw.events() if e["type"] == "statement" and needle in e["statement"]]


# ---- (a) a request hook that denies -------------------------------------------------------------


def test_psql_sees_42501_and_carries_on(
    deny_gw: RunningGateway, pg_server: LocalPostgres, target_db: str, table: str
) -> None:
    result = psql(
        deny_gw,
        f"SELECT 'before';\nINSERT INTO {table} VALUES ('forbidden');\nSELECT 'after';\n",
    )
    assert result.stdout.splitlines() == ["before", "after"]
    assert f"ERROR:  42501: wardgate: {REASON}" in result.stderr
    assert "HINT:  Ask an administrator" in result.stderr
    assert "syntax" not in result.stderr  # the stand-in statement's own error never shows
    assert on_server(pg_server, target_db, table) == []
    [event] = statements(deny_gw, f"INSERT INTO {table} VALUES ('forbidden')")
    assert (event["decision"], event["outcome"], event["reason"]) == ("deny", "denied", REASON)
    assert event["kind"] == "query" and event["who"]["subject"] == "alice"


def test_psql_denial_aborts_an_explicit_transaction(
    deny_gw: RunningGateway, pg_server: LocalPostgres, target_db: str, table: str
) -> None:
    script = (
        f"BEGIN;\nINSERT INTO {table} VALUES ('one');\nSELECT 'forbidden';\n"
        f"INSERT INTO {table} VALUES ('two');\nROLLBACK;\n"
        f"INSERT INTO {table} VALUES ('three');\n"
    )
    result = psql(deny_gw, script)
    assert "42501" in result.stderr
    assert "25P02: current transaction is aborted" in result.stderr
    assert on_server(pg_server, target_db, table) == ["three"]


def test_psycopg_extended_protocol_denial(
    deny_gw: RunningGateway, pg_server: LocalPostgres, target_db: str, table: str
) -> None:
    with psycopg.connect(deny_gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as excinfo:
            conn.execute(f"INSERT INTO {table} VALUES (%s || 'forbidden')", ("x ",))
        diag = excinfo.value.diag
        assert diag.sqlstate == "42501" and diag.severity == "ERROR"
        assert diag.message_primary == f"wardgate: {REASON}"
        assert diag.message_hint == "Ask an administrator if you need this."
        conn.execute(f"INSERT INTO {table} VALUES (%s)", ("allowed",))
        assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
    assert on_server(pg_server, target_db, table) == ["allowed"]
    [event] = statements(deny_gw, f"INSERT INTO {table} VALUES ($1 || 'forbidden')")
    assert (event["kind"], event["decision"], event["outcome"]) == ("execute", "deny", "denied")


def test_psycopg_denial_inside_a_transaction(
    deny_gw: RunningGateway, pg_server: LocalPostgres, target_db: str, table: str
) -> None:
    with psycopg.connect(deny_gw.dsn()) as conn:
        conn.execute(f"INSERT INTO {table} VALUES ('first')")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT 'forbidden'")
        for _ in range(2):
            with pytest.raises(errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        conn.execute(f"INSERT INTO {table} VALUES ('second')")
        conn.commit()
    assert on_server(pg_server, target_db, table) == ["second"]


def run_pipeline(conn: psycopg.Connection[Any], table: str, failing: str) -> list[object]:
    """A pipeline with ``failing`` in the middle of its second batch; what the client saw."""
    seen: list[object] = []
    with conn.pipeline() as pipeline:
        conn.execute(f"INSERT INTO {table} VALUES ('a')")
        pipeline.sync()
        # psycopg reads results whenever they are there, so an error could surface at any
        # execute; the sleep keeps it back until the whole batch is queued, as in a busy server.
        before = conn.execute(f"INSERT INTO {table} SELECT 'b' FROM pg_sleep(0.3) RETURNING v")
        conn.execute(failing)
        after = conn.execute(f"INSERT INTO {table} VALUES ('c') RETURNING v")
        with pytest.raises(psycopg.Error) as excinfo:
            pipeline.sync()
        seen.append(excinfo.value.sqlstate)
        seen.append(before.fetchone())
        with pytest.raises(psycopg.ProgrammingError):
            after.fetchone()  # never ran
    seen.append(conn.info.transaction_status.name)
    if not conn.autocommit:
        conn.rollback()
    seen.append(conn.execute("SELECT 'usable'").fetchone())
    return seen


@pytest.mark.parametrize("autocommit", [True, False])
def test_pipeline_denial_matches_a_real_error(
    deny_gw: RunningGateway,
    pg_server: LocalPostgres,
    target_db: str,
    table: str,
    autocommit: bool,
) -> None:
    with psycopg.connect(pg_server.dsn(target_db), autocommit=autocommit) as direct:
        expected = run_pipeline(direct, table, "SELECT 1/0")
    expected_rows = on_server(pg_server, target_db, table)
    with psycopg.connect(pg_server.dsn(target_db), autocommit=True) as admin:
        admin.execute(f"TRUNCATE {table}")
    denied = f"SELECT 'forbidden', '{table}'"
    with psycopg.connect(deny_gw.dsn(), autocommit=autocommit) as conn:
        got = run_pipeline(conn, table, denied)
    assert expected[0] == "22012" and got[0] == "42501"
    assert got[1:] == expected[1:]
    assert on_server(pg_server, target_db, table) == expected_rows
    # Autocommit: each batch is a transaction of its own, so 'b' went with the failed batch.
    assert expected_rows == (["a"] if autocommit else [])
    recorded = {e["statement"]: (e["decision"], e["outcome"]) for e in statements(deny_gw, table)}
    assert recorded == {
        f"INSERT INTO {table} VALUES ('a')": ("allow", "ok"),
        f"INSERT INTO {table} SELECT 'b' FROM pg_sleep(0.3) RETURNING v": ("allow", "ok"),
        denied: ("deny", "denied"),
        f"INSERT INTO {table} VALUES ('c') RETURNING v": ("allow", "skipped"),
    }


# ---- (b) a row hook -----------------------------------------------------------------------------


def test_row_hook_rewrites_text_rows(upper_gw: RunningGateway) -> None:
    with psycopg.connect(upper_gw.dsn(), autocommit=True) as conn:
        cur = conn.execute(
            "SELECT 'abc' || g, 'straße', NULL::text, g FROM generate_series(1, 1000) AS g"
        )
        rows = cur.fetchall()
        assert cur.rowcount == 1000
    assert rows == [(f"ABC{g}", "STRASSE", None, g) for g in range(1, 1001)]
    [event] = statements(upper_gw, "'straße'")
    assert (event["rows"], event["outcome"]) == (1000, "ok")


def test_row_hook_with_large_values_and_binary_columns(upper_gw: RunningGateway) -> None:
    with psycopg.connect(upper_gw.dsn(), autocommit=True) as conn:
        big = conn.execute("SELECT repeat('ab', 500000)").fetchone()
        assert big == ("AB" * 500000,)
        with conn.cursor(binary=True) as cur:
            # 97 is b'a' in its last byte: an addon that ignored the format would corrupt it.
            cur.execute("SELECT 97::int4, 'abc'::text")
            assert cur.fetchone() == (97, "abc")


def test_row_hook_through_psql(upper_gw: RunningGateway) -> None:
    result = psql(upper_gw, "SELECT 'hello', 'world';\nSELECT count(*) FROM pg_class;\n")
    lines = result.stdout.splitlines()
    assert lines[0] == "HELLO|WORLD" and int(lines[1]) > 10


# ---- (c) addons that fail -----------------------------------------------------------------------


def test_failing_request_hook_denies(
    broken_gw: RunningGateway, pg_server: LocalPostgres, target_db: str, table: str
) -> None:
    with psycopg.connect(broken_gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="could not evaluate its policy"):
            conn.execute(f"INSERT INTO {table} VALUES ('explode')")
        conn.execute(f"INSERT INTO {table} VALUES ('fine')")  # the session goes on
    assert on_server(pg_server, target_db, table) == ["fine"]
    [event] = statements(broken_gw, "'explode'")
    assert (event["decision"], event["outcome"]) == ("deny", "denied")


def test_failing_result_end_terminates_the_session(broken_gw: RunningGateway) -> None:
    with psycopg.connect(broken_gw.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 'fine'").fetchone() == ("fine",)
        with pytest.raises(errors.InternalError_) as excinfo:
            conn.execute("SELECT 'boom' AS secret")
        assert excinfo.value.diag.severity == "FATAL"
        assert excinfo.value.sqlstate == "XX000"
        assert "could not process this session safely" in str(excinfo.value)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 'never silently continues'")
    with login(broken_gw) as raw:
        raw.send(query("SELECT 'boom' AS secret"))
        got = raw.rest()
        assert [kind for kind, _ in got] == ["E"]  # no row, no completion: only the FATAL
        assert fields(got[0][1])["C"] == "XX000"
    event = wait_for_event(broken_gw, type="session.end", session__client_addr=raw.addr)
    assert event["reason"] == "broken-recorder failed in statement_end"


def test_failing_result_end_in_a_pipeline_ends_the_session_audited(
    broken_gw: RunningGateway,
) -> None:
    with login(broken_gw) as raw:
        raw.send(extended("SELECT 'boom 1'") + extended("SELECT 'boom 2'") + message("S"))
        got = raw.rest()
        assert [kind for kind, _ in got] == ["E"]
        error = fields(got[0][1])
        assert (error["S"], error["C"]) == ("FATAL", "XX000")
    # 'boom 2' is still in flight when the session ends, and its hook fails too; the end of the
    # session must be recorded all the same.
    event = wait_for_event(broken_gw, type="session.end", session__client_addr=raw.addr)
    assert event["reason"] == "broken-recorder failed in statement_end"
