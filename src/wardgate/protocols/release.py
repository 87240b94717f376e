"""Group commit: results wait until the audit records they depend on are durable.

Every byte bound for a client goes through ``GroupCommit.send``. Once per turn of the event loop
the bytes waiting so far become a batch; the pipeline commits what the addons recorded (one
write for all the sessions in the batch) and only then are the batch's bytes written, in order.
When a commit blocks (an fsync), it runs on a thread of its own while the loop goes on serving,
and the bytes that arrive meanwhile form the next batch: at most one commit is in flight. If the
commit fails, none of the batch is released: each session that had bytes in it is ended with an
error, because an access that cannot be recorded must not happen.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
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
        self._committing = False
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="audit-commit")
            if pipeline.commit_blocks
            else None
        )

    def send(self, owner: Releasable, data: bytes) -> None:
        self._waiting.append((owner, data))
        if not self._scheduled and not self._committing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._committing or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        if self._executor is None:
            self._release(batch, self._commit())
            return
        self._committing = True
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._commit)
        future.add_done_callback(lambda done: self._committed(batch, done))

    def _commit(self) -> PipelineFailure | None:
        try:
            self.pipeline.commit()
        except PipelineFailure as exc:
            return exc
        return None

    def _committed(self, batch: Batch, done: asyncio.Future[PipelineFailure | None]) -> None:
        self._committing = False
        failure = done.exception() or done.result()
        self._release(batch, failure)
        if self._waiting:
            self._start()

    def _release(self, batch: Batch, failure: BaseException | None) -> None:
        if failure is None:
            for owner, data in batch:
                owner.write_client(data)
            return
        log.error("withholding results from the sessions of a batch: %s", failure)
        for owner in dict.fromkeys(owner for owner, _ in batch):
            owner.terminate("58030", AUDIT_UNAVAILABLE, f"audit commit failed: {failure}")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
