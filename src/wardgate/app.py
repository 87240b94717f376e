"""Assembling a running gateway from a configuration: its components, the pipeline, listeners.

Each part owns its section of the configuration and its own start and stop (``lifespan``):
audit (``audit``, ``siem``), identity (``users``, ``identity``), approvals, masking, recording;
then the listeners. ``start`` starts them in that order and ``close`` stops them in the reverse
order (listeners first, the audit last), also when a start fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wardgate import tls
from wardgate.api.app import ApiContext, build_app
from wardgate.api.asgi import AsgiListener
from wardgate.approvals.component import ApprovalsComponent
from wardgate.approvals.store import ApprovalStore
from wardgate.audit.chained import ChainedAudit
from wardgate.audit.component import AuditComponent
from wardgate.audit.events import Event
from wardgate.config import Config
from wardgate.core.pipeline import Addon, Pipeline
from wardgate.identity.authenticator import Authenticator
from wardgate.identity.component import IdentityComponent
from wardgate.identity.revocation import LiveSession
from wardgate.identity.state import StateStore
from wardgate.lifespan import Component, Lifespan
from wardgate.masking.component import MaskingComponent
from wardgate.masking.views import Labels
from wardgate.policy.addon import PolicyAddon
from wardgate.policy.rules import RuleSet
from wardgate.policy.upstream import UnsafeUpstream, UpstreamGuard
from wardgate.private import loose, make_private
from wardgate.protocols.http.caller import CallerAuth
from wardgate.protocols.http.server import HttpServer
from wardgate.protocols.postgres import rows
from wardgate.protocols.postgres.server import PostgresServer
from wardgate.recording.addon import from_config as recording_addon
from wardgate.sql.analysis import Analyses

if TYPE_CHECKING:
    from wardgate.mcp.http import McpEndpoint

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self,
        config: Config,
        extra_addons: list[Addon] | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.config = config
        make_private()  # before the first state file: audit, identity, keys (private.py)
        self.audit = AuditComponent(config)
        self.identity = IdentityComponent(config, self.record, self.live_sessions, authenticator)
        self.approval_parts = ApprovalsComponent(config)
        self.masking = MaskingComponent(config)
        # Policy first: a statement it refuses is not analysed for masking. The recorder after
        # masking (it records what the client saw) and before the audit recorders (the
        # session-end event carries the recording's hash). Approvals resolve on their own hook.
        self.upstream = UpstreamGuard(config.targets)
        self.policy = PolicyAddon(
            RuleSet(config.policy),
            {t.name: Labels.from_config(t.phi) for t in config.targets if t.phi},
            self.upstream,
        )
        self.recording = recording_addon(config)
        addons: list[Addon] = [*(extra_addons or []), self.policy]
        addons += [a for a in (self.masking.rows, self.masking.documents) if a is not None]
        addons += [a for a in (self.recording, self.approval_parts.addon) if a is not None]
        self.pipeline = Pipeline([*addons, *self.audit.recorders()], Analyses())
        self.postgres: PostgresServer | None = None
        self.http: HttpServer | None = None
        self.api: AsgiListener | None = None
        self.mcp: McpEndpoint | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        self._lifespan = Lifespan()
        self._health = _HealthFile(self)
        for part in (self.audit, self.identity, self.approval_parts, self.masking):
            self._lifespan.adopt(part)  # they hold files from now on
        if self.recording is not None:
            self._lifespan.adopt(_Closing("recording", self.recording.close))

    # ---- what other parts and the tests read ----

    @property
    def chained(self) -> ChainedAudit | None:
        return self.audit.chained

    @property
    def state(self) -> StateStore | None:
        return self.identity.state

    @property
    def approvals(self) -> ApprovalStore | None:
        return self.approval_parts.store

    def live_sessions(self) -> list[LiveSession]:
        """Every live session of every protocol (HTTP: connections with a request in flight)."""
        live: list[LiveSession] = []
        if self.postgres is not None:
            live.extend(self.postgres.sessions.values())
        if self.http is not None:
            live.extend(self.http.live())
        return live

    def record(self, events: list[Event]) -> None:
        """Audit events that belong to no session hook (identity changes, terminations), made
        durable. Blocking: call it off the event loop."""
        self.audit.record(events)

    def health(self) -> dict[str, object]:
        audit = self.audit.health()
        out: dict[str, object] = {
            "time": time.time(),
            "healthy": bool(audit["healthy"]),
            "audit": audit,
            "sessions": len(self.live_sessions()),
        }
        degraded = self.audit.degraded()
        if degraded:  # sessions go on; the anchor that guards against a rollback is behind
            out["degraded"] = degraded
        siem = self.audit.siem_status()
        if siem is not None:
            out["siem"] = siem
        identity = self.identity.health()
        if identity is not None:
            out["identity"] = identity
        return out

    # ---- life ----

    async def start(self) -> None:
        # Least privilege upstream (policy/upstream.py): a superuser login refuses the start.
        refused, unchecked = await asyncio.get_running_loop().run_in_executor(
            None, self.upstream.check
        )
        for problem in [*unchecked, *loose(self.config)]:
            log.warning("%s", problem)
        if refused:
            raise UnsafeUpstream("; ".join(refused))
        if rows.COMPILED:
            log.info("rows: the compiled DataRow codec")
        else:
            log.info("rows: the pure-Python DataRow codec (not built, or WARDGATE_PURE_PYTHON)")
        for part in (self.audit, self.identity, self.approval_parts, self.masking):
            await part.start()
        await self._lifespan.enter(self._health)
        await self._listen()

    async def _listen(self) -> None:
        lifespan = self._lifespan
        pg = self.config.listeners.postgres
        if pg is not None:
            targets = {t.name: t for t in self.config.targets if t.kind == "postgres"}
            server = PostgresServer(
                "postgres", pg, targets, self.identity.authenticator, self.pipeline
            )
            await lifespan.enter(_Closing("postgres", server.close))
            self.postgres = server
            self.addresses["postgres"] = await server.start()
        http = self.config.listeners.http
        if http is not None:
            state = self.identity.state
            caller = CallerAuth(self.identity.oidc, state, self.identity.sign_in_check())
            apis = {a.name: a for a in self.config.apis}
            web = HttpServer("http", http, apis, caller, self.pipeline)
            await lifespan.enter(_Closing("http", web.close))
            self.http = web
            self.addresses["http"] = await web.start()
        api = self.config.listeners.api
        if api is not None:
            ident = self.identity
            context = ApiContext(
                self.config, self.record, self.health, ident.state, ident.oidc, ident.revalidator,
                self.approvals,
            )  # fmt: skip
            mcp = None
            if api.mcp:
                from wardgate.mcp.http import McpEndpoint

                mcp = McpEndpoint(self.config, ident.state, ident.oidc, self.record, self.addresses)
                context.extra.extend(mcp.routes())
            server_tls = tls.server_context(api.tls.cert, api.tls.key) if api.tls else None
            listener = AsgiListener("api", build_app(context), api.host, api.port, server_tls)
            await lifespan.enter(_Closing("api", listener.close))
            self.api = listener
            if mcp is not None:  # closed first: its open streams would hold the API listener
                await lifespan.enter(_Closing("mcp", mcp.close))
                self.mcp = mcp
            self.addresses["api"] = await listener.start()

    async def close(self) -> None:
        await self._lifespan.close()


class _Closing(Component):
    """A part that only needs closing (a listener, the recorder)."""

    def __init__(self, name: str, close: Callable[[], object]) -> None:
        super().__init__()
        self.name = name
        self._close = close

    async def close(self) -> None:
        done = self._close()
        if asyncio.iscoroutine(done):
            await done


class _HealthFile(Component):
    """Once a second, the health report in the file that ``wardgate health`` reads; a change of
    health is logged."""

    name = "health"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway
        self.healthy = True

    async def start(self) -> None:
        self.every(1.0, self.write, blocking=False)

    def write(self) -> None:
        report = self.gateway.health()
        if report["healthy"] != self.healthy:
            self.healthy = bool(report["healthy"])
            log.log(logging.INFO if self.healthy else logging.ERROR, "health: %s", report)
        try:
            _write_atomically(self.gateway.config.health_path(), json.dumps(report, default=str))
        except OSError as exc:
            log.warning("cannot write the health file: %s", exc)


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


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
