"""Group commit: results wait until the audit records they depend on are durable.

Every byte bound for a client goes through ``GroupCommit.send``. When the commit is cheap (the
JSON-lines audit), once per turn of the event loop the bytes waiting so far become a batch; the
pipeline commits what the addons recorded (one write for all the sessions in the batch) and only
then are the batch's bytes written, in order.

When a commit blocks (an fsync), a committer thread of its own runs commits one after another
while the loop goes on serving. Each waiting piece of bytes carries a ticket: the number of the
first commit that starts after it was sent, and so takes every event its session recorded before
sending it (hooks record before the glue sends). The committer counts a commit as started before
it takes the recorded events; when commit N has returned, the loop releases every piece whose
ticket is at most N. The committer starts the next commit as soon as one returns if bytes are
waiting, without a round trip through the loop: everything that arrived during an fsync goes into
the next one. If a commit fails, none of the pieces it covered is released: each session that had
bytes among them is ended with an error, because an access that cannot be recorded must not
happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from wardgate.core.pipeline import Pipeline, PipelineFailure

log = logging.getLogger(__name__)

AUDIT_UNAVAILABLE = "wardgate cannot record this access (the audit log is unavailable)"

Batch = list[tuple["Releasable", bytes]]


class Releasable(Protocol):
    def write_client(self, data: bytes) -> None: ...

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None: ...


class GroupCommit:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._waiting: Batch = []
        self._scheduled = False
        self._committer = _Committer(self._commit) if pipeline.commit_blocks else None

    def send(self, owner: Releasable, data: bytes) -> None:
        if self._committer is not None:
            self._committer.send(owner, data)
            return
        self._waiting.append((owner, data))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting, []
        if batch:
            _release(batch, self._commit())

    def _commit(self) -> PipelineFailure | None:
        try:
            self.pipeline.commit()
        except PipelineFailure as exc:
            return exc
        return None

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()


def _release(batch: Batch, failure: BaseException | None) -> None:
    if failure is None:
        # One write per session (a system call each): its pieces joined, in their order.
        pieces: dict[Releasable, list[bytes]] = {}
        for owner, data in batch:
            found = pieces.get(owner)
            if found is None:
                pieces[owner] = [data]
            else:
                found.append(data)
        for owner, datas in pieces.items():
            owner.write_client(datas[0] if len(datas) == 1 else b"".join(datas))
        return
    log.error("withholding results from the sessions of a batch: %s", failure)
    for owner in dict.fromkeys(owner for owner, _ in batch):
        owner.terminate("58030", AUDIT_UNAVAILABLE, f"audit commit failed: {failure}")


class _Committer:
    """The committer thread and the tickets (see the module docstring)."""

    def __init__(self, commit: Callable[[], PipelineFailure | None]) -> None:
        self._commit = commit
        self._waiting: deque[tuple[Releasable, bytes, int]] = deque()
        self._started = 0  # commits started; written by the committer thread only
        self._wanted = False  # bytes are waiting for a commit that has not started
        self._closing = False
        self._wake = threading.Condition(threading.Lock())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def send(self, owner: Releasable, data: bytes) -> None:
        self._waiting.append((owner, data, self._started + 1))
        if self._wanted:
            return  # a commit is already asked for, and it will count as started after this
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="audit-commit", daemon=True)
            self._thread.start()
        with self._wake:
            self._wanted = True
            self._wake.notify()

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            with self._wake:
                while not self._wanted and not self._closing:
                    self._wake.wait()
                if not self._wanted:
                    return
                self._wanted = False
            self._started += 1  # before the commit takes what was recorded: see the tickets
            number = self._started
            try:
                failure: BaseException | None = self._commit()
            except BaseException as exc:  # the thread must live on, or nothing is ever released
                failure = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to release
                loop.call_soon_threadsafe(self._committed, number, failure)

    def _committed(self, number: int, failure: BaseException | None) -> None:
        waiting = self._waiting
        batch: Batch = []
        while waiting and waiting[0][2] <= number:
            owner, data, _ = waiting.popleft()
            batch.append((owner, data))
        if batch:
            _release(batch, failure)

    def close(self) -> None:
        """Stop after the commit in flight (bytes still waiting are not released)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
