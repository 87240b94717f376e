"""Who is calling the API: an OIDC bearer token of a human, verified like a sign-in.

Every refusal is an audit event (HIPAA 164.312(b) counts failed attempts too) with the client's
address and the identity the token claims, unverified. A revoked human is refused here as at a
PostgreSQL sign-in, and so is an agent's or service's token: only a human creates credentials.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from wardgate.audit.events import Event, identity_event, who
from wardgate.core.model import Identity
from wardgate.identity.credentials import SUSPENDED
from wardgate.identity.oidc import OidcVerifier, Reason, TokenRejected, VerifiedToken
from wardgate.identity.state import Human, StateError, StateStore
from wardgate.identity.suspension import restore_on_sign_in

REALM = "wardgate"


class ApiRefused(Exception):
    """An HTTP error the client may see; ``reason`` is for the audit and may say more."""

    def __init__(self, status: int, message: str, reason: str = "", claimed: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or message
        self.claimed = claimed


def client_addr(request: Request) -> str:
    client = request.client
    if client is None:
        return ""
    host = f"[{client.host}]" if ":" in client.host else client.host
    return f"{host}:{client.port}"


def api_event(
    request: Request, status: int, identity: Identity | None, claimed: str, reason: str = ""
) -> Event:
    """One API call as the audit records it (OCSF API Activity)."""
    event: Event = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "type": "api_call",
        "outcome": "success" if status < 400 else "failure",
        "who": who(identity, claimed),
        "session": {
            "id": f"api-{secrets.token_hex(6)}",
            "protocol": "http",
            "listener": "api",
            "client_addr": client_addr(request),
        },
        "method": request.method,
        "path": request.url.path,
        "status": status,
    }
    if reason:
        event["reason"] = reason
    return event


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiRefused(401, "a bearer token is required", "no bearer token")
    return token.strip()


@dataclass(frozen=True)
class Caller:
    human: Human
    identity: Identity
    token: VerifiedToken


class HumanBearer:
    """Turns an OIDC bearer token into the registered, active human it belongs to."""

    def __init__(
        self, verifier: OidcVerifier, store: StateStore, audit: Callable[[list[Event]], None]
    ) -> None:
        self.verifier = verifier
        self.store = store
        self._audit = audit

    def caller(self, request: Request) -> Caller:
        """Blocking (the provider's keys, the state store): call it from a worker thread."""
        token = bearer(request)
        try:
            verified = self.verifier.verify(token)
        except TokenRejected as exc:
            status = 503 if exc.reason == Reason.IDP_UNAVAILABLE else 401
            message = (
                "the identity provider cannot be reached" if status == 503 else "invalid token"
            )
            detail = f"oidc: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")
            raise ApiRefused(status, message, detail, exc.claimed) from exc
        claims = verified.claims
        identity = verified.identity
        email = claims.get("email")
        event = identity_event(
            "user.provisioned", "oidc", time.time(), subject=identity.subject,
            email=email, roles=list(identity.roles), source="oidc",
        )  # fmt: skip
        try:
            human = self.store.sync_human(
                identity.subject, email if isinstance(email, str) else None, identity.roles, event
            )
            human = restore_on_sign_in(self.store, human, claims)
        except StateError as exc:
            raise ApiRefused(503, "the identity state is unavailable", str(exc)) from exc
        if human.suspended:
            raise ApiRefused(
                403, f"{human.subject} is {SUSPENDED}", f"{human.subject!r} is suspended",
                identity.subject,
            )  # fmt: skip
        if not human.active:
            raise ApiRefused(
                403, f"{human.subject} is revoked", f"{human.subject!r} is revoked",
                identity.subject,
            )  # fmt: skip
        return Caller(human, identity, verified)

    def refused(self, request: Request, exc: ApiRefused) -> None:
        self._audit([api_event(request, exc.status, None, exc.claimed, exc.reason)])

    def succeeded(self, request: Request, caller: Caller, status: int, **details: Any) -> None:
        event = api_event(request, status, caller.identity, caller.identity.subject)
        event.update(details)
        self._audit([event])
