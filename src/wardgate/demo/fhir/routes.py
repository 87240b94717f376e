"""DEVELOPMENT ONLY: the HTTP routes of the FHIR server (read, search, ``$everything``, the
CapabilityStatement), the bulk export's and, behind a flag, the misbehaving test endpoints.

Read-only: no create, update or delete. ``_format`` is ignored: every answer is
``application/fhir+json`` (the export files NDJSON, the export manifest ``application/json``).
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from wardgate.demo.fhir import search
from wardgate.demo.fhir.auth import RequireApiKey, check_settings
from wardgate.demo.fhir.capability import capability_statement
from wardgate.demo.fhir.export import Exports
from wardgate.demo.fhir.misbehave import Misbehaviour
from wardgate.demo.fhir.responses import FhirResponse, outcome, searchset
from wardgate.demo.fhir.store import FhirStore

_ISSUE_CODES = {404: "not-found", 405: "not-supported"}


class FhirRoutes:
    def __init__(self, store: FhirStore, header: str | None) -> None:
        self.store, self._header = store, header

    def routes(self) -> list[Route]:
        return [
            Route("/metadata", self.metadata),
            Route("/Patient/{id}/$everything", self.everything),
            Route("/{type}/{id}", self.read),
            Route("/{type}", self.search),
        ]

    async def metadata(self, request: Request) -> Response:
        return FhirResponse(capability_statement(self.store, _base(request), self._header))

    async def read(self, request: Request) -> Response:
        kind, rid = request.path_params["type"], request.path_params["id"]
        if kind not in self.store.by_type:
            return _unknown_type(kind)
        resource = self.store.get(kind, rid)
        if resource is None:
            return outcome(404, "not-found", f"{kind}/{rid} is not known")
        return FhirResponse(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

    async def search(self, request: Request) -> Response:
        kind = request.path_params["type"]
        if kind not in self.store.by_type:
            return _unknown_type(kind)
        try:
            query = search.parse(kind, request.query_params.multi_items())
        except search.SearchError as exc:
            return outcome(400, "invalid", str(exc))
        matches = search.run(self.store, query)
        page = [] if query.summary_count else matches[query.offset : query.offset + query.count]
        bundle = searchset(
            _base(request),
            kind,
            query.applied,
            page,
            len(matches),
            query.count,
            query.offset,
            included=search.included(self.store, query, page),
            summary_count=query.summary_count,
        )
        return FhirResponse(bundle)

    async def everything(self, request: Request) -> Response:
        rid = request.path_params["id"]
        try:
            count, offset = search.window(request.query_params.multi_items())
        except search.SearchError as exc:
            return outcome(400, "invalid", str(exc))
        found = self.store.everything(rid)
        if not found:
            return outcome(404, "not-found", f"Patient/{rid} is not known")
        page = found[offset : offset + count]
        path = f"Patient/{rid}/$everything"
        return FhirResponse(searchset(_base(request), path, [], page, len(found), count, offset))


def create_app(
    store: FhirStore,
    api_key: str,
    *,
    header: str | None = "X-API-Key",
    bearer: bool = True,
    misbehave: bool = False,
    stopping: asyncio.Event | None = None,
) -> Starlette:
    """The server's ASGI application; ``misbehave`` adds the ``/_test/...`` endpoints, which
    end early once ``stopping`` is set."""
    check_settings(api_key, header, bearer)  # now, not at the first request
    routes: list[BaseRoute] = []
    if misbehave:
        routes += Misbehaviour(stopping or asyncio.Event()).routes()
    routes += Exports(store).routes()
    routes += FhirRoutes(store, header).routes()
    middleware = [Middleware(RequireApiKey, api_key=api_key, header=header, bearer=bearer)]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        return outcome(500, "exception", "internal error")
    code = _ISSUE_CODES.get(exc.status_code, "exception")
    text = f"{request.url.path}: {exc.detail}"
    return outcome(exc.status_code, code, text, dict(exc.headers or {}))


def _unknown_type(kind: str) -> Response:
    return outcome(404, "not-supported", f"the resource type {kind!r} is not served here")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
