"""How a protocol asks "who is this?" without knowing how the answer is found.

A protocol calls ``Authenticator.begin`` with the claimed user name, then feeds the client's
messages to ``AuthExchange.step`` until it returns an identity or a failure. ``mechanism`` tells
the protocol what to ask the client for: a SCRAM-SHA-256 exchange, or a password (which the
protocol may only ask for over TLS).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from wardgate.core.model import Identity
from wardgate.identity import credentials
from wardgate.identity.scram import (
    ITERATIONS,
    MECHANISM,
    ScramError,
    ScramServer,
    Verifier,
    WrongProof,
)

PASSWORD = "password"


@dataclass(frozen=True)
class AuthStep:
    """One answer of an exchange: a challenge to send, an identity, or a failure."""

    challenge: bytes | None = None
    identity: Identity | None = None
    final: bytes = b""
    failure: str = ""
    hint: str = ""  # shown to the client with a refusal (how to recover), never a secret
    # A wrong guess at a secret a person chose (a static user's password, or the decoy of an
    # unknown name): these failures are throttled. Bearer secrets (256-bit credentials, signed
    # tokens) cannot be guessed, and their refusals (expired, revoked) are not guesses.
    guess: bool = False


class AuthExchange(Protocol):
    mechanism: str

    def step(self, data: bytes) -> AuthStep: ...


class Authenticator(Protocol):
    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange: ...


@dataclass(frozen=True)
class StaticUser:
    name: str
    verifier: Verifier
    roles: tuple[str, ...] = ()


class _ScramExchange:
    mechanism = MECHANISM

    def __init__(self, user: str, found: StaticUser | None, decoy: Verifier) -> None:
        self._user = user
        self._found = found
        # An unknown user gets a full exchange against a decoy, so the answer does not reveal
        # which user names exist.
        self._server = ScramServer(found.verifier if found else decoy)
        self._round = 0

    def step(self, data: bytes) -> AuthStep:
        self._round += 1
        try:
            if self._round == 1:
                return AuthStep(challenge=self._server.first(data))
            final = self._server.final(data)
        except ScramError as exc:
            # Against the decoy every proof fails; the audit log should still say why.
            unknown = self._found is None and self._round > 1
            reason = self._why("unknown user" if unknown else str(exc))
            # Only a checked proof is a guess; a malformed exchange is a broken client.
            return AuthStep(failure=reason, guess=isinstance(exc, WrongProof))
        if self._found is None:
            return AuthStep(failure=self._why("unknown user"), guess=True)
        identity = Identity(self._found.name, self._found.roles, method=MECHANISM.lower())
        return AuthStep(identity=identity, final=final)

    def _why(self, reason: str) -> str:
        return f"user {self._user!r}: {reason}"


class _PasswordExchange:
    mechanism = PASSWORD

    def __init__(self, user: str, found: StaticUser | None, decoy: Verifier) -> None:
        self._user = user
        self._found = found
        self._decoy = decoy

    def step(self, data: bytes) -> AuthStep:
        verifier = self._found.verifier if self._found else self._decoy
        password = data.rstrip(b"\x00").decode("utf-8", "replace")
        candidate = Verifier.from_password(password, verifier.salt, verifier.iterations)
        matches = hmac.compare_digest(candidate.stored_key, verifier.stored_key)
        if self._found is None or not matches:
            reason = "unknown user" if self._found is None else "password does not match"
            return AuthStep(failure=f"user {self._user!r}: {reason}", guess=True)
        return AuthStep(identity=Identity(self._found.name, self._found.roles, method=PASSWORD))


class RefuseWithoutTls:
    """For a bearer secret sent as a password (a token, a credential) over a plaintext connection:
    offer SCRAM, whose first client message carries no secret, so the secret never crosses the
    wire in the clear, and refuse with ``failure`` for the audit."""

    mechanism = MECHANISM

    def __init__(self, failure: str) -> None:
        self._failure = failure

    def step(self, data: bytes) -> AuthStep:
        return AuthStep(failure=self._failure)


class StaticAuthenticator:
    """Users and SCRAM verifiers from the configuration file."""

    def __init__(self, users: Sequence[StaticUser]) -> None:
        self._users: Mapping[str, StaticUser] = {u.name: u for u in users}
        self._decoy_key = secrets.token_bytes(32)

    def _decoy(self, user: str) -> Verifier:
        # A salt of its own for each unknown name, the same at every attempt like a real user's:
        # one salt shared by all unknown names would tell which names exist.
        salt = hmac.digest(self._decoy_key, user.encode(), "sha256")[:16]
        return Verifier(ITERATIONS, salt, secrets.token_bytes(32), secrets.token_bytes(32))

    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange:
        found = self._users.get(user)
        if mechanism == PASSWORD:
            return _PasswordExchange(user, found, self._decoy(user))
        return _ScramExchange(user, found, self._decoy(user))


_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class _Checked:
    """Passes an exchange through, refusing an identity that ``check`` says is no longer valid."""

    def __init__(self, inner: AuthExchange, check: Callable[[Identity], str], user: str) -> None:
        self.mechanism = inner.mechanism
        self._inner = inner
        self._check = check
        self._user = user

    def step(self, data: bytes) -> AuthStep:
        step = self._inner.step(data)
        if step.identity is not None and (why := self._check(step.identity)):
            hint = credentials.recovery_hint(why)
            return AuthStep(failure=f"user {self._user!r}: {why}", hint=hint)
        return step


class _RoutedExchange:
    """Asks for a password, then hands it to the authenticator its shape calls for."""

    mechanism = PASSWORD

    def __init__(self, composite: CompositeAuthenticator, user: str, tls: bool) -> None:
        self._composite = composite
        self._user = user
        self._tls = tls
        self._inner: AuthExchange | None = None

    def step(self, data: bytes) -> AuthStep:
        if self._inner is None:
            chosen = self._composite.route(data.rstrip(b"\x00"))
            self._inner = chosen.begin(self._user, tls=self._tls, mechanism=PASSWORD)
        return self._inner.step(data)


class CompositeAuthenticator:
    """Static users, gateway credentials and OIDC tokens on one listener.

    With the password mechanism the password's shape picks the authenticator: the credential
    prefix, a JWT (three base64url parts), anything else a static user's password. A password of
    a shape whose authenticator is not configured goes to the static users, which refuse it as
    they refuse any wrong password, so the choice never tells which user names exist. With SCRAM
    only static users can sign in (a bearer secret cannot be checked against a SCRAM verifier).
    ``check`` (the revocation list) may refuse an identity any of them verified.
    """

    def __init__(
        self,
        static: Authenticator,
        credentials: Authenticator | None = None,
        oidc: Authenticator | None = None,
        *,
        check: Callable[[Identity], str] | None = None,
    ) -> None:
        self.static = static
        self._check = check
        self.credentials = credentials
        self.oidc = oidc

    def route(self, password: bytes) -> Authenticator:
        text = password.decode("ascii", "replace")
        if self.credentials is not None and credentials.looks_like(text):
            return self.credentials
        if self.oidc is not None and _JWT.match(text):
            return self.oidc
        return self.static

    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange:
        exchange: AuthExchange
        if mechanism != PASSWORD:
            exchange = self.static.begin(user, tls=tls, mechanism=mechanism)
        else:
            exchange = _RoutedExchange(self, user, tls)
        return exchange if self._check is None else _Checked(exchange, self._check, user)
