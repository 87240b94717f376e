"""Assembling a running gateway from a configuration: pipeline, authenticator, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from wardgate.audit.jsonl import AuditLog
from wardgate.config import Config
from wardgate.core.pipeline import Addon, Pipeline
from wardgate.identity.authenticator import StaticAuthenticator, StaticUser
from wardgate.protocols.postgres.server import PostgresServer

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config, extra_addons: list[Addon] | None = None) -> None:
        self.config = config
        self.audit = AuditLog(config.audit.path)
        self.pipeline = Pipeline([*(extra_addons or []), self.audit])
        self.authenticator = StaticAuthenticator(
            [StaticUser(u.name, u.verifier(), u.roles) for u in config.users]
        )
        self.postgres: PostgresServer | None = None
        self.addresses: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        pg = self.config.listeners.postgres
        if pg is not None:
            targets = {t.name: t for t in self.config.targets if t.kind == "postgres"}
            self.postgres = PostgresServer(
                "postgres", pg, targets, self.authenticator, self.pipeline
            )
            self.addresses["postgres"] = await self.postgres.start()

    async def close(self) -> None:
        if self.postgres is not None:
            await self.postgres.close()
        self.audit.close()


async def serve(config: Config, on_ready: Callable[[Gateway], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM (or cancellation), then close sessions and listeners."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A signal must not raise inside a protocol callback; it only asks the loop to stop.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    gateway = Gateway(config)
    await gateway.start()
    if on_ready is not None:
        on_ready(gateway)
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        with contextlib.suppress(Exception):
            await gateway.close()


def run(coro_factory: Callable[[], object]) -> None:
    """Run a coroutine on uvloop where it is installed, on asyncio's own loop otherwise."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - non-Linux
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro_factory())  # type: ignore[arg-type]
