"""A deliberately small PostgreSQL client on a raw socket, for sending what real clients never do.

Messages are built here with ``struct`` rather than with the gateway's own ``wire`` module, so a
mistake there cannot hide itself. SCRAM is the gateway's ``ScramClient``, which is checked on its
own against RFC 7677 and against PostgreSQL.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from typing import Any

from tests.gateway_harness import RunningGateway
from wardgate.identity.scram import ScramClient

Message = tuple[str, bytes]  # (type letter, body)

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)


def message(kind: str, body: bytes = b"") -> bytes:
    return kind.encode() + struct.pack("!i", len(body) + 4) + body


def startup(params: dict[str, str], protocol: int = 3 << 16) -> bytes:
    body = struct.pack("!i", protocol)
    for key, value in params.items():
        body += key.encode() + b"\x00" + value.encode() + b"\x00"
    body += b"\x00"
    return struct.pack("!i", len(body) + 4) + body


def query(text: str) -> bytes:
    return message("Q", text.encode() + b"\x00")


def fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse or NoticeResponse body, by field code."""
    out = {}
    for part in body.rstrip(b"\x00").split(b"\x00"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def auth_code(msg: Message) -> int:
    assert msg[0] == "R", msg
    code: int = struct.unpack_from("!i", msg[1])[0]
    return code


class Raw:
    """One connection. ``message()`` returns None when the gateway has closed it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        host, port = sock.getsockname()[:2]
        self.addr = f"{host}:{port}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        self.buf += chunk
        return bool(chunk)

    def byte(self) -> bytes:
        """One byte, such as the answer to SSLRequest; empty if the connection closed."""
        if not self.buf and not self._fill():
            return b""
        first = bytes(self.buf[:1])
        del self.buf[:1]
        return first

    def message(self) -> Message | None:
        while True:
            if len(self.buf) >= 5:
                kind, length = struct.unpack_from("!ci", self.buf)
                if len(self.buf) >= 1 + length:
                    body = bytes(self.buf[5 : 1 + length])
                    del self.buf[: 1 + length]
                    return kind.decode(), body
            if not self._fill():
                assert not self.buf, f"connection closed inside a message: {bytes(self.buf)!r}"
                return None

    def until_ready(self) -> list[Message]:
        """Messages up to ReadyForQuery, or up to the end of the connection."""
        out = []
        while (msg := self.message()) is not None:
            out.append(msg)
            if msg[0] == "Z":
                break
        return out

    def rest(self) -> list[Message]:
        """Every message until the gateway closes the connection."""
        out = []
        while (msg := self.message()) is not None:
            out.append(msg)
        return out

    def tls(self, gw: RunningGateway) -> None:
        """SSLRequest, then a handshake verifying the gateway's certificate."""
        self.send(SSL_REQUEST)
        answer = self.byte()
        assert answer == b"S", answer
        assert not self.buf
        ctx = ssl.create_default_context(cafile=str(gw.ca))
        self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(gw: RunningGateway, timeout: float = 10) -> Raw:
    return Raw(socket.create_connection(("127.0.0.1", gw.port), timeout=timeout))


def connect_tls(gw: RunningGateway, timeout: float = 10) -> Raw:
    conn = connect(gw, timeout)
    conn.tls(gw)
    return conn


def scram_login(conn: Raw, user: str, password: str, database: str = "test") -> list[Message]:
    """Start up and answer SCRAM-SHA-256; every message up to ReadyForQuery or the close."""
    conn.send(startup({"user": user, "database": database}))
    seen: list[Message] = []
    first = conn.message()
    if first is None or first[0] != "R" or auth_code(first) != 10:
        return [first, *conn.rest()] if first else []
    seen.append(first)
    client = ScramClient(password)
    initial = client.first()
    conn.send(message("p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(initial)) + initial))
    challenge = conn.message()
    if challenge is None or challenge[0] != "R" or auth_code(challenge) != 11:
        return seen + ([challenge] if challenge else []) + conn.rest()
    seen.append(challenge)
    conn.send(message("p", client.final(challenge[1][4:])))
    return seen + conn.until_ready()


def login(gw: RunningGateway, user: str = "alice", database: str = "test") -> Raw:
    """A TLS connection, logged in and ready for a query."""
    conn = connect_tls(gw)
    got = scram_login(conn, user, gw.password[user], database)
    assert got and got[-1][0] == "Z", got
    return conn


def wait_for_event(gw: RunningGateway, timeout: float = 5, **match: Any) -> dict[str, Any]:
    """The first audit event whose fields (``session__client_addr`` for nested) all match."""
    deadline = time.monotonic() + timeout
    while True:
        for event in gw.events():
            if all(_get(event, key) == value for key, value in match.items()):
                return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit event matching {match}")
        time.sleep(0.05)


def _get(event: dict[str, Any], key: str) -> Any:
    value: Any = event
    for part in key.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def extended(text: str) -> bytes:
    """Parse, Bind, Describe and Execute of ``text`` (unnamed, no parameters), without Sync."""
    return (
        message("P", b"\x00" + text.encode() + b"\x00" + struct.pack("!h", 0))
        + message("B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))
        + message("D", b"P\x00")
        + message("E", b"\x00" + struct.pack("!i", 0))
    )
