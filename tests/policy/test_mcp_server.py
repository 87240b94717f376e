"""The reference PostgreSQL MCP server, pointed at the gateway with an engineer's credentials,
driven over stdio with the Python MCP SDK: its read-only transaction is no protection
(`COMMIT; CREATE TABLE ...` escapes it), the gateway's policy is."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.gateway_harness import RunningGateway
from tests.policy.mcp_server import McpUnavailable, install

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ATTACKS = [
    "COMMIT; CREATE TABLE mcp_escape (a int)",
    "COMMIT; INSERT INTO scratch VALUES (7)",
    "COMMIT; DROP TABLE big",
    "INSERT INTO scratch VALUES (7)",
    "CREATE TABLE mcp_plain (a int)",
    "SELECT 1; COMMIT; CREATE TABLE mcp_escape2 (a int)",
    "COMMIT; GRANT ALL ON big TO PUBLIC",
]


@pytest.fixture(scope="module")
def server_entry() -> Iterator[Path]:
    try:
        yield install()
    except McpUnavailable as exc:
        pytest.skip(str(exc))


def _url(gw: RunningGateway, user: str) -> str:
    password = quote(gw.password[user], safe="")
    return (
        f"postgresql://{user}:{password}@127.0.0.1:{gw.port}/test"
        f"?sslmode=verify-full&sslrootcert={quote(str(gw.ca))}"
    )


async def _calls(entry: Path, url: str, statements: list[str]) -> list[tuple[bool, str]]:
    node = shutil.which("node") or "node"
    params = StdioServerParameters(command=node, args=[str(entry), url])
    out = []
    async with stdio_client(params) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        for statement in statements:
            try:
                result = await session.call_tool("query", {"sql": statement})
            except Exception as exc:  # the server throws: a JSON-RPC error
                out.append((True, str(exc)))
                continue
            text = " ".join(getattr(c, "text", "") for c in result.content)
            failed = getattr(result, "is_error", getattr(result, "isError", False))  # SDK 2 / 1
            out.append((bool(failed), text))
    return out


def _tables(gw: RunningGateway) -> set[str]:
    target = gw.gateway.config.targets[0]
    dsn = f"host={target.host} port={target.port} dbname={target.database} user={target.user}" + (
        f" password={target.password.get_secret_value()}" if target.password else ""
    )
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_engineer_cannot_write_through_the_mcp_server(
    gateway: RunningGateway, server_entry: Path
) -> None:
    before = _tables(gateway)
    with psycopg.connect(gateway.dsn("bob"), autocommit=True) as conn:
        (scratch_before,) = conn.execute("SELECT count(*) FROM scratch").fetchone() or (0,)
    results = asyncio.run(
        _calls(server_entry, _url(gateway, "alice"), [*ATTACKS, "SELECT 42 AS x"])
    )
    for statement, (failed, text) in zip(ATTACKS, results, strict=False):
        assert failed, f"{statement!r} was not refused: {text}"
        assert "wardgate:" in text, text
    failed, text = results[-1]
    assert not failed and json.loads(text) == [{"x": 42}]  # reads still work
    assert _tables(gateway) == before
    with psycopg.connect(gateway.dsn("bob"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (scratch_before,)


def test_the_mcp_servers_read_only_wrapper_is_no_protection(
    gateway: RunningGateway, server_entry: Path
) -> None:
    """bob, whom no rule forbids writes, escapes the wrapper: the bypass is real."""
    results: list[Any] = asyncio.run(
        _calls(server_entry, _url(gateway, "bob"), ["COMMIT; CREATE TABLE mcp_bob (a int)"])
    )
    try:
        assert "mcp_bob" in _tables(gateway), results
    finally:
        with psycopg.connect(gateway.dsn("bob"), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS mcp_bob")
