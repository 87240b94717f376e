"""The Streamable HTTP MCP endpoint (``/mcp`` on the API listener), driven with the MCP SDK's
client, against conftest.py's real gateway. The assistant sends an agent credential as its
bearer token; the endpoint's MCP server reaches the gateway's own listeners with it."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.mcp.conftest import BULK, TOOLS, Setup, call
from tests.protocols.postgres.raw import wait_for_event
from wardgate.audit.events import identity_event
from wardgate.identity.credentials import issue
from wardgate.identity.state import StateStore

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = "application/json, text/event-stream"


def _base(s: Setup) -> str:
    return f"https://127.0.0.1:{s.gw.gateway.addresses['api'][1]}"


def _client(s: Setup, token: str | None) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(
        headers=headers,
        verify=ssl.create_default_context(cafile=str(s.gw.ca)),
        timeout=httpx2.Timeout(30.0, read=120.0),
    )


@asynccontextmanager
async def _session(s: Setup, token: str) -> AsyncIterator[ClientSession]:
    async with (
        _client(s, token) as client,
        streamable_http_client(_base(s) + "/mcp", http_client=client) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def _agent(s: Setup, agent: str, owner: str) -> str:
    """A fresh agent credential for a new owner (an engineer)."""
    state = StateStore(s.state_path)
    try:
        human = state.add_human(owner, roles=("engineer",), source="test")
        event = identity_event("credential.created", "test", time.time())
        return issue(state, "agent", agent, human, 3600, event).secret
    finally:
        state.close()


def test_tools_and_a_masked_query(setup: Setup) -> None:
    sql = "SELECT id, first_name, ssn FROM patients WHERE id = 3"

    async def scenario() -> tuple[set[str], str, str]:
        async with _session(setup, setup.credentials["cursor"]) as session:
            listed = await session.list_tools()
            failed, targets = await call(session, "list_targets")
            assert not failed, targets
            failed, rows = await call(session, "query", target="test", sql=sql)
            assert not failed, rows
            return {t.name for t in listed.tools}, targets, rows

    tools, targets, rows = asyncio.run(scenario())
    assert tools == TOOLS
    assert json.loads(targets) == {"databases": ["test"], "apis": ["ehr"]}
    answer = json.loads(rows)
    assert answer["columns"] == ["id", "first_name", "ssn"] and answer["row_count"] == 1
    assert all(row[1] == "[NAME]" and row[2] == "[SSN]" for row in answer["rows"])
    assert not [ssn for ssn in setup.ssns if ssn in rows]
    statement = wait_for_event(setup.gw, type="statement", statement=sql)
    assert statement["who"]["subject"] == "agent:cursor"
    assert statement["who"]["on_behalf_of"] == ["alice"]
    opened = wait_for_event(setup.gw, type="api_call", path="/mcp", who__subject="agent:cursor")
    assert opened["who"]["on_behalf_of"] == ["alice"] and opened["mcp_session"]


def test_a_bulk_query_waits_for_approval_then_runs(setup: Setup) -> None:
    async def scenario() -> tuple[str, str]:
        async with _session(setup, setup.credentials["cursor"]) as session:
            failed, pending = await call(session, "query", target="test", sql=BULK)
            assert not failed, pending
            match = re.search(r"pending approval: (apr_[0-9a-f]+)", pending)
            assert match, pending
            setup.store.approve(match.group(1), "carol", ("compliance",), "quarterly report")
            failed, rows = await call(
                session, "approval_status", request_id=match.group(1), wait_seconds=15
            )
            assert not failed, rows
            return match.group(1), rows

    request, rows = asyncio.run(scenario())
    answer = json.loads(rows)
    assert answer["row_count"] == 20
    ssn = answer["columns"].index("ssn")
    assert all(row[ssn] == "[SSN]" for row in answer["rows"])
    assert not [s for s in setup.ssns if s in rows]
    granted = wait_for_event(setup.gw, type="approval.granted", approval=request)
    assert granted["requester"] == "agent:cursor"


def test_no_token_is_a_401_naming_the_metadata(setup: Setup) -> None:
    async def scenario() -> list[httpx2.Response]:
        out = []
        async with _client(setup, None) as client:
            headers = {"Accept": ACCEPT}
            out.append(await client.post(_base(setup) + "/mcp", json=INITIALIZE, headers=headers))
            headers["Authorization"] = "Bearer wgc_0123456789abcdef_" + "x" * 43
            out.append(await client.post(_base(setup) + "/mcp", json=INITIALIZE, headers=headers))
            token = setup.credentials["cursor"]
            out.append(
                await client.post(
                    _base(setup) + "/mcp", params={"access_token": token}, json=INITIALIZE,
                    headers={"Accept": ACCEPT},
                )
            )  # fmt: skip
            out.append(await client.get(_base(setup) + "/.well-known/oauth-protected-resource"))
        return out

    missing, wrong, in_query, metadata = asyncio.run(scenario())
    assert missing.status_code == 401 and wrong.status_code == 401
    challenge = missing.headers["www-authenticate"]
    url = _base(setup) + "/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ") and f'resource_metadata="{url}"' in challenge
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert "revoked" in wrong.json()["error"]["message"]
    assert in_query.status_code == 400
    assert metadata.status_code == 200
    doc = metadata.json()
    assert doc["resource"] == _base(setup) + "/mcp"
    assert doc["bearer_methods_supported"] == ["header"] and "openid" in doc["scopes_supported"]
    assert "authorization_servers" not in doc  # no identity.oidc in this gateway
    refused = wait_for_event(
        setup.gw, type="api_call", path="/mcp", status=401, reason="no bearer token"
    )
    assert refused["outcome"] == "failure"
    wait_for_event(setup.gw, type="api_call", path="/mcp", status=400)


def test_another_token_cannot_use_the_session(setup: Setup) -> None:
    other = _agent(setup, "intruder", "mallory")

    async def scenario() -> tuple[httpx2.Response, httpx2.Response]:
        url = _base(setup) + "/mcp"
        async with _client(setup, setup.credentials["cursor"]) as mine:
            opened = await mine.post(url, json=INITIALIZE, headers={"Accept": ACCEPT})
            assert opened.status_code == 200, opened.text
            session = opened.headers["mcp-session-id"]
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            headers = {"Accept": ACCEPT, "mcp-session-id": session,
                       "mcp-protocol-version": "2025-06-18"}  # fmt: skip
            async with _client(setup, other) as theirs:
                stolen = await theirs.post(url, json=listing, headers=headers)
            await mine.post(
                url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers=headers,
            )  # fmt: skip
            still = await mine.post(url, json=listing, headers=headers)
            await mine.delete(url, headers=headers)
        return stolen, still

    stolen, still = asyncio.run(scenario())
    assert still.status_code == 200 and "list_targets" in still.text, still.text
    assert stolen.status_code == 403, stolen.text
    event = wait_for_event(setup.gw, type="api_call", path="/mcp", status=403)
    assert event["who"]["subject"] == "agent:intruder"
    assert event["who"]["on_behalf_of"] == ["mallory"]


@pytest.mark.slow
def test_revoking_the_owner_fails_the_next_call(setup: Setup) -> None:
    token = _agent(setup, "remote", "erin")

    async def scenario() -> tuple[tuple[bool, str], str, httpx2.Response]:
        async with _session(setup, token) as session:
            first = await call(session, "query", target="test", sql="SELECT 1 AS x")
            state = StateStore(setup.state_path)
            event = identity_event("user.revoked", "test", time.time(), subject="erin")
            state.revoke_human("erin", "offboarded", event)
            state.close()
            wait_for_event(setup.gw, type="session.terminated", who__subject="agent:remote")
            try:
                await call(session, "query", target="test", sql="SELECT 2")
            except Exception as exc:  # the SDK raises the endpoint's JSON-RPC error
                failure = str(exc)
            else:
                raise AssertionError("the call after revocation succeeded")
        async with _client(setup, token) as client:
            again = await client.post(
                _base(setup) + "/mcp", json=INITIALIZE, headers={"Accept": ACCEPT}
            )
        return first, failure, again

    first, failure, again = asyncio.run(scenario())
    assert not first[0] and json.loads(first[1])["rows"] == [[1]]
    assert "401" in failure and "revoked" in failure
    assert again.status_code == 401 and "resource_metadata=" in again.headers["www-authenticate"]
    refused = wait_for_event(
        setup.gw, type="api_call", path="/mcp", status=401,
        who__claimed_user="agent:remote for erin",
    )  # fmt: skip
    assert "revoked" in refused["reason"] and refused["who"]["verified"] is False
