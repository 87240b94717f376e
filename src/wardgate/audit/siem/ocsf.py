"""Our audit events as OCSF 1.5.0 objects.

Checked against the schema export of OCSF 1.5.0 shipped in the ``ocsf-json-schema`` package
(tests/audit/siem/test_ocsf.py). Where OCSF has no attribute for one of our facts (the
on-behalf-of chain, the TLS description of each leg, row counts), it goes under ``unmapped``.
"""

from __future__ import annotations

from typing import Any

import wardgate
from wardgate.audit.events import Event
from wardgate.audit.siem import fields
from wardgate.audit.siem.fields import Who

OCSF_VERSION = "1.5.0"
PROFILES = ["security_control"]  # for disposition_id and action_id

AUTHENTICATION, DATASTORE_ACTIVITY, API_ACTIVITY, BASE_EVENT = 3002, 6005, 6003, 0
_CATEGORY = {AUTHENTICATION: 3, DATASTORE_ACTIVITY: 6, API_ACTIVITY: 6, BASE_EVENT: 0}
_CLASS_NAME = {
    AUTHENTICATION: "Authentication",
    DATASTORE_ACTIVITY: "Datastore Activity",
    API_ACTIVITY: "API Activity",
    BASE_EVENT: "Base Event",
}
_SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium"}

# Datastore Activity's activity_id, by the statement's first keyword.
_READ, _UPDATE, _QUERY, _WRITE, _CREATE, _DELETE, _OTHER = 1, 2, 4, 5, 6, 7, 99
_VERB_ACTIVITY = {
    **dict.fromkeys(("select", "with", "table", "values", "show", "explain", "fetch"), _QUERY),
    **dict.fromkeys(("copy",), _READ),
    **dict.fromkeys(("insert",), _WRITE),
    **dict.fromkeys(("update", "merge"), _UPDATE),
    **dict.fromkeys(("delete", "truncate", "drop"), _DELETE),
    **dict.fromkeys(("create",), _CREATE),
}
_DATASTORE_ACTIVITY_NAME = {
    _READ: "Read", _UPDATE: "Update", _QUERY: "Query", _WRITE: "Write",
    _CREATE: "Create", _DELETE: "Delete", _OTHER: "Other",
}  # fmt: skip
# API Activity's activity_id, by HTTP method.
_HTTP_ACTIVITY = {
    "POST": (1, "Create"), "GET": (2, "Read"), "HEAD": (2, "Read"),
    "PUT": (3, "Update"), "PATCH": (3, "Update"), "DELETE": (4, "Delete"),
}  # fmt: skip


def to_ocsf(event: Event) -> dict[str, Any]:
    """One event as an OCSF object; types we do not know become a Base Event, never an error."""
    kind = fields.event_type(event)
    if kind in ("session.start", "session.refused", "session.end"):
        return _authentication(event, kind)
    if kind == "statement":
        return _datastore_activity(event)
    if kind == "api_call":
        return _api_activity(event)
    return _base_event(event, kind)


def _base(event: Event, class_uid: int, activity_id: int, activity_name: str) -> dict[str, Any]:
    sev = fields.severity(event)
    out: dict[str, Any] = {
        "category_uid": _CATEGORY[class_uid],
        "class_uid": class_uid,
        "class_name": _CLASS_NAME[class_uid],
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{_CLASS_NAME[class_uid]}: {activity_name}",
        "severity_id": sev,
        "severity": _SEVERITY_NAME[sev],
        "time": fields.time_ms(event),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "wardgate",
                "vendor_name": "wardgate",
                "version": wardgate.__version__,
            },
            "event_code": fields.event_type(event),
            "uid": fields.event_uid(event),
            "log_name": "audit",
        },
    }
    sid = fields.text(fields.session(event).get("id"))
    if sid:
        out["metadata"]["correlation_uid"] = sid
    return out


def _user(who: Who) -> dict[str, Any]:
    user: dict[str, Any] = {"name": who.name or "(unknown)"}
    if who.roles:
        user["groups"] = [{"name": r} for r in who.roles]
    return user


def _identity_unmapped(who: Who) -> dict[str, Any]:
    out: dict[str, Any] = {"identity_verified": who.verified}
    if who.on_behalf_of:
        out["on_behalf_of"] = list(who.on_behalf_of)
    if who.method:
        out["auth_method"] = who.method
    return out


def _src_endpoint(event: Event) -> dict[str, Any]:
    ep = fields.client(event)
    out: dict[str, Any] = {}
    if ep.ip is not None:
        out["ip"] = ep.ip
        if ep.port is not None:
            out["port"] = ep.port
    else:
        out["name"] = ep.raw or "(unknown)"
    return out


def _session_object(event: Event) -> dict[str, Any] | None:
    sid = fields.text(fields.session(event).get("id"))
    return {"uid": sid, "is_remote": True} if sid else None


def _status(out: dict[str, Any], ok: bool | None, detail: str, code: str = "") -> None:
    out["status_id"], out["status"] = {
        True: (1, "Success"), False: (2, "Failure"), None: (99, "Other"),
    }[ok]  # fmt: skip
    if detail:
        out["status_detail"] = detail
    if code:
        out["status_code"] = code


def _unmapped(out: dict[str, Any], values: dict[str, Any]) -> None:
    kept = {k: v for k, v in values.items() if v not in (None, "", [], {})}
    if kept:
        out.setdefault("unmapped", {}).update(kept)


