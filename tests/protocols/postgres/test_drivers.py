"""The drivers and tools people use, doing real work through the gateway over verified TLS:
psycopg 3 (sync, async, pipeline, COPY, server-side cursors), asyncpg (statement cache,
copy_records_to_table, listeners), SQLAlchemy 2 with an Alembic migration, node-postgres, and
psql's \\copy, \\watch and \\gexec. test_clients.py has the basic paths of each."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import sql

from tests.gateway_harness import RunningGateway
from tests.npm import NodeUnavailable, npm_install
from wardgate.demo.postgres import pg_bin

NODE = Path(__file__).parent / "node"


# ---- psycopg 3 ----------------------------------------------------------------------------------


def test_psycopg_server_side_cursor_copy_and_pipeline(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        conn.execute("DROP TABLE IF EXISTS drv_sync; CREATE TABLE drv_sync (id int, note text)")
        with conn.cursor().copy("COPY drv_sync (id, note) FROM STDIN") as copy:
            for i in range(20000):
                copy.write_row((i, f"note {i}"))
        conn.commit()
        with conn.cursor(name="big") as named:  # a server-side cursor, fetched in pieces
            named.itersize = 1000
            named.execute("SELECT id, note FROM drv_sync WHERE id %% %s = 0 ORDER BY id", (7,))
            seen = [row[0] for row in named]
        assert seen == list(range(0, 20000, 7))
        with conn.pipeline():
            cur = conn.cursor()
            cur.executemany(
                "UPDATE drv_sync SET note = %s WHERE id = %s", [(f"p{i}", i) for i in range(200)]
            )
            other = conn.execute("SELECT count(*) FROM drv_sync WHERE note LIKE 'p%%'")
        assert other.fetchone() == (200,)
        conn.commit()


def test_psycopg_async_everything(gateway: RunningGateway) -> None:
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(gateway.dsn()) as conn:
            await conn.execute("DROP TABLE IF EXISTS drv_async; CREATE TABLE drv_async (n int)")
            async with conn.cursor().copy("COPY drv_async FROM STDIN") as copy:
                for i in range(5000):
                    await copy.write_row((i,))
            async with conn.pipeline():
                for i in range(50):
                    await conn.execute("INSERT INTO drv_async VALUES (%s)", (-i,))
            await conn.commit()
            async with conn.cursor(name="async_named") as named:
                await named.execute("SELECT n FROM drv_async WHERE n >= 0 ORDER BY n")
                total = sum([row[0] async for row in named])
            assert total == sum(range(5000))
            out = b""
            async with conn.cursor().copy("COPY (SELECT count(*) FROM drv_async) TO STDOUT") as c:
                async for chunk in c:
                    out += bytes(chunk)
            assert out == b"5050\n"
            ident = sql.Identifier("drv_async")
            cur = await conn.execute(sql.SQL("SELECT min(n), max(n) FROM {}").format(ident))
            assert await cur.fetchone() == (-49, 4999)

    asyncio.run(scenario())


# ---- asyncpg -----------------------------------------------------------------------------------


def _asyncpg_kwargs(gw: RunningGateway) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": gw.port,
        "user": "alice",
        "password": gw.password["alice"],
        "database": "test",
        "ssl": ssl.create_default_context(cafile=str(gw.ca)),
    }


def test_asyncpg_statement_cache_copy_records_and_listeners(gateway: RunningGateway) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(**_asyncpg_kwargs(gateway), statement_cache_size=10)
        try:
            await conn.execute("DROP TABLE IF EXISTS drv_apg")
            await conn.execute("CREATE TABLE drv_apg (id int, t text)")
            records = [(i, f"r{i}") for i in range(3000)]
            result = await conn.copy_records_to_table("drv_apg", records=records)
            assert result == "COPY 3000"
            # The same statements many times: prepared once, then from the statement cache.
            for i in range(40):
                query = f"SELECT t FROM drv_apg WHERE id = $1 AND {i % 12} >= 0"
                assert await conn.fetchval(query, i) == f"r{i}"
            got: list[tuple[int, str, str]] = []
            arrived = asyncio.Event()

            def listener(c: Any, pid: int, channel: str, payload: object) -> None:
                got.append((pid, channel, str(payload)))
                arrived.set()

            await conn.add_listener("drv_channel", listener)
            await conn.execute("NOTIFY drv_channel, 'from asyncpg'")
            await asyncio.wait_for(arrived.wait(), 5)
            assert got == [(conn.get_server_pid(), "drv_channel", "from asyncpg")]
            await conn.remove_listener("drv_channel", listener)
            async with conn.transaction():
                stmt = await conn.prepare("SELECT id FROM drv_apg WHERE id < $1 ORDER BY id")
                ids = [r[0] async for r in stmt.cursor(500, prefetch=64)]
            assert ids == list(range(500))
        finally:
            await conn.close()

    asyncio.run(scenario())


# ---- SQLAlchemy 2 and Alembic --------------------------------------------------------------------

_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "drv_wards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.create_index("drv_wards_name", "drv_wards", ["name"], unique=True)
    op.bulk_insert(
        sa.table("drv_wards", sa.column("id"), sa.column("name")),
        [{"id": 1, "name": "cardiology"}, {"id": 2, "name": "oncology"}],
    )


def downgrade():
    op.drop_table("drv_wards")
"""


