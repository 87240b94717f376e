"""Anchors: copies of every signed head kept where the store's owner does not control them alone.

- The head file: one JSON object per line (the head's canonical JSON), opened ``O_APPEND`` and
  fsync'd per head, in a directory apart from the store. ``wardgate audit verify --head FILE``
  checks the store against it, which is what reveals truncation, rollback and replacement.
- The webhook: each head POSTed as ``application/json`` (the same object) from a background
  thread, so a slow receiver never holds up a commit; a head is retried until it is delivered,
  kept meanwhile in a durable queue file, and the health report shows how far behind it is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

from wardgate.audit.canonical import canonical
from wardgate.audit.store import AuditUnavailable, Head

log = logging.getLogger(__name__)


def head_line(head: Head) -> bytes:
    return canonical(head.public()) + b"\n"


def read_head_file(path: Path) -> list[Head]:
    """The heads in an anchored head file; a line that is not a head raises ``ValueError``."""
    heads = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            heads.append(
                Head(
                    int(obj["tree_size"]),
                    str(obj["root_hash"]),
                    str(obj["time"]),
                    str(obj["key_id"]),
                    str(obj["signature"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a signed head ({exc})") from exc
    return heads


class Anchors:
    """The head file (written before ``publish`` returns) and the webhook (a thread of its own).

    Heads not yet delivered to the webhook are kept, oldest first, in memory and in
    ``queue_file`` (appended and fsync'd on publish, rewritten on delivery), so a restart resumes
    them; each is retried until the receiver takes it, with a back-off up to ``backoff_max``
    seconds. ``status`` tells how far the webhook is behind: the age of the oldest undelivered
    head (``lag_s``), which the gateway's health compares with ``audit.anchor_lag``.
    """

    def __init__(
        self,
        head_file: Path | None = None,
        webhook: str | None = None,
        *,
        queue_file: Path | None = None,
        timeout: float = 5.0,
        backoff_max: float = 30.0,
    ) -> None:
        self.head_file, self.webhook, self.queue_file = head_file, webhook, queue_file
        self.timeout, self.backoff_max = timeout, backoff_max
        self.failures = 0  # failed attempts, all heads together
        self.delivered = 0
        self.last_error = ""
        self._undelivered: deque[Head] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._worker: threading.Thread | None = None
        if head_file is not None:
            head_file.parent.mkdir(parents=True, exist_ok=True)
        if webhook is not None:
            if queue_file is not None and queue_file.exists():
                self._undelivered.extend(read_head_file(queue_file))
            self._worker = threading.Thread(
                target=self._post_all, name="audit-webhook", daemon=True
            )
            self._worker.start()

    def publish(self, head: Head) -> None:
        if self.head_file is not None:
            _append_line(self.head_file, head_line(head), "head file")
        if self._worker is not None:
            with self._cond:
                if self.queue_file is not None:
                    _append_line(self.queue_file, head_line(head), "webhook queue")
                self._undelivered.append(head)
                self._cond.notify_all()

    def status(self, now: float | None = None) -> dict[str, object]:
        """For the health report: undelivered heads and the age of the oldest (seconds)."""
        now = time.time() if now is None else now
        with self._cond:
            oldest = self._undelivered[0] if self._undelivered else None
            waiting = len(self._undelivered)
        lag = 0.0
        if oldest is not None:
            lag = max(0.0, now - dt.datetime.fromisoformat(oldest.time).timestamp())
        return {
            "webhook": self.webhook,
            "undelivered": waiting,
            "lag_s": round(lag, 3),
            "delivered": self.delivered,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every published head was delivered to the webhook; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._undelivered:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout``; the rest stays in the queue file."""
        if self._worker is not None:
            self.flush(timeout)
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._worker.join(timeout + self.timeout)
            self._worker = None

    def _post_all(self) -> None:
        delay = 0.25
        while True:
            with self._cond:
                while not self._undelivered and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                head = self._undelivered[0]
            error = self._post(head)
            with self._cond:
                if error is None:
                    self._undelivered.popleft()
                    self.delivered += 1
                    self._rewrite_queue()
                    self._cond.notify_all()
                    delay = 0.25
                    continue
                self.failures += 1
                self.last_error = error
                if self.failures == 1 or self.failures % 20 == 0:
                    log.error(
                        "audit webhook %s: head %d not delivered (%d undelivered): %s",
                        self.webhook, head.tree_size, len(self._undelivered), error,
                    )  # fmt: skip
                self._cond.wait(delay)  # woken early only to close
                delay = min(delay * 2, self.backoff_max)

    def _post(self, head: Head) -> str | None:
        assert self.webhook is not None
        request = urllib.request.Request(
            self.webhook,
            data=head_line(head),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)
        return None

    def _rewrite_queue(self) -> None:
        if self.queue_file is None:
            return
        partial = self.queue_file.with_name(self.queue_file.name + ".partial")
        try:
            with open(partial, "wb") as f:
                f.write(b"".join(head_line(h) for h in self._undelivered))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.queue_file)
        except OSError as exc:  # delivered twice after a restart at worst: receivers dedupe
            log.warning("audit webhook queue %s: %s", self.queue_file, exc)


def _append_line(path: Path, line: bytes, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AuditUnavailable(f"{what} {path}: {exc.strerror}") from exc
