"""RFC 5424 syslog messages over TCP with TLS, octet-counted (RFC 5425, RFC 6587 section 3.4.1).

Syslog over TLS has no acknowledgement: bytes the kernel accepted are gone from the sender's
hands. So before each batch the client checks whether the receiver has closed the connection
(a receiver that stops cleanly says so) and reconnects, and a batch that fails part-way is sent
again whole; a receiver that dies with accepted bytes in its socket buffer can still lose them.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

FACILITY_LOG_AUDIT = 13
_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)"
)  # RFC 5424 section 6.2.3
_NOT_PRINTABLE = re.compile(r"[^!-~]")


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value ``-``."""
    return _NOT_PRINTABLE.sub("_", value)[:limit] or "-"


def message(
    msg: str,
    *,
    timestamp: str,
    msgid: str,
    severity: int = 6,
    facility: int = FACILITY_LOG_AUDIT,
    hostname: str | None = None,
    app_name: str = "wardgate",
    procid: str = "-",
) -> bytes:
    """One RFC 5424 message without structured data; ``msg`` is sent as UTF-8 without a BOM."""
    stamp = timestamp if _TIMESTAMP.fullmatch(timestamp) else "-"
    host = _field(hostname if hostname is not None else socket.gethostname(), 255)
    header = (
        f"<{facility * 8 + severity}>1 {stamp} {host} {_field(app_name, 48)} "
        f"{_field(procid, 128)} {_field(msgid, 32)} -"
    )
    return f"{header} {msg}".encode()


def frame(payload: bytes) -> bytes:
    """Octet-counting framing: ``LENGTH SP MESSAGE``."""
    return b"%d %s" % (len(payload), payload)


class SyslogTLSClient:
    """A connection to one receiver, made on first use and made again after any failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ca: Path | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.server_hostname = server_hostname or host
        self._context = ssl.create_default_context(cafile=str(ca) if ca else None)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._sock: ssl.SSLSocket | None = None

    def send(self, messages: Sequence[bytes]) -> None:
        """Send every message or raise ``OSError``; the next call reconnects."""
        if self._sock is not None and self._peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        try:
            self._sock.sendall(b"".join(frame(m) for m in messages))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            try:
                sock.settimeout(1.0)
                sock.unwrap()  # a TLS close_notify, so the receiver sees a clean end
            except (OSError, ValueError):
                pass
            finally:
                sock.close()

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            return self._context.wrap_socket(raw, server_hostname=self.server_hostname)
        except BaseException:
            raw.close()
            raise

    @staticmethod
    def _peer_closed(sock: ssl.SSLSocket) -> bool:
        """Whether the receiver closed its end; whatever else it sent us is read and ignored."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable and not sock.pending():
                return False
            previous = sock.gettimeout()
            sock.setblocking(False)
            try:
                while True:
                    if not sock.recv(4096):
                        return True
            finally:
                sock.settimeout(previous)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True
