"""asyncio glue for the PostgreSQL listener: sockets, TLS upgrades, start-up, cancel requests.

The protocol work is in ``wire``, ``framing``, ``upstream_auth`` and ``relay``; this module only
moves bytes between them and the sockets, applies timeouts and backpressure, and turns failures
into a FATAL message for the client and an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import struct
import uuid
from collections.abc import Callable, Mapping

from wardgate import tls
from wardgate.config import PostgresListener, Target
from wardgate.core.model import ConnectAttempt, Identity, SessionInfo
from wardgate.core.pipeline import Pipeline, PipelineFailure
from wardgate.identity.authenticator import PASSWORD, Authenticator
from wardgate.identity.throttle import THROTTLED_HINT, Backoff, client_host, login_throttle
from wardgate.protocols.postgres import client_encoding, rows, wire
from wardgate.protocols.postgres.cancel import CancelRegistry, CancelTarget
from wardgate.protocols.postgres.endpoint import Endpoint
from wardgate.protocols.postgres.relay import Relay
from wardgate.protocols.postgres.upstream_auth import UpstreamAuthError, UpstreamLogin
from wardgate.protocols.postgres.wire import ProtocolViolation
from wardgate.protocols.release import AUDIT_UNAVAILABLE, GroupCommit, SessionRecords

log = logging.getLogger(__name__)

# Start-up parameters passed on to the target. Anything else (``replication``, ``options`` with
# its -c switches, unknown names) could change what the session may do, so it is not forwarded.
FORWARDED_PARAMETERS = frozenset(
    {
        "application_name",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "IntervalStyle",
        "extra_float_digits",
        "search_path",
        "lc_monetary",
        "lc_numeric",
        "lc_time",
        "standard_conforming_strings",
    }
)


# How long the last bytes of a session the target ended may wait for their audit records.
FLUSH_TIMEOUT = 5.0


class _Flushed:
    """A marker for the release: done once everything sent to the release before it is out."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write_client(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None:
        self.write_client(b"")


_SEARCH_PATH = wire.message(
    wire.F_QUERY, wire.cstr("SELECT pg_catalog.current_setting('search_path')")
)


async def _search_path(upstream: Endpoint, target: Target) -> str:
    """The session's search_path as the server sets it at start-up (the start-up parameter, or
    the role's, database's or server's default): what masking resolves names with, and what
    RESET and DISCARD ALL go back to."""
    upstream.write(_SEARCH_PATH)
    value: str | None = None
    failed = ""
    while True:
        kind, body = await upstream.message()
        if kind == wire.B_DATA_ROW:
            (cell,) = rows.split(body)
            value = None if cell is None else cell.decode()
        elif kind == wire.B_ERROR:
            failed = wire.parse_error_fields(body).text
        elif kind == wire.B_READY:
            break
    if value is None:
        raise SessionRefused(
            "08001",
            f'wardgate could not read the search_path of target "{target.name}"',
            f"target {target.name}: search_path unreadable: {failed or 'no value'}",
        )
    return value


