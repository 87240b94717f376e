"""DataRow bodies split into values, and values joined into a DataRow message.

The per-row path of a masked or recorded result: every row is split, handed to the pipeline and
joined again. This module is the reference, in Python; ``_rows.c`` is the same two functions
compiled, used when it was built (``pip install`` builds it where a C compiler exists) unless
``WARDGATE_PURE_PYTHON`` is set. ``COMPILED`` says which runs. Both refuse a malformed row with
``MalformedRow`` rather than guess at its values; ``tests/protocols/postgres/test_rows.py`` runs
them side by side and requires the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from wardgate import native
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


# ---- runs of DataRow messages: a read's rows in one call ---------------------------------------


def scan_python(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the whole DataRow messages from ``start`` on stop, and how many there are; each
    body is checked (``MalformedRow``). Stops at any other message, an incomplete one, or a
    length below 4 (left to the caller to refuse)."""
    end = min(end, len(data))
    pos, count = max(start, 0), 0
    unpack = _I32.unpack_from
    while end - pos >= 5 and data[pos] == _DATA_ROW:
        length = unpack(data, pos + 1)[0]
        if length < 4 or end - pos - 1 < length:
            break
        split_python(data[pos + 5 : pos + 1 + length])
        pos += 1 + length
        count += 1
    return pos, count


def _bodies(data: bytes) -> list[bytes]:
    out = []
    pos, size = 0, len(data)
    while pos < size:
        if size - pos < 5 or data[pos] != _DATA_ROW:
            raise MalformedRow("not a run of DataRow messages")
        length = _I32.unpack_from(data, pos + 1)[0]
        if length < 4 or size - pos - 1 < length:
            raise MalformedRow("a DataRow message cut short")
        out.append(data[pos + 5 : pos + 1 + length])
        pos += 1 + length
    return out


def bodies_python(data: bytes) -> list[bytes]:
    """The body of each DataRow message of a run, each checked."""
    out = _bodies(data)
    for body in out:
        split_python(body)
    return out


def columns_python(data: bytes, indices: tuple[int, ...]) -> list[list[bytes | None]]:
    """For each index, that column's value in every row of a run (None for NULL and for a row
    without such a column)."""
    return _columns_of([split_python(body) for body in _bodies(data)], indices)


def _columns_of(
    table: list[list[bytes | None]], indices: tuple[int, ...]
) -> list[list[bytes | None]]:
    return [[r[i] if 0 <= i < len(r) else None for r in table] for i in indices]


def replace_python(
    data: bytes, indices: tuple[int, ...], columns: tuple[list[bytes | None], ...]
) -> bytes:
    """The run with those columns' values replaced, row by row; a row without such a column
    keeps its values."""
    table = [split_python(body) for body in _bodies(data)]
    return _replace_in(table, indices, columns)


def _replace_in(
    table: list[list[bytes | None]],
    indices: tuple[int, ...],
    columns: tuple[list[bytes | None], ...],
) -> bytes:
    """``replace_python`` on rows already split (changed in place): the run's new bytes."""
    if len(columns) != len(indices):
        raise ValueError("one list of values per column index")
    if len(set(indices)) != len(indices):
        raise ValueError("a column index given twice")
    if not all(isinstance(c, list) for c in columns):
        raise TypeError("the values of a column are a list")
    if any(len(c) != len(table) for c in columns):
        raise ValueError("a column has as many values as the run has rows")
    for i, column in zip(indices, columns, strict=True):
        for values, value in zip(table, column, strict=True):
            if 0 <= i < len(values):
                if value is not None and not isinstance(value, bytes):
                    raise TypeError("a DataRow value is bytes or None")
                values[i] = value
    return b"".join([join_python(values) for values in table])


class DataRows:
    """A run of DataRow messages of one result, as ``core.model.RowBatch``: ``data`` holds the
    messages as they will be sent; replacing columns builds it anew. Without the compiled codec
    the rows are split once and kept, for the columns taken out and put back."""

    __slots__ = ("_table", "count", "data")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count
        self._table: list[list[bytes | None]] | None = None

    def __len__(self) -> int:
        return self.count

    def columns(self, indices: tuple[int, ...]) -> list[list[bytes | None]]:
        if COMPILED:
            return columns(self.data, indices)
        return _columns_of(self._split(), indices)

    def replace(self, indices: tuple[int, ...], values: tuple[list[bytes | None], ...]) -> None:
        if COMPILED:
            self.data = replace(self.data, indices, values)
        else:
            try:
                self.data = _replace_in(self._split(), indices, values)
            except (TypeError, ValueError):
                self._table = None  # it may be changed in part: split again from the bytes
                raise

    def _split(self) -> list[list[bytes | None]]:
        if self._table is None:
            self._table = [split_python(body) for body in _bodies(self.data)]
        return self._table

    def rows(self) -> list[list[bytes | None]]:
        return [split(body) for body in bodies(self.data)]

    def set_rows(self, rows: list[list[bytes | None]]) -> None:
        if len(rows) != self.count:
            raise ValueError("a batch keeps its number of rows")
        self.data = b"".join([join(values) for values in rows])
        self._table = None

    def bodies(self) -> list[bytes]:
        return bodies(self.data)


_fast = native.load("wardgate.protocols.postgres._rows")
if _fast is not None:
    _fast.set_error(MalformedRow)
COMPILED = _fast is not None

split: Callable[[bytes], list[bytes | None]]
scan: Callable[[bytes, int, int], tuple[int, int]]
columns: Callable[[bytes, tuple[int, ...]], list[list[bytes | None]]]
replace: Callable[[bytes, tuple[int, ...], tuple[list[bytes | None], ...]], bytes]
bodies: Callable[[bytes], list[bytes]]

if _fast is not None:
    split, scan, columns = _fast.split, _fast.scan, _fast.columns
    replace, bodies = _fast.replace, _fast.bodies
    _join = _fast.join

    def join(values: list[bytes | None]) -> bytes:
        try:
            return _join(values)  # type: ignore[no-any-return]
        except TypeError:  # not a list, or a value that is not bytes: the general path
            return join_python(list(values))

else:
    split, scan, columns = split_python, scan_python, columns_python
    replace, bodies = replace_python, bodies_python
    join = join_python
