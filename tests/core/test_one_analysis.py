"""One analysis per statement, through a real gateway with every addon that reads SQL.

alice (engineer) runs a statement that policy rules, masking, approvals (a windowed grant),
recording, the JSON-lines audit and the signed store all look at. PostgreSQL's parser runs once
for it, and not at all when it comes again; the grant it runs under is in its audit record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.approvals.store import ApprovalStore
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import DEMO_LABELS, seed
from wardgate.identity.state import StateStore
from wardgate.sql.analysis import ParseCounter

HELD = "SELECT id, ssn, last_name FROM patients ORDER BY id"


def everything(raw: dict[str, Any]) -> None:
    raw["users"].append({"name": "carol", "password": "carol-secret", "roles": ["compliance"]})
    raw["targets"][0]["phi"] = DEMO_LABELS
    raw["identity"] = {"state": "state.db"}
    raw["recording"] = {"enabled": True}
    raw["audit"]["store"] = "store/audit.db"
    raw["audit"]["head_file"] = "heads/heads.jsonl"
    raw["policy"] = {
        "rules": [
            {"name": "bulk PHI", "roles": ["engineer"], "kinds": ["read"], "phi": True,
             "unfiltered": True, "action": "require_approval", "window": 600,
             "reason": "an unfiltered read of PHI"},
            {"name": "reads", "roles": ["engineer"], "kinds": ["read"], "cap_rows": 1000},
        ]
    }  # fmt: skip
    raw["approvals"] = {"approver_roles": ["compliance"], "wait": 10}


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    with temporary_database(pg_server, "wardgate_once") as name:
        seed(pg_server.dsn(name), patients=12)
        yield pg_server.dsn(name)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    name = str(psycopg.conninfo.conninfo_to_dict(database)["dbname"])
    pki = tmp_path_factory.mktemp("pki")
    tmp = tmp_path_factory.mktemp("once")
    config = build_config(tmp, pki, target_entry(pg_server, name), edit=everything)
    assert config.identity.state is not None
    state = StateStore(config.identity.state)
    state.add_human("carol", roles=("compliance",), source="test")
    state.close()
    yield from running(config, pki / "ca.pem")


def query(gw: RunningGateway, text: str) -> list[Any]:
    with psycopg.connect(gw.dsn("alice"), autocommit=True) as conn:
        return conn.execute(text).fetchall()


def approve_when_asked(store: ApprovalStore) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for approval in store.listing():
                store.approve(approval.id, "carol", ("compliance",), "ward round")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_statement_is_parsed_once_and_then_never(gateway: RunningGateway, database: str) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    plain = "SELECT id, mrn FROM patients WHERE id = 3"
    before = ParseCounter.count
    rows = query(gateway, plain)  # policy (rules), masking, recording, audit
    assert ParseCounter.count - before == 1
    with psycopg.connect(database) as direct:
        raw = direct.execute(plain).fetchall()
    assert rows and raw and rows[0][1] != raw[0][1]  # masked
    before = ParseCounter.count
    query(gateway, plain)
    assert ParseCounter.count - before == 0  # cached by its text

    approving = approve_when_asked(store)
    before = ParseCounter.count
    rows = query(gateway, HELD)  # and approvals too: held, approved, run
    approving.join(10)
    assert len(rows) == 12 and all(row[1] == "[SSN]" for row in rows)
    assert ParseCounter.count - before == 1


def test_a_windowed_grant_is_audited_with_its_approval(gateway: RunningGateway) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    statement = HELD + " DESC"
    approving = approve_when_asked(store)
    assert len(query(gateway, statement)) == 12  # held, then approved for 600 s
    approving.join(10)
    (granted,) = [a for a in store.listing(pending_only=False) if a.statement == statement]
    assert granted.window == 600
    before = ParseCounter.count
    assert len(query(gateway, statement)) == 12  # within the window: runs at once
    assert ParseCounter.count - before == 0
    ran = [
        e for e in gateway.events()
        if e["type"] == "statement" and e["statement"] == statement and e["outcome"] == "ok"
    ]  # fmt: skip
    assert len(ran) == 2 and all(e.get("approval") == granted.id for e in ran)
    wait_for_event(gateway, type="approval.used", approval=granted.id)
    uses = [e for e in gateway.events() if e["type"] == "approval.used"
            and e["approval"] == granted.id]  # fmt: skip
    assert len(uses) == 2  # the release of the held statement, and the use in the window
