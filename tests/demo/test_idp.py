"""The demo's development OpenID provider, served on 127.0.0.1 (port 0) and driven over HTTP by
the scripted browser of ``tests/idp/signin.py``; its tokens checked by wardgate's own verifier."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.idp import signin
from wardgate.demo.idp import DevProviderServer, start_dev_provider
from wardgate.demo.idp_keys import DevUser, SigningKeys, demo_users
from wardgate.demo.idp_tokens import DEVICE_GRANT, DevProvider, Lifetimes
from wardgate.identity.oidc import OidcSettings, OidcVerifier, Reason, TokenRejected

ROLE_MAPPING: dict[str, tuple[str, ...]] = {
    "engineering": ("engineer",),
    "clinicians": ("clinician",),
    "compliance": ("compliance",),
}


def _users() -> list[DevUser]:
    return demo_users({name: signin.PASSWORDS[name] for name in ("alice", "bob", "carol")})


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-idp") / "idp-keys.json"


@pytest.fixture(scope="module")
def idp(key_file: Path) -> Iterator[DevProviderServer]:
    server = start_dev_provider(_users(), key_file, lifetimes=Lifetimes(interval=1))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def verifier(idp: DevProviderServer) -> Iterator[OidcVerifier]:
    settings = OidcSettings(
        issuer=idp.issuer,
        client_id="wardgate",
        audiences=("urn:wardgate:gateway",),
        role_mapping=ROLE_MAPPING,
    )
    verifier = OidcVerifier(settings)
    try:
        yield verifier
    finally:
        verifier.close()


def _authorize(
    issuer: str, user: str, **extra: str
) -> tuple[httpx.Response, str, str]:  # (last response, code verifier, state)
    verifier, challenge = signin._pkce()
    params = {
        "client_id": "wardgate",
        "response_type": "code",
        "redirect_uri": signin.REDIRECT_URI,
        "scope": signin.SCOPE,
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    with httpx.Client(timeout=10) as browser:
        first = browser.get(f"{issuer}/auth", params=params)
        last = signin._browse(browser, first, user, signin.PASSWORDS[user])
    return last, verifier, params["state"]


def _code(issuer: str, user: str) -> tuple[str, str]:
    last, verifier, _ = _authorize(issuer, user)
    query = parse_qs(urlsplit(last.headers["location"]).query)
    assert query["state"] == ["st-1"] and query["iss"] == [issuer]
    return query["code"][0], verifier


def _exchange(issuer: str, code: str, verifier: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": signin.REDIRECT_URI,
        "client_id": "wardgate",
        "code_verifier": verifier,
    }
    return httpx.post(f"{issuer}/token", data=data, timeout=10)


def _error(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["error"])


def test_discovery_names_the_exact_issuer_and_public_keys_only(
    idp: DevProviderServer, key_file: Path
) -> None:
    port = urlsplit(idp.issuer).port
    assert idp.issuer == f"http://127.0.0.1:{port}"
    doc = httpx.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == idp.issuer
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert DEVICE_GRANT in doc["grant_types_supported"]
    keys = httpx.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert {(k["kty"], k["alg"]) for k in keys} == {("RSA", "RS256"), ("EC", "ES256")}
    assert all(k["kid"] and not {"d", "p", "q"} & set(k) for k in keys)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = json.loads(key_file.read_text())["keys"]
    assert all("d" in k for k in private)
    again = SigningKeys.load_or_create(key_file)  # a restart keeps the keys and their ids
    assert {again.id_key.kid, again.access_key.kid} == {k["kid"] for k in keys}


def test_code_flow_with_pkce_gives_tokens_wardgate_verifies(
    idp: DevProviderServer, verifier: OidcVerifier
) -> None:
    tokens = signin.code_flow(idp.issuer, "alice")
    id_token = verifier.verify(tokens.id_token)
    assert id_token.header["alg"] == "RS256" and id_token.header["kid"]
    assert id_token.identity.subject == "alice"
    assert id_token.identity.roles == ("engineer",)
    assert id_token.claims["aud"] == "wardgate" and id_token.claims["nonce"]
    assert id_token.claims["email"] == "alice@clinic.example"
    assert id_token.claims["name"] == "Alice Engineer"

    access = verifier.verify(tokens.access_token)
    assert access.header["typ"] == "at+jwt" and access.header["alg"] == "ES256"
    assert access.header["kid"] != id_token.header["kid"]
    assert access.claims["aud"] == "urn:wardgate:gateway"
    assert access.claims["client_id"] == "wardgate" and access.claims["groups"] == ["engineering"]
    assert access.identity.roles == ("engineer",)


def test_wrong_password_gives_no_code(idp: DevProviderServer) -> None:
    with httpx.Client(timeout=10) as browser:
        page = browser.get(
            f"{idp.issuer}/auth",
            params={
                "client_id": "wardgate",
                "response_type": "code",
                "redirect_uri": signin.REDIRECT_URI,
                "scope": "openid",
                "state": "s",
                "code_challenge": signin._pkce()[1],
                "code_challenge_method": "S256",
            },
            follow_redirects=True,
        )
        assert "DEVELOPMENT ONLY" in page.text and 'name="password"' in page.text
        action = urljoin(str(page.url), page.text.split('action="')[1].split('"')[0])
        wrong = {"login": "alice", "password": "not-her-password"}
        again = browser.post(action, data=wrong)
        assert again.status_code == 200 and "Wrong user name or password" in again.text
        assert "location" not in again.headers
    with pytest.raises(AssertionError, match="sign-in refused"):
        signin.code_flow(idp.issuer, "alice", password="not-her-password")


def test_code_needs_the_right_verifier_and_is_single_use(idp: DevProviderServer) -> None:
    code, verifier = _code(idp.issuer, "alice")
    assert _error(_exchange(idp.issuer, code, signin._pkce()[0])) == "invalid_grant"
    assert _error(_exchange(idp.issuer, code, verifier)) == "invalid_grant"  # used up

    code, verifier = _code(idp.issuer, "alice")
    first = _exchange(idp.issuer, code, verifier)
    assert first.status_code == 200, first.text
    assert _error(_exchange(idp.issuer, code, verifier)) == "invalid_grant"
    # A reused code revokes what it gave (RFC 6749 4.1.2).
    assert _error(signin.refresh(idp.issuer, first.json()["refresh_token"])) == "invalid_grant"


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/callback",
        "http://evil.example/callback",
        "http://127.0.0.1.evil.example/callback",
        "http://127.0.0.1:1@evil.example/callback",
        "http://127.0.0.1:99999/callback",
        "http://127.0.0.1:1/callback#fragment",
        "https://127.0.0.1:1/callback",
        "",
    ],
)
def test_redirect_to_anything_but_loopback_is_refused_on_a_page(
    idp: DevProviderServer, uri: str
) -> None:
    last, _, _ = _authorize(idp.issuer, "alice", redirect_uri=uri)
    assert last.status_code == 400 and "location" not in last.headers
    assert "redirect_uri must be" in last.text


@pytest.mark.parametrize("uri", ["http://[::1]:8080/cb", "http://localhost:5/cb?x=1"])
def test_any_loopback_redirect_is_accepted(idp: DevProviderServer, uri: str) -> None:
    last, _, _ = _authorize(idp.issuer, "bob", redirect_uri=uri)
    location = last.headers["location"]
    assert location.startswith(uri) and "code=" in location and "state=st-1" in location


def test_unknown_client_gets_a_page_not_a_redirect(idp: DevProviderServer) -> None:
    last, _, _ = _authorize(idp.issuer, "alice", client_id="<b>other</b>")
    assert last.status_code == 400 and "location" not in last.headers
    assert "<b>other</b>" not in last.text and "&lt;b&gt;other&lt;/b&gt;" in last.text


def test_request_errors_after_a_valid_redirect_go_back_with_state(
    idp: DevProviderServer,
) -> None:
    last, _, _ = _authorize(idp.issuer, "alice", code_challenge_method="plain")
    query = parse_qs(urlsplit(last.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st-1"]


def test_values_put_into_pages_are_escaped(idp: DevProviderServer) -> None:
    hostile = '"><script>alert(1)</script>'
    params = {
        "client_id": "wardgate",
        "response_type": "code",
        "redirect_uri": signin.REDIRECT_URI,
        "scope": "openid",
        "code_challenge": signin._pkce()[1],
        "code_challenge_method": "S256",
        "login_hint": hostile,
    }
    login = httpx.get(f"{idp.issuer}/auth", params=params, follow_redirects=True, timeout=10)
    device = httpx.get(f"{idp.issuer}/device", params={"user_code": hostile}, timeout=10)
    for page in (login, device):
        assert page.status_code == 200 and "<form" in page.text
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_device_flow(idp: DevProviderServer, verifier: OidcVerifier) -> None:
    tokens = signin.device_flow(idp.issuer, "bob")
    identity = verifier.verify(tokens.id_token).identity
    assert identity.subject == "bob" and identity.roles == ("clinician",)
    assert verifier.verify(tokens.access_token).identity.roles == ("clinician",)


def _device(issuer: str) -> dict[str, str]:
    start = httpx.post(f"{issuer}/device/auth", data={"client_id": "wardgate"}, timeout=10)
    assert start.status_code == 200, start.text
    grant: dict[str, str] = start.json()
    assert grant["verification_uri"] == f"{issuer}/device"
    assert grant["verification_uri_complete"].endswith(grant["user_code"])
    return grant


def _poll(issuer: str, device_code: str) -> httpx.Response:
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": "wardgate"}
    return httpx.post(f"{issuer}/token", data=data, timeout=10)


def test_device_grant_pending_slow_down_and_denied(idp: DevProviderServer) -> None:
    grant = _device(idp.issuer)
    assert _error(_poll(idp.issuer, grant["device_code"])) == "authorization_pending"
    assert _error(_poll(idp.issuer, grant["device_code"])) == "slow_down"
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        code_page = browser.get(grant["verification_uri_complete"])
        login = browser.post(f"{idp.issuer}/device", data={"user_code": grant["user_code"]})
        assert 'name="login"' in login.text and "DEVELOPMENT ONLY" in code_page.text
        action = urljoin(str(login.url), login.text.split('action="')[1].split('"')[0])
        consent = browser.post(action, data={"login": "carol", "password": "carol-password"})
        deny = consent.text.split('action="')[2].split('"')[0]  # the second form
        done = browser.post(urljoin(str(consent.url), deny), data={"decision": "deny"})
        assert done.status_code == 403
    assert _error(_poll(idp.issuer, grant["device_code"])) == "access_denied"


def test_device_code_expires() -> None:
    with start_dev_provider(_users(), None, lifetimes=Lifetimes(device=0.5)) as idp:
        grant = _device(idp.issuer)
        page = httpx.post(f"{idp.issuer}/device", data={"user_code": "BBBB-BBBB"}, timeout=10)
        assert page.status_code == 400 and "Unknown or expired code" in page.text
        time.sleep(0.6)
        assert _error(_poll(idp.issuer, grant["device_code"])) == "expired_token"


def test_codes_and_access_tokens_expire() -> None:
    now = [1_800_000_000.0]
    provider = DevProvider(_users(), SigningKeys.generate(), clock=lambda: now[0])
    with DevProviderServer(provider) as idp:
        code, verifier = _code(idp.issuer, "alice")
        fresh, fresh_verifier = _code(idp.issuer, "alice")
        tokens = _exchange(idp.issuer, fresh, fresh_verifier).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert httpx.get(f"{idp.issuer}/me", headers=bearer).status_code == 200
        now[0] += 3601
        assert _error(_exchange(idp.issuer, code, verifier)) == "invalid_grant"
        expired = httpx.get(f"{idp.issuer}/me", headers=bearer)
        assert expired.status_code == 401 and "expired" in expired.json()["error_description"]


def test_refresh_rotates_and_a_reused_token_revokes_its_family(idp: DevProviderServer) -> None:
    tokens = signin.code_flow(idp.issuer, "alice")
    second = signin.refresh(idp.issuer, tokens.refresh_token)
    assert second.status_code == 200, second.text
    rotated = second.json()["refresh_token"]
    assert rotated != tokens.refresh_token and second.json()["id_token"]
    assert _error(signin.refresh(idp.issuer, tokens.refresh_token)) == "invalid_grant"
    assert _error(signin.refresh(idp.issuer, rotated)) == "invalid_grant"  # the family is gone


def test_userinfo(idp: DevProviderServer) -> None:
    tokens = signin.code_flow(idp.issuer, "bob")
    me = httpx.get(f"{idp.issuer}/me", headers={"Authorization": f"Bearer {tokens.access_token}"})
    assert me.status_code == 200
    assert me.json() == {
        "sub": "bob",
        "email": "bob@clinic.example",
        "email_verified": True,
        "name": "Bob Clinician",
        "groups": ["clinicians"],
    }
    anonymous = httpx.get(f"{idp.issuer}/me")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"]
    for bad in (tokens.id_token, "not.a.token", tokens.access_token[:-4] + "AAAA"):
        response = httpx.get(f"{idp.issuer}/me", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_disabled_user_cannot_refresh_or_use_userinfo(idp: DevProviderServer) -> None:
    tokens = signin.code_flow(idp.issuer, "carol")
    foreign = httpx.post(
        f"{idp.issuer}/dev/users/carol/disable", headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    disabled = httpx.post(f"{idp.issuer}/dev/users/carol/disable")
    assert disabled.status_code == 200 and disabled.json() == {"user": "carol", "active": False}
    try:
        assert _error(signin.refresh(idp.issuer, tokens.refresh_token)) == "invalid_grant"
        me = httpx.get(
            f"{idp.issuer}/me", headers={"Authorization": f"Bearer {tokens.access_token}"}
        )
        assert me.status_code == 401 and 'error="invalid_token"' in me.headers["www-authenticate"]
        with pytest.raises(AssertionError, match="sign-in refused"):
            signin.code_flow(idp.issuer, "carol")
    finally:
        assert httpx.post(f"{idp.issuer}/dev/users/carol/enable").status_code == 200
    assert httpx.post(f"{idp.issuer}/dev/users/nobody/disable").status_code == 404


def test_token_endpoint_refuses_bad_requests(idp: DevProviderServer) -> None:
    token = f"{idp.issuer}/token"
    base = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "wardgate"}
    assert _error(httpx.post(token, data={**base, "client_id": "other"})) == "invalid_client"
    assert _error(httpx.post(token, data={**base, "grant_type": "password"})) == (
        "unsupported_grant_type"
    )
    twice = "grant_type=refresh_token&refresh_token=x&refresh_token=y&client_id=wardgate"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _error(httpx.post(token, content=twice, headers=form)) == "invalid_request"
    assert _error(httpx.post(token, json=base)) == "invalid_request"
    huge = httpx.post(token, data={**base, "refresh_token": "x" * 20_000})
    assert huge.status_code == 413 and huge.json()["error"] == "invalid_request"


def test_tokens_of_another_provider_are_refused(
    idp: DevProviderServer, verifier: OidcVerifier
) -> None:
    impostor = DevProvider(_users(), SigningKeys.generate())
    impostor.issuer = idp.issuer  # same name, other keys
    forged = impostor.mint("alice")
    for token in (forged["id_token"], forged["access_token"]):
        with pytest.raises(TokenRejected) as refused:
            verifier.verify(token)
        assert refused.value.reason in (Reason.UNKNOWN_KEY, Reason.BAD_SIGNATURE)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "localhost", "example.com"])
def test_binds_loopback_only(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevProviderServer(DevProvider(_users(), SigningKeys.generate()), host)


def test_grants_kept_on_disk_survive_a_restart(tmp_path: Path) -> None:
    """What lets ``wardgate demo`` restart without suspending everyone who signed in (issue 19)."""
    keys, grants = tmp_path / "keys.json", tmp_path / "idp" / "grants.json"
    first = start_dev_provider(_users(), keys, grants_file=grants)
    port = int(first.issuer.rsplit(":", 1)[1])
    try:
        tokens = signin.code_flow(first.issuer, "alice")
        assert httpx.post(f"{first.issuer}/dev/users/carol/disable").status_code == 200
    finally:
        first.stop()
    assert stat.S_IMODE(grants.stat().st_mode) == 0o600
    assert stat.S_IMODE(grants.parent.stat().st_mode) == 0o700
    assert tokens.refresh_token not in grants.read_text()  # digests only

    second = start_dev_provider(_users(), keys, port=port, grants_file=grants)
    try:
        refreshed = signin.refresh(second.issuer, tokens.refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        with pytest.raises(AssertionError, match="sign-in refused"):
            signin.code_flow(second.issuer, "carol")  # still disabled
        assert httpx.post(f"{second.issuer}/dev/users/carol/enable").status_code == 200
    finally:
        second.stop()

    forgetful = start_dev_provider(_users(), keys, port=port)  # no file: what it did before
    try:
        rotated = refreshed.json()["refresh_token"]
        assert _error(signin.refresh(forgetful.issuer, rotated)) == "invalid_grant"
    finally:
        forgetful.stop()
