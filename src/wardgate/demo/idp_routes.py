"""DEVELOPMENT ONLY: the HTTP routes of the demo's OpenID provider (see ``idp``).

A sign-in in the browser is an *interaction*: ``/auth`` (or a user code entered at ``/device``)
starts one, the login form and the consent form advance it, and its end sends the browser back
to the client's loopback redirect URI (or, for a device, shows "Sign-in Success"). Nothing is
ever redirected to a URI that is not a loopback ``http`` URI of the one client.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from wardgate.demo import idp_pages as pages
from wardgate.demo.idp_tokens import (
    CLIENT_ID,
    DEVICE_GRANT,
    DEVICE_SCOPE,
    GATEWAY_AUDIENCE,
    SCOPES,
    DevProvider,
    OAuthError,
    parse_scope,
)

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_PARAM = 1024  # state, nonce, login hint
INTERACTION_TTL = 600.0
MAX_INTERACTIONS = 1000
MAX_LOGIN_FAILURES = 3
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def is_loopback_redirect(uri: str) -> bool:
    """``http://127.0.0.1:<any port>/...``, ``http://[::1]:...`` or ``http://localhost:...``."""
    if any(c in uri for c in "\\ \t\r\n") or len(uri) > MAX_PARAM:
        return False
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and "@" not in parts.netloc
        and not parts.fragment
        and parts.hostname in ("127.0.0.1", "::1", "localhost")
    )


