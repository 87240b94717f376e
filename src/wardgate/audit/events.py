"""Audit events as plain JSON-ready dictionaries.

Every event carries ``time`` (UTC, RFC 3339), ``type``, ``session`` and ``who``; ``who`` is the
verified identity with its on-behalf-of chain, or the claimed user name when verification failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from wardgate.core.model import ConnectAttempt, Identity, Request, SessionInfo

Event = dict[str, Any]


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")


def who(identity: Identity | None, claimed: str) -> dict[str, Any]:
    if identity is None:
        return {"verified": False, "claimed_user": claimed}
    return {
        "verified": True,
        "subject": identity.subject,
        "roles": list(identity.roles),
        "on_behalf_of": list(identity.on_behalf_of),
        "method": identity.method,
    }


def _session(s: SessionInfo) -> dict[str, Any]:
    return {
        "id": s.id,
        "protocol": s.protocol,
        "listener": s.listener,
        "client_addr": s.client_addr,
        "target": s.target,
        "application": s.application,
        "client_tls": s.client_tls,
        "upstream_tls": s.upstream_tls,
    }


def connect_event(attempt: ConnectAttempt, now: float) -> Event:
    s = attempt.session
    event: Event = {
        "time": _time(now),
        "type": "session.start" if attempt.ok else "session.refused",
        "outcome": "success" if attempt.ok else "failure",
        "who": who(s.identity, s.claimed_user),
        "session": _session(s),
    }
    if not attempt.ok:
        event["reason"] = attempt.reason
        event["sqlstate"] = attempt.sqlstate
    return event


def statement_event(request: Request, now: float) -> Event:
    s = request.session
    event: Event = {
        "time": _time(request.started),
        "type": "statement",
        "who": who(s.identity, s.claimed_user),
        "session": {"id": s.id, "client_addr": s.client_addr, "target": s.target},
        "seq": request.seq,
        "kind": request.kind,
        "statement": request.text,
        "decision": request.decision.verdict.value,
        "outcome": request.outcome.value,
        "rows": request.rows,
        "bytes": request.bytes_out,
        "duration_ms": round(request.duration_ms, 3),
    }
    if request.decision.reason:
        event["reason"] = request.decision.reason
    if request.error_code:
        event["error"] = {"sqlstate": request.error_code, "message": request.error}
    return event


def disconnect_event(session: SessionInfo, reason: str, now: float) -> Event:
    return {
        "time": _time(now),
        "type": "session.end",
        "who": who(session.identity, session.claimed_user),
        "session": _session(session),
        "reason": reason,
        "duration_s": round(now - session.started, 3),
    }
