"""asyncio glue for the HTTP reverse proxy: sockets, TLS, timeouts, backpressure.

The protocol work is in ``codec`` (h11), ``routing``, ``documents``, ``caller`` and
``upstream``; this module moves bytes between them, the pipeline and the sockets. One request at
a time per connection (HTTP/1.1 keep-alive, no pipelining of answers): the next request is read
only once the previous answer is written, and a slow reader slows its own answers
(``drain``) and nothing else.

A pipeline session is one connection of one identity to one API: it starts (``connect``) at the
first request that authenticates, and ends (``disconnect``) with the connection or when a
request on it authenticates as someone else or names another API. A refused request belongs to
no session; its audit event carries the identity the token claimed, unverified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import httpx

from wardgate import tls
from wardgate.config import ApiTarget, HttpListener
from wardgate.core.model import ApiCall, ConnectAttempt, Decision, Identity, Outcome, SessionInfo
from wardgate.core.model import Verdict as V
from wardgate.core.pipeline import Pipeline, PipelineFailure
from wardgate.protocols.http import documents, held
from wardgate.protocols.http.caller import CallerAuth, CallerRefused
from wardgate.protocols.http.codec import (
    NEED_DATA,
    BodyChunk,
    ClientClosed,
    CodecError,
    RequestEnd,
    RequestHead,
    ServerCodec,
)
from wardgate.protocols.http.exports import ExportJobs
from wardgate.protocols.http.held import HttpError
from wardgate.protocols.http.routing import (
    Route,
    default_public_url,
    request_headers,
    response_headers,
    rewritten,
    route,
    unecho,
)
from wardgate.protocols.http.upstream import Upstream
from wardgate.protocols.release import AUDIT_UNAVAILABLE

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# Its header carries a search that no addon reads (the pipeline sees the target, not headers).
CONDITIONAL_CREATE = "conditional create (If-None-Exist) cannot be checked by the gateway"
CREDENTIAL_SEEN = "the API's answer was withheld: it contained the gateway's credential for the API"


class HttpServer:
    """The HTTP listener: accepts clients, authenticates each request, relays it to its API."""

    def __init__(
        self,
        name: str,
        listener: HttpListener,
        apis: dict[str, ApiTarget],
        caller: CallerAuth,
        pipeline: Pipeline,
    ) -> None:
        self.name = name
        self.listener = listener
        self.apis = apis
        self.caller = caller
        self.pipeline = pipeline
        self.upstreams = {name: Upstream(api) for name, api in apis.items()}
        self.connections: set[HttpConnection] = set()
        self._tls = (
            tls.server_context(listener.tls.cert, listener.tls.key) if listener.tls else None
        )
        self._server: asyncio.Server | None = None
        self._commit_lock = asyncio.Lock()
        self.exports = ExportJobs()
        self.public_url = listener.public_url or ""  # set at start from the bound address

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._accept,
            self.listener.host,
            self.listener.port,
            ssl=self._tls,
            ssl_handshake_timeout=self.listener.request_timeout if self._tls else None,
            limit=READ_SIZE,
            reuse_address=True,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        if not self.public_url:
            scheme = "https" if self._tls else "http"
            self.public_url = default_public_url(scheme, self.listener.host, port)
        log.info("%s: listening on %s:%d%s", self.name, host, port, " (TLS)" if self._tls else "")
        return host, port

    def live(self) -> list[HttpConnection]:
        """Connections with a request in flight (for revocation and ``sessions kill``)."""
        return [c for c in self.connections if c.session is not None and c.busy]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = HttpConnection(self, reader, writer)
        self.connections.add(connection)
        connection.task = asyncio.current_task()
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.terminate("57P01", "the gateway is shutting down")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        for upstream in self.upstreams.values():
            await upstream.close()

    async def commit(self) -> None:
        """Make what the audit recorded durable before an answer is released. Serialised: a
        commit takes everything recorded so far, so those waiting behind one mostly find
        nothing left to do (group commit)."""
        if not self.pipeline.wants_commit:
            return
        async with self._commit_lock:
            if self.pipeline.commit_blocks:
                await asyncio.to_thread(self.pipeline.commit)
            else:
                self.pipeline.commit()


class HttpConnection:
    """One client connection; ``info`` is its current session (``LiveSession``)."""

    def __init__(
        self, server: HttpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.codec = ServerCodec(max_body_bytes=server.listener.max_request_bytes)
        self.task: asyncio.Task[Any] | None = None
        peer = writer.get_extra_info("peername")
        if peer:
            host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
            self.client_addr = f"{host}:{peer[1]}"
        else:
            self.client_addr = "unknown"
        self.client_tls = tls.describe(writer.get_extra_info("ssl_object"))
        self.session: SessionInfo | None = None
        self.info = self._new_info(None, "")
        self.busy = False
        self.seq = 0
        self._current: ApiCall | None = None
        self._end_reason = ""

    # ---- life cycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        listener = self.server.listener
        try:
            while True:
                try:
                    head = await self._next_head(listener.keepalive_timeout)
                except CodecError as exc:
                    await self._refuse_malformed(exc)
                    return
                except TimeoutError:
                    await self._refuse_malformed(
                        CodecError(408, "the request was not sent in time")
                    )
                    return
                if head is None:
                    self._end_reason = self._end_reason or "client disconnected"
                    return
                self.busy = True
                try:
                    keep = await self._exchange(head)
                finally:
                    self.busy = False
                    self._current = None
                if not keep or not self.codec.next_cycle():
                    self._end_reason = self._end_reason or "connection closed after the answer"
                    return
        except (ConnectionError, OSError) as exc:
            self._end_reason = self._end_reason or f"connection failed: {exc}"
        finally:
            self.writer.close()
            self._end_session(self._end_reason or "connection closed")

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None:
        """End the connection from outside (revocation, shutdown, an administrator); a request
        in flight ends ``aborted``."""
        del sqlstate
        self._end_reason = reason or message
        if self.writer.transport is not None:
            self.writer.transport.abort()
        if self.task is not None and self.busy:
            self.task.cancel()

    def _new_info(self, identity: Identity | None, api: str, claimed: str = "") -> SessionInfo:
        return SessionInfo(
            id=str(uuid.uuid4()), protocol="http", client_addr=self.client_addr,
            listener=self.server.name, claimed_user=claimed, target=api, identity=identity,
            client_tls=self.client_tls,
        )  # fmt: skip

    def _session_for(self, identity: Identity, api: str) -> SessionInfo:
        session = self.session
        if session is not None and session.identity == identity and session.target == api:
            return session
        self._end_session("the connection went on as another identity or to another API")
        info = self._new_info(identity, api, identity.subject)
        try:
            self.server.pipeline.connect(ConnectAttempt(info, True))
        except PipelineFailure as exc:
            log.error("http session %s: %s", info.id, exc)
            raise HttpError(503, AUDIT_UNAVAILABLE, str(exc)) from exc
        self.session = self.info = info
        return info

    def _end_session(self, reason: str) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            self.server.pipeline.disconnect(session, reason)
        except PipelineFailure as exc:
            log.error("http session %s: %s", session.id, exc)

    # ---- reading --------------------------------------------------------------------------------

    async def _event(self) -> Any:
        while True:
            event = self.codec.next_event()
            if event is not NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self.codec.receive(data)

    async def _next_head(self, idle: float) -> RequestHead | None:
        """The next request's head; None once the client has closed or stayed idle."""
        event = self.codec.next_event()
        if event is NEED_DATA:
            try:
                async with asyncio.timeout(idle):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                self._end_reason = "idle connection closed"
                return None
            self.codec.receive(data)
            async with asyncio.timeout(self.server.listener.request_timeout):
                event = await self._event()
        if isinstance(event, ClientClosed):
            return None
        assert isinstance(event, RequestHead)
        return event

    async def _body(self, head: RequestHead) -> bytes:
        length = head.header("content-length")
        limit = self.server.listener.max_request_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise HttpError(413, f"the request body exceeds {limit} bytes", close=True)
        if self.codec.waiting_for_100_continue:
            await self._write(self.codec.continue_100())
        parts: list[bytes] = []
        try:
            async with asyncio.timeout(self.server.listener.request_timeout):
                while True:
                    event = await self._event()
                    if isinstance(event, BodyChunk):
                        parts.append(event.data)
                    elif isinstance(event, RequestEnd):
                        return b"".join(parts)
                    else:
                        raise HttpError(400, "the request ended early", close=True)
        except TimeoutError as exc:
            raise HttpError(408, "the request body was not sent in time", close=True) from exc
        except CodecError as exc:
            raise HttpError(exc.status, exc.message, close=True) from exc

    async def _write(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await self.writer.drain()

    # ---- one request ----------------------------------------------------------------------------

    async def _exchange(self, head: RequestHead) -> bool:
        """Answer one request; False if the connection must close after it."""
        self.seq += 1
        anonymous = self._new_info(None, "")
        request = ApiCall(
            anonymous, self.seq, f"{head.method} {head.target}",
            method=head.method.upper(),  # what httpx sends the API, whatever was sent
            path=head.target.partition("?")[0],
        )  # fmt: skip
        self._current = request
        kind = "json"
        try:
            found = route(head.target)
            api = self.server.apis.get(found.api)
            if api is not None:
                kind = api.kind
                if api.kind == "fhir":
                    found = found.fhir()
                    request.resource_type = found.first_segment
            # Every addon reads the one canonical spelling, and the API receives it too.
            request.text = f"{request.method} {found.target}"
            request.path = found.path
            await self._authorize(request, head, api, found.api)
            if api is None:
                raise HttpError(404, f"no API is named {found.api!r}")
            body = await self._body(head)  # read first, so the connection can go on after a 4xx
            self._check_export_owner(request, api, found)
            if api.kind == "fhir" and head.header("if-none-exist") is not None:
                raise HttpError(400, CONDITIONAL_CREATE)
            decision = await self._decide(request)
            if not decision.allowed:
                expired = decision.by == "approvals" and "expired" in decision.reason
                status = 408 if expired else 403
                request.outcome = Outcome.DENIED
                raise HttpError(status, decision.reason or "refused by policy")
            echoes: list[tuple[str, str]] = []
            try:
                self.server.pipeline.api_call_sent(request)  # the audit's write-ahead record
            except PipelineFailure as exc:
                raise HttpError(503, AUDIT_UNAVAILABLE, str(exc)) from exc
            if request.forward_target:  # an addon rewrote where it goes (pseudonymous ids)
                forward = route(request.forward_target)
                echoes = rewritten(found, forward)
                found = forward
            return await self._forward(request, head, api, found, body, echoes)
        except CodecError as exc:
            return await self._fail(request, kind, HttpError(exc.status, exc.message))
        except HttpError as exc:
            return await self._fail(request, kind, exc)
        except asyncio.CancelledError:
            request.outcome = Outcome.ABORTED
            request.error = self._end_reason or "the connection was ended"
            self._finish(request)
            raise

    async def _authorize(
        self, request: ApiCall, head: RequestHead, api: ApiTarget | None, name: str
    ) -> None:
        """The caller's identity, checked at every request; the request joins its session."""
        unavailable = self.server.pipeline.unavailable()
        if unavailable:
            raise HttpError(503, AUDIT_UNAVAILABLE, unavailable)
        try:
            identity = await asyncio.to_thread(
                self.server.caller.identify, head.header("authorization")
            )
        except CallerRefused as exc:
            request.session = self._new_info(None, name, exc.claimed)
            request.outcome = Outcome.DENIED
            raise _Unauthorized(exc) from exc
        if api is None:  # recorded as this caller's, in no session
            request.session = self._new_info(identity, name, identity.subject)
            return
        request.session = self._session_for(identity, api.name)

    def _check_export_owner(self, request: ApiCall, api: ApiTarget, found: Route) -> None:
        """A bulk export's status and file URLs belong to the identity that was given them."""
        owner = self.server.exports.owner(api.name, found.segments)
        identity = request.session.identity
        if owner is not None and (identity is None or identity.subject != owner):
            request.outcome = Outcome.DENIED
            raise HttpError(403, "this bulk export belongs to another caller")

    async def _decide(self, request: ApiCall) -> Decision:
        decision = self.server.pipeline.api_call(request)
        if decision.verdict is V.HOLD and decision.hold is not None:
            loop = asyncio.get_running_loop()
            resolved: asyncio.Future[Decision] = loop.create_future()

            def settle(final: Decision) -> None:
                if not resolved.done():
                    resolved.set_result(final)

            def resolved_elsewhere(final: Decision) -> None:  # on any thread
                loop.call_soon_threadsafe(settle, final)

            decision.hold.when_resolved(resolved_elsewhere)
            decision = await resolved  # the client waits; the loop does not
        return decision

    async def _fail(self, request: ApiCall, kind: str, exc: HttpError) -> bool:
        """Record and send an answer the gateway makes itself."""
        request.status = exc.status
        if request.outcome is Outcome.PENDING:
            request.outcome = Outcome.ERROR
        if request.decision.allowed and request.outcome is Outcome.DENIED:
            request.decision = Decision(V.DENY, exc.reason, "http")
        if request.outcome is Outcome.ERROR:
            request.error_code = str(exc.status)
            request.error = exc.reason
        content_type, body = documents.error_body(kind, exc.status, exc.message)
        headers = [("content-type", content_type), ("cache-control", "no-store")]
        if isinstance(exc, _Unauthorized) and exc.status == 401:
            headers.append(("www-authenticate", exc.challenge))
        request.bytes_out = len(body)
        self._finish(request)
        await self.server.commit()
        if not self.codec.can_respond:
            return False  # a streamed answer broke off: nothing more can be said on it
        await self._write(self.codec.response(exc.status, headers, body, close=exc.close))
        return not exc.close and self.codec.request_complete

    def _finish(self, request: ApiCall) -> None:
        request.ended_mono = time.monotonic()
        try:
            self.server.pipeline.api_call_end(request)
        except PipelineFailure as exc:
            log.error("http session %s: %s", request.session.id, exc)

    # ---- the API's answer -----------------------------------------------------------------------

    async def _forward(
        self,
        request: ApiCall,
        head: RequestHead,
        api: ApiTarget,
        found: Route,
        body: bytes,
        echoes: list[tuple[str, str]],
    ) -> bool:
        upstream = self.server.upstreams[api.name]
        headers = request_headers(head.headers, upstream.injected)
        outgoing = upstream.build(request.method, found.upstream_url(upstream.base), headers, body)
        try:
            response = await upstream.client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            raise HttpError(
                504, f"the API {api.name!r} did not answer within {api.timeout:g} s",
                f"upstream timeout: {type(exc).__name__}",
            ) from exc  # fmt: skip
        except (httpx.HTTPError, OSError) as exc:
            raise HttpError(
                502, f"the API {api.name!r} cannot be reached",
                f"upstream unreachable: {type(exc).__name__}: {exc}",
            ) from exc  # fmt: skip
        try:
            return await self._relay(request, head, api, upstream, response, echoes)
        finally:
            await response.aclose()

    async def _relay(
        self,
        request: ApiCall,
        head: RequestHead,
        api: ApiTarget,
        upstream: Upstream,
        response: httpx.Response,
        echoes: list[tuple[str, str]],
    ) -> bool:
        status = response.status_code
        if status >= 500:
            raise HttpError(
                503 if status == 503 else 502,
                f"the API {api.name!r} failed (it answered {status})",
                f"upstream answered {status}",
            )
        if status in (401, 407):
            raise HttpError(
                502, f"the API {api.name!r} refused the gateway's credentials",
                f"upstream answered {status}",
            )  # fmt: skip
        scan = documents.SecretScan(upstream.secrets)
        public = self._public_base(api)
        headers = response_headers(response.headers.multi_items(), upstream.base, public)
        headers = [(k, unecho(v, echoes)) for k, v in headers]
        identity = request.session.identity
        location = response.headers.get("content-location")
        if status == 202 and location and identity is not None:  # an asynchronous job's status
            self.server.exports.bind(api.name, location, upstream.base, identity.subject)
        if any(scan.in_text(v) for _, v in headers):
            raise HttpError(502, CREDENTIAL_SEEN, "the API echoed the gateway's credential")
        limit = api.max_response_bytes or self.server.listener.max_response_bytes
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise HttpError(
                502, "response too large", f"upstream sent {length} bytes (limit {limit})"
            )
        pipeline = self.server.pipeline
        has_body = request.method != "HEAD" and status not in (204, 304)
        content_type = response.headers.get("content-type", "")
        json_answer = documents.is_json(content_type)
        if has_body and json_answer and (pipeline.wants_documents or api.kind == "fhir"):
            data = await self._hold(api, upstream, response, limit)
            out = held.json_answer(
                self.server.pipeline, self.server.exports, request, api, upstream.base, data, public
            )
            return await self._send_held(request, response.status_code, headers, out)
        if has_body and api.kind == "fhir" and pipeline.wants_documents:
            # Whatever else a FHIR API answers goes past the document hook too, line by line
            # (NDJSON) or as an opaque stand-in: a view that masks never gets it unread.
            data = await self._hold(api, upstream, response, limit)
            if documents.is_ndjson(content_type):
                out = held.ndjson_answer(self.server.pipeline, request, data, upstream.base, public)
            else:
                out = held.opaque_answer(self.server.pipeline, request, content_type, data)
            return await self._send_held(request, response.status_code, headers, out)
        return await self._stream(request, response, headers, scan, limit, has_body)

    async def _hold(
        self, api: ApiTarget, upstream: Upstream, response: httpx.Response, limit: int
    ) -> bytes:
        """The API's whole answer (up to ``limit``), checked for the gateway's credential."""
        data = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise HttpError(502, "response too large", f"upstream sent over {limit} bytes")
        except httpx.TimeoutException as exc:
            raise HttpError(
                504, f"the API {api.name!r} stopped answering", "upstream timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise HttpError(502, f"the API {api.name!r} broke off its answer", str(exc)) from exc
        if documents.SecretScan(upstream.secrets).found_in(bytes(data)):
            raise HttpError(502, CREDENTIAL_SEEN, "the API echoed the gateway's credential")
        return bytes(data)

    async def _send_held(
        self, request: ApiCall, status: int, headers: list[tuple[str, str]], out: bytes
    ) -> bool:
        request.status = status
        request.bytes_out = len(out)
        request.outcome = Outcome.OK if request.status < 400 else Outcome.ERROR
        self._finish(request)
        await self.server.commit()
        await self._write(self.codec.response(request.status, headers, out))
        return True

    async def _stream(
        self,
        request: ApiCall,
        response: httpx.Response,
        headers: list[tuple[str, str]],
        scan: documents.SecretScan,
        limit: int,
        has_body: bool,
    ) -> bool:
        """Any other answer, relayed as it comes; a failure after the head cuts the connection."""
        request.status = response.status_code
        length = response.headers.get("content-length")
        if length is not None and has_body and "content-encoding" not in response.headers:
            headers = [*headers, ("content-length", length)]
        try:  # the call's write-ahead record is durable before the answer's first byte
            await self.server.commit()
        except PipelineFailure as exc:
            raise HttpError(503, AUDIT_UNAVAILABLE, str(exc)) from exc
        await self._write(self.codec.head(request.status, headers))
        sent = 0  # bytes written to the client
        failure = ""
        try:
            if has_body:
                async for chunk in response.aiter_bytes():
                    if sent + len(chunk) > limit:
                        failure = f"response too large: upstream sent over {limit} bytes"
                        break
                    if scan.found_in(chunk):
                        failure = "the API echoed the gateway's credential"
                        break
                    await self._write(self.codec.body(chunk))
                    sent += len(chunk)
        except httpx.TimeoutException:
            failure = "upstream timeout while relaying the answer"
        except httpx.HTTPError as exc:
            failure = f"the API broke off its answer: {exc}"
        request.bytes_out = sent
        if failure:
            request.outcome = Outcome.ERROR
            request.error_code = "502"
            request.error = failure
            self._finish(request)
            await self.server.commit()
            if self.writer.transport is not None:
                self.writer.transport.abort()  # the client sees a broken answer, not a short one
            return False
        request.outcome = Outcome.OK if request.status < 400 else Outcome.ERROR
        self._finish(request)
        await self.server.commit()
        await self._write(self.codec.end())
        return True

    def _public_base(self, api: ApiTarget) -> str:
        """Never from the Host header: a client must not choose the links others follow."""
        return f"{self.server.public_url}/{api.name}"

    async def _refuse_malformed(self, exc: CodecError) -> None:
        """A request that could not be read: answered, recorded with what is known, closed."""
        request = ApiCall(self.info, self.seq + 1, "(unreadable request)")
        request.status = exc.status
        request.outcome = Outcome.ERROR
        request.error_code = str(exc.status)
        request.error = exc.message
        self._finish(request)
        await self.server.commit()
        content_type, body = documents.error_body("json", exc.status, exc.message)
        with contextlib.suppress(ConnectionError, OSError):
            await self._write(self.codec.error_response(
                exc.status, [("content-type", content_type)], body
            ))  # fmt: skip
        self._end_reason = f"malformed request: {exc.message}"


class _Unauthorized(HttpError):
    def __init__(self, refused: CallerRefused) -> None:
        super().__init__(refused.status, refused.message, refused.reason)
        self.challenge = refused.challenge()
