"""Group commit: results wait until the audit records they depend on are durable.

Every byte bound for a client goes through ``GroupCommit.send``. When the commit is cheap (the
JSON-lines audit), once per turn of the event loop the bytes waiting so far become a batch; the
pipeline commits what the addons recorded (one write for all the sessions in the batch) and only
then are the batch's bytes written, in order.

When a commit blocks (an fsync), a committer thread of its own runs commits one after another
while the loop goes on serving. Commits are numbered; the committer counts a commit as started
before it takes the recorded events, so commit N takes every event recorded before N was counted.
Each waiting piece of bytes carries a ticket, the number of the commit it waits for, and is
released, in its session's order, once commit N >= ticket has returned without failure. The
ticket of a session's bytes is, by default, the first commit that starts after they were sent
(it takes every event the session recorded before sending them: hooks record before the glue
sends). A session can do better with a ``SessionRecords`` (``records``): ``mark()`` when it has
recorded what its next bytes depend on (a statement's write-ahead record) sets its barrier, asks
for a commit at once, and from then on its bytes wait only for that commit, not for records made
later (a result's summary). So the commit runs while the statement runs on the server; bytes
whose barrier is already durable are written at once, without a trip through the committer.
``then(action)`` runs an action (sending a write to the server) once the barrier is durable.

The committer starts the next commit as soon as one returns if bytes are waiting, without a round
trip through the loop: everything that arrived during an fsync goes into the next one. If a commit
fails, none of the pieces waiting for it is released nor action run: each session that had one
is ended with an error, because an access that cannot be recorded must not happen; a session
whose barrier was in it waits for a later commit (the failed events are kept and retried).
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
Action = Callable[[], None]


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

    def records(self, owner: Releasable) -> SessionRecords | None:
        """The owner's barrier, where commits block (with the cheap commit of each turn of the
        loop there is nothing to overlap, and bytes wait for everything recorded before)."""
        return None if self._committer is None else SessionRecords(self._committer, owner)

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


class SessionRecords:
    """One session's side of the committer: what its bytes wait for (see the module docstring)."""

    def __init__(self, committer: _Committer, owner: Releasable) -> None:
        self._committer = committer
        self._owner = owner

    def mark(self) -> None:
        """Everything recorded so far must be durable before this session's next bytes go out;
        records made after this do not hold them up. Starts a commit now."""
        self._committer.mark(self._owner)

    def then(self, action: Action) -> None:
        """Run ``action`` on the loop once the last mark is durable (never if its commit fails:
        the session is ended instead)."""
        self._committer.queue(self._owner, action)

    def forget(self) -> None:
        """The session is over."""
        self._committer.forget(self._owner)


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
    """The committer thread and the tickets (see the module docstring). Everything but ``_run``
    runs on the loop's thread; ``_started`` is written by the committer thread only."""

    def __init__(self, commit: Callable[[], PipelineFailure | None]) -> None:
        self._commit = commit
        # What each session waits for, in its order: (ticket, bytes to write or action to run).
        self._queues: dict[Releasable, deque[tuple[int, bytes | Action]]] = {}
        self._barriers: dict[Releasable, int] = {}  # the commit a marked session's bytes need
        self._started = 0  # commits started
        self._durable = 0  # the last commit that returned without failure
        self._failed = 0  # the last commit that failed
        self._wanted = False  # a commit is asked for and has not started
        self._closing = False
        self._wake = threading.Condition(threading.Lock())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def mark(self, owner: Releasable) -> None:
        self._barriers[owner] = self._started + 1
        self._want()

    def forget(self, owner: Releasable) -> None:
        self._barriers.pop(owner, None)

    def send(self, owner: Releasable, data: bytes) -> None:
        ticket = self._ticket(owner)
        if ticket <= self._durable and owner not in self._queues:
            owner.write_client(data)  # what it waits for is durable already
            return
        self.queue(owner, data, ticket)

    def queue(self, owner: Releasable, item: bytes | Action, ticket: int = 0) -> None:
        ticket = ticket or self._ticket(owner)
        queue = self._queues.get(owner)
        if queue is None:
            queue = self._queues[owner] = deque()
        queue.append((ticket, item))
        if ticket > self._durable and ticket > self._started:
            self._want()  # no commit that takes what it waits for has started yet

    def _ticket(self, owner: Releasable) -> int:
        barrier = self._barriers.get(owner)
        if barrier is None:
            return self._started + 1  # the first commit that starts after now
        if self._durable < barrier <= self._failed:
            # Every commit since the mark failed; its events are kept for the next one.
            barrier = self._barriers[owner] = self._started + 1
        return barrier

    def _want(self) -> None:
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
        if failure is not None:
            self._failed = max(self._failed, number)
            ended = [o for o, q in self._queues.items() if q and q[0][0] <= number]
            if ended:
                log.error("withholding results from the sessions of a commit: %s", failure)
            for owner in ended:
                del self._queues[owner]
                owner.terminate("58030", AUDIT_UNAVAILABLE, f"audit commit failed: {failure}")
            return
        self._durable = max(self._durable, number)
        for owner in list(self._queues):
            queue = self._queues.get(owner)
            # An action may send more for its session (appended here) or end it.
            while queue and queue[0][0] <= number:
                _, item = queue.popleft()
                if isinstance(item, bytes):
                    owner.write_client(item)
                    continue
                try:
                    item()
                except Exception as exc:  # one session's failure must not stop the others'
                    log.exception("a session failed on its way after its audit record")
                    self._queues.pop(owner, None)
                    queue = None
                    code = getattr(exc, "sqlstate", "XX000")
                    owner.terminate(code, "wardgate could not process this session safely")
            if queue is not None and not queue and self._queues.get(owner) is queue:
                del self._queues[owner]

    def close(self) -> None:
        """Stop after the commit in flight (bytes still waiting are not released)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
