"""Re-validation that fails safe without locking people out for good (issue 19).

The gateway re-validates against the demo's development OpenID provider (``wardgate.demo.idp``,
real HTTP on 127.0.0.1), which a test can stop, restart with or without its grants, and whose
accounts it can disable. The gateway is real (the test harness), PostgreSQL is real, and people
sign in with the real ``wardgate login`` (its browser scripted by ``tests.idp.signin``).

- a provider that forgets its grants suspends the person and their agents; a new sign-in
  restores them; their static password keeps working meanwhile;
- a provider that says the account is disabled, or SCIM deactivation, revokes for good;
- a provider outage shorter than the grace changes nothing, a longer one suspends, and the
  provider answering again restores;
- restarting the provider (which keeps its grants on disk, as ``wardgate demo``'s now does) and
  the gateway suspends nobody.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.identity.test_login import (
    SCIM_TOKEN,
    create,
    login,
    query_until_ended,
    scim,
    wardgate,
)
from tests.idp import signin
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.config import Config
from wardgate.demo.idp import DevProviderServer, start_dev_provider
from wardgate.demo.idp_keys import DevUser, demo_users
from wardgate.demo.idp_tokens import GATEWAY_AUDIENCE
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.run import ROLE_MAPPING

pytestmark = pytest.mark.slow
GRACE = 4.0  # seconds a provider may be unreachable before anyone is suspended


def _users() -> list[DevUser]:
    extra = [
        DevUser(name, signin.PASSWORDS[name], name.title(), f"{name}@clinic.example", groups)
        for name, groups in (
            ("dave", ("engineering",)),
            ("frank", ("clinicians",)),
            ("gina", ("engineering",)),
        )
    ]
    return [*demo_users({n: signin.PASSWORDS[n] for n in ("alice", "bob", "carol")}), *extra]


@dataclass
class Provider:
    """The development provider, restartable on the same address."""

    folder: Path
    server: DevProviderServer | None = None
    port: int = 0
    generation: int = 0

    @property
    def issuer(self) -> str:
        assert self.server is not None
        return self.server.issuer

    def start(self, *, keep_grants: bool = True) -> None:
        if not keep_grants:
            self.generation += 1  # a new, empty grants file: the provider forgot everything
        self.server = start_dev_provider(
            _users(), self.folder / "keys.json", port=self.port,
            grants_file=self.folder / f"grants-{self.generation}.json",
        )  # fmt: skip
        self.port = int(self.issuer.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def set_enabled(self, name: str, enabled: bool) -> None:
        action = "enable" if enabled else "disable"
        answer = httpx.post(f"{self.issuer}/dev/users/{name}/{action}", timeout=10)
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    held = Provider(tmp_path_factory.mktemp("dev-idp"))
    held.start()
    try:
        yield held
    finally:
        held.stop()


def gateway_config(tmp: Path, pki: Path, pg: LocalPostgres, issuer: str) -> Config:
    def identity(raw: dict[str, Any]) -> None:
        raw["listeners"]["api"] = {
            "host": "127.0.0.1",
            "port": 0,
            "tls": raw["listeners"]["postgres"]["tls"],
        }
        raw["identity"] = {
            "state": "state.db",
            "watch_interval": 0.25,
            "revalidate_interval": 1,
            "revalidate_grace": GRACE,
            "oidc": {
                "issuer": issuer,
                "client_id": "wardgate",
                "audiences": [GATEWAY_AUDIENCE],
                "role_mapping": ROLE_MAPPING,
                "http_timeout": 2,
            },
            "scim": {"token": SCIM_TOKEN},
        }

    target = target_entry(pg, "postgres")
    return build_config(tmp, pki, target, auth="password", edit=identity)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, provider: Provider
) -> Iterator[RunningGateway]:
    pki = tmp_path_factory.mktemp("pki")
    config = gateway_config(tmp_path_factory.mktemp("gw"), pki, pg_server, provider.issuer)
    yield from running(config, pki / "ca.pem")


def admin(gw: RunningGateway, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``wardgate ARGS`` as an administrator on the gateway host (its configuration file)."""
    state = gw.gateway.config.identity.state
    assert state is not None
    done = wardgate(home, *args, "-c", str(state.parent / "wardgate.yaml"))
    return done


