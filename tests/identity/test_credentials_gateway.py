"""The contractor story without an identity provider: an agent credential for alice, cursor's
psycopg session, ``wardgate users revoke alice`` from another process, the session ended within
5 s and the credential refused from then on, each step in the audit. The CLI runs as a
subprocess against the same state file as the running gateway; PostgreSQL is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import Edit, RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.config import Config
from wardgate.demo.postgres import LocalPostgres


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


def identity_config(
    tmp: Path, pki_dir: Path, pg: LocalPostgres, edit: Edit | None = None
) -> Config:
    """A TLS listener taking passwords, and the identity state in ``tmp``; ``edit`` after."""

    def identity(raw: dict[str, Any]) -> None:
        raw["identity"] = {"state": "state.db", "credential_max_ttl": "12h", "watch_interval": 0.5}
        if edit is not None:
            edit(raw)

    target = target_entry(pg, "postgres")
    return build_config(tmp, pki_dir, target, auth="password", edit=identity)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path, pg_server: LocalPostgres
) -> Iterator[RunningGateway]:
    config = identity_config(tmp_path_factory.mktemp("gw"), pki_dir, pg_server)
    yield from running(config, pki_dir / "ca.pem")


def cli(gw: RunningGateway, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    config = gw.gateway.config.identity.state
    assert config is not None
    env = {**os.environ, "WARDGATE_CONFIG": str(config.parent / "wardgate.yaml")}
    result = subprocess.run(
        [sys.executable, "-m", "wardgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if ok and result.returncode != 0:
        raise AssertionError(f"wardgate {' '.join(args)} failed: {result.stderr}")
    return result


def refused(gw: RunningGateway, user: str, password: str, tag: str) -> dict[str, Any]:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gw.dsn(user, password=password, application_name=tag))
    event = wait_for_event(gw, type="session.refused", session__application=tag)
    assert event["sqlstate"] == "28P01"
    return event


def stored_bytes(gw: RunningGateway) -> bytes:
    state = gw.gateway.config.identity.state
    assert state is not None
    # Read in another process: closing a descriptor of the file here would drop the gateway's
    # POSIX locks on it (they are per process), and SQLite would then lose track of its readers.
    files = [str(p) for p in state.parent.glob(state.name + "*")]
    return subprocess.run(["cat", *files], capture_output=True, check=True, timeout=30).stdout


def test_contractor_story(gateway: RunningGateway) -> None:
    secret = cli(gateway, "agent", "create", "--name", "cursor", "--owner", "alice").stdout.strip()
    assert secret.startswith("wgc_")
    created = wait_for_event(gateway, type="credential.created", credential__name="cursor")
    assert created["credential"]["owner"] == "alice"

    conn = psycopg.connect(gateway.dsn("cursor", password=secret, application_name="cursor"))
    assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    start = wait_for_event(gateway, type="session.start", session__application="cursor")
    assert start["who"]["subject"] == "agent:cursor"
    assert start["who"]["on_behalf_of"] == ["alice"]
    assert start["who"]["roles"] == ["engineer"]
    statement = wait_for_event(gateway, type="statement", statement="SELECT 40 + 2")
    assert statement["who"]["on_behalf_of"] == ["alice"]

    cli(gateway, "users", "revoke", "alice", "--reason", "contractor offboarded")
    revoked_at = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as excinfo:
        while time.monotonic() - revoked_at < 5:
            conn.execute("SELECT 1")
            time.sleep(0.1)
    assert time.monotonic() - revoked_at < 5
    assert "access of 'alice' was revoked" in str(excinfo.value)
    conn.close()

    refusal = refused(gateway, "cursor", secret, "cursor-again")
    assert "owner 'alice' is revoked" in refusal["reason"]
    assert refusal["who"]["claimed_user"] == "cursor"
    assert "agent:cursor for alice" in refusal["reason"]

    revoked = wait_for_event(gateway, type="user.revoked", subject="alice")
    assert revoked["reason"] == "contractor offboarded"
    ended = wait_for_event(gateway, type="session.terminated", session__application="cursor")
    assert ended["who"]["subject"] == "agent:cursor"
    assert ended["who"]["on_behalf_of"] == ["alice"]
    # alice's own password (a static user) is revoked with her
    refused(gateway, "alice", "alice-secret", "alice-static")

    _, _, raw_secret = secret.split("_", 2)
    assert raw_secret.encode() not in stored_bytes(gateway)
    assert raw_secret not in gateway.audit_path.read_text()


def test_expired_credential_is_refused(gateway: RunningGateway) -> None:
    secret = cli(gateway, "credential", "--user", "bob", "--ttl", "2s").stdout.strip()
    with psycopg.connect(gateway.dsn("bob", password=secret, application_name="bob-fresh")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    start = wait_for_event(gateway, type="session.start", session__application="bob-fresh")
    assert start["who"]["subject"] == "bob" and start["who"]["method"] == "credential"
    time.sleep(2.2)
    assert "credential expired" in refused(gateway, "bob", secret, "bob-expired")["reason"]


def test_a_live_session_ends_when_its_credential_expires(gateway: RunningGateway) -> None:
    """Issue 14, item 7: an agent credential past its TTL kept its open session."""
    issued = cli(gateway, "agent", "create", "--name", "ttl-bot", "--owner", "bob", "--ttl", "4s")
    secret = issued.stdout.strip()
    expires = time.time() + 4  # at most: the credential was made before this line
    conn = psycopg.connect(gateway.dsn("ttl-bot", password=secret, application_name="ttl-bot"))
    assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError) as excinfo:
        while time.time() < expires + 5:
            conn.execute("SELECT 1")
            time.sleep(0.1)
    ended_at = time.time()
    conn.close()
    assert ended_at < expires + 2  # within the watcher's interval (0.5 s), with room
    assert "the credential expired" in str(excinfo.value)
    ended = wait_for_event(gateway, type="session.terminated", session__application="ttl-bot")
    assert ended["reason"] == "the credential expired"
    assert ended["who"]["subject"] == "agent:ttl-bot" and ended["who"]["on_behalf_of"] == ["bob"]


def test_unknown_and_mismatched_credentials_are_refused(gateway: RunningGateway) -> None:
    fake = "wgc_0123456789abcdef_" + "A" * 43
    assert "unknown gateway credential" in refused(gateway, "bob", fake, "fake")["reason"]
    secret = cli(gateway, "credential", "--user", "bob").stdout.strip()
    event = refused(gateway, "carol", secret, "wrong-user")
    assert "credential is for 'bob'" in event["reason"]


def test_agent_roles_never_exceed_the_owner(gateway: RunningGateway) -> None:
    cli(gateway, "users", "add", "erin", "--roles", "engineer,analyst")
    secret = cli(
        gateway, "agent", "create", "--name", "bot", "--owner", "erin", "--roles", "analyst,admin"
    ).stdout.strip()
    with psycopg.connect(gateway.dsn("bot", password=secret, application_name="bot")) as conn:
        conn.execute("SELECT 1")
    start = wait_for_event(gateway, type="session.start", session__application="bot")
    assert start["who"]["roles"] == ["analyst"]
    assert start["who"]["on_behalf_of"] == ["erin"]


def test_service_account_needs_owner_and_expiry(gateway: RunningGateway) -> None:
    no_owner = cli(gateway, "service", "create", "--name", "etl", "--ttl", "30d", ok=False)
    assert no_owner.returncode == 2 and "--owner" in no_owner.stderr
    no_ttl = cli(gateway, "service", "create", "--name", "etl", "--owner", "bob", ok=False)
    assert no_ttl.returncode == 2 and "--ttl" in no_ttl.stderr
    too_long = cli(
        gateway, "service", "create", "--name", "etl", "--owner", "bob", "--ttl", "400d", ok=False
    )
    assert too_long.returncode == 2 and "maximum" in too_long.stderr
    nobody = cli(
        gateway, "service", "create", "--name", "etl", "--owner", "zed", "--ttl", "1d", ok=False
    )
    assert nobody.returncode == 1 and "unknown human 'zed'" in nobody.stderr


def test_orphaned_listing(gateway: RunningGateway) -> None:
    cli(gateway, "users", "add", "dave", "--email", "Dave@Example.com", "--roles", "engineer")
    cli(gateway, "service", "create", "--name", "etl", "--owner", "dave", "--ttl", "30d")
    cli(gateway, "agent", "create", "--name", "helper", "--owner", "dave")
    cli(gateway, "credential", "--user", "bob")
    cli(gateway, "users", "revoke", "dave@example.com")
    orphans = json.loads(cli(gateway, "credentials", "list", "--orphaned", "--json").stdout)
    mine = {o["subject"] for o in orphans if o["owner"] == "dave"}
    assert mine == {"service:etl", "agent:helper"}
    assert all(o["owner_status"] == "revoked" and o["orphaned"] for o in orphans)
    assert not any(o["owner"] == "bob" for o in orphans)
    everything = cli(gateway, "credentials", "list").stdout
    assert "owner bob (active)" in everything and "orphaned" in everything


def test_credential_over_plaintext_is_refused(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, gateway: RunningGateway
) -> None:
    secret = cli(gateway, "credential", "--user", "bob").stdout.strip()

    def plaintext(raw: dict[str, Any]) -> None:  # beside the module's gateway, on its state
        raw["listeners"]["postgres"]["tls"]["required"] = False
        raw["identity"]["state"] = str(gateway.gateway.config.identity.state)

    plain = running(identity_config(tmp_path, pki_dir, pg_server, plaintext), pki_dir / "ca.pem")
    gw = next(plain)
    try:
        with pytest.raises(psycopg.OperationalError, match="requires an encrypted connection"):
            psycopg.connect(gw.dsn("bob", password=secret, sslmode="disable"))
        refusal = wait_for_event(gw, type="session.refused", who__claimed_user="bob")
        assert refusal["sqlstate"] == "28000" and refusal["session"]["client_tls"] == ""
    finally:
        next(plain, None)  # runs the harness teardown
