"""Assembling a running gateway from a configuration: pipeline, authenticator, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from wardgate.audit.chained import ChainedAudit
from wardgate.audit.jsonl import AuditLog
from wardgate.audit.siem.feed import SiemFeed
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.store import AuditUnavailable
from wardgate.config import Config
from wardgate.core.pipeline import Addon, Pipeline
from wardgate.identity.authenticator import Authenticator, StaticAuthenticator, StaticUser
from wardgate.protocols.postgres.server import PostgresServer

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self,
        config: Config,
        extra_addons: list[Addon] | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.config = config
        self.audit = AuditLog(config.audit.path) if config.audit.path is not None else None
        self.chained: ChainedAudit | None = None
        self.forwarder: Forwarder | None = None
        recorders: list[Addon] = [self.audit] if self.audit is not None else []
        audit = config.audit
        if audit.store is not None:
            key = audit.key_path()
            assert key is not None  # a store always has a key path
            self.chained = ChainedAudit.open(
                audit.store,
                key,
                head_file=audit.head_file,
                webhook=audit.webhook,
                every_entries=audit.checkpoint_entries,
                every_seconds=audit.checkpoint_seconds,
            )
            recorders.append(self.chained)
        if config.siem.sinks:
            self.forwarder = Forwarder.from_config(config.siem)
            recorders.append(SiemFeed(self.forwarder))
        self.pipeline = Pipeline([*(extra_addons or []), *recorders])
        self._ticker: asyncio.Task[None] | None = None
        self.authenticator: Authenticator = authenticator or StaticAuthenticator(
            [StaticUser(u.name, u.verifier(), u.roles) for u in config.users]
        )
        self.postgres: PostgresServer | None = None
        self.addresses: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        if self.forwarder is not None:
            self.forwarder.start()
        if self.chained is not None:
            self._ticker = asyncio.create_task(self._tick(self.chained))
        pg = self.config.listeners.postgres
        if pg is not None:
            targets = {t.name: t for t in self.config.targets if t.kind == "postgres"}
            self.postgres = PostgresServer(
                "postgres", pg, targets, self.authenticator, self.pipeline
            )
            self.addresses["postgres"] = await self.postgres.start()

    async def _tick(self, chained: ChainedAudit) -> None:
        """Signed heads are due by time as well as by count, so a quiet log is signed too."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            try:
                # Events of refused sessions wait for no result; commit them here, which is also
                # how a store that failed is found writable again.
                if chained.pending() or not chained.healthy:
                    await loop.run_in_executor(None, chained.commit)
                await loop.run_in_executor(None, chained.tick)
            except AuditUnavailable as exc:
                log.error("audit: %s", exc)

    def health(self) -> dict[str, object]:
        out: dict[str, object] = {"audit": {"healthy": True}}
        if self.chained is not None:
            out["audit"] = self.chained.health()
        if self.forwarder is not None:
            out["siem"] = self.forwarder.status()
        return out

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.postgres is not None:
            await self.postgres.close()
        if self.audit is not None:
            self.audit.close()
        if self.chained is not None:
            try:
                self.chained.close()
            except AuditUnavailable as exc:
                log.error("audit: could not close the store cleanly: %s", exc)
        if self.forwarder is not None:
            self.forwarder.stop()


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
