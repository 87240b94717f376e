"""Assembling a running gateway from a configuration: pipeline, authenticator, listeners."""

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
from wardgate.approvals.addon import ApprovalAddon
from wardgate.approvals.store import ApprovalStore
from wardgate.audit.chained import ChainedAudit, tick_interval
from wardgate.audit.events import Event
from wardgate.audit.jsonl import AuditLog
from wardgate.audit.siem.feed import SiemFeed
from wardgate.audit.siem.forwarder import Forwarder
from wardgate.audit.siem.spool import SpoolFull
from wardgate.audit.store import AuditUnavailable
from wardgate.config import Config
from wardgate.core.pipeline import Addon, Pipeline
from wardgate.identity.authenticator import (
    Authenticator,
    CompositeAuthenticator,
    StaticAuthenticator,
    StaticUser,
)
from wardgate.identity.credential_auth import CredentialAuthenticator
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.oidc_auth import OidcAuthenticator
from wardgate.identity.revalidate import IdpRevalidator
from wardgate.identity.revocation import LiveSession, RevocationWatcher, sign_in_check
from wardgate.identity.state import StateStore
from wardgate.masking.addon import MaskingAddon
from wardgate.masking.catalogs import Catalogs
from wardgate.masking.documents import Documents
from wardgate.masking.policy import Labels, Policy
from wardgate.policy.addon import PolicyAddon
from wardgate.policy.rules import RuleSet
from wardgate.protocols.http.caller import CallerAuth
from wardgate.protocols.http.server import HttpServer
from wardgate.protocols.postgres.server import PostgresServer
from wardgate.recording.addon import from_config as recording_addon

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
                alarm_file=audit.alarm_path(),
            )
            self.chained.on_alarm = self._alarm
            recorders.append(self.chained)
        if config.siem.sinks:
            self.forwarder = Forwarder.from_config(config.siem)
            recorders.append(SiemFeed(self.forwarder))
        self.masking = _masking(config)
        masking: list[Addon] = [self.masking] if self.masking is not None else []
        # Policy before masking: a statement refused by policy is not analysed for masking.
        self.policy = PolicyAddon(
            RuleSet(config.policy),
            {t.name: Labels.from_config(t.phi) for t in config.targets if t.phi},
        )
        # The recorder after masking (it records what the client saw) and before the audit
        # recorders (the session-end event carries the recording's hash).
        self.recording = recording_addon(config)
        recording: list[Addon] = [self.recording] if self.recording is not None else []
        # Approvals last among the addons that decide: a held statement has been analysed by
        # masking and noted by the recorder when it is released.
        state_path = config.identity.state
        self.approvals = ApprovalStore(state_path) if state_path is not None else None
        self.approval_addon = (
            ApprovalAddon(self.approvals, config.approvals) if self.approvals is not None else None
        )
        holds: list[Addon] = [self.approval_addon] if self.approval_addon is not None else []
        self.pipeline = Pipeline(
            [*(extra_addons or []), self.policy, *masking, *recording, *holds, *recorders]
        )
        self._approvals_task: asyncio.Task[None] | None = None
        self._catalogs: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        ident = config.identity
        self.state = StateStore(ident.state) if ident.state is not None else None
        self.oidc = OidcVerifier(ident.oidc) if ident.oidc is not None else None
        static = StaticAuthenticator(
            [StaticUser(u.name, u.verifier(), u.roles) for u in config.users]
        )
        self.authenticator: Authenticator = authenticator or CompositeAuthenticator(
            static,
            CredentialAuthenticator(self.state) if self.state is not None else None,
            OidcAuthenticator(self.oidc) if self.oidc is not None else None,
            check=sign_in_check(self.state) if self.state is not None else None,
        )
        self.revocations = (
            RevocationWatcher(self.state, self.live_sessions, self.record)
            if self.state is not None
            else None
        )
        self.revalidator = (
            IdpRevalidator(self.oidc, self.state)
            if self.oidc is not None and self.state is not None
            else None
        )
        self._revalidating: asyncio.Task[None] | None = None
        self.postgres: PostgresServer | None = None
        self.http: HttpServer | None = None
        self.api: AsgiListener | None = None
        self.mcp: McpEndpoint | None = None
        self.addresses: dict[str, tuple[str, int]] = {}

    def live_sessions(self) -> list[LiveSession]:
        """Every live session of every protocol (HTTP: connections with a request in flight)."""
        live: list[LiveSession] = []
        if self.postgres is not None:
            live.extend(self.postgres.sessions.values())
        if self.http is not None:
            live.extend(self.http.live())
        return live

    def record(self, events: list[Event]) -> None:
        """Hand audit events that belong to no session hook (identity changes, terminations) to
        every recorder, and make them durable. Blocking: call it off the event loop."""
        for event in events:
            if self.audit is not None:
                self.audit.write(event)
            if self.chained is not None:
                self.chained.record(event)
            if self.forwarder is not None:
                try:
                    self.forwarder.submit(event)
                except SpoolFull as exc:
                    log.error("%s", exc)
        if self.chained is not None:
            self.chained.commit()

    def _alarm(self, event: Event) -> None:
        """A tamper alarm of the signed store: to the JSON-lines copy and the SIEM at once."""
        if self.audit is not None:
            self.audit.write(event)
            self.audit.commit()
        if self.forwarder is not None:
            try:
                self.forwarder.submit(event)
            except SpoolFull as exc:
                log.error("%s", exc)

    async def start(self) -> None:
        if self.forwarder is not None:
            self.forwarder.start()
        if self.masking is not None:
            catalogs = self.masking.catalogs
            await asyncio.get_running_loop().run_in_executor(None, catalogs.load_due)
            self._catalogs = asyncio.create_task(self._reload_catalogs(catalogs))
        self._ticker = asyncio.create_task(self._tick())
        if self.revocations is not None:
            self._watcher = asyncio.create_task(self._watch(self.revocations))
        pg = self.config.listeners.postgres
        if pg is not None:
            targets = {t.name: t for t in self.config.targets if t.kind == "postgres"}
            self.postgres = PostgresServer(
                "postgres", pg, targets, self.authenticator, self.pipeline
            )
            self.addresses["postgres"] = await self.postgres.start()
        http = self.config.listeners.http
        if http is not None:
            caller = CallerAuth(
                self.oidc, self.state, sign_in_check(self.state) if self.state else None
            )
            apis = {a.name: a for a in self.config.apis}
            self.http = HttpServer("http", http, apis, caller, self.pipeline)
            self.addresses["http"] = await self.http.start()
        api = self.config.listeners.api
        if api is not None:
            context = ApiContext(
                self.config, self.record, self.health, self.state, self.oidc, self.revalidator,
                self.approvals,
            )  # fmt: skip
            if api.mcp:
                from wardgate.mcp.http import McpEndpoint

                self.mcp = McpEndpoint(
                    self.config, self.state, self.oidc, self.record, self.addresses
                )
                context.extra.extend(self.mcp.routes())
            server_tls = tls.server_context(api.tls.cert, api.tls.key) if api.tls else None
            self.api = AsgiListener("api", build_app(context), api.host, api.port, server_tls)
            self.addresses["api"] = await self.api.start()
        if self.revalidator is not None:
            self._revalidating = asyncio.create_task(self._revalidate(self.revalidator))
        if self.approval_addon is not None:
            self._approvals_task = asyncio.create_task(self._poll_approvals(self.approval_addon))

    async def _tick(self) -> None:
        """Once a second: sign a head if one is due by time (so a quiet log is signed too), and
        write the health file that `wardgate health` reads."""
        loop = asyncio.get_running_loop()
        healthy = True
        every = tick_interval(self.config.audit.checkpoint_seconds) if self.chained else 1.0
        while True:
            await asyncio.sleep(every)
            chained = self.chained
            if chained is not None:
                try:
                    # Events of refused sessions wait for no result; commit them here, which is
                    # also how a store that failed is found writable again.
                    # (Under a tamper alarm nothing is committed; ``tick`` takes up its
                    # acknowledgement.)
                    if (chained.pending() or not chained.healthy) and chained.alarm is None:
                        await loop.run_in_executor(None, chained.commit)
                    await loop.run_in_executor(None, chained.tick)
                except AuditUnavailable as exc:
                    log.error("audit: %s", exc)
            report = self.health()
            if report["healthy"] != healthy:
                healthy = bool(report["healthy"])
                log.log(logging.INFO if healthy else logging.ERROR, "health: %s", report)
            try:
                _write_atomically(self.config.health_path(), json.dumps(report, default=str))
            except OSError as exc:
                log.warning("cannot write the health file: %s", exc)

    async def _watch(self, watcher: RevocationWatcher) -> None:
        """Revocations take effect within ``watch_interval`` (and the audit outbox is drained)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, watcher.refresh)
                events = watcher.sweep()
                if events:
                    await loop.run_in_executor(None, self.record, events)
            except Exception:
                log.exception("identity: revocation check failed")
            await asyncio.sleep(self.config.identity.watch_interval)

    async def _reload_catalogs(self, catalogs: Catalogs) -> None:
        """Target catalogs for masking: retried until loaded, reloaded when due or stale."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            try:
                await loop.run_in_executor(None, catalogs.load_due)
            except Exception:
                log.exception("masking: catalog reload failed")

    async def _poll_approvals(self, addon: ApprovalAddon) -> None:
        """Held statements go on (or fail) within half a second of their decision."""
        while True:
            await asyncio.sleep(0.5)
            try:
                addon.poll()
            except Exception:
                log.exception("approvals: polling failed")

    async def _revalidate(self, revalidator: IdpRevalidator) -> None:
        """Ask the identity provider about every human whose grant we hold, every
        ``revalidate_interval``; refusals revoke through the store (and so the watcher)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.identity.revalidate_interval)
            try:
                await loop.run_in_executor(None, revalidator.run_once)
            except Exception:
                log.exception("identity: re-validation failed")

    def health(self) -> dict[str, object]:
        audit: dict[str, object] = {"healthy": True, "reason": "", "pending": 0}
        if self.chained is not None:
            audit = self.chained.health()
        out: dict[str, object] = {
            "time": time.time(),
            "healthy": bool(audit["healthy"]),
            "audit": audit,
            "sessions": len(self.live_sessions()),
        }
        lag = self.chained.anchor_lag(self.config.audit.anchor_lag) if self.chained else ""
        if lag:  # sessions go on; the anchor that guards against a rollback is behind
            out["degraded"] = lag
        if self.forwarder is not None:
            out["siem"] = self.forwarder.status()
        if self.revalidator is not None:
            last = self.revalidator.last
            out["identity"] = {"revalidated": last.checked, "idp_unreachable": last.unreachable}
        return out

    async def close(self) -> None:
        if self.mcp is not None:  # first: its open streams would hold the API listener
            await self.mcp.close()
        if self.api is not None:
            await self.api.close()
        for task in (
            self._approvals_task,
            self._catalogs,
            self._revalidating,
            self._watcher,
            self._ticker,
        ):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.postgres is not None:
            await self.postgres.close()
        if self.http is not None:
            await self.http.close()
        if self.recording is not None:
            self.recording.close()
        if self.audit is not None:
            self.audit.close()
        if self.chained is not None:
            try:
                self.chained.close()
            except AuditUnavailable as exc:
                log.error("audit: could not close the store cleanly: %s", exc)
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.state is not None:
            self.state.close()
        if self.revalidator is not None:
            self.revalidator.close()
        if self.approvals is not None:
            self.approvals.close()
        if self.oidc is not None:
            self.oidc.close()


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


def _masking(config: Config) -> MaskingAddon | None:
    """The masking addon, if any target has PHI labels or any HTTP API is configured."""
    labelled = [t for t in config.targets if t.phi]
    if not labelled and not config.apis:
        return None
    settings = config.masking
    policy = Policy(
        settings.operators,
        {name: (role.raw, role.operators) for name, role in settings.roles.items()},
        agents_see_raw=settings.agents_see_raw,
    )
    key = masking_key(settings.key or config.health_path().parent / "masking.key")
    labels = {t.name: Labels.from_config(t.phi) for t in labelled}
    catalogs = Catalogs(labelled, settings.catalog_refresh, labels)
    addon = MaskingAddon(
        labels, policy, catalogs, key,
        unresolved=settings.unresolved, mrn_patterns=settings.mrn_patterns,
    )  # fmt: skip
    if config.apis:
        addon.documents = Documents({a.name: a for a in config.apis}, policy, key, addon.scanner)
    return addon


def masking_key(path: Path) -> bytes:
    """The pseudonym key: 32 random bytes, created 0600 on first start."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