def _authentication(event: Event, kind: str) -> dict[str, Any]:
    logoff = kind == "session.end"
    out = _base(event, AUTHENTICATION, 2 if logoff else 1, "Logoff" if logoff else "Logon")
    who, s = fields.who(event), fields.session(event)
    out["user"] = _user(who)
    out["src_endpoint"] = _src_endpoint(event)
    out["logon_type_id"], out["logon_type"] = 3, "Network"
    out["is_remote"] = True
    target = fields.text(s.get("target"))
    if target:
        out["dst_endpoint"] = {"svc_name": target}
        out["service"] = {"name": target}
    session = _session_object(event)
    if session is not None:
        out["session"] = session
    if who.method:
        out["auth_protocol_id"], out["auth_protocol"] = 99, who.method
    application = fields.text(s.get("application"))
    if application:
        out["actor"] = {"app_name": application}
    reason = fields.text(event.get("reason"))
    if kind == "session.refused":
        _status(out, False, reason, fields.text(event.get("sqlstate")))
    else:
        _status(out, True, reason)
    duration_s = event.get("duration_s")
    if isinstance(duration_s, int | float) and not isinstance(duration_s, bool):
        out["duration"] = int(duration_s * 1000)
    _unmapped(
        out,
        {
            **_identity_unmapped(who),
            "protocol": fields.text(s.get("protocol")),
            "listener": fields.text(s.get("listener")),
            "client_tls": fields.text(s.get("client_tls")),
            "upstream_tls": fields.text(s.get("upstream_tls")),
        },
    )
    return out


def _datastore_activity(event: Event) -> dict[str, Any]:
    statement = fields.text(event.get("statement"))
    if event.get("kind") == "function_call":
        activity = _OTHER
    else:
        activity = _VERB_ACTIVITY.get(fields.statement_verb(statement), _OTHER)
    out = _base(event, DATASTORE_ACTIVITY, activity, _DATASTORE_ACTIVITY_NAME[activity])
    out["metadata"]["profiles"] = PROFILES
    who = fields.who(event)
    actor: dict[str, Any] = {"user": _user(who)}
    session = _session_object(event)
    if session is not None:
        actor["session"] = session
    out["actor"] = actor
    out["src_endpoint"] = _src_endpoint(event)
    target = fields.text(fields.session(event).get("target"))
    if target:
        out["dst_endpoint"] = {"svc_name": target}
        out["database"] = {"name": target, "type_id": 1, "type": "Relational"}
    out["type_id"], out["type"] = 1, "Database"
    # OCSF wants a name or uid for a query: ours is the session id and the statement's number.
    sid = fields.text(fields.session(event).get("id")) or "-"
    query: dict[str, Any] = {"query_string": statement, "uid": f"{sid}:{event.get('seq')}"}
    size = fields.number(event.get("bytes"))
    if size is not None:
        query["bytes"] = size
    out["query_info"] = query
    allowed = event.get("decision") != "deny"
    out["disposition_id"], out["disposition"] = (1, "Allowed") if allowed else (2, "Blocked")
    out["action_id"], out["action"] = (1, "Allowed") if allowed else (2, "Denied")
    outcome = fields.text(event.get("outcome"))
    error = fields.mapping(event.get("error"))
    ok = {"ok": True, "error": False, "denied": False, "aborted": False}.get(outcome)
    detail = fields.text(error.get("message")) or fields.text(event.get("reason"))
    _status(out, ok, detail, fields.text(error.get("sqlstate")))
    duration = fields.number(event.get("duration_ms"))
    if duration is not None:
        out["duration"] = duration
    _unmapped(
        out,
        {
            **_identity_unmapped(who),
            "outcome": outcome,
            "statement_kind": fields.text(event.get("kind")),
            "seq": fields.number(event.get("seq")),
            "rows": fields.number(event.get("rows")),
            "decision_reason": fields.text(event.get("reason")),
        },
    )
    return out


def _api_activity(event: Event) -> dict[str, Any]:
    method = fields.text(event.get("method")).upper()
    path = fields.text(event.get("path"))
    activity, name = _HTTP_ACTIVITY.get(method, (99, "Other"))
    out = _base(event, API_ACTIVITY, activity, name)
    who = fields.who(event)
    out["actor"] = {"user": _user(who)}
    out["src_endpoint"] = _src_endpoint(event)
    out["api"] = {"operation": f"{method} {path}".strip() or "unknown"}
    if method or path:
        request: dict[str, Any] = {"http_method": method} if method else {}
        if path:
            request["url"] = {"path": path}
        out["http_request"] = request
    status = fields.number(event.get("status"))
    if status is not None:
        out["http_response"] = {"code": status}
        _status(out, status < 400, fields.text(event.get("reason")), str(status))
    _unmapped(out, _identity_unmapped(who))
    return out


def _base_event(event: Event, kind: str) -> dict[str, Any]:
    out = _base(event, BASE_EVENT, 99, "Other")
    out["message"] = kind
    outcome = fields.text(event.get("outcome"))
    if outcome in ("success", "ok", "failure", "error"):
        _status(out, outcome in ("success", "ok"), fields.text(event.get("reason")))
    _unmapped(out, {k: v for k, v in event.items() if k != "time"})
    return out
