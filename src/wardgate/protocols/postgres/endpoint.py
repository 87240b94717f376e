"""One socket of a PostgreSQL session, as an asyncio protocol.

During start-up the bytes are buffered and read as whole messages with ``await``; once the
session relays, ``sink`` is set and every chunk goes straight to it. Backpressure is passed to the
peer socket: when this one's write buffer is full, the peer stops reading; so does the client
while the relay holds what it sent (``Relay.pause_client``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from wardgate.protocols.postgres.framing import MessageReader

WRITE_HIGH_WATER = 1 << 20


class Endpoint(asyncio.Protocol):
    """One socket. Buffers into ``reader`` until ``sink`` is set, then hands data straight on."""

    def __init__(
        self, max_message: int, on_connect: Callable[[Endpoint], None] | None = None
    ) -> None:
        self.on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self.reader = MessageReader(max_message)
        self.sink: Callable[[bytes], None] | None = None
        self.peer: Endpoint | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._pauses: set[str] = set()  # why reading is paused: the peer is full, data is held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.on_connect is not None:
            self.on_connect(self)

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
            return
        self.reader.feed(data)
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading("peer", True)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading("peer", False)

    def pause_reading(self, reason: str, paused: bool) -> None:
        """Stop (or go on) reading for ``reason``; reading goes on only once no reason is left."""
        before = bool(self._pauses)
        if paused:
            self._pauses.add(reason)
        else:
            self._pauses.discard(reason)
        if self.transport is None or bool(self._pauses) == before or self.transport.is_closing():
            return
        if self._pauses:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        if self.eof:
            raise ConnectionResetError("connection closed by peer")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    async def startup_packet(self) -> bytes:
        while (body := self.reader.next_startup()) is None:
            await self._more()
        return body

    async def message(self) -> tuple[int, bytes]:
        while (msg := self.reader.next_message()) is None:
            await self._more()
        return msg

    async def raw(self, count: int) -> bytes:
        while self.reader.pending() < count:
            await self._more()
        rest = self.reader.take_rest()
        self.reader.feed(rest[count:])
        return rest[:count]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
