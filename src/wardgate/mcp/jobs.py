"""Calls the gateway holds for approval, kept running in the background.

A held statement must stay on its connection: disconnecting withdraws the approval request. So
the tool answers "pending" at once and the task goes on here until approved, denied or expired.
"""

from __future__ import annotations

import asyncio

from wardgate.mcp.errors import Refusal


class Jobs:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[str]] = {}

    def add(self, key: str, task: asyncio.Task[str]) -> None:
        self._tasks[key] = task

    def known(self) -> list[str]:
        return sorted(self._tasks)

    async def wait(self, key: str, seconds: float) -> str | None:
        """The result text once done (raising its ``Refusal``), or None while still pending."""
        task = self._tasks.get(key)
        if task is None:
            known = ", ".join(self.known()) or "none"
            raise Refusal(f"no held call {key!r} in this MCP server; known: {known}")
        if not task.done():
            await asyncio.wait({task}, timeout=max(0.0, seconds))  # never cancels the task
        if not task.done():
            return None
        return task.result()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
