"""Shared by the stdio and Streamable HTTP tests: a real gateway for the MCP servers.

The gateway has the demo schema (PHI labelled), a policy that holds an engineer's unfiltered PHI
reads for a compliance officer, and the development FHIR server as the API `ehr`. The agents
`cursor` (for alice) and `helper` (for dave) have credentials; carol (compliance) decides. Each
test module gets its own gateway (the fixture is module-scoped).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import ClientSession

from tests.approvals.test_hold_gateway import held_bulk_reads
from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from wardgate.approvals.store import ApprovalStore
from wardgate.audit.events import identity_event
from wardgate.demo.fhir import running_fhir_server
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import seed
from wardgate.identity.credentials import issue
from wardgate.identity.state import StateStore

API_KEY = "fhir-upstream-key-" + "m" * 24
BULK = "SELECT * FROM patients"
TOOLS = {"list_targets", "describe", "query", "fhir_read", "fhir_search", "approval_status"}


@dataclass
class Setup:
    gw: RunningGateway
    config_path: Path
    ssns: set[str]
    credentials: dict[str, str]  # agent name -> wgc_...

    @property
    def store(self) -> ApprovalStore:
        found = self.gw.gateway.approvals
        assert found is not None
        return found

    @property
    def state_path(self) -> Path:
        path = self.gw.gateway.config.identity.state
        assert path is not None
        return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres) -> Iterator[Setup]:
    with (
        temporary_database(pg_server, "wardgate_mcp") as name,
        running_fhir_server(API_KEY) as fhir,
    ):
        seed(pg_server.dsn(name), patients=20)
        with psycopg.connect(pg_server.dsn(name)) as conn:
            ssns = {row[0] for row in conn.execute("SELECT ssn FROM patients")}
        tmp = tmp_path_factory.mktemp("mcp")
        pki = tmp_path_factory.mktemp("pki")

        def mcp(raw: dict[str, Any]) -> None:
            held_bulk_reads(raw)
            raw["approvals"]["wait"] = 60
            tls = raw["listeners"]["postgres"]["tls"]
            raw["listeners"]["http"] = {"host": "127.0.0.1", "port": 0, "tls": tls}
            raw["apis"] = [
                {
                    "name": "ehr",
                    "kind": "fhir",
                    "url": fhir.base_url,
                    "auth": {"api_key": {"header": "X-API-Key", "value": API_KEY}},
                }
            ]
            # the Streamable HTTP endpoint (test_http.py); test_stdio.py does not use it
            raw["listeners"]["api"] = {"host": "127.0.0.1", "port": 0, "tls": tls, "mcp": True}

        target = target_entry(pg_server, name)
        config = build_config(tmp, pki, target, auth="password", edit=mcp)
        path = tmp / "wardgate.yaml"
        assert config.identity.state is not None
        state = StateStore(config.identity.state)
        state.add_human("carol", roles=("compliance",), source="test")
        credentials = {}
        for agent, owner in (("cursor", "alice"), ("helper", "dave")):
            human = state.add_human(owner, roles=("engineer",), source="test")
            event = identity_event("credential.created", "test", time.time())
            credentials[agent] = issue(state, "agent", agent, human, 3600, event).secret
        state.close()
        for gw in running(config, pki / "ca.pem"):
            yield Setup(gw, path, ssns, credentials)


async def call(session: ClientSession, tool: str, **arguments: object) -> tuple[bool, str]:
    result = await session.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return bool(getattr(result, "is_error", getattr(result, "isError", False))), text
