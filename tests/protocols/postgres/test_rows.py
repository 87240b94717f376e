"""The DataRow codec: the compiled functions and the Python reference give the same bytes for
every row, and refuse the same malformed ones."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.protocols.postgres import rows

compiled = pytest.mark.skipif(
    not rows.COMPILED, reason="the compiled codec is not built (or WARDGATE_PURE_PYTHON is set)"
)
values = st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=40)


def body_of(row: list[bytes | None]) -> bytes:
    return rows.join_python(row)[5:]


@given(values)
def test_the_reference_round_trips(row: list[bytes | None]) -> None:
    message = rows.join_python(row)
    assert message[:1] == b"D" and struct.unpack("!i", message[1:5])[0] == len(message) - 1
    assert rows.split_python(message[5:]) == row


@compiled
@settings(max_examples=500, deadline=None)
@given(values)
def test_compiled_equals_the_reference(row: list[bytes | None]) -> None:
    assert rows.join(row) == rows.join_python(row)
    body = body_of(row)
    assert rows.split(body) == rows.split_python(body) == row


@compiled
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_both_refuse_the_same_garbage(data: bytes) -> None:
    outcomes: list[tuple[str, list[bytes | None] | None]] = []
    for split in (rows.split, rows.split_python):
        try:
            outcomes.append(("ok", split(data)))
        except rows.MalformedRow:
            outcomes.append(("refused", None))
    assert outcomes[0] == outcomes[1]


@compiled
@settings(max_examples=300, deadline=None)
@given(values, st.integers(min_value=1, max_value=8))
def test_truncated_or_padded_rows_are_refused_by_both(row: list[bytes | None], cut: int) -> None:
    body = body_of(row)
    for broken in (body[:-cut] if len(body) > cut else b"", body + b"\x00" * cut):
        for split in (rows.split, rows.split_python):
            with pytest.raises(rows.MalformedRow):
                split(broken)


def test_malformed_rows_are_refused() -> None:
    good = body_of([b"ab", None])
    cases = [b"", b"\x00", b"\xff\xff", good[:-1], good + b"x", b"\x00\x01\xff\xff\xff\xfe"]
    for split in {rows.split, rows.split_python}:
        for case in cases:
            with pytest.raises(rows.MalformedRow):
                split(case)


def test_other_buffers_still_join() -> None:
    row: list[bytes | None] = [bytearray(b"ab"), None, memoryview(b"c")]  # type: ignore[list-item]
    assert rows.join(row) == rows.join_python([b"ab", None, b"c"])


# ---- runs of DataRow messages (a read's rows in one batch) --------------------------------------

runs = st.lists(values, max_size=12)
indices = st.lists(st.integers(min_value=-2, max_value=45), max_size=5, unique=True).map(tuple)
# What a read from the server can hold: rows, then maybe another message or part of one.
tails = st.sampled_from([b"", b"C\x00\x00\x00\x0dSELECT 1\x00", b"D\x00\x00", b"D\x00\x00\x00\x03"])


def run_of(table: list[list[bytes | None]]) -> bytes:
    return b"".join(rows.join_python(r) for r in table)


def outcome(call: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return ("ok", call(*args))
    except rows.MalformedRow:
        return ("refused", None)
    except (TypeError, ValueError) as exc:
        return (type(exc).__name__, None)


@compiled
@settings(max_examples=300, deadline=None)
@given(runs, tails, st.binary(max_size=8))
def test_scan_finds_the_same_run(
    table: list[list[bytes | None]], tail: bytes, before: bytes
) -> None:
    data = before + run_of(table) + tail
    for start, end in ((len(before), len(data)), (len(before), len(data) - 3), (0, len(data))):
        assert outcome(rows.scan, data, start, end) == outcome(rows.scan_python, data, start, end)
    stop, count = rows.scan(data, len(before), len(data))
    assert (stop, count) == (len(before) + len(run_of(table)), len(table))


@compiled
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(min_value=0, max_value=8))
def test_scan_refuses_the_same_garbage(garbage: bytes, start: int) -> None:
    data = b"D" + garbage
    assert outcome(rows.scan, data, start, len(data)) == outcome(
        rows.scan_python, data, start, len(data)
    )


@compiled
@settings(max_examples=300, deadline=None)
@given(runs, indices)
def test_columns_are_the_same(table: list[list[bytes | None]], wanted: tuple[int, ...]) -> None:
    data = run_of(table)
    got = rows.columns(data, wanted)
    assert got == rows.columns_python(data, wanted)
    for k, i in enumerate(wanted):
        assert got[k] == [r[i] if 0 <= i < len(r) else None for r in table]
    assert rows.bodies(data) == rows.bodies_python(data) == [run_of([r])[5:] for r in table]


@st.composite
def replacements(
    draw: st.DrawFn,
) -> tuple[list[list[bytes | None]], tuple[int, ...], tuple[list[bytes | None], ...]]:
    table = draw(runs)
    wanted = draw(indices)
    cell = st.one_of(st.none(), st.binary(max_size=40))
    new = tuple(draw(st.lists(cell, min_size=len(table), max_size=len(table))) for _ in wanted)
    return table, wanted, new


@compiled
@settings(max_examples=500, deadline=None)
@given(replacements())
def test_replace_gives_the_same_bytes(
    case: tuple[list[list[bytes | None]], tuple[int, ...], tuple[list[bytes | None], ...]],
) -> None:
    table, wanted, new = case
    data = run_of(table)
    got = rows.replace(data, wanted, new)
    assert got == rows.replace_python(data, wanted, new)
    expected = [list(r) for r in table]
    for i, column in zip(wanted, new, strict=True):
        for row, value in zip(expected, column, strict=True):
            if 0 <= i < len(row):
                row[i] = value
    assert got == run_of(expected)


@compiled
@settings(max_examples=300, deadline=None)
@given(runs, st.binary(min_size=1, max_size=12), indices)
def test_a_broken_run_is_refused_by_both(
    table: list[list[bytes | None]], garbage: bytes, wanted: tuple[int, ...]
) -> None:
    data = run_of(table) + b"D" + garbage
    empty: tuple[list[bytes | None], ...] = tuple([None] * (len(table) + 1) for _ in wanted)
    for fast, slow, args in (
        (rows.bodies, rows.bodies_python, (data,)),
        (rows.columns, rows.columns_python, (data, wanted)),
        (rows.replace, rows.replace_python, (data, wanted, empty)),
    ):
        assert outcome(fast, *args) == outcome(slow, *args)


@compiled
@given(runs, indices)
def test_replace_refuses_what_it_cannot_place(
    table: list[list[bytes | None]], wanted: tuple[int, ...]
) -> None:
    data = run_of(table)
    short: tuple[list[bytes | None], ...] = tuple([None] * (len(table) + 1) for _ in wanted)
    text: list[Any] = ["x"] * len(table)  # str, not bytes
    wrong: tuple[list[bytes | None], ...] = tuple(text for _ in wanted)
    for bad in (short, wrong, (*short, [])):
        fast = outcome(rows.replace, data, wanted, bad)
        slow = outcome(rows.replace_python, data, wanted, bad)
        if fast[0] == "ok":  # no row holds a wanted column: nothing to place
            assert slow == fast
        else:
            assert fast[0] in ("TypeError", "ValueError") and slow[0] in ("TypeError", "ValueError")


@given(runs, indices)
def test_a_batch_of_data_rows(table: list[list[bytes | None]], wanted: tuple[int, ...]) -> None:
    batch = rows.DataRows(run_of(table), len(table))
    assert len(batch) == len(table) and batch.rows() == table
    assert batch.bodies() == [run_of([r])[5:] for r in table]
    batch.set_rows([[b"x", *r] for r in table])
    assert batch.data == run_of([[b"x", *r] for r in table])
    found = batch.columns(wanted)
    batch.replace(wanted, tuple(found))  # the same values back: the same bytes
    assert batch.data == run_of([[b"x", *r] for r in table])
    with pytest.raises(ValueError):
        batch.set_rows([*table, [None]])  # a batch keeps its number of rows
