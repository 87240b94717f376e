"""The gateway's side towards one API: an ``httpx.AsyncClient`` with the API's TLS settings,
connection limits and timeout, and the credential the gateway adds to every request.

TLS: ``verify-full`` checks the certificate chain (``ca``, else the system's) and the host name;
``require`` encrypts without checking (for a test upstream only). A client certificate, when
that is the API's authentication, is in the TLS context. The client asks for the identity
encoding: the gateway reads every byte it relays (for the credential scan, and JSON to mask), so
compressed bytes from the API would have to be inflated anyway.
"""

from __future__ import annotations

import ssl

import httpx

from wardgate import tls
from wardgate.config import ApiTarget

MAX_CONNECTIONS = 100
MAX_IDLE_CONNECTIONS = 20


class Upstream:
    def __init__(self, api: ApiTarget) -> None:
        self.api = api
        self.base = api.url.rstrip("/")
        auth = api.auth
        self.secrets: tuple[str, ...] = auth.secrets() if auth is not None else ()
        self._headers: list[tuple[str, str]] = []
        if auth is not None and auth.api_key is not None:
            self._headers.append((auth.api_key.header, auth.api_key.value.get_secret_value()))
        elif auth is not None and auth.bearer is not None:
            self._headers.append(("Authorization", f"Bearer {auth.bearer.get_secret_value()}"))
        # Headers the caller cannot set: the gateway's own.
        self.injected = frozenset(name.lower() for name, _ in self._headers)
        verify: ssl.SSLContext | bool = False
        if api.url.startswith("https://"):
            context = tls.client_context(api.tls, api.ca)
            assert context is not None  # "disable" is not a mode an API may have
            if auth is not None and auth.client_cert is not None:
                context.load_cert_chain(auth.client_cert.cert, auth.client_cert.key)
            verify = context
        self.client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(api.timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_IDLE_CONNECTIONS
            ),
            follow_redirects=False,
            trust_env=False,  # no proxy or CA settings from the environment
        )

    def build(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> httpx.Request:
        request = self.client.build_request(
            method, url, headers=[*headers, *self._headers], content=body or None
        )
        request.headers["accept-encoding"] = "identity"
        return request

    async def close(self) -> None:
        await self.client.aclose()
