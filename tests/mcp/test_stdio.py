"""`wardgate mcp` over stdio, driven with the MCP SDK's client, against a real gateway.

The gateway is conftest.py's. The MCP server signs in as the agent `cursor` acting for alice
(engineer); carol (compliance) decides.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.mcp.conftest import BULK, TOOLS, Setup
from tests.mcp.conftest import call as _call
from tests.protocols.postgres.raw import wait_for_event
from wardgate.audit.events import identity_event
from wardgate.identity.state import StateStore


def _params(s: Setup, agent: str = "cursor") -> StdioServerParameters:
    http_port = s.gw.gateway.addresses["http"][1]
    args = ["-m", "wardgate", "mcp", "--gateway-host", "127.0.0.1", "--pg-port", str(s.gw.port),
            "--ca", str(s.gw.ca), "--user", agent, "--database", "test",
            "--http-url", f"https://127.0.0.1:{http_port}", "--api", "ehr",
            "--gateway-config", str(s.config_path)]  # fmt: skip
    return StdioServerParameters(
        command=sys.executable, args=args, env={"WARDGATE_CREDENTIAL": s.credentials[agent]}
    )


@asynccontextmanager
async def _session(s: Setup, agent: str = "cursor") -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(_params(s, agent)) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def test_tools_and_targets(setup: Setup) -> None:
    async def scenario() -> None:
        async with _session(setup) as session:
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            failed, text = await _call(session, "list_targets")
            assert not failed and json.loads(text) == {"databases": ["test"], "apis": ["ehr"]}
            failed, text = await _call(session, "describe", target="test")
            assert not failed, text
            columns = {c["column"]: c["phi"] for c in json.loads(text)["tables"]["public.patients"]}
            assert columns["ssn"] == "SSN" and columns["id"] is None
            failed, text = await _call(session, "query", target="nope", sql="SELECT 1")
            assert failed and "unknown database target" in text

    asyncio.run(scenario())


def test_a_query_returns_masked_rows(setup: Setup) -> None:
    async def scenario() -> tuple[bool, str]:
        async with _session(setup) as session:
            return await _call(
                session, "query", target="test",
                sql="SELECT id, first_name, ssn FROM patients WHERE id = 2",
            )  # fmt: skip

    failed, text = asyncio.run(scenario())
    assert not failed, text
    answer = json.loads(text)
    assert answer["columns"] == ["id", "first_name", "ssn"] and answer["row_count"] == 1
    assert all(row[1] == "[NAME]" and row[2] == "[SSN]" for row in answer["rows"])
    assert not [ssn for ssn in setup.ssns if ssn in text]
    filtered = "SELECT id, first_name, ssn FROM patients WHERE id = 2"
    statement = wait_for_event(setup.gw, type="statement", statement=filtered)
    assert statement["who"]["subject"] == "agent:cursor"
    assert statement["who"]["on_behalf_of"] == ["alice"]


def test_a_bulk_query_waits_for_approval_then_runs(setup: Setup) -> None:
    async def scenario() -> tuple[str, str, str, str]:
        async with _session(setup) as session:
            started = time.monotonic()
            failed, pending = await _call(session, "query", target="test", sql=BULK)
            assert not failed and time.monotonic() - started < 5, pending
            match = re.search(r"pending approval: (apr_[0-9a-f]+)", pending)
            assert match, pending
            request = match.group(1)
            _, still = await _call(session, "approval_status", request_id=request)
            setup.store.approve(request, "carol", ("compliance",), "quarterly report")
            failed, rows = await _call(
                session, "approval_status", request_id=request, wait_seconds=15
            )
            assert not failed, rows
            # the grant was single-use: the same statement again is held, and carol denies it
            _, again = await _call(session, "query", target="test", sql=BULK)
            second = re.search(r"apr_[0-9a-f]+", again)
            assert second and second.group(0) != request, again
            setup.store.deny(second.group(0), "carol", ("compliance",), "filter by patient id")
            failed, denied = await _call(
                session, "approval_status", request_id=second.group(0), wait_seconds=15
            )
            assert failed, denied
            return request, still, rows, denied

    request, still, rows, denied = asyncio.run(scenario())
    assert "still pending" in still
    answer = json.loads(rows)
    assert answer["row_count"] == 20 and "ssn" in answer["columns"]
    ssn = answer["columns"].index("ssn")
    assert all(row[ssn] == "[SSN]" for row in answer["rows"])
    assert not [s for s in setup.ssns if s in rows]
    assert "denied by carol: filter by patient id" in denied
    held = setup.store.get(request)
    assert held.status != "pending"
    granted = wait_for_event(setup.gw, type="approval.granted", approval=request)
    assert granted["requester"] == "agent:cursor", granted
    ran = wait_for_event(setup.gw, type="statement", statement=BULK)
    assert ran["who"]["subject"] == "agent:cursor" and ran["who"]["on_behalf_of"] == ["alice"]


def test_fhir_through_the_gateway(setup: Setup) -> None:
    async def scenario() -> tuple[str, str]:
        async with _session(setup) as session:
            failed, found = await _call(
                session, "fhir_search", api_name="ehr", resource_type="Patient",
                params={"_count": "3"},
            )  # fmt: skip
            assert not failed, found
            first = json.loads(found)["entry"][0]["resource"]["id"]
            failed, read = await _call(
                session, "fhir_read", api_name="ehr", resource_type="Patient", resource_id=first
            )
            assert not failed, read
            return found, read

    found, read = asyncio.run(scenario())
    names = [e["resource"]["name"][0]["family"] for e in json.loads(found)["entry"]]
    assert names == ["[NAME]"] * 3
    assert json.loads(read)["id"].startswith("pid-")
    event = wait_for_event(setup.gw, type="api_call", path="/ehr/Patient", status=200)
    assert event["who"]["subject"] == "agent:cursor" and event["who"]["on_behalf_of"] == ["alice"]


def test_revoking_the_owner_fails_the_next_call(setup: Setup) -> None:
    async def scenario() -> list[tuple[bool, str]]:
        out = []
        async with _session(setup, "helper") as session:
            out.append(await _call(session, "query", target="test", sql="SELECT 1 AS x"))
            state = StateStore(setup.state_path)
            event = identity_event("user.revoked", "test", time.time(), subject="dave")
            state.revoke_human("dave", "offboarded", event)
            state.close()
            wait_for_event(setup.gw, type="session.terminated", who__subject="agent:helper")
            out.append(await _call(session, "query", target="test", sql="SELECT 2"))
            out.append(await _call(session, "query", target="test", sql="SELECT 3"))
            out.append(await _call(session, "fhir_search", api_name="ehr", resource_type="Patient"))
        return out

    results = asyncio.run(scenario())
    assert results[0] == (False, results[0][1]) and json.loads(results[0][1])["rows"] == [[1]]
    failed, ended = results[1]
    assert failed and "access of 'dave' was revoked" in ended and "Traceback" not in ended
    failed, refused = results[2]
    assert failed and "28P01" in refused and "revoked" in refused
    failed, http = results[3]
    assert failed and "401" in http


def test_refuses_to_start_without_a_credential() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wardgate", "mcp", "--database", "test"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2 and "WARDGATE_CREDENTIAL" in done.stderr
