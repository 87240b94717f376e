"""``MessageReader``: whole messages out of any split of the input, limits checked up front."""

from __future__ import annotations

import struct

import pytest

from wardgate.protocols.postgres import wire
from wardgate.protocols.postgres.framing import MAX_STARTUP_LENGTH, MessageReader
from wardgate.protocols.postgres.wire import ProtocolViolation

STREAM = [
    (wire.F_QUERY, wire.cstr("SELECT 1")),
    (wire.F_SYNC, b""),
    (wire.F_PARSE, wire.cstr("s1") + wire.cstr("SELECT $1") + struct.pack("!h", 0)),
    (wire.F_COPY_DATA, bytes(range(256)) * 40),
    (wire.F_TERMINATE, b""),
]


def drain(reader: MessageReader) -> list[tuple[int, bytes]]:
    out = []
    while (msg := reader.next_message()) is not None:
        out.append(msg)
    return out


def test_messages_split_byte_by_byte() -> None:
    data = b"".join(wire.message(kind, body) for kind, body in STREAM)
    reader = MessageReader(max_length=1 << 20)
    got: list[tuple[int, bytes]] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        got += drain(reader)
    assert got == STREAM
    assert reader.pending() == 0


def test_messages_in_one_piece_with_a_partial_tail() -> None:
    data = b"".join(wire.message(kind, body) for kind, body in STREAM)
    reader = MessageReader(max_length=1 << 20)
    reader.feed(data + b"Q\x00\x00")
    assert drain(reader) == STREAM
    assert reader.pending() == 3
    assert reader.take_rest() == b"Q\x00\x00"
    assert reader.pending() == 0


def test_startup_packets_split_byte_by_byte() -> None:
    startup = wire.startup_message({"user": "alice", "database": "db"})
    data = wire.ssl_request() + startup + wire.cancel_request(7, 9)
    reader = MessageReader(max_length=1024)
    bodies = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        if (body := reader.next_startup()) is not None:
            bodies.append(body)
    assert bodies == [wire.ssl_request()[4:], startup[4:], wire.cancel_request(7, 9)[4:]]
    parsed = wire.parse_startup(bodies[1])
    assert (parsed.user, parsed.database) == ("alice", "db")


def test_message_at_the_limit_passes_and_one_byte_more_is_refused() -> None:
    reader = MessageReader(max_length=100)
    reader.feed(wire.message(wire.F_QUERY, b"x" * 100))
    assert reader.next_message() == (wire.F_QUERY, b"x" * 100)
    reader.feed(wire.header(wire.F_QUERY, 4 + 101))  # only the header: no body yet
    with pytest.raises(ProtocolViolation) as excinfo:
        reader.next_message()
    assert excinfo.value.sqlstate == "54000"
    assert "101" in str(excinfo.value)


def test_two_gigabyte_message_is_refused_from_its_header() -> None:
    reader = MessageReader(max_length=64 << 20)
    reader.feed(b"Q\x7f\xff\xff\xff")
    with pytest.raises(ProtocolViolation) as excinfo:
        reader.next_message()
    assert excinfo.value.sqlstate == "54000"


@pytest.mark.parametrize("length", [-1, 0, 3])
def test_message_length_below_its_own_size_is_refused(length: int) -> None:
    reader = MessageReader(max_length=1024)
    reader.feed(b"Q" + struct.pack("!i", length))
    with pytest.raises(ProtocolViolation) as excinfo:
        reader.next_message()
    assert excinfo.value.sqlstate == "08P01"


@pytest.mark.parametrize("length", [-1, 0, 7, MAX_STARTUP_LENGTH + 1, 0x7FFFFFFF])
def test_startup_length_out_of_range_is_refused_before_the_body(length: int) -> None:
    reader = MessageReader(max_length=1024)
    reader.feed(struct.pack("!i", length))
    with pytest.raises(ProtocolViolation, match="invalid length of startup packet") as excinfo:
        reader.next_startup()
    assert excinfo.value.sqlstate == "08P01"


def test_startup_at_the_limit_is_waited_for() -> None:
    reader = MessageReader(max_length=1024)
    reader.feed(struct.pack("!i", MAX_STARTUP_LENGTH) + b"\x00" * 100)
    assert reader.next_startup() is None
    reader.feed(b"\x00" * (MAX_STARTUP_LENGTH - 104))
    body = reader.next_startup()
    assert body is not None and len(body) == MAX_STARTUP_LENGTH - 4


def test_nothing_is_returned_until_a_header_is_complete() -> None:
    reader = MessageReader(max_length=1024)
    reader.feed(b"Q\x00\x00\x00")
    assert reader.next_message() is None
    reader.feed(b"\x05")  # a one-byte body, not here yet
    assert reader.next_message() is None
    reader.feed(b"\x00")
    assert reader.next_message() == (wire.F_QUERY, b"\x00")
    reader.feed(b"\x00\x00")
    assert reader.next_startup() is None
