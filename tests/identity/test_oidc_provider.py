"""Real tokens from the real test provider: both sign-in flows, key rotation, and the JWKS
refetch rule (an unknown kid triggers one refetch, at most one per interval)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from joserfc.jwk import RSAKey

from tests.identity import tokens
from tests.idp import signin
from tests.idp.server import TestIdp
from wardgate.identity.oidc import OidcVerifier, ProviderMetadata, Reason, TokenRejected


class Clock:
    """Monotonic time that the test moves; stands in for waiting out the refetch interval."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(oidc_provider: TestIdp, clock: Clock) -> Iterator[OidcVerifier]:
    v = OidcVerifier(tokens.settings(oidc_provider), monotonic=clock)
    yield v
    v.close()


def test_discovery(oidc_provider: TestIdp, verifier: OidcVerifier) -> None:
    meta = verifier.metadata
    assert meta == ProviderMetadata(
        issuer=oidc_provider.issuer,
        jwks_uri=f"{oidc_provider.issuer}/jwks",
        token_endpoint=f"{oidc_provider.issuer}/token",
        authorization_endpoint=f"{oidc_provider.issuer}/auth",
        device_authorization_endpoint=f"{oidc_provider.issuer}/device/auth",
        userinfo_endpoint=f"{oidc_provider.issuer}/me",
    )


def test_code_flow_with_pkce_tokens_are_accepted(
    oidc_provider: TestIdp, verifier: OidcVerifier
) -> None:
    signed_in = signin.code_flow(oidc_provider.issuer, "alice")
    id_token = verifier.verify(signed_in.id_token)
    assert id_token.header["alg"] == "RS256"
    assert id_token.identity.subject == "alice"
    assert id_token.identity.roles == ("engineer",)
    access = verifier.verify(signed_in.access_token)
    assert (access.header["alg"], access.header["typ"]) == ("ES256", "at+jwt")
    assert access.claims["aud"] == tokens.AUDIENCE
    assert access.identity.roles == ("engineer",)
    assert signed_in.refresh_token
    refreshed = signin.refresh(oidc_provider.issuer, signed_in.refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    assert verifier.verify(refreshed.json()["access_token"]).identity.subject == "alice"


def test_wrong_password_gets_no_tokens(oidc_provider: TestIdp) -> None:
    with pytest.raises(AssertionError, match="no redirect to the client"):
        signin.code_flow(oidc_provider.issuer, "alice", password="guess")


def test_device_flow_tokens_are_accepted(oidc_provider: TestIdp, verifier: OidcVerifier) -> None:
    signed_in = signin.device_flow(oidc_provider.issuer, "carol")
    identity = verifier.verify(signed_in.access_token).identity
    assert identity.subject == "carol"
    assert identity.roles == ("compliance-officer",)
    assert verifier.verify(signed_in.id_token).identity.subject == "carol"


def test_key_rotation_is_accepted_after_one_refetch(
    oidc_provider: TestIdp, verifier: OidcVerifier, clock: Clock
) -> None:
    before = signin.code_flow(oidc_provider.issuer, "bob")
    assert verifier.verify(before.access_token).identity.subject == "bob"
    assert verifier.jwks.fetches == 1
    oidc_provider.rotate()
    after = signin.code_flow(oidc_provider.issuer, "bob")
    clock.now += 31
    assert verifier.verify(after.access_token).identity.subject == "bob"
    assert verifier.verify(after.id_token).identity.subject == "bob"
    assert verifier.jwks.fetches == 2
    # The old keys are gone from the provider's JWKS, so tokens they signed are no longer trusted.
    with pytest.raises(TokenRejected) as refused:
        verifier.verify(before.access_token)
    assert refused.value.reason is Reason.UNKNOWN_KEY


def test_unknown_kid_refetches_at_most_once_per_interval(
    oidc_provider: TestIdp, verifier: OidcVerifier, clock: Clock
) -> None:
    stranger = tokens.sign(
        RSAKey.generate_key(2048, {"kid": "made-up", "alg": "RS256"}),
        tokens.claims(oidc_provider),
    )
    genuine = tokens.sign(oidc_provider.key("ES256"), tokens.claims(oidc_provider))
    verifier.verify(genuine)
    assert verifier.jwks.fetches == 1

    def refused_after(seconds: float) -> int:
        clock.now += seconds
        with pytest.raises(TokenRejected) as refused:
            verifier.verify(stranger)
        assert refused.value.reason is Reason.UNKNOWN_KEY
        return verifier.jwks.fetches

    assert refused_after(31) == 2  # one refetch, then refused
    assert refused_after(1) == 2  # within the interval: no refetch
    assert refused_after(20) == 2
    assert refused_after(10) == 3  # 31 s after the last refetch
    verifier.verify(genuine)
    assert verifier.jwks.fetches == 3  # known kids never refetch
