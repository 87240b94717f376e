"""DEVELOPMENT ONLY: the upstream credential the gateway injects — an API key in a header
(``X-API-Key`` unless configured otherwise) or the same key as a bearer token. Every request
without it answers 401 with an OperationOutcome, so the tests can show that the gateway adds a
credential its clients never see.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from wardgate.demo.fhir.responses import outcome


def check_settings(api_key: str, header: str | None, bearer: bool) -> None:
    if not api_key:
        raise ValueError("the FHIR server needs a non-empty API key")
    if header is None and not bearer:
        raise ValueError("the FHIR server needs a header for the key, or bearer tokens")


class RequireApiKey:
    def __init__(self, app: ASGIApp, api_key: str, header: str | None, bearer: bool) -> None:
        check_settings(api_key, header, bearer)
        self.app = app
        self._key = api_key.encode()
        self._header, self._bearer = header, bearer

    def allows(self, headers: Headers) -> bool:
        given: list[str] = []
        if self._header is not None:
            given += headers.getlist(self._header)
        if self._bearer:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                given.append(token.strip())
        # compare_digest on every candidate: the time taken says nothing about the key
        return any([hmac.compare_digest(value.encode(), self._key) for value in given])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allows(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        text = "an API key is required"
        response = outcome(401, "login", text, {"WWW-Authenticate": 'Bearer realm="fhir"'})
        await response(scope, receive, send)
