"""The text a server sends outside result rows and diagnostics, rewritten by a callback. Sans-io.

Three messages carry text that a statement can fill from data: ParameterStatus (a reported
setting such as ``application_name``, which ``set_config`` can set to any value), a
NotificationResponse (``pg_notify``'s payload) and a RowDescription (column names). Each reader
here takes a message body, passes every such text through ``rewrite(name, text)`` and returns
the body to send: the same bytes when nothing changed, so the common case costs one parse.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from wardgate.protocols.postgres.wire import cstr, read_cstr

Rewrite = Callable[[str, str], str]  # (setting or channel name, text) -> text to send
_PID = struct.Struct("!i")
_FIELD_TAIL = 18  # table oid, column number, type oid, size, modifier, format


def parameter_status(body: bytes, rewrite: Rewrite) -> bytes:
    name, pos = read_cstr(body, 0)
    value, _ = read_cstr(body, pos)
    new = rewrite(name, value)
    return body if new == value else cstr(name) + cstr(new)


def notification(body: bytes, rewrite: Rewrite) -> bytes:
    channel, pos = read_cstr(body, 4)
    payload, _ = read_cstr(body, pos)
    new_channel, new_payload = rewrite("", channel), rewrite(channel, payload)
    if (new_channel, new_payload) == (channel, payload):
        return body
    return body[:4] + cstr(new_channel) + cstr(new_payload)


def row_description(body: bytes, rewrite: Rewrite) -> bytes:
    (count,) = struct.unpack_from("!h", body)
    pos, parts, changed = 2, [body[:2]], False
    for _ in range(count):
        name, end = read_cstr(body, pos)
        new = rewrite("", name)
        changed = changed or new != name
        parts.append(cstr(new))
        parts.append(body[end : end + _FIELD_TAIL])
        pos = end + _FIELD_TAIL
    return b"".join(parts) if changed else body
