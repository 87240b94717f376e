"""Masking one result column: a `ColumnMasker` is built once per column (type, format, operator,
key) and called once per cell, or once per batch of rows with `ColumnMasker.column`. `mask_value`
is the one-off form of the same thing."""

from __future__ import annotations

import struct
from decimal import InvalidOperation

from wardgate.masking.arrays import ELEMENTS, array_cell
from wardgate.masking.operators import CellFn, Operator
from wardgate.masking.operators.base import Cached, Constant
from wardgate.masking.pgtypes import Family, Format, family_of

# What a malformed cell raises inside a cell function; the cell then becomes NULL (fail closed).
_MALFORMED = (
    ValueError, struct.error, InvalidOperation, UnicodeError, IndexError, OverflowError,
    RecursionError,
)  # fmt: skip


class ColumnMasker:
    """Masks the cells of one result column. ``masker(raw)`` takes the cell's wire bytes (None
    for SQL NULL, which stays NULL) and returns the bytes to send, or None for SQL NULL.

    `fallback` is True when the operator has no valid value of the column's type and every cell
    becomes NULL; callers may report it in the masking plan. A cell the operator cannot parse
    (wrong length, not a date) also becomes NULL: masking never passes a value it did not
    understand.
    """

    __slots__ = ("cell", "fallback", "family", "fmt", "operator", "type_oid")

    def __init__(
        self,
        type_oid: int,
        fmt: Format,
        operator: Operator,
        key: bytes,
        *,
        family: Family | None = None,
    ) -> None:
        self.type_oid = type_oid
        self.fmt: Format = fmt
        self.operator = operator
        self.family = family or family_of(type_oid)
        element_oid = ELEMENTS.get(type_oid) if family is None else None
        if element_oid is not None:
            element = operator.compile(family_of(element_oid), fmt, key)
            cell = None if element is None else array_cell(element, fmt, _guarded)
        else:
            cell = operator.compile(self.family, fmt, key)
        self.fallback = cell is None
        self.cell: CellFn = cell or _null

    def __call__(self, raw: bytes | None) -> bytes | None:
        if raw is None:
            return None
        try:
            return self.cell(raw)
        except _MALFORMED:
            return None

    def column(self, values: list[bytes | None]) -> list[bytes | None]:
        """``self`` applied to each value: the cells of one column in a batch of rows."""
        cell = self.cell
        if isinstance(cell, Constant):
            masked = cell.value
            return [None if v is None else masked for v in values]
        try:
            if isinstance(cell, Cached):  # the cache looked up in the loop, a call per miss
                seen = cell.cache
                return [None if v is None else seen[v] if v in seen else cell(v) for v in values]
            return [None if v is None else cell(v) for v in values]
        except _MALFORMED:  # a cell it could not parse: cell by cell, that one NULL
            return [self(v) for v in values]

    def __repr__(self) -> str:
        return (
            f"ColumnMasker({self.type_oid}, {self.fmt}, {self.operator!r}"
            f"{', fallback to NULL' if self.fallback else ''})"
        )


def _null(raw: bytes) -> bytes | None:
    return None


def _guarded(cell: CellFn, raw: bytes) -> bytes | None:
    try:
        return cell(raw)
    except _MALFORMED:
        return None


_CACHE: dict[tuple[int, int, Operator, bytes, Family | None], ColumnMasker] = {}


def column_masker(
    type_oid: int, fmt: Format, operator: Operator, key: bytes, family: Family | None = None
) -> ColumnMasker:
    """A shared `ColumnMasker` for this combination (operators are frozen dataclasses, hence
    hashable). The cache holds at most 1024 maskers and starts over when full."""
    cache_key = (type_oid, fmt, operator, key, family)
    masker = _CACHE.get(cache_key)
    if masker is None:
        if len(_CACHE) >= 1024:
            _CACHE.clear()
        masker = _CACHE[cache_key] = ColumnMasker(type_oid, fmt, operator, key, family=family)
    return masker


def mask_value(
    raw: bytes | None,
    type_oid: int,
    fmt: Format,
    operator: Operator,
    key: bytes,
    *,
    family: Family | None = None,
) -> bytes | None:
    """Masks one value; None in or out is SQL NULL. For many cells build a `ColumnMasker`."""
    return column_masker(type_oid, fmt, operator, key, family)(raw)
