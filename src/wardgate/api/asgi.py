"""Serving an ASGI application on the running event loop, beside the protocol listeners.

uvicorn does the HTTP/1.1 work (h11). Its ``Server.serve`` normally installs its own SIGINT and
SIGTERM handlers; here the gateway owns the signals and stops every listener itself, so that
hook is switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the gateway's own handlers stop this server


class AsgiListener:
    """One ASGI application on one address; ``port`` 0 takes a free port."""

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.name = name
        self._host, self._port, self._tls = host, port, tls
        self._config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # the client address is the peer's: nothing trusts a header
            limit_concurrency=1000,
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = _Server(self._config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.setblocking(False)
        self._socket = sock
        self._config.load()
        self._config.ssl = self._tls  # our context (TLS 1.2 or newer), not one built from files
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError(f"{self.name}: the HTTP listener stopped while starting")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        log.info("%s: listening on %s:%d%s", self.name, host, port, " (TLS)" if self._tls else "")
        return host, port

    async def close(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(Exception):
                await self._task
        self._task = None
