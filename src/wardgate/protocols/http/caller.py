"""Who is calling an API through the gateway: ``Authorization: Bearer <token>``, where the token
is an OIDC access or ID token of the gateway's identity provider, or a gateway credential
(``wgc_...``, any kind: human, agent, service). Every request is checked anew, so a revoked
human (or a credential of one) is refused at the next request.

Blocking (the state store, the provider's keys): call ``identify`` from a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable

from wardgate.core.model import Identity
from wardgate.identity import credentials
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.oidc_claims import Reason, TokenRejected
from wardgate.identity.state import StateError, StateStore

REALM = "wardgate"


class CallerRefused(Exception):
    """An answer the client may see (``status``, ``message``); ``reason`` is for the audit."""

    def __init__(self, status: int, message: str, reason: str, claimed: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.claimed = claimed

    def challenge(self) -> str:
        """The WWW-Authenticate value of a 401 (RFC 6750 3)."""
        if self.reason == "no bearer token":
            return f'Bearer realm="{REALM}"'
        return f'Bearer realm="{REALM}", error="invalid_token"'


class CallerAuth:
    def __init__(
        self,
        oidc: OidcVerifier | None,
        state: StateStore | None,
        check: Callable[[Identity], str] | None,
    ) -> None:
        self.oidc = oidc
        self.state = state
        self.check = check

    def identify(self, authorization: str | None) -> Identity:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CallerRefused(401, "a bearer token is required", "no bearer token")
        identity = self._credential(token) if credentials.looks_like(token) else self._oidc(token)
        revoked = self.check(identity) if self.check is not None else ""
        if revoked:
            raise CallerRefused(403, f"access revoked: {revoked}", revoked, identity.subject)
        return identity

    def _credential(self, token: str) -> Identity:
        if self.state is None:
            raise CallerRefused(
                401, "invalid token", "credential: gateway credentials are not configured"
            )
        try:
            return credentials.bearer(self.state, token)
        except credentials.CredentialRefused as exc:
            raise CallerRefused(
                401, "invalid token", f"credential: {exc.reason}", exc.claimed
            ) from exc
        except StateError as exc:
            raise CallerRefused(503, "the identity state is unavailable", str(exc)) from exc

    def _oidc(self, token: str) -> Identity:
        if self.oidc is None:
            raise CallerRefused(401, "invalid token", "oidc: no identity provider is configured")
        try:
            return self.oidc.verify(token).identity
        except TokenRejected as exc:
            unavailable = exc.reason == Reason.IDP_UNAVAILABLE
            detail = f"oidc: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")
            if unavailable:
                raise CallerRefused(
                    503, "the identity provider cannot be reached", detail, exc.claimed
                ) from exc
            raise CallerRefused(401, "invalid token", detail, exc.claimed) from exc
