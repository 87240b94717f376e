"""``wardgate login``: a human signs in at the identity provider, for the gateway.

Two OAuth 2.0 flows for a native (public) client:

- authorization code with PKCE (RFC 7636, S256) through a loopback redirect (RFC 8252 §7.3): a
  one-shot HTTP server on 127.0.0.1 and a free port receives the browser's redirect;
- the device authorization grant (RFC 8628) for machines without a browser: the person opens the
  printed address on another device and enters the code.

The gateway's API says which provider and client to use (``GET /api/v1/login``). The ID token's
signature, audience and nonce are checked here with the gateway's own verifier. Then the refresh
token is handed to the gateway (``POST /api/v1/session``), which keeps it to re-validate the human
with the provider; this machine keeps only the short-lived tokens, in ``session.json`` in the
user's configuration directory, mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import platformdirs

from wardgate.identity.oidc import OidcSettings, OidcVerifier, ProviderMetadata, TokenRejected

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CALLBACK_PATH = "/callback"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LoginError(Exception):
    """Sign-in did not succeed; the message says why and what to do. ``status`` is the exit
    status: 1 refused, 2 not signed in or nothing to sign in to."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    """What ``session.json`` holds: where the gateway is and the human's current tokens."""

    gateway: str
    ca: str | None
    issuer: str
    client_id: str
    subject: str = ""
    email: str | None = None
    access_token: str = ""
    id_token: str = ""
    refresh_token: str = ""  # only while the gateway does not hold it
    expires_at: float = 0.0
    revalidation: bool = False

    def bearer_tokens(self) -> list[str]:
        """The tokens to present to the gateway, best first: a JWT access token, the ID token."""
        tokens = [t for t in (self.access_token, self.id_token) if t.count(".") == 2]
        return list(dict.fromkeys(tokens))


def session_path() -> Path:
    return Path(platformdirs.user_config_dir("wardgate")) / "session.json"


def save(session: Session, path: Path | None = None) -> Path:
    path = path or session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(session), f, indent=2)
    os.replace(partial, path)
    return path


def load(path: Path | None = None) -> Session:
    path = path or session_path()
    try:
        data = json.loads(path.read_text())
        return Session(**data)
    except FileNotFoundError as exc:
        raise LoginError("not signed in: run 'wardgate login --gateway URL' first", 2) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise LoginError(f"{path}: unreadable sign-in ({exc}); run 'wardgate login' again") from exc


def check_gateway_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url.rstrip("/")
    raise LoginError(f"{url!r}: the gateway must be reached over https (http only on loopback)", 2)


def gateway_client(gateway: str, ca: str | None, timeout: float = 15.0) -> httpx.Client:
    verify: Any = True
    if ca is not None:
        import ssl

        verify = ssl.create_default_context(cafile=ca)
    return httpx.Client(base_url=gateway, verify=verify, timeout=timeout, follow_redirects=False)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(challenge).rstrip(b"=").decode()


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "error" in body:
        text = str(body.get("error_description") or "")
        return f"{body['error']}: {text}".rstrip(": ")
    return f"HTTP {response.status_code}"


