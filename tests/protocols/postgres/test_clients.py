"""Real clients (psql, psycopg 3, asyncpg, pgbench) through a real gateway to a real PostgreSQL,
over TLS verified against the gateway's CA."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import RunningGateway
from wardgate.demo.postgres import pg_bin


def psql(gw: RunningGateway, *args: str, stdin: str | None = None, user: str = "alice") -> str:
    result = subprocess.run(
        [pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At", gw.dsn(user), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"psql failed ({result.returncode}): {result.stderr}")
    return result.stdout


def statements(gw: RunningGateway) -> list[dict[str, Any]]:
    return [e for e in gw.events() if e["type"] == "statement"]


# ---- psql ---------------------------------------------------------------------------------------


def test_psql_simple_query_over_verified_tls(gateway: RunningGateway) -> None:
    out = psql(gateway, "-c", "SELECT 40 + 2, 'hello'", "-c", "SHOW ssl")
    assert out.splitlines() == ["42|hello", "off"]  # the upstream leg here is plain loopback
    out = psql(gateway, "-c", "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert out.strip() == "f|"


def test_psql_copy_both_ways(gateway: RunningGateway) -> None:
    psql(gateway, "-c", "DROP TABLE IF EXISTS copy_t; CREATE TABLE copy_t (id int, note text)")
    rows = "".join(f"{i}\tnote {i}\n" for i in range(5000))
    psql(gateway, "-c", "\\copy copy_t FROM STDIN", stdin=rows)
    assert psql(gateway, "-c", "SELECT count(*), sum(id) FROM copy_t").strip() == "5000|12497500"
    out = psql(gateway, "-c", "\\copy (SELECT * FROM copy_t ORDER BY id) TO STDOUT")
    assert out == rows
    copies = [e for e in statements(gateway) if "copy_t" in e["statement"].lower()]
    assert any(e["rows"] == 5000 and e["statement"].startswith("COPY") for e in copies)


def test_psql_error_keeps_sqlstate(gateway: RunningGateway) -> None:
    result = subprocess.run(
        [
            pg_bin("psql"),
            "-X",
            "-At",
            gateway.dsn(),
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT * FROM no_such_table",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "42P01" in result.stderr and "no_such_table" in result.stderr


# ---- psycopg 3 ----------------------------------------------------------------------------------


def test_psycopg_prepared_binary_and_transactions(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        conn.execute("DROP TABLE IF EXISTS tx_t")
        conn.execute("CREATE TABLE tx_t (id int primary key, amount numeric, at date)")
        conn.commit()
        with conn.cursor(binary=True) as cur:
            for i in range(10):  # prepare_threshold: the fifth run is a named prepared statement
                cur.execute(
                    "INSERT INTO tx_t VALUES (%s, %s, '2024-01-02')",
                    (i, Decimal(i) / 4),
                    prepare=True,
                )
            conn.commit()
            cur.execute("SELECT id, amount, at FROM tx_t WHERE id = %s", (3,), prepare=True)
            row = cur.fetchone()
            assert row is not None and row[0] == 3 and row[1] == Decimal("0.75")
            assert cur.pgresult is not None and cur.pgresult.fformat(0) == 1  # binary
        conn.execute("INSERT INTO tx_t VALUES (100, 1, now())")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM tx_t").fetchone() == (10,)
        with pytest.raises(errors.UniqueViolation) as excinfo:
            conn.execute("INSERT INTO tx_t VALUES (1, 1, now())")
        assert excinfo.value.sqlstate == "23505"
        conn.rollback()
        with conn.transaction():
            conn.execute("UPDATE tx_t SET amount = 0 WHERE id < 5")
        assert conn.execute("SELECT sum(amount) FROM tx_t").fetchone() == (
            Decimal("8.75"),
        )  # (5+6+7+8+9) / 4
    recorded = [e for e in statements(gateway) if "tx_t" in e["statement"]]
    assert recorded and all(e["who"]["subject"] == "alice" for e in recorded)
    assert any(e["outcome"] == "error" and e["error"]["sqlstate"] == "23505" for e in recorded)


def test_psycopg_pipeline_mode(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        with conn.pipeline() as pipeline:
            cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
            pipeline.sync()
            results = [cur.fetchone() for cur in cursors]
            conn.execute("SELECT 1/0")  # an error in the middle of a pipeline
            # psycopg raises it as soon as the answer is there: at the next execute (PostgreSQL
            # 18 answers that fast) or at the sync.
            with pytest.raises(errors.DivisionByZero):
                conn.execute("SELECT 'skipped'")
                pipeline.sync()
            with contextlib.suppress(errors.PipelineAborted):
                pipeline.sync()  # the skipped statement's answer, if the error came before it
        assert conn.execute("SELECT 'after'").fetchone() == ("after",)
    assert results == [(i * 2,) for i in range(50)]
    outcomes = {e["statement"]: e["outcome"] for e in statements(gateway)}
    assert outcomes["SELECT 1/0"] == "error"
    assert outcomes.get("SELECT 'skipped'", "skipped") == "skipped"  # sent or not, it never ran


def test_psycopg_copy_both_ways(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_p; CREATE TABLE copy_p (id int, payload bytea)")
        with conn.cursor() as cur:
            with cur.copy("COPY copy_p FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "bytea"])
                for i in range(2000):
                    copy.write_row((i, os.urandom(64) if i % 2 else b"\x00" * 64))
            out = io.BytesIO()
            with cur.copy("COPY (SELECT id FROM copy_p ORDER BY id) TO STDOUT") as copy:
                for chunk in copy:
                    out.write(chunk)
        assert out.getvalue().split() == [str(i).encode() for i in range(2000)]


def test_psycopg_listen_notify(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as listener:
        listener.execute("LISTEN ward_channel")
        with psycopg.connect(gateway.dsn(), autocommit=True) as sender:
            sender.execute("NOTIFY ward_channel, 'patient-42 updated'")
        got = []
        for note in listener.notifies(timeout=5, stop_after=1):
            got.append((note.channel, note.payload))
    assert got == [("ward_channel", "patient-42 updated")]


def test_psycopg_notice(gateway: RunningGateway) -> None:
    notices: list[str] = []
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        # Not a DO block: the gateway refuses procedural code to a non-administrator.
        conn.execute("DROP TABLE IF EXISTS wardgate_no_such_table")
    assert notices == ['table "wardgate_no_such_table" does not exist, skipping']


def test_cancel_pg_sleep_returns_quickly(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        start = time.monotonic()
        timer.start()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        elapsed = time.monotonic() - start
        conn.rollback()
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)
    assert elapsed < 2.0


def test_terminate_and_parameter_status(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(application_name="ward-test")) as conn:
        assert conn.info.parameter_status("server_version")
        assert conn.info.parameter_status("application_name") == "ward-test"
        pid = conn.info.backend_pid
    assert pid > 0
    time.sleep(0.2)
    ends = [e for e in gateway.events() if e["type"] == "session.end"]
    assert any(e["session"]["application"] == "ward-test" for e in ends)


# ---- asyncpg ------------------------------------------------------------------------------------


def _sink(buf: io.BytesIO) -> Callable[[bytes], Awaitable[None]]:
    async def write(data: bytes) -> None:
        buf.write(data)

    return write


def test_asyncpg_prepared_binary_copy_listen(gateway: RunningGateway) -> None:
    async def scenario() -> None:
        ssl_ctx = __import__("ssl").create_default_context(cafile=str(gateway.ca))
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=gateway.port,
            user="alice",
            password="alice-secret",
            database="test",
            ssl=ssl_ctx,
        )
        try:
            await conn.execute("DROP TABLE IF EXISTS apg; CREATE TABLE apg (id int, name text)")
            await conn.executemany(
                "INSERT INTO apg VALUES ($1, $2)", [(i, f"n{i}") for i in range(300)]
            )
            stmt = await conn.prepare("SELECT id, name FROM apg WHERE id < $1 ORDER BY id")
            rows = await stmt.fetch(5)
            assert [tuple(r) for r in rows] == [(i, f"n{i}") for i in range(5)]
            await conn.copy_records_to_table("apg", records=[(1000 + i, "c") for i in range(100)])
            assert await conn.fetchval("SELECT count(*) FROM apg") == 400
            buf = io.BytesIO()
            await conn.copy_from_query("SELECT id FROM apg WHERE id >= 1000", output=_sink(buf))
            assert len(buf.getvalue().split()) == 100
            got: asyncio.Queue[str] = asyncio.Queue()
            await conn.add_listener("apg_ch", lambda *a: got.put_nowait(a[3]))
            await conn.execute("NOTIFY apg_ch, 'x1'")
            assert await asyncio.wait_for(got.get(), 5) == "x1"
            async with conn.transaction():
                await conn.execute("DELETE FROM apg WHERE id >= 1000")
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetch("SELECT pg_sleep(30)", timeout=0.5)
            assert await conn.fetchval("SELECT count(*) FROM apg") == 300
        finally:
            await conn.close()

    asyncio.run(scenario())


# ---- pgbench ------------------------------------------------------------------------------------


def test_pgbench_init_and_select_only_extended(gateway: RunningGateway) -> None:
    env = {
        **os.environ,
        "PGPASSWORD": "alice-secret",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(gateway.ca),
    }
    common = ["-h", "127.0.0.1", "-p", str(gateway.port), "-U", "alice"]
    init = subprocess.run(
        [pg_bin("pgbench"), *common, "-i", "-s", "1", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    run = subprocess.run(
        [pg_bin("pgbench"), *common, "-S", "-M", "extended", "-c", "4", "-t", "200", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "number of failed transactions: 0" in run.stdout
    assert "number of transactions actually processed: 800/800" in run.stdout
