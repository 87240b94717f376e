"""Crafting tokens for the tests: signed with the test provider's own keys (so only the claim a
test spoils is wrong), or put together by hand where no library would sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from tests.idp.server import TestIdp
from wardgate.identity.oidc import OidcSettings

AUDIENCE = "urn:wardgate:gateway"
ROLE_MAPPING = {
    "engineering": ("engineer",),
    "clinicians": ("clinician",),
    "compliance": ("compliance-officer",),
}


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def part(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")))


def settings(idp: TestIdp, **overrides: Any) -> OidcSettings:
    values: dict[str, Any] = {
        "issuer": idp.issuer,
        "client_id": "wardgate",
        "audiences": (AUDIENCE,),
        "role_mapping": ROLE_MAPPING,
    }
    values.update(overrides)
    return OidcSettings(**values)


def claims(idp: TestIdp, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": idp.issuer,
        "sub": "alice",
        "aud": "wardgate",
        "email": "alice@hospital.example",
        "groups": ["engineering"],
        "iat": now,
        "exp": now + 300,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(key: RSAKey | ECKey | OKPKey, payload: dict[str, Any], **header: Any) -> str:
    """A compact JWS of ``payload`` signed with ``key`` (its ``alg`` and ``kid`` unless given)."""
    head = {"alg": key.alg, "kid": key.kid, "typ": "JWT", **header}
    head = {k: v for k, v in head.items() if v is not None}
    signing_input = f"{part(head)}.{part(payload)}"
    signature = JWSRegistry.algorithms[str(key.alg)].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


def unsigned(payload: dict[str, Any], kid: str) -> str:
    return f"{part({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{part(payload)}."


def hmac_with_public_key(key: RSAKey, payload: dict[str, Any]) -> str:
    """The classic confusion attack: HS256 keyed with the bytes of the RSA public key."""
    secret = key.as_pem(private=False)
    signing_input = f"{part({'alg': 'HS256', 'kid': key.kid, 'typ': 'JWT'})}.{part(payload)}"
    mac = hmac.digest(secret, signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64(mac)}"
