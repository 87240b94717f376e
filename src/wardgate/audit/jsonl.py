"""``AuditLog``: the audit addon writing one JSON object per line.

Each event is handed to the operating system before the hook returns, so a gateway crash loses no
event that a client was told about; surviving a machine crash (fsync, group commit) is the job of
the tamper-evident store.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO

from wardgate.audit.events import (
    Event,
    StatementLines,
    connect_event,
    disconnect_event,
    encode,
)
from wardgate.core.model import ConnectAttempt, Request, SessionInfo
from wardgate.core.pipeline import Addon


class AuditLog(Addon):
    name = "audit"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()
        self._statements = StatementLines()
        self.path = path

    def write(self, event: Event) -> None:
        self._write_line(encode(event))

    def _write_line(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def connect(self, attempt: ConnectAttempt) -> None:
        self.write(connect_event(attempt, time.time()))

    def result_end(self, request: Request) -> None:
        self._write_line(self._statements.line(request))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._statements.forget(session.id)
        self.write(disconnect_event(session, reason, time.time()))

    def close(self) -> None:
        with self._lock:
            self._file.close()
