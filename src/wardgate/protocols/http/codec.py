"""The server side of HTTP/1.1 on h11, with the gateway's limits: no I/O, no asyncio.

``receive(data)`` feeds what the client sent (``b""`` at its end of file); ``next_event()``
returns a ``RequestHead``, ``BodyChunk``, ``RequestEnd``, ``ClientClosed`` or ``NEED_DATA``;
``head``, ``body`` and ``end`` return the bytes of the response to write. A request the gateway
will not take (malformed, a head over ``max_head_bytes``, a body over ``max_body_bytes``) raises
``CodecError`` with the status to answer; ``error_response`` then writes that answer and the
connection closes after it.

h11 does the framing both ways (Content-Length, chunked, close-delimited for HTTP/1.0) and
keeps the two state machines; this adds the size limits and typed, text-valued events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from http import HTTPStatus

import h11


class CodecError(Exception):
    """The request cannot be served: answer ``status`` with ``message``, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str  # the request-target as sent: origin-form, "/path?query"
    headers: Headers  # names in lower case, values as sent (Latin-1)
    http_version: str

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (lower case), or None."""
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True)
class BodyChunk:
    data: bytes


@dataclass(frozen=True)
class RequestEnd:
    pass


@dataclass(frozen=True)
class ClientClosed:
    pass


class _Need(enum.Enum):
    NEED_DATA = "need data"


NEED_DATA = _Need.NEED_DATA
Event = RequestHead | BodyChunk | RequestEnd | ClientClosed | _Need


class ServerCodec:
    def __init__(self, max_head_bytes: int = 64 * 1024, max_body_bytes: int = 10 << 20) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_body_bytes = max_body_bytes
        self._body_bytes = 0

    # ---- what the client sends ------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        self._conn.receive_data(data)

    def next_event(self) -> Event:
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if "exceeds" in str(exc) or "too long" in str(exc):
                status = 431
            raise CodecError(status, f"malformed HTTP request: {exc}") from exc
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return NEED_DATA
        if isinstance(event, h11.Request):
            self._body_bytes = 0
            head = RequestHead(
                event.method.decode("ascii"),
                event.target.decode("ascii", "replace"),
                tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
                event.http_version.decode("ascii"),
            )
            return head  # a declared length over the limit is the glue's to refuse, once known
        if isinstance(event, h11.Data):
            self._body_bytes += len(event.data)
            if self._body_bytes > self.max_body_bytes:
                raise CodecError(413, f"the request body exceeds {self.max_body_bytes} bytes")
            return BodyChunk(bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            return RequestEnd()
        return ClientClosed()  # h11.ConnectionClosed

    @property
    def waiting_for_100_continue(self) -> bool:
        return self._conn.they_are_waiting_for_100_continue

    @property
    def request_complete(self) -> bool:
        """The client has sent the whole request (the body too)."""
        return self._conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

    # ---- what the gateway answers ---------------------------------------------------------------

    def continue_100(self) -> bytes:
        return self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def head(self, status: int, headers: list[tuple[str, str]], *, close: bool = False) -> bytes:
        """The status line and headers. Without a Content-Length the body is chunked (or, to an
        HTTP/1.0 client, delimited by closing). An unread request body forces ``close``."""
        out = [(k, v) for k, v in headers if k.lower() != "connection"]
        if close or not self.request_complete:
            out.append(("connection", "close"))
        return self._send(h11.Response(status_code=status, headers=out, reason=_phrase(status)))

    def body(self, data: bytes) -> bytes:
        return self._send(h11.Data(data=data)) if data else b""

    def end(self) -> bytes:
        return self._send(h11.EndOfMessage())

    def response(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool = False
    ) -> bytes:
        """A whole response with a Content-Length."""
        length = [("content-length", str(len(body)))]
        return self.head(status, headers + length, close=close) + self.body(body) + self.end()

    @property
    def can_respond(self) -> bool:
        """No response has been started for the current request."""
        return self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def error_response(self, status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """An answer to a request that failed in the codec (h11 lets a server answer one it
        could not parse); empty if a response was already started. The connection closes."""
        try:
            return self.response(status, headers, body, close=True)
        except h11.LocalProtocolError:
            return b""

    def next_cycle(self) -> bool:
        """Ready for the next request on this connection (keep-alive); False to close it."""
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
            return True
        return False

    def _send(self, event: h11.Event) -> bytes:
        return self._conn.send(event) or b""


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
