"""Gateway credentials, the composite authenticator and the identity configuration, without
sockets: a real state store in a temporary directory, real exchanges."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.config import ConfigError, loads
from wardgate.identity.authenticator import (
    PASSWORD,
    CompositeAuthenticator,
    StaticAuthenticator,
    StaticUser,
)
from wardgate.identity.credential_auth import TLS_ONLY, CredentialAuthenticator
from wardgate.identity.credentials import CredentialRefused, issue, parse_duration, verify
from wardgate.identity.revocation import sign_in_check
from wardgate.identity.scram import Verifier
from wardgate.identity.state import StateStore


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state.db")
    s.add_human("alice", "alice@example.com", ("engineer", "analyst"), source="test")
    return s


def test_durations() -> None:
    assert parse_duration("8h") == 8 * 3600
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration(90) == 90
    assert parse_duration("1h30m") == 5400 and parse_duration("1w") == 7 * 86400  # pytimeparse2
    for bad in ("", "soon", "1x", "-1h", "0"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_roles_are_the_owners_intersected(store: StateStore) -> None:
    alice = store.human("alice")
    assert alice is not None
    given = issue(store, "agent", "bot", alice, 60, {}, roles=("analyst", "admin"))
    identity = verify(store, given.secret, "bot")
    assert identity.roles == ("analyst",)
    assert identity.subject == "agent:bot" and identity.on_behalf_of == ("alice",)
    plain = issue(store, "agent", "bot2", alice, 60, {})
    assert verify(store, plain.secret, "agent:bot2").roles == ("engineer", "analyst")


def test_expired_and_tampered(store: StateStore) -> None:
    alice = store.human("alice")
    assert alice is not None
    given = issue(store, "human", "alice", alice, 60, {}, now=1000.0)
    with pytest.raises(CredentialRefused, match="expired"):
        verify(store, given.secret, "alice")
    fresh = issue(store, "human", "alice", alice, 60, {})
    assert verify(store, fresh.secret, "alice@example.com").subject == "alice"
    tampered = fresh.secret[:-1] + ("A" if fresh.secret[-1] != "A" else "B")
    with pytest.raises(CredentialRefused, match="unknown gateway credential"):
        verify(store, tampered, "alice")
    with pytest.raises(CredentialRefused, match="malformed"):
        verify(store, "wgc_nope", "alice")


def test_credential_without_tls_is_refused_before_any_secret(store: StateStore) -> None:
    exchange = CredentialAuthenticator(store).begin("alice", tls=False, mechanism=PASSWORD)
    assert exchange.mechanism != PASSWORD  # the client is never asked for the secret in clear
    assert TLS_ONLY in exchange.step(b"n,,n=alice,r=abc").failure


def test_composite_routes_by_shape_and_checks_revocation(store: StateStore) -> None:
    alice = store.human("alice")
    assert alice is not None
    static = StaticAuthenticator([StaticUser("alice", Verifier.from_password("pw"), ("x",))])
    composite = CompositeAuthenticator(
        static, CredentialAuthenticator(store), check=sign_in_check(store)
    )
    secret = issue(store, "human", "alice", alice, 60, {}).secret
    step = composite.begin("alice", tls=True, mechanism=PASSWORD).step(secret.encode() + b"\0")
    assert step.identity is not None and step.identity.method == "credential"
    step = composite.begin("alice", tls=True, mechanism=PASSWORD).step(b"pw\0")
    assert step.identity is not None and step.identity.method == PASSWORD
    # a JWT without OIDC configured goes to the static users, refused like any wrong password
    jwt = composite.begin("alice", tls=True, mechanism=PASSWORD).step(b"aa.bb.cc\0")
    assert "password does not match" in jwt.failure
    store.revoke_human("alice", "left", {"type": "user.revoked"})
    step = composite.begin("alice", tls=True, mechanism=PASSWORD).step(b"pw\0")
    assert step.identity is None and "'alice' is revoked" in step.failure
    assert store.outbox()[-1][1] == {"type": "user.revoked"}  # queued with the change


def test_identity_config(tmp_path: Path) -> None:
    text = """
identity:
  state: state/identity.db
  credential_max_ttl: 12h
  oidc: {issuer: "https://idp.example.com", client_id: wardgate, roles_claim: roles}
"""
    config = loads(text, tmp_path / "wardgate.yaml")
    assert config.identity.state == tmp_path / "state/identity.db"
    assert config.identity.credential_max_ttl == 12 * 3600
    assert config.identity.oidc is not None and config.identity.oidc.roles_claim == "roles"
    assert loads("{}", tmp_path / "w.yaml").identity.state is None
    with pytest.raises(ConfigError, match="credential_ttl"):
        loads("identity: {credential_ttl: 2d}", tmp_path / "w.yaml")
