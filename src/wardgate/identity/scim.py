"""SCIM 2.0 provisioning (RFC 7643, RFC 7644): the ``/Users`` endpoint an identity provider
(Okta, Entra ID) pushes to, so that deprovisioning a human in the IdP revokes them here.

Mounted at ``/scim/v2`` on the API listener. Every request needs ``Authorization: Bearer`` with
the configured token; the SHA-256 of what is presented is compared in constant time with that of
the token (or with ``token_sha256``), so neither the token's value nor its length leaks. A refused
bearer gets 401 and nothing else, and ``audit_refused`` gets a ``scim.refused`` event.

Bodies are read up to ``MAX_BODY`` (413 beyond). Store work runs in worker threads (SQLite);
a store that cannot be read or written answers 503: nothing is changed on a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wardgate.api.body import BodyRefused, read_json_body
from wardgate.audit.events import identity_event
from wardgate.config import ScimSettings
from wardgate.identity import scim_provision
from wardgate.identity.scim_filter import Compare, FilterError, Logical, Node, matches
from wardgate.identity.scim_filter import parse as parse_filter
from wardgate.identity.scim_model import ScimError, render, version
from wardgate.identity.scim_patch import normalize, patch
from wardgate.identity.scim_schema import resource_types, schemas, service_provider_config
from wardgate.identity.state import ScimUser, StateError, StateStore

log = logging.getLogger(__name__)

ACTOR_UNVERIFIED = "scim"  # who a refused request claims to be: the provisioning client
MAX_BODY = 1024 * 1024
MAX_COUNT = 200
REALM = "wardgate-scim"
MEDIA_TYPE = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE


def error(status: int, detail: str, scim_type: str | None = None) -> Response:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    headers = {"WWW-Authenticate": f'Bearer realm="{REALM}"'} if status == 401 else None
    return ScimResponse(body, status_code=status, headers=headers)


def token_check(settings: ScimSettings) -> Callable[[str], bool]:
    if settings.token is not None:
        expected = hashlib.sha256(settings.token.get_secret_value().encode()).digest()
    else:
        assert settings.token_sha256 is not None
        expected = bytes.fromhex(settings.token_sha256)

    def check(presented: str) -> bool:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, expected)

    return check


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BearerGuard:
    """Refuses every request without the right bearer, before routing or reading the body."""

    def __init__(
        self,
        app: ASGIApp,
        check: Callable[[str], bool],
        refused: Callable[[dict[str, Any]], None],
    ) -> None:
        self.app = app
        self.check = check
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            reason = "no bearer token"
        elif not self.check(token):
            reason = "wrong bearer token"
        else:
            await self.app(scope, receive, send)
            return
        event = identity_event(
            "scim.refused", ACTOR_UNVERIFIED, time.time(), outcome="failure",
            session={"protocol": "http", "listener": "scim", "client_addr": _client(scope)},
            method=scope.get("method", ""), path=scope.get("path", ""), reason=reason,
        )  # fmt: skip
        try:
            self.refused(event)
        except Exception:  # the refusal stands whether or not it could be recorded
            log.exception("scim: the refusal could not be handed to the audit")
        await error(401, "a valid bearer token is required")(scope, receive, send)


async def _body(request: Request) -> Any:
    try:
        return await read_json_body(request, MAX_BODY)
    except BodyRefused as exc:
        kind = "invalidSyntax" if exc.status == 400 else None
        raise ScimError(exc.status, exc.message, kind) from exc


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


def _indexed(node: Node) -> Compare | None:
    """A ``userName``/``externalId``/``id`` ``eq`` the store can look up directly."""
    if isinstance(node, Logical) and node.op == "and":
        return _indexed(node.left) or _indexed(node.right)
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.path in ("username", "externalid", "id")
        and isinstance(node.value, str)
    ):
        return node
    return None


def _integer(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ScimError(400, f"{name} must be an integer", "invalidValue") from None


class _Users:
    def __init__(self, store: StateStore, mapping: Mapping[str, tuple[str, ...]]) -> None:
        self.store = store
        self.mapping = dict(mapping)

    def _response(self, request: Request, user: ScimUser, status: int = 200) -> Response:
        body = render(user, _base(request))
        headers = {"ETag": body["meta"]["version"]}
        if status == 201:
            headers["Location"] = body["meta"]["location"]
        return ScimResponse(body, status_code=status, headers=headers)

    def _find(self, scim_id: str) -> ScimUser:
        user = self.store.scim_user(scim_id)
        if user is None:
            raise ScimError(404, f"no user {scim_id}")
        return user

    @staticmethod
    def _check_version(request: Request, user: ScimUser) -> None:
        wanted = request.headers.get("if-match")
        if wanted and wanted.strip() != "*" and version(user) not in wanted:
            raise ScimError(412, "the user has changed (If-Match)")

    async def search(self, request: Request) -> Response:
        text = request.query_params.get("filter")
        try:
            node = parse_filter(text) if text else None
        except FilterError as exc:
            raise ScimError(400, f"filter: {exc}", "invalidFilter") from exc
        start = max(_integer(request, "startIndex", 1), 1)
        count = min(max(_integer(request, "count", MAX_COUNT), 0), MAX_COUNT)
        found = await run_in_threadpool(self._matching, node, _base(request))
        page = found[start - 1 : start - 1 + count]
        return ScimResponse({"schemas": [LIST], "totalResults": len(found), "startIndex": start,
                             "itemsPerPage": len(page), "Resources": page})  # fmt: skip

    def _matching(self, node: Node | None, base: str) -> list[dict[str, Any]]:
        shown = (render(u, base) for u in self._candidates(node))
        return [u for u in shown if node is None or matches(node, u)]

    def _candidates(self, node: Node | None) -> list[ScimUser]:
        key = _indexed(node) if node is not None else None
        if key is None:
            return self.store.scim_users()
        assert isinstance(key.value, str)
        if key.path == "id":
            user = self.store.scim_user(key.value)
            return [user] if user is not None else []
        if key.path == "username":
            return self.store.scim_users(user_name=key.value)
        return self.store.scim_users(external_id=key.value)

    async def get(self, request: Request) -> Response:
        user = await run_in_threadpool(self._find, request.path_params["id"])
        return self._response(request, user)

    async def create(self, request: Request) -> Response:
        resource = normalize(await _body(request))

        def write() -> ScimUser:
            with self.store.scim_write() as tx:
                return scim_provision.save(
                    tx, uuid.uuid4().hex, None, resource, self.mapping, time.time()
                )

        return self._response(request, await run_in_threadpool(write), 201)

    async def replace(self, request: Request) -> Response:
        return await self._change(request, await _body(request), put=True)

    async def patch(self, request: Request) -> Response:
        return await self._change(request, await _body(request), put=False)

    async def _change(self, request: Request, body: Any, *, put: bool) -> Response:
        scim_id = request.path_params["id"]

        def write() -> ScimUser:
            with self.store.scim_write() as tx:
                old = tx.user(scim_id)
                if old is None:
                    raise ScimError(404, f"no user {scim_id}")
                self._check_version(request, old)
                keep = old.resource.get("active") is not False
                resource = normalize(body, keep) if put else patch(old.resource, body)
                return scim_provision.save(tx, scim_id, old, resource, self.mapping, time.time())

        return self._response(request, await run_in_threadpool(write))

    async def delete(self, request: Request) -> Response:
        scim_id = request.path_params["id"]

        def write() -> None:
            with self.store.scim_write() as tx:
                old = tx.user(scim_id)
                if old is not None:
                    self._check_version(request, old)
                scim_provision.delete(tx, scim_id, time.time())

        await run_in_threadpool(write)
        return Response(status_code=204)


def _discovery(document: Callable[[str], dict[str, Any]]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return ScimResponse(document(_base(request)))

    return endpoint


async def _scim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScimError)
    return error(exc.status, exc.detail, exc.scim_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = "no such resource" if exc.status_code == 404 else str(exc.detail)
    response = error(exc.status_code, detail)
    response.headers.update(exc.headers or {})  # Allow, with a 405
    return response


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.error("scim: %s %s: the identity state is unavailable: %s",
              request.method, request.url.path, exc)  # fmt: skip
    return error(503, "the identity state is unavailable")


def scim_app(
    store: StateStore,
    settings: ScimSettings,
    audit_refused: Callable[[dict[str, Any]], None],
    role_mapping: Mapping[str, tuple[str, ...]] = {},
) -> Starlette:
    """The SCIM application, to be mounted at ``/scim/v2``."""
    users = _Users(store, role_mapping)
    routes = [
        Route("/Users", users.search, methods=["GET"]),
        Route("/Users", users.create, methods=["POST"]),
        Route("/Users/{id}", users.get, methods=["GET"]),
        Route("/Users/{id}", users.replace, methods=["PUT"]),
        Route("/Users/{id}", users.patch, methods=["PATCH"]),
        Route("/Users/{id}", users.delete, methods=["DELETE"]),
        Route("/ServiceProviderConfig", _discovery(service_provider_config), methods=["GET"]),
        Route("/ResourceTypes", _discovery(resource_types), methods=["GET"]),
        Route("/Schemas", _discovery(schemas), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BearerGuard, check=token_check(settings), refused=audit_refused)],
        exception_handlers={
            ScimError: _scim_error,
            HTTPException: _http_error,
            StateError: _unavailable,
            sqlite3.Error: _unavailable,
        },
    )
