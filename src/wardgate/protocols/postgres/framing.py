"""Cutting a byte stream into PostgreSQL messages, with the length limits enforced up front.

A length word is checked before any body is buffered, so a peer that announces a 2 GB message
gets an error at once instead of making the gateway wait for (or allocate) it.
"""

from __future__ import annotations

import struct

from wardgate.protocols.postgres.wire import ProtocolViolation

MAX_STARTUP_LENGTH = 10_000  # the limit PostgreSQL itself applies
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!Bi")


class MessageReader:
    """Bytes in, whole messages out. ``max_length`` bounds any single message body."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pending(self) -> int:
        return len(self._buf)

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def next_startup(self) -> bytes | None:
        """The body of an untyped start-up phase packet (SSLRequest, StartupMessage, ...)."""
        if len(self._buf) < 4:
            return None
        length = _I32.unpack_from(self._buf)[0]
        if length < 8 or length > MAX_STARTUP_LENGTH:
            raise ProtocolViolation(f"invalid length of startup packet ({length})")
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[4:length])
        del self._buf[:length]
        return body

    def next_message(self) -> tuple[int, bytes] | None:
        if len(self._buf) < 5:
            return None
        kind, length = _HEADER.unpack_from(self._buf)
        check_length(kind, length, self.max_length)
        end = 1 + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[5:end])
        del self._buf[:end]
        return kind, body


def check_length(kind: int, length: int, max_length: int) -> None:
    if length < 4:
        raise ProtocolViolation(f"invalid message length {length} for message type {kind:#x}")
    if length - 4 > max_length:
        raise ProtocolViolation(
            f"message of type {chr(kind)!r} announces {length - 4} bytes, "
            f"more than the limit of {max_length}",
            "54000",
        )
