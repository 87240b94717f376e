"""``OidcAuthenticator`` as a protocol sees it: which mechanism it asks for, and what it answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.identity import tokens
from tests.idp.server import TestIdp
from wardgate.identity.authenticator import PASSWORD
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.oidc_auth import TLS_ONLY, OidcAuthenticator
from wardgate.identity.scram import MECHANISM as SCRAM


@pytest.fixture
def authenticator(oidc_provider: TestIdp) -> Iterator[OidcAuthenticator]:
    verifier = OidcVerifier(tokens.settings(oidc_provider, username_claim="email"))
    yield OidcAuthenticator(verifier)
    verifier.close()


def test_without_tls_the_token_is_never_asked_for(authenticator: OidcAuthenticator) -> None:
    exchange = authenticator.begin("alice@hospital.example", tls=False, mechanism=PASSWORD)
    # SCRAM's first client message carries no secret; the refusal comes before any proof.
    assert exchange.mechanism == SCRAM
    step = exchange.step(b"n,,n=,r=abc")
    assert step.identity is None
    assert TLS_ONLY in step.failure


def test_over_tls_the_token_is_the_password(
    oidc_provider: TestIdp, authenticator: OidcAuthenticator
) -> None:
    exchange = authenticator.begin("Alice@Hospital.example", tls=True, mechanism=PASSWORD)
    assert exchange.mechanism == PASSWORD
    token = tokens.sign(oidc_provider.key("RS256"), tokens.claims(oidc_provider))
    step = exchange.step(token.encode() + b"\x00")
    assert step.failure == ""
    assert step.identity is not None
    assert (step.identity.subject, step.identity.method) == ("alice", "oidc")


def test_user_name_must_match_the_login_claim(
    oidc_provider: TestIdp, authenticator: OidcAuthenticator
) -> None:
    exchange = authenticator.begin("alice", tls=True, mechanism=PASSWORD)
    token = tokens.sign(oidc_provider.key("ES256"), tokens.claims(oidc_provider))
    step = exchange.step(token.encode())
    assert step.identity is None
    assert "user name does not match token" in step.failure
    assert "email 'alice@hospital.example'" in step.failure
