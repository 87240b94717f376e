"""Group commit: results wait until the audit records they depend on are durable.

Every byte bound for a client goes through ``GroupCommit.send``. Once per turn of the event loop,
``flush`` asks the pipeline to commit what the addons recorded (one write for all the sessions
served in that turn) and only then writes the waiting bytes, in order. If the commit fails, none
of them is released: each session that had bytes waiting is ended with an error, because an
access that cannot be recorded must not happen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from wardgate.core.pipeline import Pipeline, PipelineFailure

log = logging.getLogger(__name__)

AUDIT_UNAVAILABLE = "wardgate cannot record this access (the audit log is unavailable)"


class Releasable(Protocol):
    def write_client(self, data: bytes) -> None: ...

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None: ...


class GroupCommit:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._waiting: list[tuple[Releasable, bytes]] = []
        self._scheduled = False

    def send(self, owner: Releasable, data: bytes) -> None:
        self._waiting.append((owner, data))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        try:
            self.pipeline.commit()
        except PipelineFailure as exc:
            log.error("withholding results from %d session(s): %s", len(waiting), exc)
            for owner in dict.fromkeys(owner for owner, _ in waiting):
                owner.terminate("58030", AUDIT_UNAVAILABLE, f"audit commit failed: {exc}")
            return
        for owner, data in waiting:
            owner.write_client(data)
