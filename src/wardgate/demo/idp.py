"""DEVELOPMENT ONLY: a small OpenID provider for ``wardgate demo`` and the tests.

It signs real tokens (ID tokens RS256; access tokens as RFC 9068 JWTs, ES256, for
``urn:wardgate:gateway``) for three accounts with known passwords, and speaks the authorization
code flow with PKCE (S256 required) for the public client ``wardgate`` with loopback redirects
(RFC 8252 §7.3), refresh tokens with rotation and reuse detection, and the device authorization
grant (RFC 8628). It binds loopback addresses only, over plain HTTP. Grants live in memory and,
given a file, on disk too (``idp_grants``), so that restarting the demo suspends nobody.

``POST /dev/users/{name}/disable`` (and ``/enable``) stand for an administrator disabling an
account at the provider: refresh and userinfo then fail, which is what wardgate's periodic
re-validation looks for.

Modules: ``idp_keys`` (accounts, the key file), ``idp_tokens`` (grants and token signing),
``idp_routes`` and ``idp_pages`` (HTTP). The server runs on a thread and event loop of its own
(``DevProviderServer``), as if it were another machine: the gateway sometimes blocks its loop
(a synchronous JWKS fetch, a re-validation call), and a provider on that loop could then not
answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp

from wardgate.demo.idp_keys import DevUser, SigningKeys
from wardgate.demo.idp_routes import create_app
from wardgate.demo.idp_tokens import DevProvider, Lifetimes
from wardgate.demo.threaded import ThreadedServer, require_loopback

__all__ = ["DevProvider", "DevProviderServer", "create_app", "start_dev_provider"]

log = logging.getLogger(__name__)


class DevProviderServer(ThreadedServer):
    """Serves a ``DevProvider`` on ``host`` (loopback only) from a thread of its own."""

    name = "dev-idp"
    what = "the development OpenID provider"

    def __init__(self, provider: DevProvider, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.provider = provider

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def app(self) -> ASGIApp:
        return create_app(self.provider)

    def started(self, url: str) -> None:
        self.provider.issuer = url
        log.warning(
            "dev-idp: DEVELOPMENT ONLY OpenID provider at %s (known passwords; never expose it)",
            url,
        )


def start_dev_provider(
    users: Iterable[DevUser],
    key_file: Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifetimes: Lifetimes | None = None,
    grants_file: Path | None = None,
) -> DevProviderServer:
    """A running provider; ``key_file`` keeps its keys across restarts, ``grants_file`` its
    refresh grants and disabled accounts (None: in memory)."""
    require_loopback(host)
    provider = DevProvider(
        users, SigningKeys.load_or_create(key_file), lifetimes=lifetimes or Lifetimes(),
        grants_file=grants_file,
    )  # fmt: skip
    server = DevProviderServer(provider, host, port)
    server.start()
    return server
