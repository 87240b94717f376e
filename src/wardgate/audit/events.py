"""Audit events as plain JSON-ready dictionaries.

Every event carries ``time`` (UTC, RFC 3339), ``type``, ``session`` and ``who``; ``who`` is the
verified identity with its on-behalf-of chain, or the claimed user name when verification failed.

A statement's text (and an API call's request line) is kept up to ``limit`` bytes of UTF-8
(``audit.max_statement_bytes``); a longer one keeps its first ``limit`` bytes, cut between
characters, and ``statement_truncated`` (``request_truncated``) holds the length and SHA-256 of
the whole text, so the record still binds the exact statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from wardgate.core.model import ApiCall, ConnectAttempt, Identity, SessionInfo, Statement

Event = dict[str, Any]
MAX_STATEMENT_BYTES = 64 << 10  # audit.max_statement_bytes
_CLIPPED = (("statement", "statement_truncated"), ("request", "request_truncated"))
# The string encoder json.dumps itself uses when ensure_ascii is false.
_quote: Callable[[str], str] = json.encoder.encode_basestring


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")


def fits(text: str, limit: int) -> bool:
    """Whether ``text`` is at most ``limit`` bytes of UTF-8 (cheap below ``limit // 4``)."""
    return len(text) * 4 <= limit or len(text.encode("utf-8", "surrogatepass")) <= limit


def clip(text: str, limit: int) -> tuple[str, dict[str, Any] | None]:
    """(what the audit keeps of ``text``, None) if it fits in ``limit`` bytes of UTF-8; else
    (its first ``limit`` bytes, whole characters only, ``{"bytes", "sha256"}`` of all of it)."""
    if len(text) * 4 <= limit:
        return text, None
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, None
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:  # not inside a character
        end -= 1
    whole = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return data[:end].decode("utf-8", "surrogatepass"), whole


def clip_event(event: Event, limit: int = MAX_STATEMENT_BYTES) -> Event:
    """``event`` with its ``statement`` and ``request`` clipped to ``limit`` (in place)."""
    for key, note in _CLIPPED:
        text = event.get(key)
        if isinstance(text, str) and not fits(text, limit):
            event[key], event[note] = clip(text, limit)
    return event


def encode(event: Event) -> str:
    """The event as one line of compact JSON (no newline)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


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


def _statement_context(s: SessionInfo) -> Event:
    return {
        "who": who(s.identity, s.claimed_user),
        "session": {"id": s.id, "client_addr": s.client_addr, "target": s.target},
    }


def statement_event(request: Statement, now: float, limit: int = MAX_STATEMENT_BYTES) -> Event:
    text, whole = clip(request.text, limit)
    event: Event = {
        "time": _time(request.started),
        "type": "statement",
        **_statement_context(request.session),
        "seq": request.seq,
        "kind": request.kind,
        "statement": text,
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
    if request.masked:
        event["masking"] = request.masked
    if request.row_cap is not None:
        event["cap"] = {"limit": request.row_cap, "withheld": request.rows_withheld}
    if request.decision.approval_id:
        event["approval"] = request.decision.approval_id
    if whole is not None:
        event["statement_truncated"] = whole
    return event


def start_event(request: Statement | ApiCall, limit: int = MAX_STATEMENT_BYTES) -> Event:
    """The write-ahead record of an allowed statement (or API call), made when it goes to the
    server: who, what and on which target, before any of its result reaches the client. Its
    summary (``statement`` / ``api_call``) follows when it ends."""
    kind = "statement.start" if isinstance(request, Statement) else "api_call.start"
    event: Event = {
        "time": _time(request.started),
        "type": kind,
        **_statement_context(request.session),
        "seq": request.seq,
        "kind": request.kind,
        "statement": request.text,
    }
    return clip_event(event, limit)


def api_call_event(request: ApiCall, limit: int = MAX_STATEMENT_BYTES) -> Event:
    """An HTTP request through the gateway: OCSF API Activity."""
    s = request.session
    event: Event = {
        "time": _time(request.started),
        "type": "api_call",
        "outcome": "success" if 0 < request.status < 400 else "failure",
        "who": who(s.identity, s.claimed_user),
        "session": {
            "id": s.id,
            "protocol": s.protocol,
            "listener": s.listener,
            "client_addr": s.client_addr,
            "target": s.target,
            "client_tls": s.client_tls,
        },
        "seq": request.seq,
        "kind": request.kind,
        "method": request.method,
        "path": request.path,
        "request": request.text,
        "status": request.status,
        "decision": request.decision.verdict.value,
        "bytes": request.bytes_out,
        "duration_ms": round(request.duration_ms, 3),
    }
    if request.resource_type:
        event["resource_type"] = request.resource_type
    if request.decision.reason:
        event["reason"] = request.decision.reason
    if request.error:
        event["error"] = {"code": request.error_code, "message": request.error}
    if request.masked:
        event["masking"] = request.masked
    if request.decision.approval_id:
        event["approval"] = request.decision.approval_id
    return clip_event(event, limit)


def disconnect_event(session: SessionInfo, reason: str, now: float) -> Event:
    event: Event = {
        "time": _time(now),
        "type": "session.end",
        "who": who(session.identity, session.claimed_user),
        "session": _session(session),
        "reason": reason,
        "duration_s": round(now - session.started, 3),
    }
    if session.recording is not None:  # its id, path and SHA-256 (recording/)
        event["recording"] = session.recording
    return event


def identity_event(kind: str, actor: str, now: float, **details: Any) -> Event:
    """An identity change: ``credential.created``, ``user.revoked``, ... ``actor`` is who made it
    (an administrator on the gateway host, SCIM, the IdP re-validation)."""
    return {
        "time": _time(now),
        "type": kind,
        "who": {"verified": False, "claimed_user": actor},
        **details,
    }


def terminated_event(session: SessionInfo, reason: str, now: float) -> Event:
    """A live session ended by the gateway (revocation); ``who`` carries the on-behalf-of chain."""
    return {
        "time": _time(now),
        "type": "session.terminated",
        "outcome": "success",
        "who": who(session.identity, session.claimed_user),
        "session": _session(session),
        "reason": reason,
    }


class UtcText:
    """``_time(ts)`` for the hot path: the text of the current second is made once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._second_text = ""

    def of(self, ts: float) -> str | None:
        """The RFC 3339 text of ``ts``, or None where rounding reaches the next second (the
        caller then takes ``_time``'s exact path)."""
        second = int(ts)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = round((ts - second) * 1e6)
        if micros >= 1_000_000:
            return None
        return f"{self._second_text}.{micros:06d}+00:00"


class StatementLines:
    """``encode(statement_event(r))``, fast: statements are the hot path of the audit trail.

    What is fixed for a session is encoded once; the timestamp's seconds once per second.
    ``tests/audit/test_events.py`` checks the output is identical to the plain encoding.
    """

    def __init__(self, limit: int = MAX_STATEMENT_BYTES) -> None:
        self._context: dict[str, str] = {}
        self._time = UtcText()
        self.limit = limit

    def forget(self, session_id: str) -> None:
        self._context.pop(session_id, None)

    def line(self, request: Statement) -> str:
        s = request.session
        context = self._context.get(s.id)
        if context is None:
            context = encode(_statement_context(s))[1:-1]
            self._context[s.id] = context
        started = self._time.of(request.started)
        # rare shapes take the slow, exact path
        if (
            started is None
            or request.masked
            or request.row_cap is not None
            or request.decision.approval_id
            or len(request.text) * 4 > self.limit  # perhaps clipped
        ):
            return encode(statement_event(request, 0.0, self.limit))
        text = _quote(request.text)
        tail = ""
        if request.decision.reason:
            tail += ',"reason":' + _quote(request.decision.reason)
        if request.error_code:
            tail += ',"error":' + encode({"sqlstate": request.error_code, "message": request.error})
        return (
            f'{{"time":"{started}","type":"statement",{context},'
            f'"seq":{request.seq},"kind":"{request.kind}","statement":{text},'
            f'"decision":"{request.decision.verdict.value}","outcome":"{request.outcome.value}",'
            f'"rows":{request.rows},"bytes":{request.bytes_out},'
            f'"duration_ms":{round(request.duration_ms, 3)!r}{tail}}}'
        )
