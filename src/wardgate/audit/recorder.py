"""``EventRecorder``: an addon that turns the pipeline's hooks into audit events and hands each to
``record``. The signed store and the SIEM feed are both one; only what ``record`` does differs."""

from __future__ import annotations

import time

from wardgate.audit.events import (
    MAX_STATEMENT_BYTES,
    Event,
    api_call_event,
    connect_event,
    disconnect_event,
    statement_event,
)
from wardgate.core.model import ApiCall, ConnectAttempt, SessionInfo, Statement
from wardgate.core.pipeline import Addon


class EventRecorder(Addon):
    statement_limit = MAX_STATEMENT_BYTES  # bytes of a statement's text kept in its event

    def record(self, event: Event) -> None:
        raise NotImplementedError

    def connect(self, attempt: ConnectAttempt) -> None:
        self.record(connect_event(attempt, time.time()))

    def statement_end(self, stmt: Statement) -> None:
        self.record(statement_event(stmt, 0.0, self.statement_limit))

    def api_call_end(self, call: ApiCall) -> None:
        self.record(api_call_event(call, self.statement_limit))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self.record(disconnect_event(session, reason, time.time()))
