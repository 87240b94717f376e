"""The DataRow codec: the compiled functions and the Python reference give the same bytes for
every row, and refuse the same malformed ones."""

from __future__ import annotations

import struct

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
@settings(max_examples=500)
@given(values)
def test_compiled_equals_the_reference(row: list[bytes | None]) -> None:
    assert rows.join(row) == rows.join_python(row)
    body = body_of(row)
    assert rows.split(body) == rows.split_python(body) == row


@compiled
@settings(max_examples=500)
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
@settings(max_examples=300)
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
