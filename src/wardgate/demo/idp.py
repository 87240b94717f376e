"""DEVELOPMENT ONLY: a small OpenID provider for ``wardgate demo`` and the tests.

It signs real tokens (ID tokens RS256; access tokens as RFC 9068 JWTs, ES256, for
``urn:wardgate:gateway``) for three accounts with known passwords, and speaks the authorization
code flow with PKCE (S256 required) for the public client ``wardgate`` with loopback redirects
(RFC 8252 §7.3), refresh tokens with rotation and reuse detection, and the device authorization
grant (RFC 8628). It binds loopback addresses only, over plain HTTP. Grants live in memory.

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

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from wardgate.api.asgi import AsgiListener
from wardgate.demo.idp_keys import DevUser, SigningKeys
from wardgate.demo.idp_routes import create_app
from wardgate.demo.idp_tokens import DevProvider, Lifetimes

__all__ = ["DevProvider", "DevProviderServer", "create_app", "start_dev_provider"]

log = logging.getLogger(__name__)


def require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the development provider binds loopback addresses only, not {host!r}")


def issuer_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DevProviderServer:
    """Serves a ``DevProvider`` on ``host`` (loopback only) from a thread of its own."""

    def __init__(self, provider: DevProvider, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self.provider = provider
        self._host, self._port = host, port
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def start(self, timeout: float = 15.0) -> str:
        """Start serving (once); returns the issuer, ``http://127.0.0.1:PORT``."""
        if self._thread is not None:
            return self.issuer
        self._thread = threading.Thread(target=self._run, name="dev-idp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the development OpenID provider did not start")
        if self._error is not None:
            raise OSError(f"the development OpenID provider did not start: {self._error}")
        return self.issuer

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> DevProviderServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        listener = AsgiListener("dev-idp", create_app(self.provider), self._host, self._port, None)
        host, port = await listener.start()
        self.provider.issuer = issuer_for(host, port)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        log.warning(
            "dev-idp: DEVELOPMENT ONLY OpenID provider at %s (known passwords; never expose it)",
            self.provider.issuer,
        )
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await listener.close()


def start_dev_provider(
    users: Iterable[DevUser],
    key_file: Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifetimes: Lifetimes | None = None,
) -> DevProviderServer:
    """A running provider; ``key_file`` keeps its keys across restarts (None: in memory)."""
    require_loopback(host)
    provider = DevProvider(
        users, SigningKeys.load_or_create(key_file), lifetimes=lifetimes or Lifetimes()
    )
    server = DevProviderServer(provider, host, port)
    server.start()
    return server
