"""``EventRecorder``: an addon that turns the pipeline's hooks into audit events and hands each to
``record``. The signed store and the SIEM feed are both one; only what ``record`` does differs."""

from __future__ import annotations

import time

from wardgate.audit.events import Event, connect_event, disconnect_event, statement_event
from wardgate.core.model import ConnectAttempt, Request, SessionInfo
from wardgate.core.pipeline import Addon


class EventRecorder(Addon):
    def record(self, event: Event) -> None:
        raise NotImplementedError

    def connect(self, attempt: ConnectAttempt) -> None:
        self.record(connect_event(attempt, time.time()))

    def result_end(self, request: Request) -> None:
        self.record(statement_event(request, 0.0))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self.record(disconnect_event(session, reason, time.time()))
