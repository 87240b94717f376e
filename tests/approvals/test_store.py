"""The approval rules against a real state file: votes, grants, expiry, and the audit outbox."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wardgate.api.asgi import AsgiListener
from wardgate.approvals.notify import notify
from wardgate.approvals.store import ApprovalError, ApprovalStore
from wardgate.identity.state import StateStore
from wardgate.sql.fingerprint import statement_digest

STATEMENT = "SELECT * FROM patients"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ApprovalStore]:
    StateStore(tmp_path / "state.db").close()  # the identity schema (and its outbox) first
    approvals = ApprovalStore(tmp_path / "state.db")
    yield approvals
    approvals.close()


def held(store: ApprovalStore, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "why": "an unfiltered read of PHI", "approvers": ("compliance",), "needed": 1,
    }  # fmt: skip
    values.update(overrides)
    requester = values.pop("requester", "agent:cursor")
    chain = values.pop("on_behalf", ("alice",))
    approval = store.request(
        requester, chain, "clinic", STATEMENT, statement_digest(STATEMENT), **values
    )
    return approval.id


def events(store: ApprovalStore) -> list[dict[str, Any]]:
    state = StateStore(store.path)
    try:
        return [event for _, event in state.outbox()]
    finally:
        state.close()


def test_approved_once_runs_once(store: ApprovalStore) -> None:
    approval = held(store)
    digest = statement_digest("select *  from PATIENTS")  # another spelling, the same statement
    assert store.use_grant("agent:cursor", "clinic", digest) is None  # not approved yet
    done = store.approve(approval, "carol", ("compliance",), "ticket 4711")
    assert done.status == "approved"
    used = store.use_grant("agent:cursor", "clinic", digest)
    assert used is not None and used.status == "used"
    assert store.use_grant("agent:cursor", "clinic", digest) is None  # single-use
    kinds = [e["type"] for e in events(store)]
    assert kinds == ["approval.requested", "approval.granted", "approval.used"]
    granted = events(store)[1]
    assert granted["who"]["claimed_user"] == "carol" and granted["on_behalf_of"] == ["alice"]


def test_grant_is_bound_to_requester_target_and_statement(store: ApprovalStore) -> None:
    store.approve(held(store), "carol", ("compliance",), "ok")
    digest = statement_digest(STATEMENT)
    assert store.use_grant("agent:other", "clinic", digest) is None
    assert store.use_grant("agent:cursor", "billing", digest) is None
    other = statement_digest("SELECT * FROM patients WHERE id = 1")
    assert store.use_grant("agent:cursor", "clinic", other) is None
    assert store.use_grant("agent:cursor", "clinic", digest) is not None


def test_a_window_grant_serves_until_it_closes(store: ApprovalStore) -> None:
    done = store.approve(held(store, window=60.0), "carol", ("compliance",), "on call")
    digest = statement_digest(STATEMENT)
    assert done.decided is not None
    for _ in range(3):
        assert store.use_grant("agent:cursor", "clinic", digest, now=done.decided + 30) is not None
    assert store.use_grant("agent:cursor", "clinic", digest, now=done.decided + 61) is None


@pytest.mark.parametrize(
    ("approver", "roles", "reason", "message"),
    [
        ("alice", ("compliance",), "mine", "own request"),  # the owner of the requesting agent
        ("agent:cursor", ("compliance",), "me", "own request"),
        ("bob", ("clinician",), "sure", "not an approver"),
        ("carol", ("compliance",), "  ", "reason is required"),
    ],
)
def test_votes_the_rules_refuse(
    store: ApprovalStore, approver: str, roles: tuple[str, ...], reason: str, message: str
) -> None:
    approval = held(store)
    with pytest.raises(ApprovalError, match=message):
        store.approve(approval, approver, roles, reason)
    assert store.get(approval).status == "pending"


def test_two_approvals_needed_and_one_vote_each(store: ApprovalStore) -> None:
    approval = held(store, needed=2)
    assert store.approve(approval, "carol", ("compliance",), "ok").status == "pending"
    with pytest.raises(ApprovalError, match="voted"):
        store.approve(approval, "carol", ("compliance",), "again")
    assert store.approve(approval, "dana", ("compliance",), "ok").status == "approved"


def test_deny_ends_it_with_the_reason(store: ApprovalStore) -> None:
    approval = held(store)
    done = store.deny(approval, "carol", ("compliance",), "use a filtered query")
    assert (done.status, done.reason) == ("denied", "use a filtered query")
    with pytest.raises(ApprovalError, match="denied, not pending"):
        store.approve(approval, "dana", ("compliance",), "late")
    assert store.use_grant("agent:cursor", "clinic", statement_digest(STATEMENT)) is None


def test_expiry_and_withdrawal(store: ApprovalStore) -> None:
    old = held(store, ttl=0.001)
    left = held(store)
    time.sleep(0.01)  # past the first one's ttl, however fast the two were made
    assert store.expire_due() == 1
    store.withdraw(left, "the client disconnected")
    assert store.get(old).status == "expired" and store.get(left).status == "withdrawn"
    assert store.listing() == []
    with pytest.raises(ApprovalError, match="expired, not pending"):
        store.approve(old, "carol", ("compliance",), "late")


def test_webhook_message_names_no_statement(store: ApprovalStore) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(json.loads(await request.body()))
        return JSONResponse({"ok": True})

    loop = asyncio.new_event_loop()
    listener = AsgiListener("hook", Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                            "127.0.0.1", 0, None)  # fmt: skip
    ready = threading.Event()
    address: list[tuple[str, int]] = []

    def serve() -> None:
        address.append(loop.run_until_complete(listener.start()))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        approval = store.get(held(store))
        assert notify(f"http://127.0.0.1:{address[0][1]}/hook", approval)
        assert not notify("http://127.0.0.1:9/hook", approval)  # nothing listens: logged, False
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    text = received[0]["text"]
    assert approval.id in text and "agent:cursor" in text and "alice" in text
    assert "patients" not in text  # the statement (and its constants) stay out of chat
