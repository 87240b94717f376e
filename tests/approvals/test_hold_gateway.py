"""Statements held for approval on the wire, with psycopg through a real gateway.

The policy: an engineer's unfiltered read of PHI needs a compliance officer's approval. alice
(engineer) asks; carol (compliance) approves, denies, or lets it time out.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import login, query, wait_for_event
from wardgate.approvals.store import Approval, ApprovalError, ApprovalStore
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import DEMO_LABELS, seed
from wardgate.identity.state import StateStore

BULK = "SELECT * FROM patients"
WAIT = 4


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres
) -> Iterator[RunningGateway]:
    with temporary_database(pg_server, "wardgate_hold") as name:
        seed(pg_server.dsn(name), patients=20)
        pki = tmp_path_factory.mktemp("pki")
        target = target_entry(pg_server, name)
        config = build_config(tmp_path_factory.mktemp("hold"), pki, target, edit=held_bulk_reads)
        assert config.identity.state is not None
        state = StateStore(config.identity.state)
        state.add_human("carol", roles=("compliance",), source="test")
        state.close()
        yield from running(config, pki / "ca.pem")


def held_bulk_reads(raw: dict[str, Any]) -> None:
    """carol approves; an engineer's unfiltered read of PHI waits for her."""
    raw["users"].append({"name": "carol", "password": "carol-secret", "roles": ["compliance"]})
    raw["targets"][0]["phi"] = DEMO_LABELS
    raw["identity"] = {"state": "state.db"}
    raw["policy"] = {
        "rules": [
            {"name": "bulk PHI", "roles": ["engineer"], "kinds": ["read"], "phi": True,
             "unfiltered": True, "action": "require_approval",
             "reason": "an unfiltered read of PHI"},
        ]
    }  # fmt: skip
    raw["approvals"] = {"approver_roles": ["compliance"], "wait": WAIT}


@pytest.fixture
def store(gateway: RunningGateway) -> ApprovalStore:
    found = gateway.gateway.approvals
    assert found is not None
    return found


class Asking:
    """alice's statement, run in a thread because it blocks until decided."""

    def __init__(self, gw: RunningGateway, statement: str) -> None:
        self.notices: list[str] = []
        self.rows: list[Any] | None = None
        self.error: psycopg.Error | None = None
        self._thread = threading.Thread(target=self._run, args=(gw, statement), daemon=True)
        self._thread.start()

    def _run(self, gw: RunningGateway, statement: str) -> None:
        try:
            with psycopg.connect(gw.dsn("alice")) as conn:
                conn.add_notice_handler(lambda d: self.notices.append(d.message_primary or ""))
                self.rows = conn.execute(statement).fetchall()
        except psycopg.Error as exc:
            self.error = exc

    def done(self, timeout: float = 10) -> Asking:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the statement is still waiting"
        return self


def pending(store: ApprovalStore, known: set[str], timeout: float = 5) -> Approval:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [a for a in store.listing() if a.id not in known]
        if fresh:
            known.add(fresh[0].id)
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError("no approval request appeared")


def test_held_then_approved_runs_once(gateway: RunningGateway, store: ApprovalStore) -> None:
    seen: set[str] = set()
    asking = Asking(gateway, BULK)
    request = pending(store, seen)
    assert (request.requester, request.statement) == ("alice", BULK)
    time.sleep(0.3)
    assert asking.rows is None and asking.error is None  # still waiting
    with pytest.raises(ApprovalError, match="own request"):
        store.approve(request.id, "alice", ("compliance",), "I need it")
    store.approve(request.id, "carol", ("compliance",), "quarterly report")
    asking.done()
    assert asking.error is None and asking.rows is not None and len(asking.rows) == 20
    assert any(request.id in n and "approve" in n for n in asking.notices)
    assert all(row[4] == "[SSN]" for row in asking.rows)  # still masked for the engineer

    again = Asking(gateway, BULK)  # the grant was single-use: held again
    second = pending(store, seen)
    assert second.id != request.id
    store.deny(second.id, "carol", ("compliance",), "filter by patient id")
    again.done()
    assert isinstance(again.error, psycopg.errors.InsufficientPrivilege)
    assert "denied by carol: filter by patient id" in str(again.error)

    granted = wait_for_event(gateway, type="approval.granted", approval=request.id)
    assert granted["who"]["claimed_user"] == "carol" and granted["requester"] == "alice"
    denied = wait_for_event(gateway, type="approval.denied", approval=second.id)
    assert denied["reason"] == "filter by patient id"


def test_no_decision_in_time_is_a_clear_error(
    gateway: RunningGateway, store: ApprovalStore
) -> None:
    started = time.monotonic()
    asking = Asking(gateway, BULK + " ORDER BY id")
    request = pending(store, set())
    asking.done(WAIT + 5)
    assert time.monotonic() - started >= WAIT - 0.5
    assert asking.error is not None and "no approval within" in str(asking.error)
    assert store.get(request.id).status == "expired"


def test_a_filtered_read_is_not_held(gateway: RunningGateway) -> None:
    asking = Asking(gateway, "SELECT first_name FROM patients WHERE id = 1").done(5)
    assert asking.error is None and asking.rows == [("[NAME]",)]


def test_a_client_that_leaves_withdraws(gateway: RunningGateway, store: ApprovalStore) -> None:
    conn = psycopg.connect(gateway.dsn("alice"), autocommit=True)
    conn.pgconn.send_query(b"SELECT * FROM patients ORDER BY last_name")
    request = pending(store, set())
    conn.close()
    deadline = time.monotonic() + 5
    while store.get(request.id).status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(request.id).status == "withdrawn"


def test_what_a_client_sends_while_held_waits_in_its_own_socket(
    gateway: RunningGateway, store: ApprovalStore
) -> None:
    """A client that keeps writing behind a held statement must not fill the gateway's memory:
    past a small buffer the gateway stops reading it, and the rest waits in the client's socket.
    Before, the gateway read everything it was sent (hundreds of MiB in two seconds)."""
    conn = login(gateway, "alice")
    known = {a.id for a in store.listing()}
    conn.send(query(BULK))
    approval = pending(store, known)
    filler = query("SELECT 1") * (1 << 12)  # 36 KiB of pipelined queries
    accepted, deadline = 0, time.monotonic() + 2
    conn.sock.settimeout(0.5)
    try:
        while time.monotonic() < deadline:
            accepted += conn.sock.send(filler)
    except (TimeoutError, ssl.SSLWantWriteError):
        pass  # the socket is full: the gateway stopped reading
    finally:
        with contextlib.suppress(ApprovalError):
            store.deny(approval.id, "carol", ("compliance",), "not now")
        conn.sock.close()
    assert accepted < 32 << 20, f"the gateway read {accepted >> 20} MiB behind a held statement"
