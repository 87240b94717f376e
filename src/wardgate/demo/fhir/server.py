"""DEVELOPMENT ONLY: the FHIR server on a thread and event loop of its own, on loopback.

Like the demo's OpenID provider it runs as if it were another machine, so a test or a gateway
that blocks its own loop does not stop it from answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator

from wardgate.api.asgi import AsgiListener
from wardgate.demo.fhir.routes import create_app
from wardgate.demo.fhir.store import FhirStore, synthea_store
from wardgate.demo.idp import issuer_for, require_loopback

log = logging.getLogger(__name__)


class FhirServer:
    """Serves ``store`` (the Synthea bundles unless given) on ``host`` (loopback only)."""

    def __init__(
        self,
        api_key: str,
        *,
        header: str | None = "X-API-Key",
        bearer: bool = True,
        misbehave: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        store: FhirStore | None = None,
    ) -> None:
        require_loopback(host)
        self.api_key, self.header, self.misbehave = api_key, header, misbehave
        self.store = store if store is not None else synthea_store()
        # not bound to a loop until first awaited (on the server's), so made here
        self._stop = asyncio.Event()
        self._app = create_app(
            self.store,
            api_key,
            header=header,
            bearer=bearer,
            misbehave=misbehave,
            stopping=self._stop,
        )
        self._host, self._port = host, port
        self.base_url = ""
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request to this server."""
        if self.header is None:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {self.header: self.api_key}

    def start(self, timeout: float = 15.0) -> str:
        """Start serving (once); returns the base URL, ``http://127.0.0.1:PORT``."""
        if self._thread is not None:
            return self.base_url
        self._thread = threading.Thread(target=self._run, name="dev-fhir", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the development FHIR server did not start")
        if self._error is not None:
            raise OSError(f"the development FHIR server did not start: {self._error}")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FhirServer:
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
        listener = AsgiListener("dev-fhir", self._app, self._host, self._port, None)
        host, port = await listener.start()
        self.base_url = issuer_for(host, port)
        self._loop = asyncio.get_running_loop()
        log.warning(
            "dev-fhir: DEVELOPMENT ONLY FHIR server at %s (synthetic data%s; never expose it)",
            self.base_url,
            ", test endpoints on" if self.misbehave else "",
        )
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await listener.close()


@contextlib.contextmanager
def running_fhir_server(api_key: str, misbehave: bool = False) -> Iterator[FhirServer]:
    """A started server on 127.0.0.1 (a free port), stopped on leaving the block."""
    server = FhirServer(api_key, misbehave=misbehave)
    server.start()
    try:
        yield server
    finally:
        server.stop()
