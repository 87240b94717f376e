"""Arrays (what ``array_agg`` of a PHI column returns): the element operator, applied to every
element, in both wire formats. An element the operator cannot mask becomes a NULL element.

Text format is PostgreSQL's array literal: ``{a,"b c",NULL}``, nested braces for more
dimensions, an optional ``[lo:hi]=`` prefix when a lower bound is not 1, and elements quoted
with ``"`` and escaped with ``\\`` when they must be. Binary format is ndim, has-null flag and
element type (int32 each), a (length, lower bound) pair per dimension, then each element as an
int32 length (-1 for NULL) and its bytes in the element's binary format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from wardgate.masking.operators import CellFn

# array type OID -> element type OID, for the built-in types masking knows
ELEMENTS: dict[int, int] = {
    1000: 16, 1002: 18, 1003: 19, 1005: 21, 1007: 23, 1009: 25, 1014: 1042, 1015: 1043,
    1016: 20, 1021: 700, 1022: 701, 1041: 869, 651: 650, 1115: 1114, 1182: 1082, 1185: 1184,
    1187: 1186, 1231: 1700, 2951: 2950, 199: 114, 3807: 3802,
}  # fmt: skip

_INT = struct.Struct(">i")
_HEAD = struct.Struct(">iii")
_NEEDS_QUOTES = frozenset(b'{},"\\ \t\n\r\x0b\x0c')


def array_cell(element: CellFn, fmt: int, guard: Callable[[CellFn, bytes], bytes | None]) -> CellFn:
    """A cell function for arrays whose elements `element` masks; `guard` calls it and turns
    a malformed element into None."""
    if fmt == 1:
        return lambda raw: _binary(raw, element, guard)
    return lambda raw: _text(raw, element, guard)


def _binary(raw: bytes, element: CellFn, guard: Callable[[CellFn, bytes], bytes | None]) -> bytes:
    ndim, _, elemtype = _HEAD.unpack_from(raw)
    if not 0 <= ndim <= 6:
        raise ValueError("array has too many dimensions")
    position = 12 + 8 * ndim
    count = 1
    for d in range(ndim):
        count *= _INT.unpack_from(raw, 12 + 8 * d)[0]
    if ndim == 0:
        count = 0
    out = [b""]
    has_null = 0
    for _ in range(count):
        (length,) = _INT.unpack_from(raw, position)
        position += 4
        value = None
        if length >= 0:
            value = guard(element, raw[position : position + length])
            position += length
        if value is None:
            has_null = 1
            out.append(b"\xff\xff\xff\xff")
        else:
            out.append(_INT.pack(len(value)) + value)
    if position != len(raw):
        raise ValueError("array elements do not fill the value")
    out[0] = _HEAD.pack(ndim, has_null, elemtype) + raw[12 : 12 + 8 * ndim]
    return b"".join(out)


def _text(raw: bytes, element: CellFn, guard: Callable[[CellFn, bytes], bytes | None]) -> bytes:
    out = bytearray()
    i, n = 0, len(raw)
    if raw[:1] == b"[":  # dimension decoration: [0:2]={...}
        i = raw.index(b"=") + 1
        out += raw[:i]
    depth = 0
    while i < n:
        c = raw[i]
        if c == 0x7B:  # {
            depth += 1
            out.append(c)
            i += 1
        elif c == 0x7D:  # }
            depth -= 1
            out.append(c)
            i += 1
        elif c == 0x2C:  # ,
            out.append(c)
            i += 1
        elif c == 0x22:  # a quoted element
            i += 1
            value = bytearray()
            while raw[i] != 0x22:
                if raw[i] == 0x5C:  # backslash
                    i += 1
                value.append(raw[i])
                i += 1
            i += 1
            out += _quote(guard(element, bytes(value)))
        else:
            end = i
            while end < n and raw[end] not in (0x2C, 0x7D):
                end += 1
            token = raw[i:end]
            out += b"NULL" if token == b"NULL" else _quote(guard(element, token))
            i = end
    if depth != 0:
        raise ValueError("unbalanced braces in array")
    return bytes(out)


def _quote(value: bytes | None) -> bytes:
    if value is None:
        return b"NULL"
    if value and value.upper() != b"NULL" and not any(b in _NEEDS_QUOTES for b in value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
