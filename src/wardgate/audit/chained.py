"""``ChainedAudit``: the audit addon on the hash-chained store, built for group commit.

Hooks only ``record`` events (an append to a deque: no I/O, no lock); a statement's event is
recorded already encoded (``prepared.StatementEntries``), on the thread that ended it. Whoever
releases responses calls ``commit()``, which appends everything recorded since the last commit in
one durable transaction and then writes a signed head if one is due; a response may be released
once the commit that follows its events has returned. If the store cannot write, ``commit`` raises
``AuditUnavailable``, keeps the events for the next attempt, and ``healthy`` turns False with
the reason until a commit succeeds again.

Write-ahead: ``statement_sent`` records a ``statement.start`` entry (who, what, target) when an
allowed statement goes to the server; the relay has a commit started at once, which the result's
first byte (and a statement that is not a plain read) waits for. ``statement_end`` records the
summary (``statement``) later, which nothing waits for: the next commit takes it.

The gateway trusts only itself: the store remembers the tail it wrote and the checkpointer the tip
it signs; an append that does not follow it or a store that does not end with it raises
``Tampered``. That is an alarm (``alarms.py``): written to the alarm file, handed to ``on_alarm``
(the SIEM), health red, nothing more appended or signed, new sessions refused, until an operator
acknowledges it; the acknowledgement is then the next entry of the chain, naming the entries the
gateway did not write.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from wardgate.audit.alarms import AlarmFile
from wardgate.audit.anchors import Anchors
from wardgate.audit.checkpoints import Checkpointer, load_or_create_key, mac_key
from wardgate.audit.cuts import cut_signed
from wardgate.audit.events import MAX_STATEMENT_BYTES, Event, api_call_event, start_event
from wardgate.audit.location import Location
from wardgate.audit.merkle import leaf_hash
from wardgate.audit.prepared import StatementEntries
from wardgate.audit.recorder import EventRecorder
from wardgate.audit.store import (
    AuditStore,
    AuditUnavailable,
    Entry,
    Prepared,
    Tampered,
    entry_hash,
    open_store,
    prepare,
)
from wardgate.core.model import ApiCall, SessionInfo, Statement

log = logging.getLogger(__name__)


def tick_interval(every_seconds: float) -> float:
    """How often the gateway's timer calls ``tick``: often enough that the unsigned tail is never
    older than ``every_seconds``."""
    return min(1.0, every_seconds / 4)


class ChainedAudit(EventRecorder):
    name = "audit"
    commit_blocks = True

    def __init__(
        self,
        store: AuditStore,
        checkpointer: Checkpointer | None = None,
        alarms: AlarmFile | None = None,
        statement_limit: int = MAX_STATEMENT_BYTES,
    ) -> None:
        self.store = store
        self.statement_limit = statement_limit
        self.checkpointer = checkpointer
        self.alarms = alarms
        self.healthy = True
        self.reason = ""
        self.on_alarm: Callable[[Event], None] | None = None  # the SIEM, set by the gateway
        self._pending: deque[Event | Prepared] = deque()
        self._commit_lock = threading.Lock()
        self._statements = StatementEntries(statement_limit)
        self.alarm: Event | None = alarms.open_alarm() if alarms is not None else None

    @classmethod
    def open(
        cls,
        store: Location,
        key: Path,
        *,
        head_file: Path | None = None,
        webhook: str | None = None,
        every_entries: int = 1000,
        every_seconds: float = 1.0,
        alarm_file: Path | None = None,
        gateway: bool = True,
        statement_limit: int = MAX_STATEMENT_BYTES,
    ) -> ChainedAudit:
        """The store at ``store`` (a SQLite file, or a ``postgresql://`` URL), signing heads with
        ``key`` (created if absent). Entries left unsigned by a crash are signed at once. A
        command beside the gateway (``gateway=False``) keeps no webhook queue: the file is the
        gateway's."""
        opened = open_store(store)
        try:
            private = load_or_create_key(key)
            opened.mac_key = mac_key(private)  # a shared store vouches for each entry with it
            checkpointer = Checkpointer(
                opened,
                private,
                every_entries=every_entries,
                every_seconds=every_seconds,
                tick=tick_interval(every_seconds),
                anchors=Anchors(
                    head_file,
                    webhook,
                    queue_file=key.parent / "audit-webhook-queue.jsonl" if gateway else None,
                ),
            )
            alarms = AlarmFile(alarm_file, private) if alarm_file is not None else None
            audit = cls(opened, checkpointer, alarms, statement_limit)
            if gateway and audit.alarm is None:
                checkpointer.checkpoint()
        except BaseException:
            opened.close()
            raise
        return audit

    def record(self, event: Event) -> None:
        self._pending.append(event)

    def statement_sent(self, stmt: Statement) -> None:
        self._pending.append(self._statements.start(stmt))

    def statement_end(self, stmt: Statement) -> None:
        self._pending.append(self._statements.prepare(stmt))

    def api_call_sent(self, call: ApiCall) -> None:
        self._pending.append(start_event(call, self.statement_limit))

    def api_call_end(self, call: ApiCall) -> None:
        self._pending.append(api_call_event(call, self.statement_limit))

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._statements.forget(session.id)
        super().disconnect(session, reason)

    def pending(self) -> bool:
        return bool(self._pending)

    def commit(self) -> None:
        """Make every event recorded so far durable (the pipeline's group-commit hook)."""
        if self.alarm is not None:
            self.resume_if_acknowledged()
        self.flush()

    def flush(self) -> list[int]:
        """``commit``, returning the seqs of the entries it appended."""
        with self._commit_lock:
            if self.alarm is not None:
                raise Tampered(self.unavailable())
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
                try:
                    rows, digests = self.store.append_prepared(records)
                except Tampered:
                    if not self._adopt():
                        raise
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
        """Check the store still ends with this gateway's tip, write a head if one is due by time
        and take up an acknowledged alarm; call it every second from a timer."""
        if self.checkpointer is None:
            return
        if self.alarm is not None:
            self.resume_if_acknowledged()
            return
        with self._commit_lock:
            try:
                try:
                    self.checkpointer.check_tip()  # a forged entry is noticed within a second
                except Tampered:
                    if not self._adopt():
                        raise
                self.checkpointer.tick()
            except AuditUnavailable as exc:
                self._fail(exc)
                raise

    def _adopt(self) -> bool:
        """Take in the entries after this gateway's tip if its own key vouches for every one (the
        ``audit.cut`` that ``wardgate audit purge`` appends beside a running gateway); anything
        else stays an alarm."""
        cp = self.checkpointer
        if cp is None:
            return False
        found = self.store.last()
        public = cp.key.public_key()
        prev, taken = cp.tip[1], list[Entry]()
        for entry in self.store.entries(cp.frontier.size + 1, found[0]):
            try:
                event = json.loads(entry.event)
            except ValueError:
                return False
            expected = cp.frontier.size + 1 + len(taken)
            if (
                entry.seq != expected
                or entry.prev_hash != prev
                or entry_hash(entry.seq, prev, entry.event.encode()) != entry.hash
                or not isinstance(event, dict)
                or not cut_signed(event, public)
            ):
                return False
            taken.append(entry)
            prev = entry.hash
        if not taken or taken[-1].seq != found[0]:
            return False
        for entry in taken:
            cp.frontier.append(leaf_hash(bytes.fromhex(entry.hash)))
        cp.tip = found
        self.store.resync()
        log.info(
            "audit: took in the signed retention cut at entries %d..%d", taken[0].seq, found[0]
        )
        return True

    def _fail(self, exc: AuditUnavailable) -> None:
        if isinstance(exc, Tampered) and self.alarm is None:
            self._raise_alarm(str(exc), exc.wrote)
        self.healthy, self.reason = False, str(exc)

    def _raise_alarm(self, reason: str, wrote: tuple[int, str] | None) -> None:
        log.critical("audit: TAMPER ALARM: %s", reason)
        event: Event = {"time": "", "type": "audit.tamper", "reason": reason}
        if wrote is not None:
            event["wrote"] = {"seq": wrote[0], "hash": wrote[1]}
        if self.alarms is not None:
            try:
                event = self.alarms.raise_alarm(reason, time.time(), wrote)
            except OSError as exc:
                log.critical("audit: cannot write the alarm file: %s", exc)
        self.alarm = event
        if self.on_alarm is not None:
            try:
                self.on_alarm(event)
            except Exception:
                log.exception("audit: the tamper alarm could not be forwarded")

    def resume_if_acknowledged(self) -> bool:
        """If the open alarm was acknowledged (``wardgate audit ack``), chain on after what the
        store holds, with an ``audit.ack`` entry naming the entries this gateway did not write."""
        alarm = self.alarm
        if alarm is None or self.alarms is None:
            return False
        ack = self.alarms.acknowledgement(alarm)
        if ack is None:
            return False
        with self._commit_lock:
            if self.alarm is not alarm:  # another thread took it up meanwhile
                return False
            self.store.resync()
            if self.checkpointer is not None:
                self.checkpointer.resync()
            last = self.store.last()[0]
            wrote = alarm.get("wrote")
            first = int(wrote["seq"]) + 1 if isinstance(wrote, dict) else last + 1
            event: Event = {**ack, "alarm": {"time": alarm["time"], "reason": alarm["reason"]}}
            if first <= last:  # the entries this gateway did not write, now acknowledged
                event["foreign"] = {"first": first, "last": last}
            self._pending.appendleft(event)
            self.alarm = None
        log.warning("audit: tamper alarm acknowledged: %s", ack.get("reason"))
        self.flush()
        return True

    def unavailable(self) -> str:
        if self.alarm is not None:
            return (
                f"audit tamper alarm: {self.alarm.get('reason')}"
                " (acknowledge with `wardgate audit ack --reason ...`)"
            )
        return "" if self.healthy else f"audit store unavailable: {self.reason}"

    def health(self) -> dict[str, object]:
        out: dict[str, object] = {
            "healthy": self.healthy and self.alarm is None,
            "reason": self.unavailable(),
            "pending": len(self._pending),
        }
        if self.alarm is not None:
            out["alarm"] = self.alarm
        anchors = self.checkpointer.anchors if self.checkpointer is not None else None
        if anchors is not None and anchors.webhook is not None:
            out["anchor"] = anchors.status()
        return out

    def anchor_lag(self, limit: float) -> str:
        """Why the anchoring is degraded (its oldest undelivered head is older than ``limit``
        seconds), or ""."""
        anchors = self.checkpointer.anchors if self.checkpointer is not None else None
        if anchors is None or anchors.webhook is None:
            return ""
        status = anchors.status()
        lag = float(status["lag_s"])  # type: ignore[arg-type]
        if lag <= limit:
            return ""
        return (
            f"audit anchor behind: {status['undelivered']} signed heads not delivered to"
            f" {anchors.webhook}, the oldest for {lag:.0f} s (limit {limit:.0f} s):"
            f" {status['last_error']}"
        )

    def close(self) -> None:
        """Commit what is pending, sign a final head, stop the anchors, close the store."""
        try:
            if self.alarm is not None:
                return  # nothing is signed over entries this gateway did not write
            self.flush()
            if self.checkpointer is not None:
                with self._commit_lock:
                    self.checkpointer.checkpoint()
        finally:
            if self.checkpointer is not None and self.checkpointer.anchors is not None:
                self.checkpointer.anchors.close()
            self.store.close()
