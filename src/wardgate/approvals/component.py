"""Approvals as a part of the running gateway: the ``approvals`` section (its store lives in the
identity state file). Held exchanges go on (or fail) within half a second of their decision: the
store is read on a worker thread, the holds resolved on the loop."""

from __future__ import annotations

import asyncio

from wardgate.approvals.addon import ApprovalAddon
from wardgate.approvals.store import ApprovalStore
from wardgate.config import Config
from wardgate.lifespan import Component

POLL_SECONDS = 0.5


class ApprovalsComponent(Component):
    name = "approvals"

    def __init__(self, config: Config) -> None:
        super().__init__()
        path = config.identity.state
        self.store = ApprovalStore(path) if path is not None else None
        self.addon = ApprovalAddon(self.store, config.approvals) if self.store else None

    async def start(self) -> None:
        if self.addon is not None:
            self.every(POLL_SECONDS, self._poll, blocking=False)

    async def _poll(self) -> None:
        addon = self.addon
        assert addon is not None
        addon.settle(await asyncio.get_running_loop().run_in_executor(None, addon.check))

    async def close(self) -> None:
        await super().close()
        if self.store is not None:
            self.store.close()
