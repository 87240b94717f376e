"""``ChainedAudit``: hooks record without I/O, one commit makes a batch durable, failures tell."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.audit.chain_helpers import event, make_log, verify_cli
from wardgate.audit.store import AuditUnavailable
from wardgate.core.model import ConnectAttempt, Identity, Outcome, SessionInfo, Statement
from wardgate.core.pipeline import Pipeline


def test_hooks_record_and_commit_appends_in_one_go(tmp_path: Path) -> None:
    log = make_log(tmp_path, 0)
    audit = log.open()
    pipeline = Pipeline([audit])
    assert pipeline.wants_commit
    session = SessionInfo("s1", "postgresql", "127.0.0.1:1", "postgres", target="clinic")
    session.identity = Identity("alice", ("engineer",), (), "scram-sha-256")
    pipeline.connect(ConnectAttempt(session, True))
    request = Statement(session, 1, "SELECT 1")
    request.outcome = Outcome.OK
    pipeline.statement_end(request)
    pipeline.disconnect(session, "client disconnected")
    assert audit.pending() and audit.store.last()[0] == 0  # nothing written yet
    pipeline.commit()
    assert not audit.pending()
    types = [e.type for e in audit.store.entries()]
    assert types == ["session.start", "statement", "session.end"]
    assert audit.flush() == []
    audit.close()
    assert verify_cli(log).returncode == 0


def test_a_store_that_cannot_write_makes_commit_fail_and_keeps_the_events(tmp_path: Path) -> None:
    log = make_log(tmp_path, 3)
    audit = log.open()
    db: sqlite3.Connection = audit.store._db  # type: ignore[attr-defined]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    for i in range(4, 30):
        audit.record(dict(event(i), statement="y" * 10_000))
    with pytest.raises(AuditUnavailable, match="full"):
        audit.commit()
    assert not audit.healthy and "full" in audit.reason
    assert audit.health()["pending"] == 26
    db.execute("PRAGMA max_page_count = 1000000")
    audit.commit()
    assert audit.healthy and not audit.pending()
    assert audit.store.last()[0] == 29
    audit.close()
    assert verify_cli(log).returncode == 0
