"""The MCP tools over the two gateway clients."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x names the same API FastMCP (untested here: 2.x is installed)
    from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[attr-defined,no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[import-not-found,no-redef]

from wardgate.mcp.errors import Refusal
from wardgate.mcp.fhir import FhirClient
from wardgate.mcp.jobs import Jobs
from wardgate.mcp.settings import Settings
from wardgate.mcp.sql import Pending, SqlClient

if TYPE_CHECKING:
    from wardgate.config import Config

MAX_WAIT = 50.0  # seconds approval_status may block; assistants time tool calls out near 60

COLUMNS = """
SELECT table_schema, table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY table_schema, table_name, ordinal_position
"""

INSTRUCTIONS = """Data behind wardgate, a gateway for protected health information. Every call
is made as this agent acting for its human owner: results are masked, risky statements wait for a
human approver ("pending approval: apr_..."; then call approval_status), and everything is
recorded and audited. Prefer filtered queries (WHERE id = ...) over bulk reads."""


def build(
    settings: Settings,
    closers: list[Callable[[], Awaitable[None]]] | None = None,
    gateway: Config | None = None,
) -> MCPServer:
    """The tools; ``closers`` receives what closes the clients and withdraws held calls, and
    ``gateway`` (the running gateway's own configuration) gives ``describe`` its PHI labels."""
    jobs = Jobs()
    pg = SqlClient(settings, jobs)
    fhir = FhirClient(settings, jobs)
    if closers is not None:
        closers.extend((jobs.close, pg.close, fhir.close))
    server = MCPServer("wardgate", instructions=INSTRUCTIONS)

    def database(target: str) -> str:
        if target not in settings.databases:
            raise ToolError(f"unknown database target {target!r}; known: {settings.databases}")
        return target

    def api(name: str) -> str:
        if name not in settings.apis:
            raise ToolError(f"unknown API {name!r}; known: {settings.apis}")
        return name

    @server.tool()
    async def list_targets() -> str:
        """The database targets (for query, describe) and APIs (for fhir_read, fhir_search)."""
        return json.dumps({"databases": list(settings.databases), "apis": list(settings.apis)})

    @server.tool()
    async def describe(target: str) -> str:
        """The tables and columns of a database target, with their PHI labels where known."""
        try:
            found = await pg.run(database(target), COLUMNS)
        except Refusal as exc:
            raise ToolError(str(exc)) from None
        if isinstance(found, Pending):
            raise ToolError("reading the schema was held for approval: " + found.text())
        if gateway is not None:
            labels, source = _target_labels(gateway, target, "from the gateway configuration")
        else:
            labels, source = _labels(settings.gateway_config, target)
        tables: dict[str, list[dict[str, Any]]] = {}
        for schema, table, column, data_type in found.rows:
            label = labels.get(f"{schema}.{table}.{column}") or labels.get(f"{table}.{column}")
            phi = "unknown" if source == "unknown" else label  # None: not PHI
            tables.setdefault(f"{schema}.{table}", []).append(
                {"column": column, "type": data_type, "phi": phi}
            )
        return json.dumps({"target": target, "phi_labels": source, "tables": tables})

    @server.tool()
    async def query(target: str, sql: str) -> str:
        """Run one SQL statement on a database target through the gateway. Returns the columns
        and rows as the gateway delivered them (masked), at most max_rows of them; or "pending
        approval: apr_..." when an approver must agree first."""
        try:
            found = await pg.run(database(target), sql)
        except Refusal as exc:
            raise ToolError(str(exc)) from None
        if isinstance(found, Pending):
            return found.text()
        return found.text(settings.max_rows)

    @server.tool()
    async def fhir_read(api_name: str, resource_type: str, resource_id: str) -> str:
        """GET <api>/<Type>/<id> through the gateway (masked FHIR JSON)."""
        try:
            return await fhir.read(api(api_name), resource_type, resource_id)
        except Refusal as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def fhir_search(
        api_name: str, resource_type: str, params: dict[str, str] | None = None
    ) -> str:
        """GET <api>/<Type>?params through the gateway (a masked FHIR Bundle)."""
        try:
            return await fhir.search(api(api_name), resource_type, params or {})
        except Refusal as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def approval_status(request_id: str, wait_seconds: float = 0) -> str:
        """The result of a held call (apr_... or http_...): its rows once approved and run, the
        denial with its reason, or "still pending". Waits up to wait_seconds (at most 50)."""
        try:
            done = await jobs.wait(request_id, min(wait_seconds, MAX_WAIT))
        except Refusal as exc:
            raise ToolError(str(exc)) from None
        if done is None:
            return (
                f"still pending: {request_id} waits for an approver "
                f"(`wardgate approvals approve {request_id} --reason '...'`)."
            )
        return done

    return server


def _labels(path: Path | None, target: str) -> tuple[dict[str, str], str]:
    """The target's ``phi`` labels from the gateway's configuration, and where they came from."""
    if path is None:
        return {}, "unknown"
    from wardgate.config import ConfigError, load

    try:
        config = load(path)
    except (ConfigError, OSError):
        return {}, "unknown"
    return _target_labels(config, target, f"from the gateway configuration {path}")


def _target_labels(config: Config, target: str, source: str) -> tuple[dict[str, str], str]:
    for entry in config.targets:
        if entry.name == target:
            return dict(entry.phi), source
    return {}, "unknown"
