"""MCP over Streamable HTTP at ``/mcp`` on the gateway's API listener, for remote assistants.

The endpoint is an OAuth 2.1 resource server as the MCP authorization specification (2025-06-18)
asks: every request carries ``Authorization: Bearer <token>``, a gateway credential (``wgc_...``)
or an access token of the configured identity provider, checked anew each time (a revoked owner
is refused at the next request). A refusal is a 401 whose ``WWW-Authenticate`` names the
protected-resource metadata (RFC 9728), served at ``/.well-known/oauth-protected-resource`` (and
at ``.../mcp``, the path RFC 9728 derives from the resource). A token in the query string is
refused. Each refusal is audited as the API's are (``api_event``).

Each token gets its own MCP server (``server.build``), a client of the gateway's own PostgreSQL
and HTTP listeners signed in with that very token, so the pipeline (masking, policy, approvals,
recording, audit) applies as for any session. Its SDK session manager runs in a task of its
own until the gateway closes. An MCP session belongs to the token that opened it: another token
naming its id is refused (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from wardgate.api.bearer import REALM, api_event
from wardgate.audit.events import Event
from wardgate.config import Config
from wardgate.core.model import Identity
from wardgate.identity import credentials
from wardgate.identity.oidc import OidcVerifier, TokenRejected
from wardgate.identity.revocation import sign_in_check
from wardgate.identity.state import StateStore
from wardgate.mcp.server import build
from wardgate.mcp.settings import Settings
from wardgate.protocols.http.caller import CallerAuth, CallerRefused

log = logging.getLogger(__name__)

PATH = "/mcp"
METADATA = "/.well-known/oauth-protected-resource"
SESSION_HEADER = "mcp-session-id"
SCOPES = ("openid", "email", "profile", "groups")
QUERY_TOKENS = frozenset({"access_token", "token", "bearer"})
REFUSED = -32001  # a JSON-RPC server error code: the gateway refused the request
MAX_CALLERS = 1000  # distinct tokens with a server at once (idle ones are let go first)
IDLE_SECONDS = 30 * 60.0  # an MCP session with no request for this long ends
STOP_TIMEOUT = 5.0
_NETLOC = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

Record = Callable[[list[Event]], None]


@dataclass
class _Caller:
    key: str  # SHA-256 of the token
    identity: Identity
    manager: StreamableHTTPSessionManager
    closers: list[Callable[[], Awaitable[None]]]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)

    def idle(self, now: float) -> bool:
        """No request for longer than the SDK keeps an idle session: nothing left to serve."""
        return self.in_flight == 0 and now - self.last_used > IDLE_SECONDS


class McpEndpoint:
    """The routes (``routes()``) and the per-token MCP servers behind them (``close()``)."""

    def __init__(
        self,
        config: Config,
        state: StateStore | None,
        oidc: OidcVerifier | None,
        record: Record,
        addresses: dict[str, tuple[str, int]],
    ) -> None:
        self._config = config
        self._oidc = oidc
        self._record = record
        self._addresses = addresses
        self._auth = CallerAuth(oidc, state, sign_in_check(state) if state is not None else None)
        self._callers: dict[str, _Caller] = {}
        self._owners: dict[str, str] = {}  # MCP session id -> the key of the token that opened it
        self._lock = asyncio.Lock()
        self._closed = False

    def routes(self) -> list[BaseRoute]:
        return [
            Route(METADATA, self.metadata, methods=["GET"]),
            Route(METADATA + PATH, self.metadata, methods=["GET"]),
            Route(PATH, _Asgi(self)),
        ]

    # -- RFC 9728 -------------------------------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        doc: dict[str, object] = {
            "resource": _base(request) + PATH,
            "bearer_methods_supported": ["header"],
            "scopes_supported": list(SCOPES),
            "resource_name": "wardgate MCP",
        }
        oidc = self._config.identity.oidc
        if oidc is not None:
            doc["authorization_servers"] = [oidc.issuer]
        return JSONResponse(doc, headers={"Cache-Control": "max-age=300"})

    # -- /mcp -----------------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if QUERY_TOKENS & {k.lower() for k in request.query_params}:
            refused = CallerRefused(
                400, "send the token in the Authorization header, never in the URL",
                "token in the query string",
            )  # fmt: skip
            await self._refuse(request, refused, None)(scope, receive, send)
            return
        header = request.headers.get("authorization")
        try:
            caller = await self._caller(header)
        except CallerRefused as exc:
            await self._refuse(request, exc, None)(scope, receive, send)
            return
        session = request.headers.get(SESSION_HEADER)
        owner = self._owners.get(session) if session is not None else None
        if owner is not None and owner != caller.key:
            refused = CallerRefused(
                403, "this MCP session belongs to another token",
                "mcp session of another token", caller.identity.subject,
            )  # fmt: skip
            await self._refuse(request, refused, caller.identity)(scope, receive, send)
            return
        await self._forward(request, caller, scope, receive, send)

    async def _forward(
        self, request: Request, caller: _Caller, scope: Scope, receive: Receive, send: Send
    ) -> None:
        opened: list[tuple[str, int]] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == SESSION_HEADER.encode() and status < 400:
                        session = value.decode("latin-1")
                        if session not in self._owners:
                            self._owners[session] = caller.key
                            opened.append((session, status))
                if request.method == "DELETE" and status < 300:
                    self._owners.pop(request.headers.get(SESSION_HEADER, ""), None)
            await send(message)

        caller.in_flight += 1
        try:
            await caller.manager.handle_request(scope, receive, watch)
        finally:
            caller.in_flight -= 1
            caller.last_used = time.monotonic()
        for session, status in opened:
            event = api_event(request, status, caller.identity, caller.identity.subject)
            event["mcp_session"] = session
            await run_in_threadpool(self._record, [event])

    def _refuse(self, request: Request, exc: CallerRefused, who: Identity | None) -> Response:
        """The answer to a refused request; its audit event is written before it is sent."""
        status = 401 if exc.status == 403 and who is None else exc.status  # a revoked owner
        event = api_event(request, status, who, exc.claimed, exc.reason)
        if who is not None:
            event["outcome"] = "failure"
        headers: dict[str, str] = {}
        if status == 401:
            challenge = f'Bearer realm="{REALM}"'
            if exc.reason != "no bearer token":
                challenge += ', error="invalid_token"'
            challenge += f', resource_metadata="{_base(request)}{METADATA}{PATH}"'
            headers["WWW-Authenticate"] = challenge
        elif status == 400:
            headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="invalid_request"'
        message = exc.message
        if status == 401 and exc.reason != "no bearer token":
            message = (
                "the gateway refused the token (401): it is wrong or expired, or it or its owner "
                "was revoked"
            )
        # A JSON-RPC error (no id): MCP clients show its message for the call it answers.
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": REFUSED, "message": message}}
        return _Audited(self._record, [event], body, status, headers)

    # -- one MCP server per token ---------------------------------------------------------------

    async def _caller(self, header: str | None) -> _Caller:
        token = _token(header)
        key = hashlib.sha256(token.encode()).hexdigest() if token else ""
        try:
            identity, user = await run_in_threadpool(self._verify, header, token)
        except CallerRefused:
            if key in self._callers:  # revoked or expired: its server goes too
                await self._drop(key)
            raise
        async with self._lock:
            if self._closed:
                raise CallerRefused(503, "the gateway is stopping", "gateway stopping")
            found = self._callers.get(key)
            if found is None:
                now = time.monotonic()
                for idle in [c.key for c in self._callers.values() if c.idle(now)]:
                    await self._drop(idle)
                if len(self._callers) >= MAX_CALLERS:
                    raise CallerRefused(503, "too many MCP clients", "mcp: too many tokens")
                found = await self._start(key, identity, token, user)
            found.last_used = time.monotonic()
            return found

    def _verify(self, header: str | None, token: str) -> tuple[Identity, str]:
        """Blocking: the state store, the provider's keys."""
        identity = self._auth.identify(header)
        if credentials.looks_like(token) or self._oidc is None:
            return identity, identity.subject
        claim = self._oidc.settings.login_claim
        if claim == self._oidc.settings.subject_claim:
            return identity, identity.subject
        try:
            claims = self._oidc.verify(token).claims
        except TokenRejected as exc:
            raise CallerRefused(401, "invalid token", f"oidc: {exc.reason}", exc.claimed) from exc
        return identity, str(claims.get(claim, ""))

    async def _start(self, key: str, identity: Identity, token: str, user: str) -> _Caller:
        closers: list[Callable[[], Awaitable[None]]] = []
        server = build(self._settings(token, user), closers, self._config)
        manager = StreamableHTTPSessionManager(
            server._lowlevel_server, session_idle_timeout=IDLE_SECONDS
        )
        caller = _Caller(key, identity, manager, closers)
        ready = asyncio.Event()
        caller.task = asyncio.create_task(self._run(caller, ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({caller.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            caller.task.result()  # raises what stopped it
            raise CallerRefused(503, "the MCP server did not start", "mcp: server did not start")
        self._callers[key] = caller
        log.info("mcp: a server for %s", identity.subject)
        return caller

    async def _run(self, caller: _Caller, ready: asyncio.Event) -> None:
        try:
            async with caller.manager.run():
                ready.set()
                await caller.stop.wait()
        finally:
            for close in caller.closers:
                try:
                    await close()
                except Exception:
                    log.exception("mcp: closing a client failed")

    async def _drop(self, key: str) -> None:
        caller = self._callers.pop(key, None)
        if caller is None:
            return
        for session in [s for s, k in self._owners.items() if k == key]:
            del self._owners[session]
        await _stop(caller)

    def _settings(self, token: str, user: str) -> Settings:
        listeners = self._config.listeners
        pg, http = self._addresses.get("postgres"), self._addresses.get("http")
        databases = tuple(t.name for t in self._config.targets if t.kind == "postgres")
        http_url = None
        http_tls = None
        if http is not None and listeners.http is not None:
            tls = listeners.http.tls
            host = _loopback(http[0])
            host = f"[{host}]" if ":" in host else host
            http_url = f"{'https' if tls else 'http'}://{host}:{http[1]}"
            http_tls = _pinned(tls.cert) if tls is not None else None
        pg_tls = listeners.postgres.tls if listeners.postgres is not None else None
        return Settings(
            credential=token,
            user=user,
            gateway_host=_loopback(pg[0]) if pg is not None else "127.0.0.1",
            pg_port=pg[1] if pg is not None else 0,
            http_url=http_url,
            ca=None,
            databases=databases if pg is not None else (),
            apis=tuple(a.name for a in self._config.apis) if http_url else (),
            # The gateway's own listener, on a port this process holds: TLS as it requires.
            sslmode="require" if pg_tls is not None else "prefer",
            http_tls=http_tls,
        )

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            callers = list(self._callers.values())
            self._callers.clear()
            self._owners.clear()
        await asyncio.gather(*(_stop(c) for c in callers), return_exceptions=True)


class _Asgi:
    """``/mcp`` as a plain ASGI app (a bound method would be taken for a request handler)."""

    def __init__(self, endpoint: McpEndpoint) -> None:
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoint.handle(scope, receive, send)


class _Audited(JSONResponse):
    """A refusal whose audit event is made durable before the answer goes out."""

    def __init__(
        self, record: Record, events: list[Event], body: object, status: int,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        super().__init__(body, status_code=status, headers=headers)
        self._record = record
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await run_in_threadpool(self._record, self._events)
        await super().__call__(scope, receive, send)


async def _stop(caller: _Caller) -> None:
    caller.stop.set()
    if caller.task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(caller.task), STOP_TIMEOUT)
    except TimeoutError:
        caller.task.cancel()
        with contextlib.suppress(BaseException):
            await caller.task
    except Exception:
        log.exception("mcp: a server stopped with an error")


def _token(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _base(request: Request) -> str:
    """``scheme://host[:port]`` the client used (a malformed Host gives the listener's)."""
    netloc = request.headers.get("host", "")
    if not _NETLOC.match(netloc):
        server = request.scope.get("server") or ("127.0.0.1", 0)
        host = str(server[0])
        netloc = f"[{host}]:{server[1]}" if ":" in host else f"{host}:{server[1]}"
    return f"{request.url.scheme}://{netloc}"


def _loopback(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _pinned(cert: Path) -> ssl.SSLContext:
    """Trust exactly the gateway's own HTTP listener certificate (it may be its own anchor)."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context
