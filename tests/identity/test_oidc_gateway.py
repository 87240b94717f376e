"""End to end: psycopg signs in to a running gateway with a token from the real test provider as
its password, over verify-full TLS; refusals are 28P01 with the reason in the audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.identity import tokens
from tests.idp import signin
from tests.idp.server import TestIdp
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.oidc_auth import OidcAuthenticator
from wardgate.pki import ensure_dev_pki


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


def _gateway(
    tmp: Path, pki_dir: Path, pg: LocalPostgres, idp: TestIdp, **listener: Any
) -> Iterator[RunningGateway]:
    settings = {"auth": "password", **listener}
    config = build_config(tmp, pki_dir, target_entry(pg, "postgres"), **settings)
    verifier = OidcVerifier(tokens.settings(idp))
    authenticator = OidcAuthenticator(verifier)
    authenticator.prefetch()
    try:
        yield from running(config, pki_dir / "ca.pem", authenticator=authenticator)
    finally:
        verifier.close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    oidc_provider: TestIdp,
) -> Iterator[RunningGateway]:
    yield from _gateway(tmp_path_factory.mktemp("gw"), pki_dir, pg_server, oidc_provider)


@pytest.mark.parametrize("kind", ["access_token", "id_token"])
def test_token_as_password_over_tls(
    gateway: RunningGateway, oidc_provider: TestIdp, kind: str
) -> None:
    token = getattr(signin.code_flow(oidc_provider.issuer, "alice"), kind)
    with psycopg.connect(gateway.dsn("alice", password=token, application_name=kind)) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    start = wait_for_event(gateway, type="session.start", session__application=kind)
    assert start["who"]["verified"] is True
    assert start["who"]["subject"] == "alice"
    assert start["who"]["method"] == "oidc"
    assert start["who"]["roles"] == ["engineer"]


def _refused(gateway: RunningGateway, user: str, password: str, tag: str) -> dict[str, Any]:
    with pytest.raises(psycopg.OperationalError) as excinfo:
        psycopg.connect(gateway.dsn(user, password=password, application_name=tag))
    assert f'password authentication failed for user "{user}"' in str(excinfo.value)
    event = wait_for_event(gateway, type="session.refused", session__application=tag)
    assert event["sqlstate"] == "28P01"  # libpq does not pass a start-up SQLSTATE on
    return event


def test_tampered_token_is_refused_and_audited(
    gateway: RunningGateway, oidc_provider: TestIdp
) -> None:
    header, _, signature = signin.code_flow(oidc_provider.issuer, "bob").access_token.split(".")
    forged = tokens.part(tokens.claims(oidc_provider, sub="alice", aud=tokens.AUDIENCE))
    event = _refused(gateway, "alice", f"{header}.{forged}.{signature}", "tampered")
    assert event["who"] == {"verified": False, "claimed_user": "alice"}
    assert "oidc: bad signature" in event["reason"]
    assert "token claims 'alice'" in event["reason"]


def test_token_of_another_user_is_refused(gateway: RunningGateway, oidc_provider: TestIdp) -> None:
    bobs = signin.code_flow(oidc_provider.issuer, "bob").access_token
    event = _refused(gateway, "alice", bobs, "mismatch")
    assert "user name does not match token" in event["reason"]
    assert "token claims 'bob'" in event["reason"]


def test_not_a_token_is_refused(gateway: RunningGateway) -> None:
    event = _refused(gateway, "alice", "alice-secret", "static-password")
    assert "oidc: malformed token" in event["reason"]


def test_token_is_never_asked_for_without_tls(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, oidc_provider: TestIdp
) -> None:
    pki = ensure_dev_pki(pki_dir)
    optional = {"cert": str(pki.server_cert), "key": str(pki.server_key), "required": False}
    token = signin.code_flow(oidc_provider.issuer, "alice").access_token
    for gw in _gateway(
        tmp_path, pki_dir, pg_server, oidc_provider, auth="scram-sha-256", tls=optional
    ):
        dsn = gw.dsn("alice", password=token, sslmode="disable", application_name="plain")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn)
        event = wait_for_event(gw, type="session.refused", session__application="plain")
        assert event["sqlstate"] == "28P01"
        assert "OIDC tokens are accepted only over TLS" in event["reason"]
        assert event["session"]["client_tls"] == ""
