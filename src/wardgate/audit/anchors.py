"""Anchors: copies of every signed head kept where the store's owner does not control them alone.

- The head file: one JSON object per line (the head's canonical JSON), opened ``O_APPEND`` and
  fsync'd per head, in a directory apart from the store. ``wardgate audit verify --head FILE``
  checks the store against it, which is what reveals truncation, rollback and replacement.
- The webhook: each head POSTed as ``application/json`` (the same object) from a background
  thread, so a slow receiver never holds up a commit; failures are retried, then logged.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
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
    def __init__(
        self,
        head_file: Path | None = None,
        webhook: str | None = None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        self.head_file, self.webhook = head_file, webhook
        self.timeout, self.retries = timeout, retries
        self.failures = 0
        self._queue: queue.Queue[Head | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        if head_file is not None:
            head_file.parent.mkdir(parents=True, exist_ok=True)
        if webhook is not None:
            self._worker = threading.Thread(
                target=self._post_all, name="audit-webhook", daemon=True
            )
            self._worker.start()

    def publish(self, head: Head) -> None:
        if self.head_file is not None:
            try:
                fd = os.open(self.head_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, head_line(head))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditUnavailable(f"head file {self.head_file}: {exc.strerror}") from exc
        if self._worker is not None:
            self._queue.put(head)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every published head was delivered to the webhook (or given up on)."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        if self._worker is not None:
            self.flush(timeout)
            self._queue.put(None)
            self._worker.join(timeout)
            self._worker = None

    def _post_all(self) -> None:
        while True:
            head = self._queue.get()
            try:
                if head is None:
                    return
                self._post(head)
            finally:
                self._queue.task_done()

    def _post(self, head: Head) -> None:
        assert self.webhook is not None
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(
                self.webhook,
                data=head_line(head),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except (urllib.error.URLError, OSError) as exc:
                log.warning("audit webhook %s, attempt %d: %s", self.webhook, attempt, exc)
                time.sleep(min(2.0**attempt, 30.0) / 4)
        self.failures += 1
        log.error("audit webhook: head %d not delivered", head.tree_size)
