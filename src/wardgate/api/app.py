"""The API's routes.

``GET  /api/v1/health``        healthy or not, and why (no authentication; says nothing else)
``GET  /api/v1/login``         what ``wardgate login`` needs: the provider and the client id
``POST /api/v1/session``       a signed-in human hands over the refresh token (re-validation)
``POST /api/v1/credentials``   a signed-in human creates a credential for themself, an agent or
                               a service account that acts for them
``GET  /api/v1/credentials``   the caller's credentials and their agents'
``GET  /api/v1/approvals``     pending approval requests (``?all=1``: every one)
``POST /api/v1/approvals/ID/approve`` (or ``deny``) an approver's vote, ``{"reason": ...}``
``/scim/v2/...``               SCIM 2.0 provisioning (``identity.scim``)

Everything but health and login takes an OIDC bearer token of a human (``bearer``); each call
and each refusal is audited. Handlers that touch SQLite or the provider run in worker threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from wardgate.api.bearer import REALM, ApiRefused, Caller, HumanBearer
from wardgate.api.body import BodyRefused, read_json_body
from wardgate.approvals.store import ApprovalError, ApprovalStore
from wardgate.audit.events import Event, identity_event
from wardgate.config import Config
from wardgate.identity import credentials
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.revalidate import GrantRefused, IdpRevalidator, ProviderUnreachable
from wardgate.identity.state import StateError, StateStore

log = logging.getLogger(__name__)

LOGIN_SCOPE = "openid email profile groups offline_access"
KINDS = ("human", "agent", "service")


@dataclass
class ApiContext:
    config: Config
    record: Callable[[list[Event]], None]
    health: Callable[[], dict[str, object]]
    state: StateStore | None = None
    oidc: OidcVerifier | None = None
    revalidator: IdpRevalidator | None = None
    approvals: ApprovalStore | None = None
    extra: list[BaseRoute] = field(default_factory=list)  # e.g. the MCP endpoint (mcp/http.py)


def _error(status: int, message: str) -> JSONResponse:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="invalid_token"'
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object ({} when empty), read no further than ``limit`` bytes."""
    try:
        value = await read_json_body(request, limit)
    except BodyRefused as exc:
        raise ApiRefused(exc.status, exc.message) from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiRefused(400, "the body must be a JSON object")
    return value


