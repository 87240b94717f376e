"""DEVELOPMENT ONLY: the FHIR server on a thread and event loop of its own, on loopback.

Like the demo's OpenID provider it runs as if it were another machine, so a test or a gateway
that blocks its own loop does not stop it from answering.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from starlette.types import ASGIApp

from wardgate.demo.fhir.routes import create_app
from wardgate.demo.fhir.store import FhirStore, synthea_store
from wardgate.demo.threaded import ThreadedServer

log = logging.getLogger(__name__)


class FhirServer(ThreadedServer):
    """Serves ``store`` (the Synthea bundles unless given) on ``host`` (loopback only)."""

    name = "dev-fhir"
    what = "the development FHIR server"

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
        super().__init__(host, port)
        self.api_key, self.header, self.misbehave = api_key, header, misbehave
        self.store = store if store is not None else synthea_store()
        self._app = create_app(
            self.store,
            api_key,
            header=header,
            bearer=bearer,
            misbehave=misbehave,
            stopping=self._stop,
        )

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request to this server."""
        if self.header is None:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {self.header: self.api_key}

    def app(self) -> ASGIApp:
        return self._app

    def started(self, url: str) -> None:
        log.warning(
            "dev-fhir: DEVELOPMENT ONLY FHIR server at %s (synthetic data%s; never expose it)",
            url,
            ", test endpoints on" if self.misbehave else "",
        )


@contextlib.contextmanager
def running_fhir_server(api_key: str, misbehave: bool = False) -> Iterator[FhirServer]:
    """A started server on 127.0.0.1 (a free port), stopped on leaving the block."""
    server = FhirServer(api_key, misbehave=misbehave)
    server.start()
    try:
        yield server
    finally:
        server.stop()
