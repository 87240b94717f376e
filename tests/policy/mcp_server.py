"""Installing the reference PostgreSQL MCP server (``@modelcontextprotocol/server-postgres``,
pinned in ``mcp/package-lock.json``) into a cache directory, as ``tests/idp/server.py`` does
for the test OpenID provider."""

from __future__ import annotations

from pathlib import Path

from tests.npm import NodeUnavailable, npm_install

HERE = Path(__file__).parent / "mcp"


class McpUnavailable(Exception):
    """Node or npm is missing: the tests that need the server are skipped."""


def install() -> Path:
    """The pinned server installed in a cache directory; the path of its entry point."""
    try:
        target = npm_install(HERE, "wardgate-test-mcp")
    except NodeUnavailable as exc:
        raise McpUnavailable(str(exc)) from exc
    return target / "node_modules/@modelcontextprotocol/server-postgres/dist/index.js"
