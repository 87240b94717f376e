"""Signing in with a gateway-issued credential (``wgc_...``) as the password.

Like an OIDC token, a credential is a bearer secret sent as a cleartext password, so it is taken
only inside TLS; without TLS the exchange offers SCRAM (whose first message carries no secret)
and refuses with a reason the audit records.
"""

from __future__ import annotations

from wardgate.identity.authenticator import PASSWORD, AuthExchange, AuthStep, RefuseWithoutTls
from wardgate.identity.credentials import CredentialRefused, recovery_hint, verify
from wardgate.identity.state import StateError, StateStore

TLS_ONLY = "gateway credentials are accepted only over TLS"


def failure_text(user: str, exc: CredentialRefused) -> str:
    text = f"user {user!r}: credential: {exc.reason}"
    if exc.claimed:
        text += f"; credential of {exc.claimed}"
    return text


class _CredentialExchange:
    mechanism = PASSWORD

    def __init__(self, user: str, store: StateStore) -> None:
        self._user = user
        self._store = store

    def step(self, data: bytes) -> AuthStep:
        password = data.rstrip(b"\x00").decode("utf-8", "replace")
        try:
            identity = verify(self._store, password, self._user)
        except CredentialRefused as exc:
            return AuthStep(failure=failure_text(self._user, exc), hint=recovery_hint(exc.reason))
        except StateError as exc:  # fail closed
            return AuthStep(failure=f"user {self._user!r}: credential: {exc}")
        return AuthStep(identity=identity)


class CredentialAuthenticator:
    """An ``Authenticator`` for which the password is a gateway credential.

    Every sign-in reads the state store (no cache), so a revocation written by another process
    is effective at the next attempt.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange:
        if not tls:
            return RefuseWithoutTls(failure_text(user, CredentialRefused(TLS_ONLY)))
        return _CredentialExchange(user, self.store)
