"""Where forwarded events go. A sink sends a batch whole or raises; it never drops an event.

- ``FileSink``: one line per event (OCSF JSON or CEF), appended and fsynced per batch.
- ``HttpSink``: a POST per batch of OCSF events, as a JSON array or as JSON lines; any status
  other than 2xx is a failure and the batch is sent again later.
- ``SyslogSink``: RFC 5424 over TLS, one message per event (CEF, or OCSF JSON).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

from wardgate.audit.events import Event
from wardgate.audit.siem import fields, syslog
from wardgate.audit.siem.cef import to_cef
from wardgate.audit.siem.ocsf import to_ocsf
from wardgate.config import SiemSink

Format = Literal["ocsf", "cef"]
_SYSLOG_SEVERITY = {fields.INFORMATIONAL: 6, fields.LOW: 5, fields.MEDIUM: 4}


class SinkError(Exception):
    """A batch was not accepted; the message says what the receiver answered."""


class Sink(Protocol):
    name: str

    def send(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


def render(event: Event, fmt: Format) -> str:
    if fmt == "cef":
        return to_cef(event)
    return json.dumps(to_ocsf(event), separators=(",", ":"), ensure_ascii=False)


class FileSink:
    def __init__(self, name: str, path: Path, fmt: Format = "ocsf") -> None:
        self.name, self.path, self.fmt = name, Path(path), fmt

    def send(self, events: Sequence[Event]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(render(e, self.fmt) + "\n" for e in events)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        pass


class HttpSink:
    def __init__(
        self,
        name: str,
        url: str,
        *,
        ca: Path | None = None,
        headers: Mapping[str, str] | None = None,
        body: Literal["array", "lines"] = "array",
        timeout: float = 10.0,
    ) -> None:
        self.name, self.url, self.body, self.timeout = name, url, body, timeout
        self.headers = dict(headers or {})
        self._context = ssl.create_default_context(cafile=str(ca) if ca else None)

    def send(self, events: Sequence[Event]) -> None:
        objects = [render(e, "ocsf") for e in events]
        if self.body == "array":
            data, kind = ("[" + ",".join(objects) + "]").encode(), "application/json"
        else:
            data, kind = "".join(o + "\n" for o in objects).encode(), "application/x-ndjson"
        request = urllib.request.Request(
            self.url, data=data, method="POST", headers={"Content-Type": kind, **self.headers}
        )
        context = self._context if self.url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            raise SinkError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        if not 200 <= status < 300:
            raise SinkError(f"{self.url}: HTTP {status}")

    def close(self) -> None:
        pass


class SyslogSink:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ca: Path | None = None,
        fmt: Format = "cef",
        timeout: float = 10.0,
    ) -> None:
        self.name, self.fmt = name, fmt
        self.client = syslog.SyslogTLSClient(host, port, ca=ca, timeout=timeout)
        self._procid = str(os.getpid())

    def send(self, events: Sequence[Event]) -> None:
        messages = [
            syslog.message(
                render(e, self.fmt),
                timestamp=fields.text(e.get("time")),
                msgid=fields.event_type(e),
                severity=_SYSLOG_SEVERITY[fields.severity(e)],
                procid=self._procid,
            )
            for e in events
        ]
        try:
            self.client.send(messages)
        except OSError as exc:
            where = f"{self.client.host}:{self.client.port}"
            raise SinkError(f"syslog {where}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.client.close()


def from_config(sink: SiemSink) -> Sink:
    if sink.kind == "file":
        assert sink.path is not None
        return FileSink(sink.key, sink.path, sink.output)
    if sink.kind == "http":
        assert sink.url is not None
        headers = {k: v.get_secret_value() for k, v in sink.headers.items()}
        return HttpSink(
            sink.key, sink.url, ca=sink.ca, headers=headers, body=sink.body, timeout=sink.timeout
        )
    host, port = sink.host_port()
    return SyslogSink(sink.key, host, port, ca=sink.ca, fmt=sink.output, timeout=sink.timeout)
