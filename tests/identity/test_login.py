"""``wardgate login`` against the real test provider, and what a signed-in human can then do.

The gateway runs with its API listener (TLS, the dev PKI), OIDC, the state store and SCIM. The
command line runs as a subprocess with its own configuration directory (``XDG_CONFIG_HOME``);
the person's browser is scripted (``tests.idp.signin``). PostgreSQL is real.

The contractor story of issue 3 is ``test_contractor_story``: alice, provisioned by SCIM, signs
in, creates an agent credential for cursor, cursor's psycopg session runs queries, SCIM
deactivates alice, the session ends within 5 s and the credential is refused from then on.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.identity import tokens
from tests.idp import signin
from tests.idp.server import TestIdp
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.sql.fingerprint import statement_digest

SCIM_TOKEN = "scim-test-token-" + "x" * 32
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    oidc_provider: TestIdp,
) -> Iterator[RunningGateway]:
    def identity(raw: dict[str, Any]) -> None:
        raw["listeners"]["api"] = {
            "host": "127.0.0.1",
            "port": 0,
            "tls": raw["listeners"]["postgres"]["tls"],
        }
        raw["identity"] = {
            "state": "state.db",
            "watch_interval": 0.5,
            "revalidate_interval": 1,
            "oidc": {
                "issuer": oidc_provider.issuer,
                "client_id": "wardgate",
                "audiences": [tokens.AUDIENCE],
                "role_mapping": {k: list(v) for k, v in tokens.ROLE_MAPPING.items()},
            },
            "scim": {"token": SCIM_TOKEN},
        }
        raw["approvals"] = {"approver_roles": ["compliance-officer"]}

    target = target_entry(pg_server, "postgres")
    config = build_config(
        tmp_path_factory.mktemp("gw"), pki_dir, target, auth="password", edit=identity
    )
    yield from running(config, pki_dir / "ca.pem")


def trust(gw: RunningGateway) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(gw.ca))


def api_url(gw: RunningGateway) -> str:
    return f"https://127.0.0.1:{gw.gateway.addresses['api'][1]}"


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDGATE_", "PG"))}
    env["XDG_CONFIG_HOME"] = str(home)
    return env


def wardgate(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wardgate", *args],
        capture_output=True, text=True, timeout=60, env=cli_env(home),
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 30) -> re.Match[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    proc.kill()
    raise AssertionError(f"no {pattern!r} from wardgate login:\n{''.join(seen)}")


def _finish(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def login(gw: RunningGateway, home: Path, user: str) -> str:
    """``wardgate login`` with the code flow; the browser is scripted. Returns stderr's tail."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardgate", "login", "--gateway", api_url(gw),
         "--ca", str(gw.ca), "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(home),
    )  # fmt: skip
    url = _read_until(proc, r"^(http://\S+/auth\?\S+)$").group(1)
    redirect = signin.approve(url, user)
    location = redirect.headers["location"]
    assert location.startswith("http://127.0.0.1:"), location
    callback = httpx.get(location, timeout=10)
    assert callback.status_code == 200 and "Signed in" in callback.text
    return _finish(proc)


def create(home: Path, *args: str) -> str:
    done = wardgate(home, *args)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("wgc_")
    return secret


def scim(gw: RunningGateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {SCIM_TOKEN}", "Content-Type": "application/scim+json"}
    return httpx.request(
        method, f"{api_url(gw)}/scim/v2{path}", headers=headers,
        content=None if body is None else json.dumps(body), verify=trust(gw), timeout=10,
    )  # fmt: skip


def query_until_ended(conn: psycopg.Connection[Any], within: float = 5.0) -> str:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as excinfo:
        while time.monotonic() - started < within + 1:
            conn.execute("SELECT 1")
            time.sleep(0.1)
    assert time.monotonic() - started < within
    return str(excinfo.value)


def test_contractor_story(gateway: RunningGateway, tmp_path: Path) -> None:
    # Okta provisions alice (externalId = her OIDC subject) before she ever signs in.
    created = scim(gateway, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "alice@hospital.example", "externalId": "alice",
        "name": {"givenName": "Alice", "familyName": "Engineer"},
        "emails": [{"primary": True, "value": "alice@hospital.example", "type": "work"}],
        "active": True,
    })  # fmt: skip
    assert created.status_code == 201, created.text
    scim_id = created.json()["id"]

    out = login(gateway, tmp_path, "alice")
    assert "signed in as alice" in out and "the gateway re-validates you" in out
    session_file = tmp_path / "wardgate" / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    held = json.loads(session_file.read_text())
    assert held["refresh_token"] == ""  # the gateway holds it now

    secret = create(tmp_path, "agent", "create", "--name", "cursor", "--ttl", "8h")
    made = wait_for_event(gateway, type="credential.created", credential__name="cursor")
    assert made["credential"]["owner"] == "alice" and made["who"]["claimed_user"] == "alice"

    conn = psycopg.connect(gateway.dsn("cursor", password=secret, application_name="cursor"))
    assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    start = wait_for_event(gateway, type="session.start", session__application="cursor")
    assert start["who"]["subject"] == "agent:cursor"
    assert start["who"]["on_behalf_of"] == ["alice"]
    assert start["who"]["roles"] == ["engineer"]
    statement = wait_for_event(gateway, type="statement", statement="SELECT 6 * 7")
    assert statement["who"]["on_behalf_of"] == ["alice"]

    patch = scim(gateway, "PATCH", f"/Users/{scim_id}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    })  # fmt: skip
    assert patch.status_code == 200, patch.text
    assert "access of 'alice' was revoked" in query_until_ended(conn)
    conn.close()

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gateway.dsn("cursor", password=secret, application_name="cursor-again"))
    refusal = wait_for_event(gateway, type="session.refused", session__application="cursor-again")
    assert "owner 'alice' is revoked" in refusal["reason"]

    revoked = wait_for_event(gateway, type="user.revoked", subject="alice")
    assert revoked["source"] == "scim"
    ended = wait_for_event(gateway, type="session.terminated", session__application="cursor")
    assert ended["who"]["on_behalf_of"] == ["alice"]
    # and alice cannot get another credential
    again = wardgate(tmp_path, "credential")
    assert again.returncode == 1 and "revoked" in again.stderr


