"""Audit events of every type we emit, built by ``wardgate.audit.events`` as the gateway does."""

from __future__ import annotations

from wardgate.audit.events import Event, connect_event, disconnect_event, statement_event
from wardgate.core.model import (
    ConnectAttempt,
    Decision,
    Identity,
    Outcome,
    SessionInfo,
    Statement,
    Verdict,
    Via,
)

NOW = 1764400000.25
HOSTILE = 'a|b\\c=d\ne\rf "g" — ünïcödé 🩺 \x01 %s ${x} CEF:0|x|'


def session(identity: Identity | None, client_addr: str = "127.0.0.1:49086") -> SessionInfo:
    return SessionInfo(
        "1707c0ffee",
        "postgresql",
        client_addr,
        "postgres",
        claimed_user="eve",
        target="clinic",
        application="psql",
        identity=identity,
        client_tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
        upstream_tls="TLSv1.3 TLS_AES_128_GCM_SHA256",
        started=NOW - 5,
    )


AGENT = Identity("triage-bot", ("reader", "agent"), ("dr.bob", "clinic-owner"), "scram-sha-256")


def request(text: str, *, kind: str = "query", outcome: Outcome = Outcome.OK) -> Statement:
    r = Statement(session(AGENT), 3, text, Via(kind), started=NOW)
    r.rows, r.bytes_out, r.outcome = 12, 4096, outcome
    r.ended_mono = r.started_mono + 0.0042
    return r


def all_events() -> list[Event]:
    """One of each shape: what the gateway emits, a future API call, and a type not known yet."""
    denied = request("DELETE FROM patients", outcome=Outcome.DENIED)
    denied.decision = Decision(Verdict.DENY, "writes need approval", "policy")
    failed = request("SELECT 1/0", outcome=Outcome.ERROR)
    failed.error_code, failed.error = "22012", 'division by "zero"'
    return [
        connect_event(ConnectAttempt(session(AGENT), True), NOW),
        connect_event(
            ConnectAttempt(
                session(None, "[::1]:50000"),
                False,
                "user 'eve': password authentication failed",
                "28P01",
            ),
            NOW,
        ),
        connect_event(ConnectAttempt(session(None, "/tmp/.s.PGSQL"), False, "timed out"), NOW),
        statement_event(request("select * from patients where id = $1"), NOW),
        statement_event(request("  /* c */ INSERT INTO notes VALUES (1)"), NOW),
        statement_event(request("update notes set x = 1"), NOW),
        statement_event(request("WITH a AS (SELECT 1) SELECT * FROM a"), NOW),
        statement_event(request("CREATE TABLE t (x int)"), NOW),
        statement_event(request("COPY patients TO STDOUT"), NOW),
        statement_event(request("vacuum"), NOW),
        statement_event(request("", kind="function_call"), NOW),
        statement_event(request("select 2", outcome=Outcome.SKIPPED), NOW),
        statement_event(request(HOSTILE), NOW),
        statement_event(denied, NOW),
        statement_event(failed, NOW),
        disconnect_event(session(AGENT), "client disconnected", NOW),
        {
            "time": "2026-11-29T07:00:38.331187+00:00",
            "type": "api_call",
            "who": {
                "verified": True,
                "subject": "admin",
                "roles": ["admin"],
                "on_behalf_of": [],
                "method": "oidc",
            },
            "session": {"id": "h1", "client_addr": "127.0.0.1:8080"},
            "method": "POST",
            "path": "/v1/approvals/42/grant",
            "status": 201,
        },
        {
            "time": "2026-11-29T07:00:39.000001+00:00",
            "type": "approval.granted",
            "who": {"verified": True, "subject": "dr.bob", "roles": [], "on_behalf_of": []},
            "approval": {"id": 42, "statement": HOSTILE},
            "outcome": "success",
        },
        {"type": "config.changed"},  # nearly empty: still maps, never raises
        {},
    ]
