"""Records: what a recording holds, as bytes and as plain dictionaries ("states").

Inside the encrypted chunks a recording is a stream of framed records::

    payload length u32 | type u8 | payload

Every payload but a row's is compact JSON. A row is binary, because values are bytes as the
client received them (text or binary format, see the ``binary`` flag of its columns)::

    seq u32 | count u16 | per value: length i32 (-1 for NULL) | bytes

``decode`` turns a record into its state; ``encode`` is the inverse. A reader upgrades each
state from the recording's version to ``VERSION`` through ``UPGRADES``, one step at a time, the
way mitmproxy's ``io/compat.py`` does: a change to the format adds ``VERSION + 1`` and the one
function that turns a state of the old version into one of the new, and old recordings keep
reading. (Version 1 is the first; the chain is empty, and ``tests/recording/test_format.py``
drives it with a chain of its own.)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

VERSION = 1

State = dict[str, Any]
Upgrade = Callable[[State], State]
# UPGRADES[v] turns a state of version v into one of version v + 1.
UPGRADES: dict[int, Upgrade] = {}

HEADER, REQUEST, COLUMNS, ROW, DIAGNOSTIC, RESULT_END, TRUNCATED, SESSION_END = range(1, 9)
DOCUMENT = 9  # an HTTP API's JSON answer as the client got it (masked)
TYPES = {
    HEADER: "header", REQUEST: "request", COLUMNS: "columns", ROW: "row",
    DIAGNOSTIC: "diagnostic", RESULT_END: "result_end", TRUNCATED: "truncated",
    SESSION_END: "session_end", DOCUMENT: "document",
}  # fmt: skip
CODES = {name: code for code, name in TYPES.items()}

_FRAME = struct.Struct(">IB")
_ROW = struct.Struct(">IH")
_LEN = struct.Struct(">i")
_NULL = _LEN.pack(-1)
_ROW_HEAD = struct.Struct(">BI")  # type, seq: what follows a row record's length
_LEN_U32 = struct.Struct(">I")


class FormatError(Exception):
    """A record that cannot be read, or a version this build cannot upgrade."""


def frame(code: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), code) + payload


def encode(state: Mapping[str, Any]) -> bytes:
    """A state as a framed record."""
    kind = state["type"]
    if kind == "row":
        return row_record(state["seq"], state["values"])
    body = {k: v for k, v in state.items() if k != "type"}
    return frame(CODES[kind], json.dumps(body, separators=(",", ":")).encode())


def row_record(seq: int, values: list[bytes | None]) -> bytes:
    parts = [_ROW.pack(seq & 0xFFFFFFFF, len(values))]
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL)
        else:
            append(_LEN.pack(len(value)))
            append(value)
    payload = b"".join(parts)
    return _FRAME.pack(len(payload), ROW) + payload


def row_records(seq: int, bodies: list[bytes]) -> list[bytes]:
    """The row records of rows given in the row encoding (``count u16 | values``, a row
    payload's tail: see ``core.model.RowBatch.bodies``); the same bytes as ``row_record``."""
    head = _ROW_HEAD.pack(ROW, seq & 0xFFFFFFFF)
    pack = _LEN_U32.pack
    return [pack(len(body) + 4) + head + body for body in bodies]


def decode(code: int, payload: bytes) -> State:
    kind = TYPES.get(code)
    if kind is None:
        raise FormatError(f"unknown record type {code}")
    if code != ROW:
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise FormatError(f"a {kind} record is not JSON: {exc}") from None
        return {"type": kind, **body}
    seq, count = _ROW.unpack_from(payload)
    pos = _ROW.size
    values: list[bytes | None] = []
    for _ in range(count):
        (length,) = _LEN.unpack_from(payload, pos)
        pos += _LEN.size
        if length < 0:
            values.append(None)
        else:
            values.append(payload[pos : pos + length])
            pos += length
    if pos != len(payload):
        raise FormatError("a row record's length does not match its values")
    return {"type": "row", "seq": seq, "values": values}


class Records:
    """Splits a byte stream into records, across chunk boundaries."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        buf = self._rest + data if self._rest else data
        pos = 0
        while len(buf) - pos >= _FRAME.size:
            length, code = _FRAME.unpack_from(buf, pos)
            end = pos + _FRAME.size + length
            if end > len(buf):
                break
            yield code, buf[pos + _FRAME.size : end]
            pos = end
        self._rest = buf[pos:]

    def done(self) -> None:
        if self._rest:
            raise FormatError(f"{len(self._rest)} bytes of an unfinished record at the end")


def upgrade(
    state: State, version: int, *, chain: Mapping[int, Upgrade] = UPGRADES, current: int = VERSION
) -> State:
    """``state``, of a recording of ``version``, as a state of ``current``."""
    if version > current:
        raise FormatError(
            f"recording format {version} is newer than this wardgate reads ({current})"
        )
    while version < current:
        step = chain.get(version)
        if step is None:
            raise FormatError(f"no upgrade from recording format {version}")
        state = step(state)
        version += 1
    return state
