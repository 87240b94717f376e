"""Why a token is refused, and the checks on its claims once its signature holds.

``Reason`` values are stable strings for the audit log and for alerting on; ``detail`` is for
people. ``claimed`` is what the token says about who it is for, read without verification: the
audit of failed attempts (HIPAA 164.312(b)) records it, nothing else may rely on it.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wardgate.identity.oidc import OidcSettings

MAX_CLAIMED = 256


class Reason(enum.StrEnum):
    TOO_LARGE = "token too large"
    MALFORMED = "malformed token"
    ALGORITHM = "algorithm not allowed"
    WRONG_TYPE = "wrong token type"
    UNKNOWN_KEY = "unknown signing key"
    BAD_SIGNATURE = "bad signature"
    WRONG_ISSUER = "wrong issuer"
    WRONG_AUDIENCE = "wrong audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    ISSUED_IN_FUTURE = "issued in the future"
    MISSING_CLAIM = "missing claim"
    USER_MISMATCH = "user name does not match token"
    TLS_REQUIRED = "TLS required"
    IDP_UNAVAILABLE = "identity provider unavailable"


class TokenRejected(Exception):
    def __init__(self, reason: Reason, detail: str = "", claimed: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail
        self.claimed = claimed


def claimed(payload_part: str, claim: str) -> str:
    """The unverified value of ``claim`` (or ``sub``/``email``) in a payload, or ""."""
    try:
        padded = payload_part + "=" * (-len(payload_part) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, RecursionError):
        return ""
    if not isinstance(payload, dict):
        return ""
    for name in (claim, "email", "sub"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value[:MAX_CLAIMED]
    return ""


def _time(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(Reason.MISSING_CLAIM, f"{name!r} is missing or not a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], settings: OidcSettings, issuer: str, now: float
) -> None:
    """Raise ``TokenRejected`` unless issuer, audience, lifetime and subject are acceptable."""
    if claims.get("iss") != issuer:
        raise TokenRejected(Reason.WRONG_ISSUER, f"iss {claims.get('iss')!r}, expected {issuer!r}")
    aud = claims.get("aud")
    audiences = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if not audiences & settings.accepted_audiences:
        raise TokenRejected(Reason.WRONG_AUDIENCE, f"aud {aud!r} is not for this gateway")
    azp = claims.get("azp")
    if azp is not None and settings.client_id in audiences and azp != settings.client_id:
        # An ID token shared with us but issued to another client (OIDC Core 3.1.3.7).
        raise TokenRejected(Reason.WRONG_AUDIENCE, f"azp {azp!r} is another client")
    skew = settings.clock_skew
    exp = _time(claims, "exp", required=True)
    if exp is not None and now > exp + skew:
        raise TokenRejected(Reason.EXPIRED, f"expired {now - exp:.0f} s ago")
    nbf = _time(claims, "nbf", required=False)
    if nbf is not None and now < nbf - skew:
        raise TokenRejected(Reason.NOT_YET_VALID, f"valid only in {nbf - now:.0f} s")
    iat = _time(claims, "iat", required=True)
    if iat is not None and now < iat - skew:
        raise TokenRejected(Reason.ISSUED_IN_FUTURE, f"iat {iat - now:.0f} s in the future")
    for name in {settings.subject_claim, settings.login_claim}:
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            raise TokenRejected(Reason.MISSING_CLAIM, f"no {name!r} claim")


def _lookup(claims: Mapping[str, Any], path: str) -> Any:
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):  # nested claims, e.g. Keycloak's realm_access.roles
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def roles_of(
    claims: Mapping[str, Any], claim: str, mapping: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """wardgate roles for the token's groups; groups that the mapping does not name grant none."""
    raw = _lookup(claims, claim)
    groups = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    roles: list[str] = []
    for group in groups:
        if isinstance(group, str):
            roles.extend(r for r in mapping.get(group, ()) if r not in roles)
    return tuple(roles)
