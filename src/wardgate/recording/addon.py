"""The recording addon: every session's requests and results as the client saw them.

It sits after masking in the pipeline, so the rows, notices and errors it is given are the ones
the masking addon returned: a raw value that was masked never reaches it. Rows withheld past a
policy row cap never reach any ``row`` hook, so they are not recorded either.

A request is recorded when its ``request`` hook runs (the statement was allowed) or, for one
refused by an addon before this one, when its result ends. Failing closed: if the file cannot
be written, the hook raises and the gateway ends the session, as it does for the audit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate.audit.events import who
from wardgate.config import Config
from wardgate.core.model import (
    ApiCall,
    ConnectAttempt,
    Decision,
    Exchange,
    Outcome,
    ResultColumn,
    RowBatch,
    SessionInfo,
    Statement,
)
from wardgate.core.pipeline import Addon
from wardgate.recording.format import encode, row_record, row_records
from wardgate.recording.keys import FileKeyProvider, KeyProvider
from wardgate.recording.writer import SUFFIX, SessionWriter

log = logging.getLogger(__name__)


@dataclass
class _Session:
    writer: SessionWriter
    announced: set[int] = field(default_factory=set)


def header_of(session: SessionInfo) -> dict[str, object]:
    return {
        "recording": session.id,
        "started": session.started,
        "who": who(session.identity, session.claimed_user),
        "session": {
            "id": session.id,
            "protocol": session.protocol,
            "listener": session.listener,
            "client_addr": session.client_addr,
            "application": session.application,
            "claimed_user": session.claimed_user,
            "target": session.target,
            "client_tls": session.client_tls,
            "upstream_tls": session.upstream_tls,
        },
    }


class RecordingAddon(Addon):
    name = "recording"

    def __init__(self, directory: Path, keys: KeyProvider, *, max_bytes: int) -> None:
        self.directory = directory
        self.keys = keys
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sessions: dict[str, _Session] = {}

    def connect(self, attempt: ConnectAttempt) -> None:
        if not attempt.ok:
            return  # a refused session has no traffic; the audit has the attempt
        info = attempt.session
        path = self.directory / f"{info.id}{SUFFIX}"
        writer = SessionWriter(path, self.keys, header_of(info), max_bytes=self.max_bytes)
        self._sessions[info.id] = _Session(writer)

    def statement(self, stmt: Statement) -> Decision | None:
        self._begin(stmt)
        return None

    def api_call(self, call: ApiCall) -> Decision | None:
        self._begin(call)
        return None

    def _begin(self, exchange: Exchange) -> None:
        state = self._sessions.get(exchange.session.id)
        if state is not None:
            self._announce(state, exchange)

    def result_header(self, request: Statement, columns: tuple[ResultColumn, ...]) -> None:
        state = self._sessions.get(request.session.id)
        if state is None:
            return
        self._announce(state, request)
        described = [
            {"name": c.name, "type_oid": c.type_oid, "binary": c.binary,
             "table_oid": c.table_oid, "column": c.column_number}
            for c in columns
        ]  # fmt: skip
        state.writer.add(encode({"type": "columns", "seq": request.seq, "columns": described}))

    def row(self, request: Statement, values: list[bytes | None]) -> list[bytes | None]:
        state = self._sessions.get(request.session.id)
        if state is not None:
            if request.seq not in state.announced:
                self._announce(state, request)
            state.writer.add(row_record(request.seq, values))
        return values

    def rows(self, request: Statement, batch: RowBatch) -> None:
        state = self._sessions.get(request.session.id)
        if state is not None:
            if request.seq not in state.announced:
                self._announce(state, request)
            state.writer.add_many(row_records(request.seq, batch.bodies()))

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        state = self._sessions.get(session.id)
        if state is not None:
            record = {"type": "diagnostic", "time": time.time(), "fields": fields}
            state.writer.add(encode(record))
        return fields

    def document(self, request: ApiCall, body: Any) -> Any:
        """An HTTP API's JSON answer, after masking (the recorder comes after the masking addon):
        recorded whole. Answers that stream (not JSON, or JSON no addon looks at) are not."""
        state = self._sessions.get(request.session.id)
        if state is not None:
            self._announce(state, request)
            record = {"type": "document", "seq": request.seq, "time": time.time(), "body": body}
            state.writer.add(encode(record))
        return body

    def statement_end(self, stmt: Statement) -> None:
        record = self._end(stmt, stmt.rows)
        if record is not None and stmt.row_cap is not None:
            record["cap"] = {"limit": stmt.row_cap, "withheld": stmt.rows_withheld}
        self._write_end(stmt, record)

    def api_call_end(self, call: ApiCall) -> None:
        self._write_end(call, self._end(call, 0))

    def _end(self, request: Exchange, rows: int) -> dict[str, object] | None:
        state = self._sessions.get(request.session.id)
        if state is None:
            return None
        self._announce(state, request)
        state.announced.discard(request.seq)
        record: dict[str, object] = {
            "type": "result_end",
            "seq": request.seq,
            "time": time.time(),
            "outcome": request.outcome.value,
            "rows": rows,
            "duration_ms": round(request.duration_ms, 3),
            "decision": request.decision.verdict.value,
        }
        if request.decision.reason:
            record["reason"] = request.decision.reason
        if request.outcome is Outcome.DENIED:
            reason = request.decision.reason or "denied by policy"
            record["error"] = {"sqlstate": "42501", "message": f"wardgate: {reason}"}
        elif request.error_code:
            record["error"] = {"sqlstate": request.error_code, "message": request.error}
        return record

    def _write_end(self, request: Exchange, record: dict[str, object] | None) -> None:
        state = self._sessions.get(request.session.id)
        if state is not None and record is not None:
            state.writer.add(encode(record))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        state = self._sessions.pop(session.id, None)
        if state is None:
            return
        session.recording = state.writer.end(reason)

    def close(self) -> None:
        """Sessions still open when the gateway stops without ending them: left cut off."""
        for state in self._sessions.values():
            state.writer.abandon()
        self._sessions.clear()

    @staticmethod
    def _announce(state: _Session, request: Exchange) -> None:
        if request.seq in state.announced:
            return
        state.announced.add(request.seq)
        record = {
            "type": "request", "seq": request.seq, "kind": request.kind, "text": request.text,
            "time": request.started,
        }  # fmt: skip
        state.writer.add(encode(record))


def from_config(config: Config) -> RecordingAddon | None:
    """The addon if ``recording.enabled``; the key file is created 0600 on first start."""
    settings = config.recording
    if not settings.enabled:
        return None
    directory, key = locations(config)
    return RecordingAddon(
        directory, FileKeyProvider(key, create=True), max_bytes=settings.max_bytes
    )


def locations(config: Config) -> tuple[Path, Path]:
    """The recordings' directory and key file: as configured, or beside the health file."""
    settings = config.recording
    home = config.health_path().parent
    return settings.directory or home / "recordings", settings.key or home / "recording.key"
