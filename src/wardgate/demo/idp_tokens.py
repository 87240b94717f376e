"""DEVELOPMENT ONLY: the grants of the demo's OpenID provider and the tokens it signs.

Glossary:

- code: an authorization code (RFC 6749 §4.1), bound to its client, redirect URI and PKCE
  challenge (RFC 7636, S256 only); single use, ``Lifetimes.code`` seconds. Presenting a code a
  second time revokes the tokens issued for it (RFC 6749 §4.1.2).
- family: the refresh tokens that descend from one sign-in. Each refresh returns a new token and
  retires the one presented (rotation); presenting a retired one revokes the whole family, since
  the client or a thief holds a copy (RFC 9700 §4.14.2).
- device grant (RFC 8628): ``device_code`` for the polling device, ``user_code`` for the person
  at the verification page.

Everything is kept in memory behind one lock (the HTTP routes run on the provider's own thread,
while the demo mints tokens from its main thread); with ``grants_file`` the refresh families and
disabled accounts are also written to disk at every change (``idp_grants``), so that a restart
keeps them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from wardgate.demo import idp_grants
from wardgate.demo.idp_keys import ACCESS_TOKEN_ALG, ID_TOKEN_ALG, DevUser, SigningKeys

CLIENT_ID = "wardgate"
GATEWAY_AUDIENCE = "urn:wardgate:gateway"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = ("openid", "email", "profile", "groups", "offline_access")
DEVICE_SCOPE = "openid email profile groups"
MAX_PENDING = 10_000  # codes, families or device grants held at once
MAX_TOKEN_BYTES = 8192
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), no look-alikes (RFC 8628 §6.1)
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


class OAuthError(Exception):
    """An OAuth error response (RFC 6749 §5.2; RFC 6750 §3.1 for ``invalid_token``)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Lifetimes:
    """Seconds; ``interval`` is the device's polling interval."""

    code: float = 60.0
    access: float = 3600.0
    id_token: float = 3600.0
    refresh: float = 86400.0
    device: float = 600.0
    interval: float = 2.0


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str
    scope: tuple[str, ...]
    nonce: str | None
    expires: float
    used: bool = False
    family: str | None = None


@dataclass
class _Family:
    user: str
    client_id: str
    scope: tuple[str, ...]
    current: str  # SHA-256 of the one refresh token of the family that may be used
    revoked: bool = False


@dataclass
class _Device:
    client_id: str
    scope: tuple[str, ...]
    user_code: str
    expires: float
    interval: float
    last_poll: float | None = None
    user: str | None = None
    denied: bool = False
    collected: bool = False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def parse_scope(text: str) -> tuple[str, ...]:
    """The known scopes asked for; others are ignored (OpenID Connect Core §3.1.2.1)."""
    if len(text) > 1024:
        raise OAuthError("invalid_scope", "scope too long")
    return tuple(n for n in dict.fromkeys(text.split()) if n in SCOPES)


def normalize_user_code(text: str) -> str:
    """``bcdf-ghjk`` or ``BCDF GHJK`` as the person typed it -> ``BCDFGHJK``."""
    return "".join(c for c in text.upper() if c not in "- ")[:32]


