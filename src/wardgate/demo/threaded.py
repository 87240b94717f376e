"""DEVELOPMENT ONLY: an ASGI app served on a thread and event loop of its own, on loopback.

The demo's OpenID provider and FHIR server run this way, as if they were other machines: the
gateway sometimes blocks its own loop (a synchronous JWKS fetch, a re-validation call), and a
server on that loop could then not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
from typing import Self

from starlette.types import ASGIApp

from wardgate.api.asgi import AsgiListener

log = logging.getLogger(__name__)


def require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"a development server binds loopback addresses only, not {host!r}")


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ThreadedServer:
    """``start`` serves ``app()`` and returns the base URL; ``stop`` ends it. Subclasses give
    ``name`` and ``what`` (for logs and errors) and may act on ``started``."""

    name = "dev-server"
    what = "the development server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self._host, self._port = host, port
        self.url = ""
        # not bound to a loop until first awaited (on the server's), so made here
        self._stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def app(self) -> ASGIApp:
        raise NotImplementedError

    def started(self, url: str) -> None:
        """Called on the server's loop once it listens, before ``start`` returns."""

    def start(self, timeout: float = 15.0) -> str:
        """Start serving (once); returns the base URL, ``http://127.0.0.1:PORT``."""
        if self._thread is not None:
            return self.url
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.what} did not start")
        if self._error is not None:
            raise OSError(f"{self.what} did not start: {self._error}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
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
        listener = AsgiListener(self.name, self.app(), self._host, self._port, None)
        host, port = await listener.start()
        self.url = base_url(host, port)
        self._loop = asyncio.get_running_loop()
        self.started(self.url)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await listener.close()
