"""``ChainedAudit``: the audit addon on the hash-chained store, built for group commit.

Hooks only ``record`` events (an append to a deque: no I/O, no lock); a statement's event is
recorded already encoded (``prepared.StatementEntries``), on the thread that ended it. Whoever
releases responses calls ``commit()``, which appends everything recorded since the last commit in
one durable transaction and then writes a signed head if one is due; a response may be released
once the commit that follows its events has returned. If the store cannot write, ``commit`` raises
``AuditUnavailable``, keeps the events for the next attempt, and ``healthy`` turns False with
the reason until a commit succeeds again.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from wardgate.audit.anchors import Anchors
from wardgate.audit.checkpoints import Checkpointer, load_or_create_key
from wardgate.audit.events import Event, api_call_event
from wardgate.audit.location import Location
from wardgate.audit.prepared import StatementEntries
from wardgate.audit.recorder import EventRecorder
from wardgate.audit.store import AuditStore, AuditUnavailable, Prepared, open_store, prepare
from wardgate.core.model import ApiCall, SessionInfo, Statement


class ChainedAudit(EventRecorder):
    name = "audit"
    commit_blocks = True

    def __init__(self, store: AuditStore, checkpointer: Checkpointer | None = None) -> None:
        self.store = store
        self.checkpointer = checkpointer
        self.healthy = True
        self.reason = ""
        self._pending: deque[Event | Prepared] = deque()
        self._commit_lock = threading.Lock()
        self._statements = StatementEntries()

    @classmethod
    def open(
        cls,
        store: Location,
        key: Path,
        *,
        head_file: Path | None = None,
        webhook: str | None = None,
        every_entries: int = 1000,
        every_seconds: float = 60.0,
    ) -> ChainedAudit:
        """The store at ``store`` (a SQLite file, or a ``postgresql://`` URL), signing heads with
        ``key`` (created if absent)."""
        opened = open_store(store)
        try:
            checkpointer = Checkpointer(
                opened,
                load_or_create_key(key),
                every_entries=every_entries,
                every_seconds=every_seconds,
                anchors=Anchors(head_file, webhook),
            )
        except BaseException:
            opened.close()
            raise
        return cls(opened, checkpointer)

    def record(self, event: Event) -> None:
        self._pending.append(event)

    def statement_end(self, stmt: Statement) -> None:
        self._pending.append(self._statements.prepare(stmt))

    def api_call_end(self, call: ApiCall) -> None:
        self._pending.append(api_call_event(call))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._statements.forget(session.id)
        super().disconnect(session, reason)

    def pending(self) -> bool:
        return bool(self._pending)

    def commit(self) -> None:
        """Make every event recorded so far durable (the pipeline's group-commit hook)."""
        self.flush()

    def flush(self) -> list[int]:
        """``commit``, returning the seqs of the entries it appended."""
        with self._commit_lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch:
                return []
            try:
                records = [prepare(e) if isinstance(e, dict) else e for e in batch]
            except Exception:
                pending.extendleft(reversed(batch))
                raise
            try:
                rows, digests = self.store.append_prepared(records)
            except AuditUnavailable as exc:
                pending.extendleft(reversed(records))  # kept, in order, for the next attempt
                self._fail(exc)
                raise
            except Exception as exc:
                pending.extendleft(reversed(records))
                failure = AuditUnavailable(f"audit store: {exc}")
                self._fail(failure)
                raise failure from exc
            if self.checkpointer is not None:
                try:
                    self.checkpointer.extend(rows[0][0], digests)
                except AuditUnavailable as exc:  # the entries are durable; their head is not
                    self._fail(exc)
                    raise
            self.healthy, self.reason = True, ""
            return [row[0] for row in rows]

    def tick(self) -> None:
        """Write a head if one is due by time; call it every second or so from a timer."""
        if self.checkpointer is None:
            return
        with self._commit_lock:
            try:
                self.checkpointer.tick()
            except AuditUnavailable as exc:
                self._fail(exc)
                raise

    def _fail(self, exc: AuditUnavailable) -> None:
        self.healthy, self.reason = False, str(exc)

    def unavailable(self) -> str:
        return "" if self.healthy else f"audit store unavailable: {self.reason}"

    def health(self) -> dict[str, object]:
        return {"healthy": self.healthy, "reason": self.reason, "pending": len(self._pending)}

    def close(self) -> None:
        """Commit what is pending, sign a final head, stop the anchors, close the store."""
        try:
            self.flush()
            if self.checkpointer is not None:
                with self._commit_lock:
                    self.checkpointer.checkpoint()
        finally:
            if self.checkpointer is not None and self.checkpointer.anchors is not None:
                self.checkpointer.anchors.close()
            self.store.close()
