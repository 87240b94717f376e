"""``SiemFeed``: the addon that hands every audit event to the SIEM ``Forwarder``.

The SIEM gets a copy; the record of an access is the audit store. So a full spool does not stop
the gateway: the event is counted as refused (``Forwarder.status``), logged, and can be sent again
from the store with ``wardgate audit export``.
"""

from __future__ import annotations

import logging

from wardgate.audit.events import Event
from wardgate.audit.recorder import EventRecorder
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.siem.spool import SpoolFull

log = logging.getLogger(__name__)


class SiemFeed(EventRecorder):
    name = "siem"

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def record(self, event: Event) -> None:
        try:
            self.forwarder.submit(event)
        except SpoolFull as exc:
            log.error("%s", exc)