def _with_params(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


async def _form(request: Request) -> dict[str, str]:
    """A bounded ``application/x-www-form-urlencoded`` body; a parameter given twice is refused
    (RFC 6749 §3.1)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise OAuthError("invalid_request", f"the body is limited to {MAX_BODY} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise OAuthError("invalid_request", f"the body is limited to {MAX_BODY} bytes", 413)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the body is not a form") from exc
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise OAuthError("invalid_request", f"parameter {name!r} given twice")
        out[name] = value
    return out


def _json_error(exc: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return JSONResponse(exc.body(), exc.status, headers=headers)


def _client_address_is_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _shown(flow: _Interaction) -> str:
    return f"{flow.user_code[:4]}-{flow.user_code[4:]}"


@dataclass
class _Interaction:
    """A sign-in waiting for the person: a code flow to finish, or a device to approve."""

    kind: str  # "code" or "device"
    expires: float
    scope: tuple[str, ...]
    redirect_uri: str = ""
    state: str | None = None
    nonce: str | None = None
    challenge: str = ""
    consent: bool = False
    hint: str = ""
    user_code: str = ""
    user: str | None = None
    failures: int = 0


class _Routes:
    def __init__(self, provider: DevProvider) -> None:
        self.provider = provider
        self.interactions: dict[str, _Interaction] = {}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.index),
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/auth", self.authorize),
                Route("/interaction/{txn}", self.interaction),
                Route("/interaction/{txn}/login", self.login, methods=["POST"]),
                Route("/interaction/{txn}/consent", self.consent, methods=["POST"]),
                Route("/device", self.device_page),
                Route("/device", self.device_code_entered, methods=["POST"]),
                Route("/device/auth", self.device_authorization, methods=["POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/me", self.userinfo, methods=["GET", "POST"]),
                Route("/dev/users/{name}/{action}", self.admin, methods=["POST"]),
            ]
        )

    async def index(self, request: Request) -> Response:
        return pages.index_page(self.provider.issuer, self.provider.user_names())

    async def discovery(self, request: Request) -> Response:
        issuer = self.provider.issuer
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/auth",
                "token_endpoint": f"{issuer}/token",
                "device_authorization_endpoint": f"{issuer}/device/auth",
                "userinfo_endpoint": f"{issuer}/me",
                "jwks_uri": f"{issuer}/jwks",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name", "groups"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.provider.keys.public_jwks(), headers={"Cache-Control": "no-cache"})

    # ---- sign-in in the browser -----------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if any(len(query.getlist(k)) > 1 for k in query):
            return pages.error_page("A parameter was given twice.")
        if query.get("client_id") != CLIENT_ID:
            return pages.error_page(f"Unknown client {query.get('client_id', '')!r}.")
        redirect_uri = query.get("redirect_uri", "")
        if not is_loopback_redirect(redirect_uri):
            return pages.error_page("redirect_uri must be http://127.0.0.1:<port>/... (loopback).")
        state = query.get("state")

        def refuse(error: str, description: str) -> Response:
            params = {"error": error, "error_description": description, "state": state}
            return self._back(redirect_uri, params)

        if query.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code")
        if query.get("response_mode", "query") != "query" or "request" in query:
            return refuse("invalid_request", "only response_mode=query, no request objects")
        if any(len(query.get(k, "")) > MAX_PARAM for k in ("state", "nonce", "login_hint")):
            return refuse("invalid_request", "a parameter is too long")
        if query.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required")
        challenge = query.get("code_challenge", "")
        if not _CHALLENGE.match(challenge):
            return refuse("invalid_request", "code_challenge is not an S256 challenge")
        if query.get("resource", GATEWAY_AUDIENCE) != GATEWAY_AUDIENCE:
            return refuse("invalid_target", f"the only resource is {GATEWAY_AUDIENCE}")
        try:
            scope = parse_scope(query.get("scope", ""))
        except OAuthError as exc:
            return refuse(exc.error, exc.description)
        if "openid" not in scope:
            return refuse("invalid_scope", "scope must include openid")
        prompt = query.get("prompt", "").split()
        if "none" in prompt:
            return refuse("login_required", "this provider keeps no sign-in sessions")
        flow = _Interaction(
            "code",
            time.monotonic() + INTERACTION_TTL,
            scope,
            redirect_uri=redirect_uri,
            state=state,
            nonce=query.get("nonce"),
            challenge=challenge,
            consent="consent" in prompt,
            hint=query.get("login_hint", ""),
        )
        txn = self._start(flow)
        return RedirectResponse(f"/interaction/{txn}", 303, headers=pages.HEADERS)

    async def interaction(self, request: Request) -> Response:
        txn = request.path_params["txn"]
        flow = self._interaction(txn)
        if flow is None:
            return pages.error_page("This sign-in expired or is unknown; start again.")
        if flow.user is None:
            return pages.login_page(txn, self._purpose(flow), flow.hint)
        if flow.kind == "device":
            question = f"Allow the device showing {_shown(flow)} to act as {flow.user}?"
        else:
            question = f"Allow the wardgate command line to act as {flow.user}?"
        return pages.consent_page(txn, question)

    async def login(self, request: Request) -> Response:
        txn = request.path_params["txn"]
        flow = self._interaction(txn)
        if flow is None or flow.user is not None:
            return pages.error_page("This sign-in expired or is unknown; start again.")
        try:
            form = await _form(request)
        except OAuthError as exc:
            return pages.error_page(exc.description, exc.status)
        user = self.provider.sign_in(form.get("login", ""), form.get("password", ""))
        if user is None:
            flow.failures += 1
            log.warning("dev-idp: failed sign-in for %r", form.get("login", "")[:64])
            if flow.failures >= MAX_LOGIN_FAILURES:
                return self._finish(txn, flow, allow=False)
            error = "Wrong user name or password, or the account is disabled."
            return pages.login_page(txn, self._purpose(flow), form.get("login", ""), error)
        flow.user = user.name
        if flow.kind == "code" and not flow.consent:
            return self._finish(txn, flow, allow=True)
        return RedirectResponse(f"/interaction/{txn}", 303, headers=pages.HEADERS)

    async def consent(self, request: Request) -> Response:
        txn = request.path_params["txn"]
        flow = self._interaction(txn)
        if flow is None or flow.user is None:
            return pages.error_page("This sign-in expired or is unknown; start again.")
        try:
            form = await _form(request)
        except OAuthError as exc:
            return pages.error_page(exc.description, exc.status)
        return self._finish(txn, flow, allow=form.get("decision") == "allow")

    async def device_page(self, request: Request) -> Response:
        return pages.device_page(request.query_params.get("user_code", "")[:32])

    async def device_code_entered(self, request: Request) -> Response:
        try:
            form = await _form(request)
        except OAuthError as exc:
            return pages.error_page(exc.description, exc.status)
        code = self.provider.pending_device(form.get("user_code", ""))
        if code is None:
            return pages.device_page(error="Unknown or expired code.", status=400)
        flow = _Interaction("device", time.monotonic() + INTERACTION_TTL, (), user_code=code)
        return RedirectResponse(f"/interaction/{self._start(flow)}", 303, headers=pages.HEADERS)

    # ---- JSON endpoints -------------------------------------------------------------------------

    async def device_authorization(self, request: Request) -> Response:
        try:
            form = await _form(request)
            self._client(form)
            scope = parse_scope(form.get("scope") or DEVICE_SCOPE)
            return JSONResponse(self.provider.start_device(CLIENT_ID, scope), headers=_NO_STORE)
        except OAuthError as exc:
            return _json_error(exc)

    async def token(self, request: Request) -> Response:
        try:
            form = await _form(request)
            client = self._client(form)
            grant = form.get("grant_type", "")
            if grant == "authorization_code":
                code, uri = self._required(form, "code"), self._required(form, "redirect_uri")
                verifier = form.get("code_verifier", "")
                tokens = self.provider.redeem_code(client, code, uri, verifier)
            elif grant == "refresh_token":
                token = self._required(form, "refresh_token")
                tokens = self.provider.refresh(client, token, form.get("scope"))
            elif grant == DEVICE_GRANT:
                tokens = self.provider.poll_device(client, self._required(form, "device_code"))
            else:
                raise OAuthError("unsupported_grant_type", f"grant_type {grant[:64]!r}")
        except OAuthError as exc:
            return _json_error(exc)
        return JSONResponse(tokens, headers=_NO_STORE)

    async def userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            headers = {"WWW-Authenticate": 'Bearer realm="wardgate-dev-idp"', **_NO_STORE}
            return JSONResponse({"error": "invalid_request"}, 401, headers=headers)
        try:
            return JSONResponse(self.provider.userinfo(token.strip()), headers=_NO_STORE)
        except OAuthError as exc:
            return _json_error(exc)

    async def admin(self, request: Request) -> Response:
        """Development only: disable or enable an account, from this machine only."""
        origin = request.headers.get("origin")
        if not _client_address_is_loopback(request) or (origin and origin != self.provider.issuer):
            return JSONResponse({"error": "forbidden"}, 403)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("disable", "enable"):
            return JSONResponse({"error": "not_found"}, 404)
        if not self.provider.set_disabled(name, action == "disable"):
            return JSONResponse({"error": "unknown_user"}, 404)
        log.warning("dev-idp: account %r %sd (development admin route)", name, action)
        return JSONResponse({"user": name, "active": action == "enable"}, headers=_NO_STORE)

    # ---- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _client(form: dict[str, str]) -> str:
        if form.get("client_id") != CLIENT_ID:
            raise OAuthError("invalid_client", "unknown client", 401)
        return CLIENT_ID

    @staticmethod
    def _required(form: dict[str, str], name: str) -> str:
        value = form.get(name, "")
        if not value:
            raise OAuthError("invalid_request", f"{name} is required")
        return value

    @staticmethod
    def _purpose(flow: _Interaction) -> str:
        if flow.kind == "device":
            return f"Sign in to connect the device showing {_shown(flow)}."
        return "Sign in to wardgate (development accounts alice, bob and carol)."

    def _back(self, redirect_uri: str, params: dict[str, str | None]) -> Response:
        target = _with_params(redirect_uri, {**params, "iss": self.provider.issuer})
        return RedirectResponse(target, 303, headers=pages.HEADERS)

    def _start(self, flow: _Interaction) -> str:
        now = time.monotonic()
        for txn in [t for t, f in self.interactions.items() if f.expires <= now]:
            del self.interactions[txn]
        while len(self.interactions) >= MAX_INTERACTIONS:  # the oldest give way
            del self.interactions[next(iter(self.interactions))]
        txn = secrets.token_urlsafe(24)
        self.interactions[txn] = flow
        return txn

    def _interaction(self, txn: str) -> _Interaction | None:
        flow = self.interactions.get(txn)
        return flow if flow is not None and flow.expires > time.monotonic() else None

    def _finish(self, txn: str, flow: _Interaction, *, allow: bool) -> Response:
        del self.interactions[txn]
        user = flow.user if allow else None
        if flow.kind == "device":
            decided = self.provider.decide_device(flow.user_code, user)
            if not decided:
                return pages.error_page("The device's code expired; start again on the device.")
            return pages.device_done(flow.user or "", allowed=user is not None)
        if user is None:
            refused = {"error": "access_denied", "error_description": "sign-in refused"}
            return self._back(flow.redirect_uri, {**refused, "state": flow.state})
        try:
            code = self.provider.issue_code(
                user, CLIENT_ID, flow.redirect_uri, flow.challenge, flow.scope, flow.nonce
            )
        except OAuthError as exc:
            return self._back(flow.redirect_uri, {"error": exc.error, "state": flow.state})
        return self._back(flow.redirect_uri, {"code": code, "state": flow.state})


def create_app(provider: DevProvider) -> Starlette:
    return _Routes(provider).app()