def test_device_flow_login_and_own_credential(gateway: RunningGateway, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardgate", "login", "--device", "--gateway", api_url(gateway),
         "--ca", str(gateway.ca), "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path),
    )  # fmt: skip
    found = _read_until(proc, r"open (\S+) and enter the code (\S+)")
    done = signin.approve_device(found.group(1), found.group(2), "carol")
    assert "Sign-in Success" in done.text
    assert "signed in as carol" in _finish(proc)

    secret = create(tmp_path, "credential", "--ttl", "10m")
    with psycopg.connect(gateway.dsn("carol", password=secret, application_name="carol")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    start = wait_for_event(gateway, type="session.start", session__application="carol")
    assert start["who"]["subject"] == "carol" and start["who"]["method"] == "credential"
    assert start["who"]["roles"] == ["compliance-officer"]


def test_revalidation_suspends_a_human_whose_grant_the_provider_refuses(
    gateway: RunningGateway, oidc_provider: TestIdp, tmp_path: Path
) -> None:
    # oidc-provider answers a disabled account's refresh with a bare "invalid_grant" (as Okta
    # does): nothing proves the account gone, so dave is suspended, not revoked (issue 19).
    login(gateway, tmp_path, "dave")
    secret = create(tmp_path, "agent", "create", "--name", "dave-bot")
    conn = psycopg.connect(gateway.dsn("dave-bot", password=secret, application_name="dave-bot"))
    conn.execute("SELECT 1")
    time.sleep(1.5)  # a re-validation round passes while dave is still enabled
    conn.execute("SELECT 1")
    oidc_provider.set_enabled("dave", False)
    try:
        # one re-validation interval (1 s) plus the watcher's (0.5 s), with room to spare
        ended = query_until_ended(conn, within=5)
        assert "access of 'dave' was suspended" in ended and "wardgate login" in ended
    finally:
        oidc_provider.set_enabled("dave", True)
        conn.close()
    suspended = wait_for_event(gateway, type="user.suspended", subject="dave")
    assert suspended["source"] == "idp" and "invalid_grant" in suspended["reason"]
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(gateway.dsn("dave-bot", password=secret, application_name="dave-again"))
    assert "wardgate login" in str(refused.value)  # the hint says how to recover
    # signing in again restores dave, and his agent's credential works again
    login(gateway, tmp_path, "dave")
    restored = wait_for_event(gateway, type="user.restored", subject="dave")
    assert restored["source"] == "oidc"
    with psycopg.connect(gateway.dsn("dave-bot", password=secret)) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_credential_without_login_says_what_to_do(tmp_path: Path) -> None:
    done = wardgate(tmp_path, "credential")
    assert done.returncode == 2 and "wardgate login" in done.stderr and not done.stdout


def test_api_refuses_bad_bearers_and_audits_them(
    gateway: RunningGateway, oidc_provider: TestIdp
) -> None:
    url = f"{api_url(gateway)}/api/v1/credentials"
    verify = trust(gateway)
    none = httpx.post(url, json={}, verify=verify)
    assert none.status_code == 401 and "Bearer" in none.headers["www-authenticate"]
    other = signin.code_flow(oidc_provider.issuer, "bob", client_id="other-app").id_token
    wrong_client = httpx.post(url, json={}, headers={"Authorization": f"Bearer {other}"},
                              verify=verify)  # fmt: skip
    assert wrong_client.status_code == 401
    assert wrong_client.json() == {"error": "invalid token"}  # no detail for the caller
    refused = wait_for_event(gateway, type="api_call", who__claimed_user="bob")
    assert refused["status"] == 401 and "audience" in refused["reason"]
    assert refused["session"]["client_addr"].startswith("127.0.0.1:")
    big = httpx.post(url, content=b"{" + b" " * (2 << 20) + b"}", verify=verify,
                     headers={"Authorization": "Bearer x.y.z"})  # fmt: skip
    assert big.status_code == 413


def test_token_of_a_revoked_human_is_refused(
    gateway: RunningGateway, oidc_provider: TestIdp, tmp_path: Path
) -> None:
    # bob has never been seen by this gateway; an administrator revokes him ahead.
    state = gateway.gateway.config.identity.state
    assert state is not None
    env = {**cli_env(tmp_path), "WARDGATE_CONFIG": str(state.parent / "wardgate.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "wardgate", "users", "revoke", "bob", "--reason", "left"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and "registered as revoked" in done.stderr
    token = signin.code_flow(oidc_provider.issuer, "bob").id_token
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn("bob", password=token, application_name="bob-token"))
    refusal = wait_for_event(gateway, type="session.refused", session__application="bob-token")
    assert "'bob' is revoked" in refusal["reason"]
    api = httpx.post(f"{api_url(gateway)}/api/v1/credentials", json={}, verify=trust(gateway),
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert api.status_code == 403


def test_agent_of_a_deleted_owner_is_refused(gateway: RunningGateway, tmp_path: Path) -> None:
    made = scim(gateway, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "erin@hospital.example", "externalId": "erin", "active": True,
    })  # fmt: skip
    assert made.status_code == 201, made.text
    state = gateway.gateway.config.identity.state
    assert state is not None
    env = {**cli_env(tmp_path), "WARDGATE_CONFIG": str(state.parent / "wardgate.yaml")}
    issued = subprocess.run(
        [sys.executable, "-m", "wardgate", "agent", "create", "--name", "erin-bot",
         "--owner", "erin"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    with psycopg.connect(gateway.dsn("erin-bot", password=secret)) as conn:
        conn.execute("SELECT 1")
    assert scim(gateway, "DELETE", f"/Users/{made.json()['id']}").status_code == 204
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gateway.dsn("erin-bot", password=secret, application_name="orphan"))
    refusal = wait_for_event(gateway, type="session.refused", session__application="orphan")
    assert "owner 'erin' is revoked" in refusal["reason"]
    assert wait_for_event(gateway, type="user.revoked", subject="erin")["source"] == "scim"


@pytest.mark.parametrize("length", ["abc", "-1", str(1 << 40)])
def test_api_refuses_a_lying_content_length(gateway: RunningGateway, length: str) -> None:
    import socket

    port = gateway.gateway.addresses["api"][1]
    request = (
        f"POST /api/v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        "Authorization: Bearer x.y.z\r\nConnection: close\r\n\r\n{}"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        trust(gateway).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 413), answer[:200]


def test_approvers_vote_through_the_api(gateway: RunningGateway, oidc_provider: TestIdp) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    statement = "SELECT * FROM patients"
    approval = store.request(
        "frank", (), "test", statement, statement_digest(statement),
        why="an unfiltered read of PHI", approvers=("compliance-officer",),
    )  # fmt: skip
    url = f"{api_url(gateway)}/api/v1/approvals"

    def vote(user: str, action: str = "approve") -> httpx.Response:
        token = signin.code_flow(oidc_provider.issuer, user).access_token
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(
            f"{url}/{approval.id}/{action}", json={"reason": "ticket 1"}, headers=headers,
            verify=trust(gateway),
        )  # fmt: skip

    own = vote("frank")
    assert own.status_code == 403 and "own request" in own.json()["error"]
    other = vote("gina")
    assert other.status_code == 403 and "not an approver" in other.json()["error"]
    carol = signin.code_flow(oidc_provider.issuer, "carol").access_token
    listed = httpx.get(url, headers={"Authorization": f"Bearer {carol}"}, verify=trust(gateway))
    assert listed.status_code == 200, listed.text
    assert [a["id"] for a in listed.json()] == [approval.id]
    gina = signin.code_flow(oidc_provider.issuer, "gina").access_token
    unrelated = httpx.get(url, headers={"Authorization": f"Bearer {gina}"}, verify=trust(gateway))
    assert unrelated.json() == []  # neither an approver nor the requester: sees nothing
    done = vote("carol")
    assert done.status_code == 200 and done.json()["status"] == "approved"
    assert vote("carol", "deny").status_code == 409  # decided already
    granted = wait_for_event(gateway, type="approval.granted", approval=approval.id)
    assert granted["who"]["claimed_user"] == "carol" and granted["reason"] == "ticket 1"
    assert store.use_grant("frank", "test", statement_digest(statement)) is not None
