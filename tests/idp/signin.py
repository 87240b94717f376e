"""Scripted sign-in at the test provider, as a person in a browser would do it, without one.

``code_flow`` runs the authorization code flow with PKCE (S256): it follows the provider's
redirects, fills in the login form, approves the consent form, and stops at the redirect to the
client's loopback callback, which is never connected to. ``device_flow`` runs the device
authorization grant: the "device" asks for a user code, a second HTTP client (the person's
browser) enters and confirms it, signs in and consents, and the device polls for its tokens.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
    "dave": "dave-password",
    "frank": "frank-password",
    "gina": "gina-password",
}
SCOPE = "openid email profile groups offline_access"
REDIRECT_URI = "http://127.0.0.1:1/callback"  # native loopback: any port is accepted
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MAX_STEPS = 12
POLL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_token: str
    refresh_token: str
    raw: dict[str, Any]


@dataclass
class _Form:
    action: str
    fields: dict[str, str]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(values.get("action", ""), {}))
            self._open = True
        elif tag == "input" and self._open and "name" in values:
            self.forms[-1].fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def _form(response: httpx.Response) -> _Form | None:
    parser = _Forms()
    parser.feed(response.text)
    return parser.forms[0] if parser.forms else None


def _browse(
    browser: httpx.Client, response: httpx.Response, user: str, password: str, user_code: str = ""
) -> httpx.Response:
    """Act on pages (follow redirects, fill forms) until a redirect leaves the provider, a page
    has no form, or the provider says no (a 4xx). Returns that last response."""
    issuer = f"{response.url.scheme}://{response.url.netloc.decode()}"
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(issuer):
                return response
            response = browser.get(location)
            continue
        form = _form(response) if response.status_code == 200 else None
        if form is None:
            return response
        fields = dict(form.fields)
        if "password" in fields:
            fields.update(login=user, password=password)
        if "user_code" in fields and not fields["user_code"]:
            fields["user_code"] = user_code
        response = browser.post(urljoin(str(response.url), form.action), data=fields)
    raise AssertionError(f"sign-in did not finish in {MAX_STEPS} steps at {response.url}")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _tokens(response: httpx.Response) -> Tokens:
    assert response.status_code == 200, response.text
    raw = response.json()
    return Tokens(raw["access_token"], raw.get("id_token", ""), raw.get("refresh_token", ""), raw)


def code_flow(
    issuer: str, user: str, *, client_id: str = "wardgate", password: str | None = None
) -> Tokens:
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    with httpx.Client(timeout=10) as browser:
        first = browser.get(f"{issuer}/auth", params=params)
        last = _browse(browser, first, user, password or PASSWORDS[user])
    location = last.headers.get("location", "")
    assert location.startswith(REDIRECT_URI), f"no redirect to the client: {last.text[:500]}"
    query = parse_qs(urlsplit(location).query)
    assert query.get("state") == [state], query
    assert "code" in query, f"sign-in refused: {query}"
    data = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    return _tokens(httpx.post(f"{issuer}/token", data=data, timeout=10))


def device_flow(issuer: str, user: str, *, client_id: str = "wardgate") -> Tokens:
    start = httpx.post(
        f"{issuer}/device/auth", data={"client_id": client_id, "scope": SCOPE}, timeout=10
    )
    assert start.status_code == 200, start.text
    grant = start.json()
    with httpx.Client(timeout=10) as browser:
        page = browser.get(grant["verification_uri"])
        done = _browse(browser, page, user, PASSWORDS[user], grant["user_code"])
    assert done.status_code == 200 and "Sign-in Success" in done.text, done.text[:500]
    deadline = time.monotonic() + POLL_TIMEOUT
    interval = float(grant.get("interval", 1))
    data = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
    while time.monotonic() < deadline:
        response = httpx.post(f"{issuer}/token", data=data, timeout=10)
        error = response.json().get("error") if response.status_code == 400 else None
        if error == "slow_down":
            interval += 1
        elif error != "authorization_pending":
            return _tokens(response)
        time.sleep(min(interval, 1.0))
    raise AssertionError(f"no device tokens within {POLL_TIMEOUT} s")


def refresh(issuer: str, refresh_token: str, *, client_id: str = "wardgate") -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return httpx.post(f"{issuer}/token", data=data, timeout=10)


def approve(url: str, user: str, *, password: str | None = None) -> httpx.Response:
    """A person opens ``url`` (an authorization request) in a browser and signs in; the last
    response, normally the redirect to the client's loopback callback."""
    with httpx.Client(timeout=10) as browser:
        return _browse(browser, browser.get(url), user, password or PASSWORDS[user])


def approve_device(verification_uri: str, user_code: str, user: str) -> httpx.Response:
    """A person enters a device flow's ``user_code`` at ``verification_uri`` and signs in."""
    with httpx.Client(timeout=10) as browser:
        return _browse(browser, browser.get(verification_uri), user, PASSWORDS[user], user_code)
