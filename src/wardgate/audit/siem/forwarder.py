"""``Forwarder``: every submitted event is spooled, then delivered in order to each sink.

``submit`` only encodes the event and queues it in memory, so the gateway's event loop never
waits for a disk or a SIEM. A writer thread moves queued events into the spool, one fsync per
batch; one thread per sink reads from that sink's cursor, sends, and acknowledges, retrying a
failed batch with exponential backoff (with jitter) for as long as it takes.

When the spool cannot take an event, ``submit`` raises ``SpoolFull`` at once: no event is ever
dropped quietly. ``status()`` reports the spool as ``full`` along with a count of refused events,
so a health check can show it; what the gateway then does (refuse requests, or carry on with the
tamper-evident store as the record and export the gap later) is its policy, not ours.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from wardgate.audit.events import Event, encode
from wardgate.audit.siem import sinks as sinks_module
from wardgate.audit.siem.sinks import Sink
from wardgate.audit.siem.spool import RECORD_OVERHEAD, DiskSpool, SpoolFull
from wardgate.config import Siem


class _SinkState:
    def __init__(self, sink: Sink, cursor: int) -> None:
        self.sink, self.cursor = sink, cursor
        self.delivered = 0
        self.last_error = ""
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.thread: threading.Thread | None = None


class Forwarder:
    """Owns ``spool`` (``stop`` closes it) and ``sinks``; names of sinks key their cursors."""

    def __init__(
        self,
        spool: DiskSpool,
        sinks: Sequence[Sink],
        *,
        batch_size: int = 200,
        backoff: tuple[float, float] = (0.25, 30.0),
    ) -> None:
        self.spool, self.batch_size, self.backoff = spool, batch_size, backoff
        self._states = [_SinkState(s, spool.register(s.name)) for s in sinks]
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._refused = 0
        self._full = False  # the latest submit was refused
        self._spool_error = ""
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # submit -> writer
        self._spooled = threading.Condition(threading.Lock())  # writer/sinks -> sinks, stop()
        self._accepting = True
        self._draining = threading.Event()
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: Siem) -> Forwarder:
        spool = DiskSpool(config.spool, max_bytes=config.max_spool_bytes)
        return cls(spool, [sinks_module.from_config(s) for s in config.sinks])

    def submit(self, event: Event) -> None:
        """Queue ``event``; raises ``SpoolFull`` when the spool has no room for it."""
        record = encode(event).encode()
        with self._lock:
            if not self._accepting:
                raise RuntimeError("the SIEM forwarder is stopped")
            need = len(record) + RECORD_OVERHEAD
            if self.spool.size + self._pending_bytes + need > self.spool.max_bytes:
                self._refused += 1
                self._full = True
                raise SpoolFull(f"{self.spool.directory}: SIEM spool full; event not queued")
            self._pending.append(record)
            self._pending_bytes += need
            self._full = False
            self._queued.notify()

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="siem-spool", daemon=True)
        self._writer.start()
        for state in self._states:
            state.thread = threading.Thread(
                target=self._send_loop, args=(state,), name=f"siem-{state.sink.name}", daemon=True
            )
            state.thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Spool what was submitted, deliver what can be within ``timeout``; True if all was."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._accepting = False
            self._draining.set()
            self._queued.notify_all()
        if self._writer is not None:
            self._writer.join()  # accepted events reach the disk whatever the timeout
        with self._spooled:
            while not self._caught_up() and time.monotonic() < deadline:
                self._spooled.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            done = self._caught_up()
            self._stopping.set()
            self._spooled.notify_all()
        for state in self._states:
            if state.thread is not None:
                state.thread.join(max(1.0, deadline - time.monotonic()))
            state.sink.close()
        with self._spooled:  # a sink still inside send() will not acknowledge after this
            self.spool.close()
        return done

    def status(self) -> dict[str, Any]:
        with self._lock:
            pending, refused, spool_error = len(self._pending), self._refused, self._spool_error
            full = self._full
        end = self.spool.next_seq + pending
        return {
            "spool": {
                **self.spool.stats(),
                "full": full,
                "refused": refused,
                "error": spool_error,
            },
            "sinks": {
                s.sink.name: {
                    "queued": end - s.cursor,
                    "delivered": s.delivered,
                    "last_error": s.last_error,
                    "last_error_at": s.last_error_at,
                    "last_success_at": s.last_success_at,
                }
                for s in self._states
            },
        }

    # -- threads ---------------------------------------------------------------------------

    def _caught_up(self) -> bool:
        return all(s.cursor >= self.spool.next_seq for s in self._states)

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._draining.is_set():
                    self._queued.wait()
                if not self._pending:
                    return
                batch = list(self._pending)
            try:
                self.spool.append(batch)
            except (OSError, SpoolFull) as exc:  # kept in memory and tried again
                with self._lock:
                    self._spool_error = str(exc)
                time.sleep(0.5)
                continue
            with self._lock:
                for _ in batch:
                    self._pending_bytes -= len(self._pending.popleft()) + RECORD_OVERHEAD
                self._spool_error = ""
            with self._spooled:
                self._spooled.notify_all()

    def _send_loop(self, state: _SinkState) -> None:
        delay = self.backoff[0]
        while not self._stopping.is_set():
            records = self.spool.read(state.cursor, self.batch_size)
            if not records:
                with self._spooled:
                    if not self._stopping.is_set() and state.cursor >= self.spool.next_seq:
                        self._spooled.wait(0.5)
                continue
            try:
                state.sink.send([_decode(r) for _, r in records])
            except Exception as exc:  # any failure: keep the batch, wait, send it again
                state.last_error, state.last_error_at = f"{exc}", time.time()
                self._stopping.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            with self._spooled:
                if self._stopping.is_set() and self.spool.closed:
                    return
                state.cursor = records[-1][0] + 1
                self.spool.ack(state.sink.name, state.cursor)
                state.delivered += len(records)
                state.last_success_at = time.time()
                self._spooled.notify_all()


def _decode(record: bytes) -> Event:
    try:
        event = json.loads(record)
    except ValueError:
        event = None
    if isinstance(event, dict):
        return event
    return {"type": "siem.undecodable", "record": record.decode("utf-8", "replace")}
