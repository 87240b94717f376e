"""DataRow bodies split into values, and values joined into a DataRow message.

The per-row path of a masked or recorded result: every row is split, handed to the pipeline and
joined again. This module is the reference, in Python; ``_rows.c`` is the same two functions
compiled, used when it was built (``pip install`` builds it where a C compiler exists) unless
``WARDGATE_PURE_PYTHON`` is set. ``COMPILED`` says which runs. Both refuse a malformed row with
``MalformedRow`` rather than guess at its values; ``tests/protocols/postgres/test_rows.py`` runs
them side by side and requires the same bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from wardgate.protocols.postgres.wire import ProtocolViolation

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_HEAD = struct.Struct("!Bi")
_NULL = _I32.pack(-1)
_DATA_ROW = ord("D")


class MalformedRow(ProtocolViolation):
    """A DataRow whose lengths do not add up."""


def split_python(body: bytes) -> list[bytes | None]:
    size = len(body)
    if size < 2:
        raise MalformedRow("a DataRow shorter than its column count")
    count = _I16.unpack_from(body)[0]
    if count < 0:
        raise MalformedRow("a DataRow with a negative column count")
    unpack = _I32.unpack_from
    values: list[bytes | None] = [None] * count
    pos = 2
    for i in range(count):
        if size - pos < 4:
            raise MalformedRow("a DataRow cut short in a value's length")
        length = unpack(body, pos)[0]
        pos += 4
        if length >= 0:
            end = pos + length
            if end > size:
                raise MalformedRow("a DataRow cut short in a value")
            values[i] = body[pos:end]
            pos = end
        elif length != -1:
            raise MalformedRow("a DataRow value of negative length")
    if pos != size:
        raise MalformedRow("a DataRow with bytes after its last value")
    return values


def join_python(values: list[bytes | None]) -> bytes:
    if len(values) > 32767:
        raise MalformedRow("a DataRow holds at most 32767 values")
    pack = _I32.pack
    parts = [b"", _I16.pack(len(values))]
    size = 2
    for v in values:
        if v is None:
            parts.append(_NULL)
            size += 4
        else:
            parts.append(pack(len(v)))
            parts.append(v)
            size += 4 + len(v)
    parts[0] = _HEAD.pack(_DATA_ROW, size + 4)
    return b"".join(parts)


def _compiled() -> tuple[Callable[[bytes], list[bytes | None]], Callable[..., bytes]] | None:
    if os.environ.get("WARDGATE_PURE_PYTHON"):
        return None
    try:
        from wardgate.protocols.postgres import _rows  # type: ignore[attr-defined]
    except ImportError:
        return None
    _rows.set_error(MalformedRow)
    return _rows.split, _rows.join


_fast = _compiled()
COMPILED = _fast is not None

if _fast is not None:
    split = _fast[0]
    _join = _fast[1]

    def join(values: list[bytes | None]) -> bytes:
        try:
            return _join(values)
        except TypeError:  # not a list, or a value that is not bytes: the general path
            return join_python(list(values))

else:
    split = split_python
    join = join_python
