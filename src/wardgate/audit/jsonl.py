"""``AuditLog``: the audit addon writing one JSON object per line.

Statements are recorded in memory by ``statement_end`` and written by ``commit``, which the glue
calls before it releases the result to the client: one write for every statement that ended in
the same turn of the event loop. Session events are written at once. So a crash of the gateway
loses no event of a result a client has seen; surviving a machine crash (fsync) is the job of the
tamper-evident store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from wardgate.audit.events import (
    MAX_STATEMENT_BYTES,
    Event,
    StatementLines,
    api_call_event,
    connect_event,
    disconnect_event,
    encode,
)
from wardgate.core.model import ApiCall, ConnectAttempt, SessionInfo, Statement
from wardgate.core.pipeline import Addon

log = logging.getLogger(__name__)


class AuditLog(Addon):
    name = "audit"

    def __init__(self, path: Path, statement_limit: int = MAX_STATEMENT_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()
        self._statements = StatementLines(statement_limit)
        self.statement_limit = statement_limit
        self._recorded: list[str] = []
        self.path = path

    def write(self, event: Event) -> None:
        with self._lock:
            self._recorded.append(encode(event))
        self.commit()

    def commit(self) -> None:
        with self._lock:
            count = len(self._recorded)  # hooks may append meanwhile, from the loop's thread
            if not count:
                return
            self._file.write("\n".join(self._recorded[:count]) + "\n")
            self._file.flush()
            del self._recorded[:count]

    def connect(self, attempt: ConnectAttempt) -> None:
        self.write(connect_event(attempt, time.time()))

    def statement_end(self, stmt: Statement) -> None:
        self._recorded.append(self._statements.line(stmt))

    def api_call_end(self, call: ApiCall) -> None:
        self._recorded.append(encode(api_call_event(call, self.statement_limit)))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._statements.forget(session.id)
        self.write(disconnect_event(session, reason, time.time()))

    def close(self) -> None:
        try:
            self.commit()
        except OSError as exc:
            log.error(
                "audit: %d event(s) could not be written at shutdown: %s", len(self._recorded), exc
            )
        with self._lock, contextlib.suppress(OSError):
            self._file.close()
