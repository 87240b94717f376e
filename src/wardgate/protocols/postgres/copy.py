"""COPY TO STDOUT data, row by row, for addons that look at rows (masking). Sans-io.

A COPY's CopyData messages carry a byte stream, not rows: the server happens to send one row per
message, but nothing in the protocol promises it, so the decoders keep what a message leaves
unfinished for the next one.

Text format (the default): rows end with a newline, fields are separated by a tab, NULL is
``\\N``, and a backslash escapes ``\\b \\f \\n \\r \\t \\v``, itself, octal ``\\ooo`` and ``\\xhh``.
Rows are written back the way the server writes them. CSV and other delimiters also arrive as
"text" in CopyOutResponse; the protocol cannot tell them apart, so only the default text form is
decoded and the caller must know the statement asked for it.

Binary format: an 11-byte signature, flags, a header extension, then per row a 16-bit field
count and per field a 32-bit length (-1 for NULL) and the bytes; a field count of -1 ends it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from wardgate.protocols.postgres.wire import ProtocolViolation

Row = list[bytes | None]
RowHook = Callable[[Row], Row]

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_ESCAPE_OUT = {b"\\": b"\\\\", b"\n": b"\\n", b"\r": b"\\r", b"\t": b"\\t", b"\b": b"\\b",
               b"\f": b"\\f", b"\v": b"\\v"}  # fmt: skip
_NEEDS_ESCAPE = re.compile(rb"[\\\n\r\t\b\f\v]")
_ESCAPE_IN = re.compile(rb"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.DOTALL)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1] == b"x":
        return bytes([int(code[1:], 16)])
    if code[:1].isdigit():
        return bytes([int(code, 8) & 0xFF])
    return _SIMPLE.get(code, code)


def parse_text_row(line: bytes) -> Row:
    """One text-format row without its newline."""
    return [
        None if field == b"\\N" else _ESCAPE_IN.sub(_unescape, field) if b"\\" in field else field
        for field in line.split(b"\t")
    ]


def text_row(values: Row) -> bytes:
    out = []
    for value in values:
        if value is None:
            out.append(b"\\N")
        elif _NEEDS_ESCAPE.search(value):
            out.append(_NEEDS_ESCAPE.sub(lambda m: _ESCAPE_OUT[m.group(0)], value))
        else:
            out.append(value)
    return b"\t".join(out) + b"\n"


class TextCopy:
    """CopyData payloads in, the same data with every row passed through ``hook``, out."""

    def __init__(self, hook: RowHook) -> None:
        self._hook = hook
        self._rest = b""
        self.rows = 0

    def feed(self, data: bytes) -> bytes:
        data = self._rest + data
        end = data.rfind(b"\n")
        if end < 0:
            self._rest = data
            return b""
        self._rest = data[end + 1 :]
        lines = data[:end].split(b"\n")
        self.rows += len(lines)
        return b"".join(text_row(self._hook(parse_text_row(line))) for line in lines)

    def finish(self) -> None:
        if self._rest:
            raise ProtocolViolation("COPY data ended inside a row")


class BinaryCopy:
    """The binary COPY stream, re-encoded row by row through ``hook``."""

    def __init__(self, hook: RowHook) -> None:
        self._hook = hook
        self._buf = b""
        self._header_done = False
        self._ended = False
        self.rows = 0

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data
        out: list[bytes] = []
        pos = 0
        if not self._header_done:
            if len(buf) < 19:
                self._buf = buf
                return b""
            if not buf.startswith(BINARY_SIGNATURE):
                raise ProtocolViolation("binary COPY data without its signature")
            extension = _INT32.unpack_from(buf, 15)[0]
            if extension < 0 or len(buf) < 19 + extension:
                if extension < 0:
                    raise ProtocolViolation("binary COPY header extension of negative length")
                self._buf = buf
                return b""
            pos = 19 + extension
            out.append(buf[:pos])
            self._header_done = True
        while pos + 2 <= len(buf) and not self._ended:
            count = _INT16.unpack_from(buf, pos)[0]
            if count == -1:
                out.append(buf[pos : pos + 2])
                pos += 2
                self._ended = True
                break
            if count < 0:
                raise ProtocolViolation(f"binary COPY row with {count} fields")
            row, end = self._row(buf, pos + 2, count)
            if row is None:
                break
            out.append(_binary_row(self._hook(row)))
            self.rows += 1
            pos = end
        self._buf = buf[pos:]
        if self._ended and self._buf:
            raise ProtocolViolation("binary COPY data after its trailer")
        return b"".join(out)

    @staticmethod
    def _row(buf: bytes, pos: int, count: int) -> tuple[Row | None, int]:
        row: Row = []
        for _ in range(count):
            if pos + 4 > len(buf):
                return None, pos
            size = _INT32.unpack_from(buf, pos)[0]
            pos += 4
            if size == -1:
                row.append(None)
                continue
            if size < 0:
                raise ProtocolViolation(f"binary COPY field of length {size}")
            if pos + size > len(buf):
                return None, pos
            row.append(buf[pos : pos + size])
            pos += size
        return row, pos

    def finish(self) -> None:
        if self._buf or (self._header_done and not self._ended):
            raise ProtocolViolation("binary COPY data ended inside a row")


def _binary_row(values: Row) -> bytes:
    parts = [_INT16.pack(len(values))]
    for value in values:
        if value is None:
            parts.append(_INT32.pack(-1))
        else:
            parts.append(_INT32.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def parse_copy_out(body: bytes) -> tuple[bool, tuple[bool, ...]]:
    """CopyOutResponse: whether the whole copy is binary, and each column's format."""
    if len(body) < 3:
        raise ProtocolViolation("short CopyOutResponse")
    overall = body[0]
    count = _INT16.unpack_from(body, 1)[0]
    if count < 0 or len(body) < 3 + 2 * count:
        raise ProtocolViolation("malformed CopyOutResponse")
    formats = tuple(_INT16.unpack_from(body, 3 + 2 * i)[0] == 1 for i in range(count))
    return overall == 1, formats