class SessionRefused(Exception):
    """End the start-up with this FATAL error (and audit it)."""

    def __init__(self, sqlstate: str, message: str, reason: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.reason = reason or message
        self.hint = hint


class PostgresServer:
    """The PostgreSQL listener: accepts clients, authenticates them, relays to their target."""

    def __init__(
        self,
        name: str,
        listener: PostgresListener,
        targets: dict[str, Target],
        authenticator: Authenticator,
        pipeline: Pipeline,
    ) -> None:
        self.name = name
        self.listener = listener
        self.targets = targets
        self.authenticator = authenticator
        self.pipeline = pipeline
        self.cancels = CancelRegistry()
        self.release = GroupCommit(pipeline) if pipeline.wants_commit else None
        self.sessions: dict[str, PgSession] = {}
        self.throttle = login_throttle(listener.throttle)
        self._tls = (
            tls.server_context(listener.tls.cert, listener.tls.key) if listener.tls else None
        )
        self._upstream_tls = {t.name: tls.client_context(t.tls, t.ca) for t in targets.values()}
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, self.listener.host, self.listener.port, reuse_address=True
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def _accept(self) -> Endpoint:
        return Endpoint(self.listener.max_message_bytes, self._spawn)

    def _spawn(self, endpoint: Endpoint) -> None:
        session = PgSession(self, endpoint)
        task = asyncio.ensure_future(session.run())
        session.task = task

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            session.terminate("57P01", "terminating connection: the gateway is shutting down")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self.release is not None:
            self.release.close()

    async def open_upstream(self, target: Target) -> tuple[Endpoint, str]:
        """A connected (and, as configured, encrypted) socket to the target."""
        loop = asyncio.get_running_loop()
        ctx = self._upstream_tls[target.name]
        _, endpoint = await loop.create_connection(
            lambda: Endpoint(1 << 30), target.host, target.port
        )
        if ctx is None:
            return endpoint, ""
        assert endpoint.transport is not None
        endpoint.write(wire.ssl_request())
        answer = await endpoint.raw(1)
        if answer != b"S":
            endpoint.close()
            raise SessionRefused(
                "08001",
                "the target does not accept encrypted connections",
                f"target {target.name}: TLS refused by server",
            )
        if endpoint.reader.pending():
            endpoint.close()
            raise SessionRefused("08P01", "target sent data before the TLS handshake")
        new_transport = await loop.start_tls(
            endpoint.transport,
            endpoint,
            ctx,
            server_hostname=target.host if ctx.check_hostname else None,
        )
        assert new_transport is not None
        endpoint.transport = new_transport
        return endpoint, tls.describe(new_transport.get_extra_info("ssl_object"))


class PgSession:
    """One client connection, from its first byte to its last."""

    def __init__(self, server: PostgresServer, client: Endpoint) -> None:
        self.server = server
        self.client = client
        self.upstream: Endpoint | None = None
        self.relay: Relay | None = None
        self.records: SessionRecords | None = None
        self.search_path: str | None = None
        self.task: asyncio.Future[None] | None = None
        self.cancel_pid = 0
        peer = client.transport.get_extra_info("peername") if client.transport else None
        addr = f"{peer[0]}:{peer[1]}" if peer else "unknown"
        self.info = SessionInfo(
            id=str(uuid.uuid4()), protocol="postgresql", client_addr=addr, listener=server.name
        )
        self._end_reason = ""

    # ---- life cycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        pipeline = self.server.pipeline
        try:
            async with asyncio.timeout(self.server.listener.handshake_timeout):
                started = await self._start()
            if not started:
                return
        except SessionRefused as exc:
            self._fatal(exc.sqlstate, str(exc), exc.hint)
            self._audit_refused(exc.reason, exc.sqlstate)
            self._close()
            return
        except ProtocolViolation as exc:
            self._fatal(exc.sqlstate, str(exc))
            self._audit_refused(f"protocol violation: {exc}", exc.sqlstate)
            self._close()
            return
        except TimeoutError:
            self._fatal("08006", "start-up did not complete in time")
            self._audit_refused("start-up timed out", "08006")
            self._close()
            return
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self._audit_refused(f"connection failed during start-up: {exc}", "08006")
            self._close()
            return
        except PipelineFailure as exc:
            self._fatal("XX000", "the gateway could not record this session")
            log.error("session %s: %s", self.info.id, exc)
            self._close()
            return

        self.server.sessions[self.info.id] = self
        try:
            assert self.upstream is not None
            done, _ = await asyncio.wait(
                [self.client.closed, self.upstream.closed], return_when=asyncio.FIRST_COMPLETED
            )
            if not self._end_reason:  # else the gateway ended it, and closed both sides
                if self.client.closed in done:
                    self._end_reason = "client disconnected"
                else:
                    self._end_reason = "target disconnected"
                    await self._flush_release()
        finally:
            self.server.sessions.pop(self.info.id, None)
            if self.records is not None:
                self.records.forget()
            self.server.cancels.forget(self.cancel_pid)
            self._close()
            try:
                if self.relay is not None:
                    self.relay.close()
            except PipelineFailure as exc:
                log.error("session %s: %s", self.info.id, exc)
            # Apart, so that an addon failing on an aborted statement cannot stop the end of the
            # session from being recorded.
            try:
                pipeline.disconnect(self.info, self._end_reason)
            except PipelineFailure as exc:
                log.error("session %s: %s", self.info.id, exc)

    async def _flush_release(self) -> None:
        """The target ended the session: what it said last (its FATAL) reaches the client before
        the client's connection is closed, as it would directly. The release writes in order, so
        a marker sent after those bytes is released after them."""
        release = self.server.release
        if release is None:
            return
        flushed = _Flushed()
        release.send(flushed, b"")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flushed.done, FLUSH_TIMEOUT)

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None:
        """End a live session from outside (revocation, shutdown, an administrator)."""
        self._end_reason = reason or message
        self._fatal(sqlstate, message)
        self._close()

    def write_client(self, data: bytes) -> None:
        self.client.write(data)

    def _fatal(self, sqlstate: str, message: str, hint: str = "") -> None:
        self.client.write(wire.error_response("FATAL", sqlstate, message, hint=hint))

    def _close(self) -> None:
        self.client.close()
        if self.upstream is not None:
            if self.relay is not None and not self.relay.terminated:
                self.upstream.write(wire.message(wire.F_TERMINATE))
            self.upstream.close()

    def _audit_refused(self, reason: str, sqlstate: str) -> None:
        try:
            self.server.pipeline.connect(ConnectAttempt(self.info, False, reason, sqlstate))
        except PipelineFailure as exc:
            log.error("session %s: %s", self.info.id, exc)

    # ---- start-up -------------------------------------------------------------------------------

    async def _start(self) -> bool:
        """Negotiate TLS, authenticate, connect upstream. False if the client only cancelled."""
        client_tls = False
        while True:
            body = await self.client.startup_packet()
            code = struct.unpack_from("!i", body)[0]
            if code == wire.SSL_REQUEST and not client_tls:
                client_tls = await self._upgrade()
                continue
            if code == wire.GSSENC_REQUEST:
                self.client.write(b"N")  # no GSSAPI encryption; the client may go on in TLS
                continue
            if code == wire.CANCEL_REQUEST:
                await self._cancel(body)
                return False
            break
        startup = wire.parse_startup(body, client_encoding.declared)
        self.info.claimed_user = startup.user
        self.info.application = startup.parameters.get("application_name", "")
        if startup.protocol >> 16 != 3:
            raise SessionRefused(
                "0A000",
                f"unsupported frontend protocol {startup.protocol >> 16}."
                f"{startup.protocol & 0xFFFF}: wardgate speaks 3.0",
            )
        if startup.parameters.get("replication", "false").lower() not in (
            "false",
            "0",
            "off",
            "no",
        ):
            raise SessionRefused(
                "28000", "replication connections are not allowed through wardgate"
            )
        unknown = [k for k in startup.parameters if k.startswith("_pq_.")]
        if startup.protocol & 0xFFFF or unknown:
            self.client.write(wire.negotiate_version(0, unknown))
        listener = self.server.listener
        if listener.tls is not None and listener.tls.required and not client_tls:
            raise SessionRefused(
                "28000",
                "wardgate accepts only encrypted connections",
                "client did not request TLS",
                hint="connect with sslmode=verify-full",
            )
        unavailable = self.server.pipeline.unavailable()
        if unavailable:
            raise SessionRefused("58030", AUDIT_UNAVAILABLE, unavailable)
        identity = await self._authenticate(startup.user, client_tls)
        self.info.identity = identity
        target = self.server.targets.get(startup.database)
        if target is None:
            raise SessionRefused("3D000", f'database "{startup.database}" does not exist')
        self.info.target = target.name
        await self._connect_upstream(target, startup.parameters)
        return True

    async def _upgrade(self) -> bool:
        ctx = self.server._tls
        if ctx is None:
            self.client.write(b"N")
            return False
        if self.client.reader.pending():
            # Bytes sent after SSLRequest but before the handshake could be injected by anyone
            # on the path (CVE-2021-23214); refuse them.
            raise ProtocolViolation("received unencrypted data after SSL request")
        self.client.write(b"S")
        assert self.client.transport is not None
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self.client.transport, self.client, ctx, server_side=True)
        assert transport is not None
        self.client.transport = transport
        self.info.client_tls = tls.describe(transport.get_extra_info("ssl_object"))
        return True

    async def _authenticate(self, user: str, client_tls: bool) -> Identity:
        mechanism = self.server.listener.auth
        if mechanism == PASSWORD and not client_tls:
            raise SessionRefused(
                "28000",
                "password authentication requires an encrypted connection",
                hint="connect with sslmode=verify-full",
            )
        # Failed sign-ins back off per user and address; an attempt within a backoff is refused
        # before a password is asked for (identity/throttle.py).
        throttle, host = self.server.throttle, client_host(self.info.client_addr)
        hold = min(self.server.listener.throttle.hold, self.server.listener.handshake_timeout / 2)
        held = throttle.check(user, host)
        if held.wait > 0:
            await asyncio.sleep(min(held.wait, hold))
            raise SessionRefused("28P01", f'password authentication failed for user "{user}"',
                                 held.reason, hint=THROTTLED_HINT)  # fmt: skip
        exchange = self.server.authenticator.begin(user, tls=client_tls, mechanism=mechanism)
        if exchange.mechanism == PASSWORD:
            self.client.write(wire.auth_request(wire.AUTH_CLEARTEXT))
        else:
            self.client.write(wire.auth_sasl([exchange.mechanism]))
        first = True
        while True:
            kind, body = await self.client.message()
            if kind != wire.F_PASSWORD:
                raise ProtocolViolation(f"expected an authentication response, got {chr(kind)!r}")
            data = body
            if exchange.mechanism != PASSWORD and first:
                mech, pos = wire.read_cstr(body, 0)
                if mech != exchange.mechanism or len(body) < pos + 4:
                    raise ProtocolViolation(f"client chose an unoffered SASL mechanism {mech!r}")
                data = body[pos + 4 :]
            first = False
            if exchange.mechanism == PASSWORD:
                # Checking a bearer secret reads the identity state or the provider's keys:
                # blocking I/O, kept off the loop that carries every other session.
                step = await asyncio.to_thread(exchange.step, data)
            else:
                step = exchange.step(data)
            if step.failure:
                backoff = throttle.failed(user, host) if step.guess else Backoff()
                if backoff.wait > 0:
                    await asyncio.sleep(min(backoff.wait, hold))
                raise SessionRefused(
                    "28P01", f'password authentication failed for user "{user}"',
                    f"{step.failure}; {backoff.reason}" if backoff.reason else step.failure,
                    hint=step.hint,
                )  # fmt: skip
            if step.identity is not None:
                throttle.succeeded(user)
                if step.final:
                    self.client.write(wire.auth_request(wire.AUTH_SASL_FINAL, step.final))
                self.client.write(wire.auth_request(wire.AUTH_OK))
                return step.identity
            assert step.challenge is not None
            self.client.write(wire.auth_request(wire.AUTH_SASL_CONTINUE, step.challenge))

    async def _connect_upstream(self, target: Target, params: Mapping[str, str]) -> None:
        try:
            async with asyncio.timeout(target.connect_timeout):
                upstream, upstream_tls = await self.server.open_upstream(target)
        except ssl.SSLCertVerificationError as exc:
            raise SessionRefused(
                "08001",
                f'could not verify the TLS certificate of target "{target.name}"',
                f"target {target.name} ({target.host}:{target.port}) TLS certificate "
                f"verification failed: {exc.verify_message}",
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise SessionRefused(
                "08001",
                f'could not connect to target "{target.name}"',
                f"target {target.name} ({target.host}:{target.port}) unreachable: {exc}",
            ) from exc
        self.upstream = upstream
        self.info.upstream_tls = upstream_tls
        forwarded = {k: v for k, v in params.items() if k in FORWARDED_PARAMETERS}
        forwarded.update(user=target.user, database=target.database)
        declared = client_encoding.declared(params.get("client_encoding", ""))
        upstream.write(wire.startup_message(forwarded, encoding=declared))
        password = target.password.get_secret_value() if target.password else None
        login = UpstreamLogin(target.user, password, tls=bool(upstream_tls))
        to_client: list[bytes] = []
        upstream_key = (0, 0)
        encoding = wire.UTF8
        while True:
            kind, body = await upstream.message()
            if kind == wire.B_AUTH:
                try:
                    reply = login.handle(body)
                except UpstreamAuthError as exc:
                    raise SessionRefused(
                        "08001",
                        f'wardgate could not log in to target "{target.name}"',
                        f"target {target.name}: {exc}",
                    ) from exc
                if reply:
                    upstream.write(reply)
            elif kind == wire.B_ERROR:
                fields = wire.parse_error_fields(body)
                raise SessionRefused(
                    "08001",
                    f'target "{target.name}" refused the connection',
                    f"target {target.name}: {fields.sqlstate} {fields.text}",
                )
            elif kind == wire.B_BACKEND_KEY and len(body) >= 8:
                upstream_key = struct.unpack_from("!ii", body)
            elif kind == wire.B_READY:
                break
            elif kind in (wire.B_PARAMETER_STATUS, wire.B_NOTICE):
                to_client.append(wire.message(kind, body))
                if kind == wire.B_PARAMETER_STATUS:
                    encoding = client_encoding.reported(body) or encoding
            # NegotiateProtocolVersion from the target needs nothing: we asked for 3.0.
        if not login.authenticated:
            raise SessionRefused("08001", "target ended start-up without authenticating")
        self.search_path = await _search_path(upstream, target)
        self.cancel_pid, key = self.server.cancels.issue(CancelTarget(target, *upstream_key))
        to_client.append(wire.backend_key_data(self.cancel_pid, key))
        to_client.append(wire.ready_for_query(body[:1] or b"I"))
        self.server.pipeline.connect(ConnectAttempt(self.info, True))
        self._start_relay(b"".join(to_client), encoding, target)

    def _start_relay(self, greeting: bytes, encoding: str, target: Target) -> None:
        client, upstream = self.client, self.upstream
        assert upstream is not None
        release = self.server.release
        relay = Relay(
            self.info,
            self.server.pipeline,
            upstream.write,
            client.write if release is None else functools.partial(release.send, self),
            self.server.listener.max_message_bytes,
            self.search_path,
        )
        relay.encoding = encoding
        relay.records = self.records = release.records(self) if release is not None else None
        relay.client_pid = functools.partial(self.server.cancels.client_pid, target)
        relay.pause_client = functools.partial(client.pause_reading, "held")
        self.relay = relay
        client.peer, upstream.peer = upstream, client
        client.write(greeting)
        client.sink = self._guarded(relay.from_client)
        upstream.sink = self._guarded(relay.from_server)
        for endpoint in (client, upstream):
            pending = endpoint.reader.take_rest()
            if pending and endpoint.sink is not None:
                endpoint.sink(pending)
            if endpoint.eof:
                self._close()

    def _guarded(self, handler: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def guarded(data: bytes) -> None:
            try:
                handler(data)
            except ProtocolViolation as exc:
                self.terminate(exc.sqlstate, str(exc), f"protocol violation: {exc}")
            except PipelineFailure as exc:
                log.error("session %s: %s", self.info.id, exc)
                self.terminate("XX000", "wardgate could not process this session safely", str(exc))

        return guarded

    async def _cancel(self, body: bytes) -> None:
        """Pass a CancelRequest on. The client's connection is closed only once the target has
        taken it (the target closes its connection then), as a server does: a driver that waits
        for that close before its next statement (asyncpg) must not have that one cancelled."""
        try:
            found = None
            if len(body) == 12:
                pid, key = struct.unpack_from("!ii", body, 4)
                found = self.server.cancels.lookup(pid, key)
            if found is not None:
                await self._forward_cancel(found)
        finally:
            self._close()

    async def _forward_cancel(self, found: CancelTarget) -> None:
        try:
            upstream, _ = await self.server.open_upstream(found.target)
        except (OSError, SessionRefused) as exc:
            log.warning("cancel request for %s failed: %s", found.target.name, exc)
            return
        upstream.write(wire.cancel_request(found.pid, found.key))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(upstream.closed, 5)
        upstream.close()