class _Callback(http.server.BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self.send_error(404)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        ok = "code" in query
        text = "Signed in to wardgate. You can close this window." if ok else "Sign-in failed."
        body = f"<!DOCTYPE html><html><body><p>{text}</p></body></html>".encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.answer(query)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal is for the person signing in


class _CallbackServer(http.server.HTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Callback)
        self.query: dict[str, str] | None = None
        self.done = threading.Event()

    def answer(self, query: dict[str, str]) -> None:
        if self.query is None:
            self.query = query
            self.done.set()


class Login:
    """One sign-in against the provider the gateway names."""

    def __init__(self, gateway: str, ca: str | None, say: Callable[[str], None]) -> None:
        self.gateway = check_gateway_url(gateway)
        self.ca = ca
        self.say = say
        self.api = gateway_client(self.gateway, ca)
        try:
            response = self.api.get("/api/v1/login")
        except httpx.HTTPError as exc:
            raise LoginError(f"cannot reach the gateway at {self.gateway}: {exc}") from exc
        if response.status_code != 200:
            raise LoginError(f"the gateway offers no sign-in: {_oauth_error(response)}")
        info = response.json()
        self.settings = OidcSettings(
            issuer=info["issuer"], client_id=info["client_id"],
            audiences=tuple(info.get("audiences") or ()),
        )  # fmt: skip
        self.scope = str(info.get("scope") or "openid")
        self.http = httpx.Client(timeout=15.0, follow_redirects=False)
        try:
            self.meta = ProviderMetadata.discover(self.settings.issuer, self.http)
        except (httpx.HTTPError, ValueError) as exc:
            raise LoginError(f"cannot discover {self.settings.issuer}: {exc}") from exc

    def close(self) -> None:
        self.api.close()
        self.http.close()

    def code_flow(self, open_browser: bool, timeout: float = 300.0) -> dict[str, Any]:
        if not self.meta.authorization_endpoint:
            raise LoginError("the provider has no authorization endpoint; use --device")
        verifier, challenge = _pkce()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        server = _CallbackServer()
        redirect = f"http://127.0.0.1:{server.server_address[1]}{CALLBACK_PATH}"
        params = {
            "response_type": "code", "client_id": self.settings.client_id,
            "redirect_uri": redirect, "scope": self.scope, "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        }  # fmt: skip
        if "offline_access" in self.scope.split():
            params["prompt"] = "consent"  # OpenID Connect Core §11: asked for with offline_access
        url = f"{self.meta.authorization_endpoint}?{urlencode(params)}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            self.say(f"Open this address in a browser to sign in:\n{url}")
            if open_browser:
                import webbrowser

                webbrowser.open(url)
            if not server.done.wait(timeout):
                raise LoginError(f"no sign-in within {timeout:g} s")
        finally:
            server.shutdown()
            server.server_close()
        query = server.query or {}
        if query.get("state") != state:
            raise LoginError("the redirect's state does not match this sign-in; try again")
        if "code" not in query:
            raise LoginError(f"the provider refused: {query.get('error', 'no code')}")
        tokens = self._token(
            {
                "grant_type": "authorization_code", "code": query["code"],
                "redirect_uri": redirect, "client_id": self.settings.client_id,
                "code_verifier": verifier,
            }
        )  # fmt: skip
        self._check_id_token(tokens, nonce)
        return tokens

    def device_flow(self, timeout: float = 600.0) -> dict[str, Any]:
        if not self.meta.device_authorization_endpoint:
            raise LoginError("the provider does not offer the device authorization grant")
        response = self.http.post(
            self.meta.device_authorization_endpoint,
            data={"client_id": self.settings.client_id, "scope": self.scope},
        )
        if response.status_code != 200:
            raise LoginError(f"device authorization refused: {_oauth_error(response)}")
        grant = response.json()
        complete = grant.get("verification_uri_complete")
        self.say(
            f"To sign in, open {grant['verification_uri']} and enter the code "
            f"{grant['user_code']}" + (f"\n(or open {complete})" if complete else "")
        )
        interval = max(1.0, float(grant.get("interval", 5)))
        deadline = time.monotonic() + min(timeout, float(grant.get("expires_in", timeout)))
        data = {
            "grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
            "client_id": self.settings.client_id,
        }  # fmt: skip
        while time.monotonic() < deadline:
            time.sleep(interval)
            response = self.http.post(self.meta.token_endpoint, data=data)
            if response.status_code == 200:
                tokens: dict[str, Any] = response.json()
                self._check_id_token(tokens, None)
                return tokens
            error = _oauth_error(response).split(":")[0]
            if error == "slow_down":
                interval += 5  # RFC 8628 §3.5
            elif error != "authorization_pending":
                raise LoginError(f"device sign-in failed: {_oauth_error(response)}")
        raise LoginError("the device code expired before sign-in finished")

    def _token(self, data: dict[str, str]) -> dict[str, Any]:
        try:
            response = self.http.post(self.meta.token_endpoint, data=data)
        except httpx.HTTPError as exc:
            raise LoginError(f"token endpoint: {exc}") from exc
        if response.status_code != 200:
            raise LoginError(f"the provider refused the code: {_oauth_error(response)}")
        tokens: dict[str, Any] = response.json()
        return tokens

    def _check_id_token(self, tokens: dict[str, Any], nonce: str | None) -> None:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise LoginError("the provider returned no ID token (is 'openid' in the scope?)")
        verifier = OidcVerifier(self.settings, self.http)
        try:
            claims = verifier.verify(id_token).claims
        except TokenRejected as exc:
            raise LoginError(f"the ID token does not verify: {exc.reason} {exc.detail}") from exc
        if nonce is not None and claims.get("nonce") != nonce:
            raise LoginError("the ID token's nonce does not match this sign-in")
        tokens["_claims"] = dict(claims)

    def register(self, tokens: dict[str, Any]) -> Session:
        """Tell the gateway who signed in and hand it the refresh token; the session to keep."""
        claims = tokens.pop("_claims", {})
        session = Session(
            gateway=self.gateway, ca=self.ca, issuer=self.settings.issuer,
            client_id=self.settings.client_id, subject=str(claims.get("sub", "")),
            email=claims.get("email"), access_token=str(tokens.get("access_token", "")),
            id_token=str(tokens.get("id_token", "")),
            expires_at=time.time() + float(tokens.get("expires_in", 300)),
        )  # fmt: skip
        refresh = tokens.get("refresh_token")
        body = {"refresh_token": refresh} if isinstance(refresh, str) and refresh else {}
        response = call(session, "POST", "/api/v1/session", body, client=self.api)
        if response.status_code == 404 and body:  # the gateway does not re-validate
            response = call(session, "POST", "/api/v1/session", {}, client=self.api)
            session.refresh_token = str(refresh)
        if response.status_code != 200:
            raise LoginError(f"the gateway refused the sign-in: {gateway_error(response)}")
        info = response.json()
        session.subject = str(info.get("subject") or session.subject)
        session.revalidation = bool(info.get("revalidation"))
        return session


def gateway_error(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['error']} (HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def call(
    session: Session,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """An API call as the signed-in human: the access token first, then the ID token if the
    gateway does not accept the access token's audience."""
    if session.expires_at and time.time() >= session.expires_at:
        raise LoginError("your sign-in has expired: run 'wardgate login' again", 2)
    tokens = session.bearer_tokens()
    if not tokens:
        raise LoginError("the sign-in holds no token the gateway can check; run 'wardgate login'")
    own = client is None
    http = client or gateway_client(session.gateway, session.ca)
    try:
        for i, token in enumerate(tokens):
            headers = {"Authorization": f"Bearer {token}"}
            try:
                response = http.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise LoginError(f"cannot reach the gateway at {session.gateway}: {exc}") from exc
            if response.status_code != 401 or i == len(tokens) - 1:
                return response
        raise AssertionError("unreachable")
    finally:
        if own:
            http.close()
