"""What every operator is: a frozen dataclass of typed parameters that compiles, once per result
column, into a function from one non-NULL cell (wire bytes) to masked wire bytes or None (NULL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from wardgate.masking.pgtypes import Family, Format

CellFn = Callable[[bytes], bytes | None]
"""Masks one non-NULL cell. None means "send SQL NULL" (length -1 on the wire)."""


class Operator(Protocol):
    name: ClassVar[str]

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        """The cell function for a column of this family and format, or None when this operator
        cannot produce a valid value of the type; the column then falls back to NULL."""
        ...

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        """The masked form of one JSON string or number (strings stay strings), or None for a
        JSON null. JSON and jsonb columns are masked leaf by leaf with this."""
        ...


class Constant:
    """A cell function whose output is one value whatever the cell (redaction): a column of
    them is masked without a call per cell."""

    __slots__ = ("value",)

    def __init__(self, value: bytes | None) -> None:
        self.value = value

    def __call__(self, raw: bytes) -> bytes | None:
        return self.value


def constant(value: bytes | None) -> CellFn:
    return Constant(value)


def json_text(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).encode()


def json_cell(leaf: Callable[[str | int | float], Any], family: Family, fmt: Format) -> CellFn:
    """A cell function for a json/jsonb column that masks every string and number in the
    document with `leaf` and keeps its shape; keys, booleans and nulls are kept."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        return leaf(value)

    if family is Family.JSONB and fmt == 1:

        def jsonb_binary(raw: bytes) -> bytes | None:
            if raw[:1] != b"\x01":
                return None
            return b"\x01" + json_text(walk(json.loads(raw[1:])))

        return jsonb_binary

    def json_cell_text(raw: bytes) -> bytes | None:
        return json_text(walk(json.loads(raw)))

    return json_cell_text


def is_json(family: Family) -> bool:
    return family is Family.JSON or family is Family.JSONB


class Cached:
    """A cell function with a cache of its results by input, for values that repeat (join keys,
    dates of birth, ZIP codes); emptied when it holds `size` of them. A column of cells looks
    the cache up without a call per cell (``ColumnMasker.column``)."""

    __slots__ = ("cache", "cell", "size")

    def __init__(self, cell: CellFn, size: int) -> None:
        self.cell = cell
        self.size = size
        self.cache: dict[bytes, bytes | None] = {}

    def __call__(self, raw: bytes) -> bytes | None:
        cache = self.cache
        out = cache.get(raw, raw)
        if out is raw:
            out = self.cell(raw)
            if len(cache) >= self.size:
                cache.clear()
            cache[raw] = out
        return out


def cached(cell: CellFn, size: int = 65536) -> CellFn:
    """`cell` with a cache of its results by input (`Cached`); `cell` itself if `size` is 0."""
    if size <= 0:
        return cell
    return Cached(cell, size)
