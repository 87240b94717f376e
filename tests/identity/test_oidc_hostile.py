"""Hostile tokens, each refused with the reason the audit will record. Keys, discovery and JWKS
come from the real test provider; each token is signed with the provider's own key unless the
point is that it is not."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from pydantic import ValidationError

from tests.identity import tokens
from tests.idp import signin
from tests.idp.server import TestIdp
from wardgate.identity.oidc import OidcSettings, OidcVerifier, Reason, TokenRejected


@pytest.fixture
def verifier(oidc_provider: TestIdp) -> Iterator[OidcVerifier]:
    v = OidcVerifier(tokens.settings(oidc_provider))
    yield v
    v.close()


def _tampered(idp: TestIdp) -> str:
    header, _, signature = tokens.sign(idp.key("RS256"), tokens.claims(idp)).split(".")
    forged = tokens.part(tokens.claims(idp, sub="mallory", email="mallory@hospital.example"))
    return f"{header}.{forged}.{signature}"


def _foreign_kid(idp: TestIdp) -> str:
    stranger = RSAKey.generate_key(2048, {"kid": "not-published", "alg": "RS256"})
    return tokens.sign(stranger, tokens.claims(idp))


Case = Callable[[TestIdp], str]
HOSTILE: list[tuple[str, Case, Reason]] = [
    ("alg none", lambda i: tokens.unsigned(tokens.claims(i), i.key("RS256").kid), Reason.ALGORITHM),
    (
        "HS256 keyed with the RSA public key",
        lambda i: tokens.hmac_with_public_key(i.key("RS256"), tokens.claims(i)),
        Reason.ALGORITHM,
    ),
    (
        "wrong iss",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, iss="http://127.0.0.1:9/")),
        Reason.WRONG_ISSUER,
    ),
    (
        "wrong aud",
        lambda i: tokens.sign(i.key("ES256"), tokens.claims(i, aud="some-other-api")),
        Reason.WRONG_AUDIENCE,
    ),
    (
        "ID token for two clients, authorized party another",
        lambda i: tokens.sign(
            i.key("RS256"), tokens.claims(i, aud=["other-app", "wardgate"], azp="other-app")
        ),
        Reason.WRONG_AUDIENCE,
    ),
    (
        "expired beyond the clock skew",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, exp=int(time.time()) - 120)),
        Reason.EXPIRED,
    ),
    (
        "nbf in the future",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, nbf=int(time.time()) + 600)),
        Reason.NOT_YET_VALID,
    ),
    (
        "iat in the future",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, iat=int(time.time()) + 600)),
        Reason.ISSUED_IN_FUTURE,
    ),
    (
        "no exp",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, exp=None)),
        Reason.MISSING_CLAIM,
    ),
    (
        "no sub",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, sub=None)),
        Reason.MISSING_CLAIM,
    ),
    ("unknown kid", _foreign_kid, Reason.UNKNOWN_KEY),
    (
        "no kid",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i), kid=None),
        Reason.UNKNOWN_KEY,
    ),
    ("payload changed after signing", _tampered, Reason.BAD_SIGNATURE),
    (
        "ES256 header on the RSA key",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i)).replace(
            tokens.part({"alg": "RS256", "kid": i.key("RS256").kid, "typ": "JWT"}),
            tokens.part({"alg": "ES256", "kid": i.key("RS256").kid, "typ": "JWT"}),
        ),
        Reason.BAD_SIGNATURE,
    ),
    (
        "a logout token",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i), typ="logout+jwt"),
        Reason.WRONG_TYPE,
    ),
    (
        "critical header extension",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i), crit=["b64"], b64=False),
        Reason.MALFORMED,
    ),
    (
        "enormous (64 KiB), signed",
        lambda i: tokens.sign(i.key("RS256"), tokens.claims(i, pad="x" * 65536)),
        Reason.TOO_LARGE,
    ),
    ("enormous (64 KiB), garbage", lambda i: "x" * 65536, Reason.TOO_LARGE),
]
MALFORMED = ["", "not-a-jwt", "a.b", "a.b.c.d", "!!!.e30.", "W10.e30.", "e30.bm9wZQ.", "é.e30.x"]


@pytest.mark.parametrize(("make", "reason"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_token_is_refused(
    oidc_provider: TestIdp, verifier: OidcVerifier, make: Case, reason: Reason
) -> None:
    with pytest.raises(TokenRejected) as refused:
        verifier.verify(make(oidc_provider))
    assert refused.value.reason is reason, refused.value


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_token_is_refused(verifier: OidcVerifier, token: str) -> None:
    with pytest.raises(TokenRejected) as refused:
        verifier.verify(token)
    assert refused.value.reason is Reason.MALFORMED
    assert refused.value.detail


def test_refusal_names_the_claimed_user_for_the_audit(
    oidc_provider: TestIdp, verifier: OidcVerifier
) -> None:
    with pytest.raises(TokenRejected) as refused:
        verifier.verify(_tampered(oidc_provider))
    assert refused.value.claimed == "mallory"  # unverified, recorded, never trusted
    assert str(refused.value).startswith("bad signature")


def test_enormous_token_is_refused_before_any_fetch(oidc_provider: TestIdp) -> None:
    verifier = OidcVerifier(tokens.settings(oidc_provider))
    try:
        with pytest.raises(TokenRejected, match="token too large"):
            verifier.verify(b"e30." * 16384)
        assert verifier._jwks is None  # neither parsed nor looked up
    finally:
        verifier.close()


def test_valid_id_token_of_another_client_is_refused(
    oidc_provider: TestIdp, verifier: OidcVerifier
) -> None:
    other = signin.code_flow(oidc_provider.issuer, "bob", client_id="other-app")
    assert verifier.verify(other.access_token).identity.subject == "bob"  # for the gateway API
    with pytest.raises(TokenRejected) as refused:
        verifier.verify(other.id_token)
    assert refused.value.reason is Reason.WRONG_AUDIENCE
    assert refused.value.claimed == "bob"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_valid_token_is_accepted(oidc_provider: TestIdp, verifier: OidcVerifier, alg: str) -> None:
    verified = verifier.verify(tokens.sign(oidc_provider.key(alg), tokens.claims(oidc_provider)))
    assert verified.identity.subject == "alice"
    assert verified.identity.roles == ("engineer",)
    assert verified.identity.method == "oidc"


def test_clock_skew_is_allowed(oidc_provider: TestIdp, verifier: OidcVerifier) -> None:
    now = int(time.time())
    skewed = tokens.claims(oidc_provider, exp=now - 30, nbf=now + 30, iat=now + 30)
    assert verifier.verify(tokens.sign(oidc_provider.key("ES256"), skewed)).identity.subject


def test_subject_claim_and_role_mapping_are_configurable(oidc_provider: TestIdp) -> None:
    settings = tokens.settings(
        oidc_provider,
        subject_claim="email",
        roles_claim="realm_access.roles",
        role_mapping={"phi-reader": "clinician", "engineering": ["engineer", "on-call"]},
    )
    payload = tokens.claims(oidc_provider, realm_access={"roles": ["engineering", "phi-reader", 7]})
    verifier = OidcVerifier(settings)
    try:
        identity = verifier.verify(tokens.sign(oidc_provider.key("RS256"), payload)).identity
    finally:
        verifier.close()
    assert identity.subject == "alice@hospital.example"
    assert identity.roles == ("engineer", "on-call", "clinician")


@pytest.mark.parametrize(
    "bad",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("RS256", "none")},
        {"algorithms": ()},
        {"issuer": "http://idp.example.com"},
        {"max_token_bytes": 1 << 24},
    ],
)
def test_settings_refuse_unsafe_choices(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {"issuer": "https://idp.example.com", "client_id": "wardgate"}
    with pytest.raises(ValidationError):
        OidcSettings(**(values | bad))


def test_unreachable_provider_fails_closed() -> None:
    settings = OidcSettings(issuer="http://127.0.0.1:9", client_id="wardgate", http_timeout=2)
    verifier = OidcVerifier(settings)
    key = ECKey.generate_key("P-256", {"kid": "k", "alg": "ES256"})
    try:
        with pytest.raises(TokenRejected) as refused:
            verifier.verify(tokens.sign(key, {"sub": "alice"}))
    finally:
        verifier.close()
    assert refused.value.reason is Reason.IDP_UNAVAILABLE
    assert refused.value.claimed == "alice"