def standing(gw: RunningGateway, home: Path, subject: str) -> dict[str, Any]:
    listed = admin(gw, home, "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found: dict[str, Any] = next(h for h in json.loads(listed.stdout) if h["subject"] == subject)
    return found


def agent_session(
    gw: RunningGateway, home: Path, owner: str
) -> tuple[str, psycopg.Connection[Any]]:
    login(gw, home, owner)
    secret = create(home, "agent", "create", "--name", f"{owner}-cursor", "--ttl", "8h")
    conn = psycopg.connect(gw.dsn(f"{owner}-cursor", password=secret, application_name=owner))
    assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    return secret, conn


def test_a_provider_that_forgets_its_grants_suspends_and_a_new_sign_in_restores(
    gateway: RunningGateway, provider: Provider, tmp_path: Path
) -> None:
    secret, conn = agent_session(gateway, tmp_path, "alice")
    time.sleep(1.5)  # a re-validation round passes: nothing changes
    conn.execute("SELECT 1")

    provider.stop()
    provider.start(keep_grants=False)  # the provider restarts and forgets every grant
    try:
        # within one re-validation interval (1 s) and one watch (0.25 s)
        ended = query_until_ended(conn, within=3)
    finally:
        conn.close()
    assert "access of 'alice' was suspended" in ended and "wardgate login" in ended
    alice = standing(gateway, tmp_path, "alice")
    assert alice["status"] == "suspended" and "unknown refresh token" in alice["reason"]
    listed = admin(gateway, tmp_path, "users", "list")
    assert any(
        line.split()[:2] == ["alice", "suspended"] and "unknown refresh token" in line
        for line in listed.stdout.splitlines()
    ), listed.stdout
    suspended = wait_for_event(gateway, type="user.suspended", subject="alice")
    assert suspended["source"] == "idp" and "invalid_grant" in suspended["reason"]
    assert wait_for_event(gateway, type="session.terminated", session__application="alice")

    # cursor is refused at sign-in, told how to recover; alice's own static password still works
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(gateway.dsn("alice-cursor", password=secret, application_name="again"))
    assert "wardgate login" in str(refused.value)
    refusal = wait_for_event(gateway, type="session.refused", session__application="again")
    assert "owner 'alice' is suspended" in refusal["reason"]
    with psycopg.connect(gateway.dsn("alice", application_name="static")) as static:
        assert static.execute("SELECT 1").fetchone() == (1,)
    # an old (unexpired) token of alice does not restore her: it predates the suspension
    again = wardgate(tmp_path, "agent", "create", "--name", "other")
    assert (
        again.returncode == 1 and "suspended" in again.stderr and "wardgate login" in again.stderr
    )

    login(gateway, tmp_path, "alice")  # a fresh sign-in
    restored = wait_for_event(gateway, type="user.restored", subject="alice")
    assert restored["source"] == "oidc" and "unknown refresh token" in restored["suspended_for"]
    assert standing(gateway, tmp_path, "alice")["status"] == "active"
    with psycopg.connect(gateway.dsn("alice-cursor", password=secret)) as cursor:
        assert cursor.execute("SELECT 1").fetchone() == (1,)
    time.sleep(1.5)  # and the new grant re-validates
    assert standing(gateway, tmp_path, "alice")["status"] == "active"


def test_the_provider_disabling_the_account_revokes_for_good(
    gateway: RunningGateway, provider: Provider, tmp_path: Path
) -> None:
    secret, conn = agent_session(gateway, tmp_path, "bob")
    provider.set_enabled("bob", False)
    try:
        ended = query_until_ended(conn, within=3)
        assert "access of 'bob' was revoked" in ended
    finally:
        provider.set_enabled("bob", True)
        conn.close()
    revoked = wait_for_event(gateway, type="user.revoked", subject="bob")
    assert revoked["source"] == "idp" and "disabled" in revoked["reason"]
    assert standing(gateway, tmp_path, "bob")["status"] == "revoked"
    # permanent: an administrator cannot restore him, and a new sign-in does not
    restore = admin(gateway, tmp_path, "users", "restore", "bob")
    assert restore.returncode == 1 and "permanent" in restore.stderr
    token = signin.code_flow(provider.issuer, "bob").id_token
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gateway.dsn("bob-cursor", password=secret))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gateway.dsn("bob", password=token, application_name="bob-token"))
    refusal = wait_for_event(gateway, type="session.refused", session__application="bob-token")
    assert "'bob' is revoked" in refusal["reason"]


