"""``SiemFeed``: the addon that hands every audit event to the SIEM ``Forwarder``.

The SIEM gets a copy; the record of an access is the audit store. So a full spool does not stop
the gateway: the event is counted as refused (``Forwarder.status``), logged, and can be sent again
from the store with ``wardgate audit export``.
"""

from __future__ import annotations

import logging
import time

from wardgate.audit.events import Event, connect_event, disconnect_event, statement_event
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.siem.spool import SpoolFull
from wardgate.core.model import ConnectAttempt, Request, SessionInfo
from wardgate.core.pipeline import Addon

log = logging.getLogger(__name__)


class SiemFeed(Addon):
    name = "siem"

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def _submit(self, event: Event) -> None:
        try:
            self.forwarder.submit(event)
        except SpoolFull as exc:
            log.error("%s", exc)

    def connect(self, attempt: ConnectAttempt) -> None:
        self._submit(connect_event(attempt, time.time()))

    def result_end(self, request: Request) -> None:
        self._submit(statement_event(request, 0.0))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._submit(disconnect_event(session, reason, time.time()))
