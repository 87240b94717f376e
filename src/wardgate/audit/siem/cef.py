"""Our audit events as ArcSight CEF lines (Common Event Format, version 0).

Custom fields carry a label of their own (``cs1Label=statement``): cs1 statement text, cs2 the
on-behalf-of chain (comma-separated, owner last), cs3 target, cs4 session id, cs5 SQLSTATE,
cs6 the client leg's TLS; cn1 rows, cn2 duration in milliseconds, cn3 whether the identity was
verified (1) or only claimed (0). CEF has no way to write control characters other than newline
and carriage return; any others become U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

import wardgate
from wardgate.audit.events import Event, encode
from wardgate.audit.siem import fields

_HEADER_SPECIAL = re.compile(r"[\\|]")
_VALUE_SPECIAL = re.compile(r"[\\=\n\r]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VALUE_ESCAPES = {"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"}
_SEVERITY = {fields.INFORMATIONAL: 1, fields.LOW: 3, fields.MEDIUM: 5}
_NAMES = {
    "session.start": "Session started",
    "session.refused": "Login refused",
    "session.end": "Session ended",
    "statement.allow": "Statement allowed",
    "statement.deny": "Statement denied",
    "api_call": "API call",
}
_COMMON = ("time", "type", "who", "session")


def escape_header(value: str) -> str:
    value = _CONTROL.sub("\ufffd", value).replace("\r", " ").replace("\n", " ")
    return _HEADER_SPECIAL.sub(lambda m: "\\" + m.group(), value)


def escape_value(value: str) -> str:
    value = _CONTROL.sub("\ufffd", value)
    return _VALUE_SPECIAL.sub(lambda m: _VALUE_ESCAPES[m.group()], value)


def to_cef(event: Event) -> str:
    """One event as one CEF line (no newline at the end)."""
    kind = fields.event_type(event)
    signature = kind
    if kind == "statement":
        signature = "statement.deny" if event.get("decision") == "deny" else "statement.allow"
    name = _NAMES.get(signature, kind)
    header = [
        "CEF:0",
        "wardgate",
        "wardgate",
        wardgate.__version__,
        signature,
        name,
        str(_SEVERITY[fields.severity(event)]),
    ]
    ext = [(k, v) for k, v in _extension(event, kind) if v != ""]
    present = {k for k, _ in ext}
    pairs = " ".join(
        f"{k}={escape_value(v)}"
        for k, v in ext
        if not k.endswith("Label") or k.removesuffix("Label") in present
    )
    return "|".join(escape_header(h) for h in header) + "|" + pairs


def _extension(event: Event, kind: str) -> list[tuple[str, str]]:
    who = fields.who(event)
    ep = fields.client(event)
    s = fields.session(event)
    ext: list[tuple[str, str]] = [
        ("rt", str(fields.time_ms(event))),
        ("externalId", fields.event_uid(event)),
        ("suser", who.name),
        ("spriv", ",".join(who.roles)),
        ("cn3", "1" if who.verified else "0"),
        ("cn3Label", "identityVerified"),
    ]
    if who.on_behalf_of:
        ext += [("cs2", ",".join(who.on_behalf_of)), ("cs2Label", "onBehalfOf")]
    if ep.ip is not None:
        ext.append(("src", ep.ip))
        if ep.port is not None:
            ext.append(("spt", str(ep.port)))
    elif ep.raw:
        ext.append(("shost", ep.raw))
    for key, label, value in (
        ("cs3", "target", s.get("target")),
        ("cs4", "session", s.get("id")),
        ("cs6", "clientTls", s.get("client_tls")),
    ):
        if fields.text(value):
            ext += [(key, fields.text(value)), (f"{key}Label", label)]
    ext += [
        ("app", fields.text(s.get("protocol"))),
        ("requestClientApplication", fields.text(s.get("application"))),
    ]
    if kind.startswith("session."):
        ext += _session_fields(event, kind)
    elif kind == "statement":
        ext += _statement_fields(event)
    elif kind == "api_call":
        ext += [
            ("requestMethod", fields.text(event.get("method"))),
            ("request", fields.text(event.get("path"))),
            ("outcome", fields.text(event.get("status"))),
        ]
    else:
        rest = {k: v for k, v in event.items() if k not in _COMMON}
        ext += [("outcome", fields.text(event.get("outcome"))), ("msg", encode(rest))]
    return ext


def _session_fields(event: Event, kind: str) -> list[tuple[str, str]]:
    act = "logoff" if kind == "session.end" else "logon"
    out: list[tuple[str, str]] = [("act", act)]
    if kind == "session.refused":
        out += [
            ("outcome", "failure"),
            ("reason", fields.text(event.get("reason"))),
            ("cs5", fields.text(event.get("sqlstate"))),
            ("cs5Label", "sqlstate"),
        ]
    else:
        out += [("outcome", "success"), ("reason", fields.text(event.get("reason")))]
    duration = event.get("duration_s")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        out += [("cn2", str(int(duration * 1000))), ("cn2Label", "durationMs")]
    return out


def _statement_fields(event: Event) -> list[tuple[str, str]]:
    error: dict[str, Any] = fields.mapping(event.get("error"))
    out: list[tuple[str, str]] = [
        ("act", fields.text(event.get("decision"))),
        ("outcome", fields.text(event.get("outcome"))),
        ("cs1", fields.text(event.get("statement"))),
        ("cs1Label", "statement"),
        ("reason", fields.text(event.get("reason"))),
    ]
    rows, size = fields.number(event.get("rows")), fields.number(event.get("bytes"))
    duration = fields.number(event.get("duration_ms"))
    if rows is not None:
        out += [("cn1", str(rows)), ("cn1Label", "rows")]
    if size is not None:
        out.append(("out", str(size)))
    if duration is not None:
        out += [("cn2", str(duration)), ("cn2Label", "durationMs")]
    if error:
        out += [
            ("cs5", fields.text(error.get("sqlstate"))),
            ("cs5Label", "sqlstate"),
            ("msg", fields.text(error.get("message"))),
        ]
    return out