def test_scim_deactivation_revokes_and_ends_sessions_within_a_second(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    made = scim(gateway, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "dave@clinic.example", "externalId": "dave", "active": True,
    })  # fmt: skip
    assert made.status_code == 201, made.text
    _, conn = agent_session(gateway, tmp_path, "dave")
    patch = scim(gateway, "PATCH", f"/Users/{made.json()['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    })  # fmt: skip
    assert patch.status_code == 200, patch.text
    try:
        assert "access of 'dave' was revoked" in query_until_ended(conn, within=1.0)
    finally:
        conn.close()
    assert standing(gateway, tmp_path, "dave")["status"] == "revoked"
    assert wait_for_event(gateway, type="user.revoked", subject="dave")["source"] == "scim"


def test_an_outage_shorter_than_the_grace_changes_nothing_a_longer_one_suspends(
    gateway: RunningGateway, provider: Provider, tmp_path: Path
) -> None:
    secret, conn = agent_session(gateway, tmp_path, "carol")
    stopped = time.monotonic()  # before: the first failed re-validation may come while it stops
    provider.stop()
    try:
        time.sleep(GRACE / 2)
        conn.execute("SELECT 1")  # still alive
        assert standing(gateway, tmp_path, "carol")["status"] == "active"
        degraded = wait_for_event(gateway, type="revalidate.degraded")
        assert degraded["grace"] == GRACE and "token endpoint" in degraded["reason"]
        identity = gateway.gateway.health()["identity"]
        assert isinstance(identity, dict) and identity["degraded_since"] is not None
        ended = query_until_ended(conn, within=GRACE + 3)
        assert time.monotonic() - stopped >= GRACE
        assert "access of 'carol' was suspended" in ended
        carol = standing(gateway, tmp_path, "carol")
        assert carol["status"] == "suspended" and "could not be reached" in carol["reason"]
    finally:
        conn.close()
        provider.start()  # back, with the grants it kept
    restored = wait_for_event(gateway, timeout=6, type="user.restored", subject="carol")
    assert restored["source"] == "idp"
    assert standing(gateway, tmp_path, "carol")["status"] == "active"
    with psycopg.connect(gateway.dsn("carol-cursor", password=secret)) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)
    assert wait_for_event(gateway, type="revalidate.recovered")
    identity = gateway.gateway.health()["identity"]
    assert isinstance(identity, dict) and identity["degraded_since"] is None


def test_restarting_provider_and_gateway_as_the_demo_does_suspends_nobody(
    pg_server: LocalPostgres, tmp_path: Path
) -> None:
    """``wardgate demo`` stopped and started again after ``wardgate login``: the provider keeps
    its grants on disk, the gateway its state; frank and his agent can still connect."""
    provider = Provider(tmp_path / "idp")
    provider.start()
    (tmp_path / "gw").mkdir()
    config = gateway_config(tmp_path / "gw", tmp_path / "pki", pg_server, provider.issuer)
    ca = tmp_path / "pki" / "ca.pem"
    try:
        with contextlib.contextmanager(running)(config, ca) as first:
            secret, conn = agent_session(first, tmp_path, "frank")
            conn.close()
        provider.stop()
        provider.start()  # the same address and grants file, as the demo's restart
        with contextlib.contextmanager(running)(config, ca) as second:
            time.sleep(2.5)  # two re-validation rounds of the restarted gateway
            assert standing(second, tmp_path, "frank")["status"] == "active"
            with psycopg.connect(second.dsn("frank-cursor", password=secret)) as again:
                assert again.execute("SELECT 1").fetchone() == (1,)
            assert not [e for e in second.events() if e["type"] == "user.suspended"]
            identity = second.gateway.health()["identity"]
            assert isinstance(identity, dict) and identity["revalidated"] == 1
    finally:
        provider.stop()


def test_an_administrator_restores_a_suspended_human(
    gateway: RunningGateway, provider: Provider, tmp_path: Path
) -> None:
    secret, conn = agent_session(gateway, tmp_path, "gina")
    assert admin(gateway, tmp_path, "users", "restore", "gina").returncode == 0  # active: no-op
    provider.stop()
    provider.start(keep_grants=False)
    try:
        assert "access of 'gina' was suspended" in query_until_ended(conn, within=3)
    finally:
        conn.close()
    done = admin(gateway, tmp_path, "users", "restore", "gina", "--reason", "checked by phone")
    assert done.returncode == 0 and "restored gina" in done.stderr
    restored = wait_for_event(gateway, type="user.restored", subject="gina")
    assert restored["source"] == "cli" and restored["reason"] == "checked by phone"
    assert restored["who"]["claimed_user"].startswith("admin:")
    with psycopg.connect(gateway.dsn("gina-cursor", password=secret)) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)
    unknown = admin(gateway, tmp_path, "users", "restore", "nobody")
    assert unknown.returncode == 1 and "unknown human" in unknown.stderr