def test_sqlalchemy_and_alembic_migration(admin_gateway: RunningGateway, tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    gw = admin_gateway
    url = (
        f"postgresql+psycopg://alice:{gw.password['alice']}@127.0.0.1:{gw.port}/test"
        f"?sslmode=verify-full&sslrootcert={gw.ca}"
    )
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(_ENV_PY)
    (scripts / "versions" / "0001_wards.py").write_text(_MIGRATION)
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS drv_wards, alembic_version"))
        command.upgrade(config, "head")
        with Session(engine) as session:
            names = session.execute(text("SELECT name FROM drv_wards ORDER BY id")).scalars()
            assert list(names) == ["cardiology", "oncology"]
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == "0001"
        command.downgrade(config, "base")
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('drv_wards') IS NOT NULL")).scalar()
            assert exists is False
    finally:
        engine.dispose()


# ---- node-postgres ------------------------------------------------------------------------------


def test_node_postgres(gateway: RunningGateway) -> None:
    try:
        installed = npm_install(NODE, "wardgate-test-node-postgres")
    except NodeUnavailable as exc:
        pytest.skip(str(exc))
    script = installed / "client.mjs"
    shutil.copy2(NODE / "client.mjs", script)
    config = {
        "host": "127.0.0.1",
        "port": gateway.port,
        "user": "alice",
        "password": gateway.password["alice"],
        "database": "test",
        "ca": str(gateway.ca),
    }
    done = subprocess.run(
        ["node", str(script)],
        env={**os.environ, "WARDGATE_PG": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {
        "count": 50,
        "sum": 1225,
        "rowMode": [[1, "x"]],
        "error": "23505",
        "payload": "hello node",
        "ownPid": True,
    }


# ---- psql ---------------------------------------------------------------------------------------


def _psql(gw: RunningGateway, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pg_bin("psql"), "-X", "-At", gw.dsn(), *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_psql_copy_watch_and_gexec(gateway: RunningGateway, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("".join(f"{i},ward {i}\n" for i in range(300)))
    out = tmp_path / "out.csv"
    script = f"""
DROP TABLE IF EXISTS drv_psql;
CREATE TABLE drv_psql (id int, name text);
\\copy drv_psql FROM '{data}' WITH (FORMAT csv)
\\copy (SELECT * FROM drv_psql ORDER BY id) TO '{out}' WITH (FORMAT csv)
SELECT format('CREATE TEMP TABLE drv_gexec_%s (id int)', i) FROM generate_series(1, 3) i \\gexec
SELECT count(*) FROM pg_tables WHERE tablename LIKE 'drv_gexec_%';
CREATE TEMP SEQUENCE drv_watch;
SELECT 'tick ' || 12 / (4 - nextval('drv_watch')) \\watch 0.1
"""
    # \\watch runs until its query fails: the fourth round divides by zero (psql 15 has no count).
    done = _psql(gateway, script)
    assert out.read_text() == data.read_text()
    lines = done.stdout.splitlines()
    assert "3" in lines  # the three tables \\gexec made
    assert [line for line in lines if line.startswith("tick")] == ["tick 4", "tick 6", "tick 12"]
    assert "division by zero" in done.stderr
