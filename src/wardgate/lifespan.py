"""The running gateway's parts and their lives, composed in one lifespan.

A ``Component`` owns a section of the configuration and whatever it opens (stores, files,
background loops): made, it owns them; ``start`` starts its work, ``close`` closes, ``health``
reports. ``Lifespan`` closes the components in the reverse order of their making, also when a
start fails half-way, as Starlette's lifespan does with an exit stack. ``every`` is the one way
a component runs something again and again: blocking work on a worker thread, a failure logged
and the loop kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Component:
    name = "component"

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.stop_loops()

    def health(self) -> dict[str, object] | None:
        """What ``wardgate health`` shows of this part; None if nothing."""
        return None

    def every(
        self, seconds: float | Callable[[], float], work: Callable[[], object], *, blocking: bool
    ) -> None:
        """Run ``work`` every ``seconds`` (a number, or a function asked each time) until the
        component closes; ``blocking`` work runs on a worker thread, never on the loop. Work that
        returns an awaitable is awaited (a step that must touch sessions on the loop)."""
        self._tasks.append(asyncio.create_task(_loop(self.name, seconds, work, blocking)))

    async def stop_loops(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _loop(
    name: str, seconds: float | Callable[[], float], work: Callable[[], object], blocking: bool
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(seconds() if callable(seconds) else seconds)
        try:
            done = await loop.run_in_executor(None, work) if blocking else work()
            if inspect.isawaitable(done):
                await done
        except Exception:
            log.exception("%s: a periodic task failed", name)


class Lifespan:
    """Components closed in the reverse order of their adoption. A component is adopted when it
    is made (it may hold open files from then on) and started later; a start that fails leaves
    it adopted, so it is closed all the same."""

    def __init__(self) -> None:
        self._owned: list[Component] = []

    def adopt(self, component: Component) -> None:
        self._owned.append(component)

    async def enter(self, component: Component) -> None:
        """Adopt and start."""
        self.adopt(component)
        await component.start()

    async def close(self) -> None:
        while self._owned:
            component = self._owned.pop()
            try:
                await component.close()
            except Exception:
                log.exception("%s: could not close cleanly", component.name)