class Api:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        api = ctx.config.listeners.api
        self.max_body = api.max_body_bytes if api is not None else 1 << 20
        self.bearer = (
            HumanBearer(ctx.oidc, ctx.state, ctx.record)
            if ctx.oidc is not None and ctx.state is not None
            else None
        )

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/api/v1/health", self.health, methods=["GET"]),
            Route("/api/v1/login", self.login, methods=["GET"]),
            Route("/api/v1/session", self.session, methods=["POST"]),
            Route("/api/v1/credentials", self.create_credential, methods=["POST"]),
            Route("/api/v1/credentials", self.list_credentials, methods=["GET"]),
            Route("/api/v1/approvals", self.list_approvals, methods=["GET"]),
            Route("/api/v1/approvals/{id}/{vote:str}", self.vote, methods=["POST"]),
        ]
        scim = self.ctx.config.identity.scim
        if scim is not None and self.ctx.state is not None:
            from wardgate.identity.scim import scim_app

            oidc = self.ctx.config.identity.oidc
            mapping = oidc.role_mapping if oidc is not None else {}
            app = scim_app(self.ctx.state, scim, lambda e: self.ctx.record([e]), mapping)
            routes.append(Mount("/scim/v2", app=app))
        routes.extend(self.ctx.extra)
        return routes

    async def health(self, request: Request) -> Response:
        report = self.ctx.health()
        healthy = bool(report.get("healthy"))
        audit = report.get("audit")
        reason = audit.get("reason", "") if isinstance(audit, dict) else ""
        return JSONResponse({"healthy": healthy, "reason": reason}, 200 if healthy else 503)

    async def login(self, request: Request) -> Response:
        oidc = self.ctx.config.identity.oidc
        if oidc is None or self.bearer is None:
            return _error(404, "sign-in through an identity provider is not configured")
        return JSONResponse(
            {
                "issuer": oidc.issuer,
                "client_id": oidc.client_id,
                "scope": LOGIN_SCOPE,
                "audiences": list(oidc.audiences),
                "credential_ttl": self.ctx.config.identity.credential_ttl,
            }
        )

    async def _call(
        self, request: Request, work: Callable[[Caller, dict[str, Any]], tuple[int, Any]]
    ) -> Response:
        """Authenticate, read the body, run ``work`` in a thread, audit the outcome."""
        bearer = self.bearer
        if bearer is None:
            return _error(404, "credentials need identity.state and identity.oidc")
        caller: Caller | None = None
        try:
            body = await read_json(request, self.max_body)
            caller = await run_in_threadpool(bearer.caller, request)
            status, result = await run_in_threadpool(work, caller, body)
        except ApiRefused as exc:
            if caller is None:
                await run_in_threadpool(bearer.refused, request, exc)
            else:
                await run_in_threadpool(
                    bearer.succeeded, request, caller, exc.status, outcome="failure",
                    reason=exc.reason,
                )  # fmt: skip
            return _error(exc.status, exc.message)
        except StateError as exc:
            log.error("api: %s", exc)
            return _error(503, "the identity state is unavailable")
        return JSONResponse(result, status_code=status)

    async def session(self, request: Request) -> Response:
        def work(caller: Caller, body: dict[str, Any]) -> tuple[int, Any]:
            token = body.get("refresh_token")
            held = False
            if token is not None:
                if not isinstance(token, str) or not token or len(token) > 8192:
                    raise ApiRefused(400, "refresh_token must be a string")
                if self.ctx.revalidator is None:
                    raise ApiRefused(404, "re-validation is not configured")
                try:
                    self.ctx.revalidator.adopt(caller.human.subject, token)
                except GrantRefused as exc:
                    raise ApiRefused(
                        400, "the provider refused the refresh token", str(exc)
                    ) from exc
                except ProviderUnreachable as exc:
                    raise ApiRefused(
                        503, "the identity provider cannot be reached", str(exc)
                    ) from exc
                held = True
            assert self.bearer is not None
            self.bearer.succeeded(request, caller, 200, revalidation=held)
            human = caller.human
            return 200, {
                "subject": human.subject,
                "email": human.email,
                "roles": list(human.roles),
                "revalidation": held,
            }

        return await self._call(request, work)

    async def create_credential(self, request: Request) -> Response:
        ident = self.ctx.config.identity

        def work(caller: Caller, body: dict[str, Any]) -> tuple[int, Any]:
            kind = body.get("kind", "human")
            if kind not in KINDS:
                raise ApiRefused(400, f"kind must be one of {', '.join(KINDS)}")
            name = body.get("name") if kind != "human" else None
            roles = body.get("roles")
            if roles is not None and not (
                isinstance(roles, list) and all(isinstance(r, str) for r in roles)
            ):
                raise ApiRefused(400, "roles must be a list of strings")
            try:
                default = ident.credential_ttl if kind == "human" else 8 * 3600.0
                if kind == "service" and "ttl" not in body:
                    raise ValueError("a service credential needs a ttl")
                ttl = credentials.parse_duration(body.get("ttl", default))
                credentials.check_request(
                    kind, name, ttl,
                    max_ttl=ident.credential_max_ttl, service_max_ttl=ident.service_max_ttl,
                )  # fmt: skip
            except (ValueError, TypeError) as exc:
                raise ApiRefused(400, str(exc)) from exc
            human = caller.human
            event = identity_event("credential.created", human.subject, time.time())
            event["via"] = "api"
            try:
                issued = credentials.issue(
                    self.ctx.state,  # type: ignore[arg-type]  # bearer implies a state store
                    kind, name or human.subject, human, ttl, event,
                    roles=tuple(roles) if roles is not None else None,
                )  # fmt: skip
            except ValueError as exc:
                raise ApiRefused(403, str(exc)) from exc
            record = issued.record
            assert self.bearer is not None
            self.bearer.succeeded(request, caller, 201, credential=record.id)
            expires = dt.datetime.fromtimestamp(record.expires, dt.UTC)
            return 201, {
                "credential": issued.secret,
                "id": record.id,
                "kind": record.kind,
                "subject": record.subject,
                "user": record.name if kind != "human" else human.subject,
                "on_behalf_of": [human.subject] if kind != "human" else [],
                "roles": list(credentials.effective_roles(human, record.roles)),
                "expires": expires.isoformat(timespec="seconds"),
            }

        return await self._call(request, work)

    async def list_credentials(self, request: Request) -> Response:
        def work(caller: Caller, body: dict[str, Any]) -> tuple[int, Any]:
            store = self.ctx.state
            assert store is not None
            human = caller.human
            mine = [c for c in store.credentials() if c.owner == human.subject]
            return 200, [credentials.describe(c, human) for c in mine]

        return await self._call(request, work)

    async def list_approvals(self, request: Request) -> Response:
        store = self.ctx.approvals
        everything = request.query_params.get("all") == "1"

        def work(caller: Caller, body: dict[str, Any]) -> tuple[int, Any]:
            if store is None:
                raise ApiRefused(404, "approvals need identity.state")
            # A statement may hold PHI in its constants: each caller sees the requests they may
            # vote on, and their own (and their agents').
            human = caller.human
            roles = set(human.roles)
            items = [
                a for a in store.listing(pending_only=not everything)
                if roles & set(a.approvers)
                or human.subject in (a.requester, *a.on_behalf)
            ]  # fmt: skip
            return 200, [a.describe() for a in items]

        return await self._call(request, work)

    async def vote(self, request: Request) -> Response:
        store = self.ctx.approvals
        approval_id = request.path_params["id"]
        action = request.path_params["vote"]

        def work(caller: Caller, body: dict[str, Any]) -> tuple[int, Any]:
            if store is None:
                raise ApiRefused(404, "approvals need identity.state")
            if action not in ("approve", "deny"):
                raise ApiRefused(404, f"no such action {action!r}")
            reason = body.get("reason")
            if not isinstance(reason, str):
                raise ApiRefused(400, "a reason is required")
            human = caller.human
            cast = store.approve if action == "approve" else store.deny
            try:
                done = cast(approval_id, human.subject, human.roles, reason)
            except ApprovalError as exc:
                raise ApiRefused(409 if "not pending" in str(exc) else 403, str(exc)) from exc
            assert self.bearer is not None
            self.bearer.succeeded(request, caller, 200, approval=approval_id, vote=action)
            return 200, done.describe()

        return await self._call(request, work)


def build_app(ctx: ApiContext) -> Starlette:
    return Starlette(routes=Api(ctx).routes())
