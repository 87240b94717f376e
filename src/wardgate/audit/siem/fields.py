"""What both output formats read from one of our audit events.

Events come from ``wardgate.audit.events`` or, later, from the chained store; fields may be
missing or of an unexpected type in events of types this module has not heard of, so every
reader here returns a neutral value instead of failing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from wardgate.audit.events import Event, encode

INFORMATIONAL, LOW, MEDIUM = 1, 2, 3  # OCSF severity_id values we use


@dataclass(frozen=True)
class Who:
    """The verified subject, or the user name a failed login claimed."""

    name: str
    verified: bool
    roles: tuple[str, ...] = ()
    on_behalf_of: tuple[str, ...] = ()
    method: str = ""


@dataclass(frozen=True)
class Endpoint:
    ip: str | None
    port: int | None
    raw: str


def text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_type(event: Event) -> str:
    return text(event.get("type")) or "unknown"


def time_ms(event: Event) -> int:
    """The event's ``time`` in milliseconds since the epoch; now when it has none."""
    raw = event.get("time")
    if isinstance(raw, str):
        try:
            parsed = dt.datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return int(parsed.timestamp() * 1000)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw * 1000)
    return int(time.time() * 1000)


def who(event: Event) -> Who:
    w = mapping(event.get("who"))
    if w.get("verified") is True:
        return Who(
            name=text(w.get("subject")),
            verified=True,
            roles=tuple(text(r) for r in w.get("roles") or () if r),
            on_behalf_of=tuple(text(p) for p in w.get("on_behalf_of") or () if p),
            method=text(w.get("method")),
        )
    return Who(name=text(w.get("claimed_user")), verified=False)


def session(event: Event) -> dict[str, Any]:
    return mapping(event.get("session"))


def client(event: Event) -> Endpoint:
    """``127.0.0.1:5432``, ``[::1]:5432`` or a bare address, split into IP and port."""
    raw = text(session(event).get("client_addr"))
    host, port = raw, None
    if raw.startswith("["):
        end = raw.find("]")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif raw.count(":") == 1:
        head, _, tail = raw.partition(":")
        if tail.isdigit():
            host, port = head, int(tail)
    try:
        ip: str | None = str(ipaddress.ip_address(host))
    except ValueError:
        ip = None
    if port is not None and not 0 <= port <= 65535:
        port = None
    return Endpoint(ip, port, raw)


def severity(event: Event) -> int:
    kind = event_type(event)
    if kind == "session.refused":
        return MEDIUM
    if kind == "statement":
        if event.get("decision") == "deny":
            return MEDIUM
        if event.get("outcome") in ("error", "aborted"):
            return LOW
    return INFORMATIONAL


def event_uid(event: Event) -> str:
    """A stable id: the same event always gets the same id, so receivers can drop repeats."""
    return hashlib.sha256(encode(event).encode()).hexdigest()[:32]


def statement_verb(statement: str) -> str:
    """The statement's first keyword, lower case (``select``, ``insert``, ...); a hint only."""
    body = statement.lstrip(" \t\r\n(")
    while body.startswith(("--", "/*")):
        if body.startswith("--"):
            _, _, body = body.partition("\n")
        else:
            _, _, body = body.partition("*/")
        body = body.lstrip(" \t\r\n(")
    word = []
    for ch in body:
        if not ch.isalpha():
            break
        word.append(ch)
    return "".join(word).lower()
