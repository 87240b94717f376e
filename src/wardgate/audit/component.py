"""The audit as a part of the running gateway: the ``audit`` and ``siem`` sections.

It builds the recorders the pipeline ends with (the JSON-lines file, the signed store, the SIEM
feed), hands them the events no session hook makes (``record``: identity changes,
terminations), signs heads on time and commits what refused sessions recorded (once a second,
off the event loop), and reports the store's and the SIEM's health.
"""

from __future__ import annotations

import logging

from wardgate.audit.chained import ChainedAudit, tick_interval
from wardgate.audit.events import Event, clip_event
from wardgate.audit.jsonl import AuditLog
from wardgate.audit.siem.feed import SiemFeed
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.siem.spool import SpoolFull
from wardgate.audit.store import AuditUnavailable
from wardgate.config import Config
from wardgate.core.pipeline import Addon
from wardgate.lifespan import Component

log = logging.getLogger(__name__)


class AuditComponent(Component):
    name = "audit"

    def __init__(self, config: Config) -> None:
        super().__init__()
        audit = config.audit
        limit = self.statement_limit = audit.max_statement_bytes
        self.log = AuditLog(audit.path, limit) if audit.path is not None else None
        self.chained: ChainedAudit | None = None
        if audit.store is not None:
            key = audit.key_path()
            assert key is not None  # a store always has a key path
            self.chained = ChainedAudit.open(
                audit.store,
                key,
                head_file=audit.head_file,
                webhook=audit.webhook,
                every_entries=audit.checkpoint_entries,
                every_seconds=audit.checkpoint_seconds,
                alarm_file=audit.alarm_path(),
                statement_limit=limit,
            )
            self.chained.on_alarm = self._alarm
        self.forwarder = Forwarder.from_config(config.siem) if config.siem.sinks else None
        self.anchor_lag = audit.anchor_lag
        self.tick_seconds = tick_interval(audit.checkpoint_seconds)

    def recorders(self) -> list[Addon]:
        found: list[Addon] = [r for r in (self.log, self.chained) if r is not None]
        if self.forwarder is not None:
            feed = SiemFeed(self.forwarder)
            feed.statement_limit = self.statement_limit
            found.append(feed)
        return found

    def record(self, events: list[Event]) -> None:
        """Events that belong to no session hook, to every recorder, made durable. Blocking:
        call it off the event loop."""
        for event in events:
            clip_event(event, self.statement_limit)  # an approval's statement, too
            if self.log is not None:
                self.log.write(event)
            if self.chained is not None:
                self.chained.record(event)
            if self.forwarder is not None:
                try:
                    self.forwarder.submit(event)
                except SpoolFull as exc:
                    log.error("%s", exc)
        if self.chained is not None:
            self.chained.commit()

    def _alarm(self, event: Event) -> None:
        """A tamper alarm of the signed store: to the JSON-lines copy and the SIEM at once."""
        if self.log is not None:
            self.log.write(event)
            self.log.commit()
        if self.forwarder is not None:
            try:
                self.forwarder.submit(event)
            except SpoolFull as exc:
                log.error("%s", exc)

    async def start(self) -> None:
        if self.forwarder is not None:
            self.forwarder.start()
        if self.chained is not None:
            self.every(self.tick_seconds, self._tick, blocking=True)

    def _tick(self) -> None:
        """Sign a head if one is due by time (so a quiet log is signed too, within the interval);
        commit what waits for no result: the events of refused sessions (which so find a failed
        store writable) and the summaries of statements whose results were released after their
        ``statement.start`` record."""
        chained = self.chained
        assert chained is not None
        try:
            self.settle()
            chained.tick()
        except AuditUnavailable as exc:
            log.error("audit: %s", exc)

    def settle(self) -> None:
        """Commit what was recorded and no result waits for. Blocking: call it off the loop."""
        if self.log is not None:
            self.log.commit()
        chained = self.chained
        # Under a tamper alarm nothing is committed; ``tick`` takes up its acknowledgement.
        busy = chained is not None and (chained.pending() or not chained.healthy)
        if chained is not None and busy and chained.alarm is None:
            chained.commit()

    def health(self) -> dict[str, object]:
        if self.chained is not None:
            return self.chained.health()
        return {"healthy": True, "reason": "", "pending": 0}

    def degraded(self) -> str:
        """Why the audit is degraded though sessions go on (the anchor is behind), or ""."""
        return self.chained.anchor_lag(self.anchor_lag) if self.chained is not None else ""

    def siem_status(self) -> dict[str, object] | None:
        return self.forwarder.status() if self.forwarder is not None else None

    async def close(self) -> None:
        await super().close()
        if self.log is not None:
            self.log.close()
        if self.chained is not None:
            try:
                self.chained.close()
            except AuditUnavailable as exc:
                log.error("audit: could not close the store cleanly: %s", exc)
        if self.forwarder is not None:
            self.forwarder.stop()