class DevProvider:
    """Accounts, grants and token signing. ``issuer`` is set once the server knows its port."""

    def __init__(
        self,
        users: Iterable[DevUser],
        keys: SigningKeys,
        *,
        lifetimes: Lifetimes = Lifetimes(),
        clock: Callable[[], float] = time.time,
        grants_file: Path | None = None,
    ) -> None:
        self.issuer = ""
        self.keys = keys
        self.lifetimes = lifetimes
        self._users = {u.name: u for u in users}
        self._grants_file = grants_file
        kept = idp_grants.load(grants_file)
        self._disabled: set[str] = kept.disabled
        self._codes: dict[str, _Code] = {}
        self._families: dict[str, _Family] = {}
        for family_id, fields in kept.families.items():
            try:
                fields["scope"] = tuple(fields["scope"])
                self._families[family_id] = _Family(**fields)
            except (TypeError, KeyError):
                continue
        # token digest -> family, expiry
        self._refresh: dict[str, tuple[str, float]] = {
            k: v for k, v in kept.refresh.items() if v[0] in self._families
        }
        self._devices: dict[str, _Device] = {}  # device code digest -> grant
        self._user_codes: dict[str, str] = {}  # user code -> device code digest
        self._lock = threading.Lock()
        self._clock = clock

    # ---- accounts -------------------------------------------------------------------------------

    def user(self, name: str) -> DevUser | None:
        return self._users.get(name)

    def user_names(self) -> list[str]:
        return list(self._users)

    def active(self, name: str) -> bool:
        with self._lock:
            return name in self._users and name not in self._disabled

    def sign_in(self, name: str, password: str) -> DevUser | None:
        user = self._users.get(name)
        expected = user.password if user is not None else secrets.token_urlsafe(16)
        matches = hmac.compare_digest(password.encode(), expected.encode())
        return user if matches and user is not None and self.active(name) else None

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """False for an unknown account. A disabled account cannot sign in, refresh or use
        userinfo; tokens already issued stay valid until they expire, as at a real provider."""
        with self._lock:
            if name not in self._users:
                return False
            (self._disabled.add if disabled else self._disabled.discard)(name)
            self._persist()
            return True

    # ---- authorization code ---------------------------------------------------------------------

    def issue_code(
        self,
        user: str,
        client_id: str,
        redirect_uri: str,
        challenge: str,
        scope: tuple[str, ...],
        nonce: str | None,
    ) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = self._prune()
            self._room(self._codes)
            expires = now + self.lifetimes.code
            self._codes[_digest(code)] = _Code(
                client_id, redirect_uri, challenge, user, scope, nonce, expires
            )
        return code

    def redeem_code(
        self, client_id: str, code: str, redirect_uri: str, verifier: str
    ) -> dict[str, Any]:
        with self._lock:
            now = self._prune()
            grant = self._codes.get(_digest(code))
            if grant is None or grant.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown authorization code")
            if grant.used:
                if grant.family is not None and grant.family in self._families:
                    self._families[grant.family].revoked = True
                    self._persist()
                raise OAuthError("invalid_grant", "code already used; its tokens are revoked")
            grant.used = True  # a failed attempt uses it up too
            if now >= grant.expires:
                raise OAuthError("invalid_grant", "authorization code expired")
            if redirect_uri != grant.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorization")
            if not verifier:
                raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
            if not _VERIFIER.match(verifier) or not hmac.compare_digest(
                s256(verifier), grant.challenge
            ):
                raise OAuthError("invalid_grant", "code_verifier does not match the challenge")
            tokens, family = self._issue(grant.user, client_id, grant.scope, grant.nonce, None)
            grant.family = family
            return tokens

    # ---- refresh --------------------------------------------------------------------------------

    def refresh(self, client_id: str, token: str, scope: str | None) -> dict[str, Any]:
        with self._lock:
            now = self._prune()
            found = self._refresh.get(_digest(token))
            family = self._families.get(found[0]) if found else None
            if found is None or family is None or family.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown refresh token")
            if family.revoked:
                raise OAuthError("invalid_grant", "refresh token revoked")
            if family.current != _digest(token):
                family.revoked = True
                self._persist()
                raise OAuthError("invalid_grant", "refresh token reused; all its tokens revoked")
            if now >= found[1]:
                raise OAuthError("invalid_grant", "refresh token expired")
            asked = parse_scope(scope) if scope else family.scope
            if not set(asked) <= set(family.scope):
                raise OAuthError("invalid_scope", "more scope than was granted")
            tokens, _ = self._issue(family.user, client_id, asked, None, found[0])
            return tokens

    # ---- device authorization -------------------------------------------------------------------

    def start_device(self, client_id: str, scope: tuple[str, ...]) -> dict[str, Any]:
        device_code = secrets.token_urlsafe(32)
        with self._lock:
            now = self._prune()
            self._room(self._devices)
            while True:
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
                if user_code not in self._user_codes:
                    break
            life = self.lifetimes
            grant = _Device(client_id, scope, user_code, now + life.device, life.interval)
            self._devices[_digest(device_code)] = grant
            self._user_codes[user_code] = _digest(device_code)
        shown = f"{user_code[:4]}-{user_code[4:]}"
        return {
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": f"{self.issuer}/device",
            "verification_uri_complete": f"{self.issuer}/device?user_code={shown}",
            "expires_in": int(self.lifetimes.device),
            "interval": max(1, round(self.lifetimes.interval)),
        }

    def pending_device(self, user_code: str) -> str | None:
        """The normalized user code if it names a grant still waiting for a person."""
        code = normalize_user_code(user_code)
        with self._lock:
            now = self._prune()
            grant = self._devices.get(self._user_codes.get(code, ""))
            if grant is None or grant.user or grant.denied or now >= grant.expires:
                return None
            return code

    def decide_device(self, user_code: str, user: str | None) -> bool:
        """Approve for ``user``, or deny if None; False if the grant is gone meanwhile."""
        with self._lock:
            grant = self._devices.get(self._user_codes.get(user_code, ""))
            if grant is None or grant.user or grant.denied or self._clock() >= grant.expires:
                return False
            grant.user, grant.denied = user, user is None
            return True

    def poll_device(self, client_id: str, device_code: str) -> dict[str, Any]:
        with self._lock:
            now = self._prune()
            grant = self._devices.get(_digest(device_code))
            if grant is None or grant.client_id != client_id or grant.collected:
                raise OAuthError("invalid_grant", "unknown device code")
            if now >= grant.expires:
                raise OAuthError("expired_token", "the device code expired; start again")
            if grant.denied:
                raise OAuthError("access_denied", "the person declined")
            if grant.user is None:
                last, grant.last_poll = grant.last_poll, now
                if last is not None and now - last < grant.interval - 0.05:
                    grant.interval += 5  # RFC 8628 §3.5: for this and every later request
                    raise OAuthError("slow_down", f"poll at most every {grant.interval:g} s")
                raise OAuthError("authorization_pending", "waiting for the person to sign in")
            grant.collected = True
            tokens, _ = self._issue(grant.user, client_id, grant.scope, None, None)
            return tokens

    # ---- tokens ---------------------------------------------------------------------------------

    def mint(self, user: str, *, lifetime: float | None = None) -> dict[str, Any]:
        """Tokens for ``user`` without a sign-in: for the demo's own psql lines."""
        with self._lock:
            tokens, _ = self._issue(user, CLIENT_ID, SCOPES[:4], None, None, lifetime)
            return tokens

    def userinfo(self, access_token: str) -> dict[str, Any]:
        claims = self._verify_access(access_token)
        with self._lock:
            user = self._users.get(str(claims.get("sub")))
            if user is None or user.name in self._disabled:
                raise OAuthError("invalid_token", "the account is disabled", 401)
        return {"sub": user.name, **user.claims()}

    def _verify_access(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES:
            raise OAuthError("invalid_token", "token too large", 401)
        try:
            decoded = jwt.decode(token, self.keys.access_key, algorithms=[ACCESS_TOKEN_ALG])
        except (JoseError, ValueError, TypeError) as exc:
            raise OAuthError("invalid_token", "not an access token of this provider", 401) from exc
        claims = decoded.claims
        exp = claims.get("exp")
        if decoded.header.get("typ") != "at+jwt" or claims.get("iss") != self.issuer:
            raise OAuthError("invalid_token", "not an access token of this provider", 401)
        if claims.get("aud") != GATEWAY_AUDIENCE or "openid" not in str(claims.get("scope")):
            raise OAuthError("invalid_token", "not an access token for userinfo", 401)
        if not isinstance(exp, int | float) or self._clock() >= exp:
            raise OAuthError("invalid_token", "the access token expired", 401)
        return claims

    def _issue(
        self,
        name: str,
        client_id: str,
        scope: tuple[str, ...],
        nonce: str | None,
        family: str | None,
        lifetime: float | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """Called with the lock held. Rotates ``family`` if given, else starts one if
        ``offline_access`` was granted."""
        user = self._users.get(name)
        if user is None or name in self._disabled:
            raise OAuthError("invalid_grant", f"the account {name!r} is disabled")
        now = int(self._clock())
        life = self.lifetimes
        access = self._access_token(user, client_id, scope, now, lifetime or life.access)
        id_claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.name,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + int(lifetime or life.id_token),
            "auth_time": now,
            "at_hash": _b64(hashlib.sha256(access.encode()).digest()[:16]),
            **user.claims(),
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        header = {"alg": ID_TOKEN_ALG, "kid": self.keys.id_key.kid, "typ": "JWT"}
        out: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(lifetime or life.access),
            "id_token": jwt.encode(header, id_claims, self.keys.id_key),
            "scope": " ".join(scope),
        }
        if family is None and "offline_access" in scope:
            self._room(self._families)
            family = uuid.uuid4().hex
            self._families[family] = _Family(name, client_id, scope, "")
        if family is not None:
            refresh = secrets.token_urlsafe(32)
            self._families[family].current = _digest(refresh)
            self._refresh[_digest(refresh)] = (family, now + life.refresh)
            out["refresh_token"] = refresh
            self._persist()
        return out, family

    def _persist(self) -> None:
        """Write the grants (called with the lock held), if a file is configured."""
        if self._grants_file is None:
            return
        families = {k: asdict(f) for k, f in self._families.items()}
        snapshot = idp_grants.Snapshot(families, dict(self._refresh), set(self._disabled))
        idp_grants.save(self._grants_file, snapshot)

    def _access_token(
        self, user: DevUser, client_id: str, scope: tuple[str, ...], now: int, lifetime: float
    ) -> str:
        claims = {
            "iss": self.issuer,
            "sub": user.name,
            "aud": GATEWAY_AUDIENCE,
            "client_id": client_id,
            "iat": now,
            "exp": now + int(lifetime),
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scope),
            **user.claims(),
        }
        header = {"alg": ACCESS_TOKEN_ALG, "kid": self.keys.access_key.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self.keys.access_key)

    def _room(self, table: dict[str, Any]) -> None:
        if len(table) >= MAX_PENDING:
            raise OAuthError("temporarily_unavailable", "too many pending grants", 503)

    def _prune(self) -> float:
        """Forget what expired (called with the lock held); returns the time."""
        now = self._clock()
        for digest, code in list(self._codes.items()):
            if now >= code.expires + 600:  # kept a while to detect a reused code
                del self._codes[digest]
        for digest, (_family, expires) in list(self._refresh.items()):
            if now >= expires:
                del self._refresh[digest]
        live = {family for family, _ in self._refresh.values()}
        for family in [f for f in self._families if f not in live]:
            del self._families[family]
        for digest, grant in list(self._devices.items()):
            if now >= grant.expires + 60:  # a late poll still hears expired_token for a while
                del self._devices[digest]
                self._user_codes.pop(grant.user_code, None)
        return now
