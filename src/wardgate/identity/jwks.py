"""An identity provider's signing keys (its JWKS), fetched over HTTP and cached.

Providers rotate keys by publishing the new one before signing with it. A token whose ``kid`` is
not in the cache makes the cache fetch the set again, but at most once per
``min_refetch_interval``: a stream of tokens with made-up key ids must not turn the gateway into a
load generator against the provider. Only asymmetric signing keys are kept; a symmetric ("oct")
key in a JWKS is ignored, so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

log = logging.getLogger(__name__)

PublicKey = RSAKey | ECKey | OKPKey
_KEY_TYPES: Mapping[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {
    "RSA": RSAKey,
    "EC": ECKey,
    "OKP": OKPKey,
}
MAX_JWKS_BYTES = 1 << 20


class JwksUnavailable(Exception):
    """The key set could not be fetched or was not a key set."""


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """The usable signing keys of a JWKS document by ``kid``; unusable entries are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable("not a JWKS document (no 'keys' list)")
    keys: dict[str, PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        key_class = _KEY_TYPES.get(kty) if isinstance(kty, str) else None
        if key_class is None or not isinstance(kid, str) or entry.get("use", "sig") != "sig":
            continue
        # Only the public members: a provider that leaks "d" must not make us hold its secret.
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys[kid] = key_class.import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("skipping JWKS key %r: %s", kid, exc)
    return keys


class JwksCache:
    """Keys by ``kid``; refetched when older than ``max_age`` or when a ``kid`` is unknown."""

    def __init__(
        self,
        uri: str,
        http: httpx.Client,
        *,
        min_refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self._http = http
        self._min_interval = min_refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._error = ""
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, kid: str) -> PublicKey | None:
        """The key for ``kid``, fetching the set first if it is stale or lacks ``kid``."""
        with self._lock:
            now = self._clock()
            if self._due(kid, now):
                self._fetch(now)
            if self._fetched_at is None:
                raise JwksUnavailable(self._error)
            return self._keys.get(kid)

    def keys(self) -> Mapping[str, PublicKey]:
        with self._lock:
            return dict(self._keys)

    def _due(self, kid: str, now: float) -> bool:
        if self._attempted_at is None:
            return True
        since_attempt = now - self._attempted_at
        if self._fetched_at is None:
            # Never had keys: retry soon, but not for every connection attempt.
            return since_attempt >= min(1.0, self._min_interval)
        stale = now - self._fetched_at >= self._max_age
        return (stale or kid not in self._keys) and since_attempt >= self._min_interval

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        self._attempted_at = now
        try:
            response = self._http.get(self.uri, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise JwksUnavailable(f"larger than {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, JwksUnavailable) as exc:
            # Keys already held stay in use: a provider blip must not lock everyone out.
            self._error = f"cannot fetch JWKS from {self.uri}: {exc}"
            log.warning("%s", self._error)
            return
        self._keys = keys
        self._fetched_at = now
        log.info("fetched %d signing keys from %s", len(keys), self.uri)
