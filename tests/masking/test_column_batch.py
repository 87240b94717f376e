"""A column of cells masked at once (`ColumnMasker.column`, `ResultPlan.apply_rows`, the path of
a batch of DataRows) gives exactly what masking each cell, or each row, gives."""

from __future__ import annotations

import struct
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.masking import (
    AgeOver89,
    ColumnMasker,
    DateToYear,
    Keep,
    Null,
    Partial,
    Pseudonym,
    Redact,
    Zip3,
)
from wardgate.masking.operators import Operator
from wardgate.masking.operators.base import Cached, Constant, cached
from wardgate.masking.pgtypes import Format
from wardgate.masking.plan import ColumnPlan, ResultPlan
from wardgate.protocols.postgres import rows

KEY = b"unit-test-key"
OPERATORS: list[Operator] = [
    Redact(), Redact("[SSN]"), Null(), Keep(), Partial(keep=2), Pseudonym("P-"),
    Pseudonym(preserve_format=True), Zip3(), DateToYear(), AgeOver89(),
]  # fmt: skip
# text, varchar, int4, int8, date, timestamp, timestamptz, numeric, json, jsonb, text[], bool
TYPES = [25, 1043, 23, 20, 1082, 1114, 1184, 1700, 114, 3802, 1009, 16]
SAMPLES = [
    b"1984-03-12", b"1984-03-12 10:11:12", b"1984-03-12 10:11:12+02", b"infinity", b"12345",
    b"123-45-6789", b"Ada Lovelace", b'{"a": "1984-03-12", "b": 7}', b"\x01{}", b"{x,NULL,y}",
    struct.pack(">i", 1234), struct.pack(">q", 10**15), b"", b"t", b"90",
]  # fmt: skip
cells = st.one_of(st.none(), st.sampled_from(SAMPLES), st.binary(max_size=24))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(OPERATORS),
    st.sampled_from(TYPES),
    st.sampled_from([0, 1]),
    st.lists(cells, max_size=30),
)
def test_a_column_at_once_is_each_cell(
    operator: Operator, type_oid: int, fmt: Format, values: list[bytes | None]
) -> None:
    masker = ColumnMasker(type_oid, fmt, operator, KEY)
    fresh = ColumnMasker(type_oid, fmt, operator, KEY)
    assert masker.column(values) == [fresh(v) for v in values]
    assert masker.column(values) == [masker(v) for v in values]  # its cache filled now


def test_redaction_and_caches_take_the_column_paths() -> None:
    assert isinstance(ColumnMasker(25, 0, Redact(), KEY).cell, Constant)
    assert isinstance(ColumnMasker(1082, 0, DateToYear(), KEY).cell, Cached)
    calls: list[bytes] = []

    def cell(raw: bytes) -> bytes | None:
        calls.append(raw)
        return None if raw == b"n" else raw.upper()

    tiny = cached(cell, 2)
    assert [tiny(v) for v in (b"a", b"n", b"a", b"b", b"a")] == [b"A", None, b"A", b"B", b"A"]
    assert calls == [b"a", b"n", b"b", b"a"]  # full at two: emptied, then filled again


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[list[bytes | None]], list[ColumnPlan]]:
    width = draw(st.integers(min_value=1, max_value=6))
    plans = []
    for _ in range(width):
        if draw(st.booleans()):
            plans.append(ColumnPlan(None))
        else:
            fmt: Format = draw(st.sampled_from([0, 1]))
            masker = ColumnMasker(
                draw(st.sampled_from(TYPES)), fmt, draw(st.sampled_from(OPERATORS)), KEY
            )
            plans.append(ColumnPlan(masker, (draw(st.sampled_from(["SSN", "NAME"])),)))
    # rows of the result's width, and now and then one narrower or wider (a server may lie)
    row = st.lists(cells, min_size=width, max_size=width) | st.lists(cells, max_size=width + 2)
    return draw(st.lists(row, max_size=25)), plans


@settings(max_examples=300, deadline=None)
@given(tables())
def test_a_batch_of_rows_is_each_row(
    case: tuple[list[list[bytes | None]], list[ColumnPlan]],
) -> None:
    table, plans = case
    by_row, by_batch = ResultPlan(plans, Counter()), ResultPlan(plans, Counter())
    expected = [by_row.apply(list(r)) for r in table]
    batch = rows.DataRows(b"".join(rows.join(r) for r in table), len(table))
    by_batch.apply_rows(batch)
    assert batch.rows() == expected
    assert batch.data == b"".join(rows.join_python(r) for r in expected)  # the same bytes
    by_row.tally()
    by_batch.tally()
    assert by_batch.counts == by_row.counts
