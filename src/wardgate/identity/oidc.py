"""Verifying ID and access tokens issued by an OpenID provider.

``OidcVerifier.verify`` turns a compact JWS into an ``Identity`` or raises ``TokenRejected`` with
a machine-readable ``Reason`` and, for the audit of failed attempts, the identity the token claims
(read without verification, so never to be trusted for anything else).

Checks, in order: size; shape (three base64url parts, JSON header and payload, no ``crit``);
``typ`` (a JWT or an RFC 9068 access token, not a logout token); algorithm on the allow-list;
key by ``kid`` from the provider's JWKS (see ``jwks``), of the algorithm's key type; signature
(joserfc's algorithm implementations); ``iss``; ``aud``; ``exp``, ``nbf``, ``iat`` within the
clock-skew allowance; the subject claim. Calls are synchronous and may block on the provider
(bounded by ``http_timeout``): call them off the event loop, or use ``verify_async``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from pydantic import BaseModel, ConfigDict, Field, field_validator

from wardgate.core.model import Identity
from wardgate.identity.jwks import JwksCache, JwksUnavailable, PublicKey
from wardgate.identity.oidc_claims import Reason, TokenRejected, check_claims, claimed, roles_of

__all__ = ["OidcSettings", "OidcVerifier", "ProviderMetadata", "Reason", "TokenRejected"]

METHOD = "oidc"
# Asymmetric algorithms only: an HMAC algorithm would let anyone holding the provider's public
# key sign tokens. "Ed25519" is RFC 9864's name for what providers still call "EdDSA".
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
    | {"EdDSA", "Ed25519"}
)
_KEY_TYPE = {alg: "RSA" for alg in SUPPORTED_ALGORITHMS if alg[:2] in ("RS", "PS")} | {
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
    "Ed25519": "OKP",
}
_TOKEN_TYPES = frozenset({"jwt", "at+jwt"})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url  # a development provider on this machine
    raise ValueError(f"{url!r}: an identity provider must be reached over https")


class OidcSettings(BaseModel):
    """The ``identity.oidc`` section of the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    client_id: str = Field(min_length=1)
    audiences: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    clock_skew: float = Field(default=60.0, ge=0, le=600)
    max_token_bytes: int = Field(default=16384, ge=1024, le=1 << 20)
    subject_claim: str = "sub"
    username_claim: str | None = None
    roles_claim: str = "groups"
    role_mapping: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    jwks_refetch_interval: float = Field(default=30.0, ge=0)
    jwks_max_age: float = Field(default=3600.0, gt=0)
    http_timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _check_url(value)  # compared with "iss" exactly, as given

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unsupported = [a for a in value if a not in SUPPORTED_ALGORITHMS]
        if unsupported or not value:
            raise ValueError(
                f"algorithms {unsupported or '[]'} not allowed; choose from "
                f"{sorted(SUPPORTED_ALGORITHMS)} (never none or HMAC)"
            )
        return value

    @field_validator("role_mapping", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def accepted_audiences(self) -> frozenset[str]:
        return frozenset({self.client_id, *self.audiences})

    @property
    def login_claim(self) -> str:
        return self.username_claim or self.subject_claim


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery (``/.well-known/openid-configuration``) says about the provider."""

    issuer: str
    jwks_uri: str
    token_endpoint: str = ""
    authorization_endpoint: str = ""
    device_authorization_endpoint: str = ""
    userinfo_endpoint: str = ""

    @classmethod
    def discover(cls, issuer: str, http: httpx.Client) -> ProviderMetadata:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = http.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        doc = response.json()
        if not isinstance(doc, dict) or doc.get("issuer") != issuer:
            # OpenID Connect Discovery 1.0, section 4.3: the issuer must be the one asked for.
            raise ValueError(f"discovery at {url} names issuer {doc.get('issuer')!r}")
        fields = {
            name: str(doc.get(name, ""))
            for name in (
                "token_endpoint",
                "authorization_endpoint",
                "device_authorization_endpoint",
                "userinfo_endpoint",
            )
        }
        return cls(issuer=issuer, jwks_uri=_check_url(str(doc.get("jwks_uri", ""))), **fields)


@dataclass(frozen=True)
class VerifiedToken:
    identity: Identity
    claims: Mapping[str, Any]
    header: Mapping[str, Any]


def _b64decode(part: str) -> bytes:
    if not part or len(part) % 4 == 1 or "=" in part:
        raise ValueError("not base64url")
    return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise TokenRejected(Reason.MALFORMED, f"{what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise TokenRejected(Reason.MALFORMED, f"{what} is not a JSON object")
    return value


class OidcVerifier:
    """Verifies tokens of one provider for one client. Thread-safe."""

    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._own_http = http is None
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout), follow_redirects=False
        )
        self._clock = clock
        self._monotonic = monotonic
        self._metadata: ProviderMetadata | None = None
        self._jwks: JwksCache | None = None
        self._lock = threading.Lock()

    @property
    def metadata(self) -> ProviderMetadata:
        """Discovered once; until discovery succeeds, every call tries again."""
        with self._lock:
            if self._metadata is None:
                try:
                    self._metadata = ProviderMetadata.discover(self.settings.issuer, self._http)
                except (httpx.HTTPError, ValueError) as exc:
                    raise TokenRejected(Reason.IDP_UNAVAILABLE, f"discovery: {exc}") from exc
            return self._metadata

    @property
    def jwks(self) -> JwksCache:
        metadata = self.metadata
        with self._lock:
            if self._jwks is None:
                self._jwks = JwksCache(
                    metadata.jwks_uri,
                    self._http,
                    min_refetch_interval=self.settings.jwks_refetch_interval,
                    max_age=self.settings.jwks_max_age,
                    clock=self._monotonic,
                )
            return self._jwks

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def prefetch(self) -> None:
        try:
            self.jwks.get("")
        except JwksUnavailable as exc:
            raise TokenRejected(Reason.IDP_UNAVAILABLE, str(exc)) from exc

    def verify(self, token: str | bytes) -> VerifiedToken:
        text = self._text(token)
        parts = text.split(".")
        if len(parts) != 3:
            raise TokenRejected(Reason.MALFORMED, f"a JWS has 3 parts, this has {len(parts)}")
        try:
            return self._verify(parts, _json_object(parts[0], "header"))
        except TokenRejected as exc:
            exc.claimed = exc.claimed or claimed(parts[1], self.settings.login_claim)
            raise

    def _text(self, token: str | bytes) -> str:
        limit = self.settings.max_token_bytes
        if len(token) > limit:
            raise TokenRejected(Reason.TOO_LARGE, f"{len(token)} bytes, at most {limit} accepted")
        try:
            text = token.decode("ascii") if isinstance(token, bytes) else token
            text.encode("ascii")
        except UnicodeError as exc:
            raise TokenRejected(Reason.MALFORMED, "not ASCII") from exc
        return text.strip()

    def _verify(self, parts: list[str], header: dict[str, Any]) -> VerifiedToken:
        alg, kid = header.get("alg"), header.get("kid")
        if alg is None:
            raise TokenRejected(Reason.MALFORMED, "the header names no algorithm (alg)")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise TokenRejected(Reason.ALGORITHM, f"alg {alg!r} is not allowed")
        if "crit" in header:
            raise TokenRejected(Reason.MALFORMED, "critical header extensions are not supported")
        typ = header.get("typ")
        if typ is not None and str(typ).lower().removeprefix("application/") not in _TOKEN_TYPES:
            raise TokenRejected(Reason.WRONG_TYPE, f"typ {typ!r} is not an ID or access token")
        if not isinstance(kid, str):
            raise TokenRejected(Reason.UNKNOWN_KEY, "the header names no key (kid)")
        try:
            key = self.jwks.get(kid)
        except JwksUnavailable as exc:
            raise TokenRejected(Reason.IDP_UNAVAILABLE, str(exc)) from exc
        if key is None:
            raise TokenRejected(Reason.UNKNOWN_KEY, f"kid {kid!r} is not in the provider's JWKS")
        self._check_signature(parts, alg, key)
        claims = _json_object(parts[1], "payload")
        check_claims(claims, self.settings, self.metadata.issuer, self._clock())
        identity = Identity(
            str(claims[self.settings.subject_claim]),
            roles_of(claims, self.settings.roles_claim, self.settings.role_mapping),
            method=METHOD,
        )
        return VerifiedToken(identity, claims, header)

    @staticmethod
    def _check_signature(parts: list[str], alg: str, key: PublicKey) -> None:
        # The algorithm object is taken from joserfc's registry directly rather than through
        # JWSRegistry.get_alg, which warns that the name "EdDSA" is deprecated (RFC 9864) on
        # every call; the allow-list was checked above.
        model = JWSRegistry.algorithms[alg]
        expected = _KEY_TYPE[alg]
        if key.key_type != expected:
            raise TokenRejected(Reason.BAD_SIGNATURE, f"{alg} needs an {expected} key")
        try:
            model.check_key(key)
            signature = _b64decode(parts[2])
            ok = model.verify(f"{parts[0]}.{parts[1]}".encode(), signature, key)
        except (JoseError, ValueError, binascii.Error) as exc:
            raise TokenRejected(Reason.BAD_SIGNATURE, f"cannot verify: {exc}") from exc
        if not ok:
            raise TokenRejected(Reason.BAD_SIGNATURE, "signature does not match")
