"""Bulk-export jobs bound to the caller that started them: no I/O.

A FHIR bulk export answers its kick-off with a status URL (``Content-Location`` of a 202), and
the status URL with a manifest whose ``output`` and ``error`` entries are file URLs. Those URLs
are capabilities: whoever holds one reads the files. The gateway notes each URL under the API's
base as it passes, with the identity it was given to, and refuses the URL, and anything under
it, to every other identity (paths compared without regard to case): a clinician cannot fetch
an engineer's files raw, nor an engineer another caller's.

Only URLs that crossed this gateway are known (kept in memory, the newest ``limit``): a job
started around the gateway, or before it restarted, is not bound to anyone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import urljoin

from wardgate.protocols.http.canonical import decode_path
from wardgate.protocols.http.codec import CodecError


class ExportJobs:
    def __init__(self, limit: int = 4096) -> None:
        self._owners: OrderedDict[tuple[str, tuple[str, ...]], str] = OrderedDict()
        self._limit = limit

    def bind(self, api: str, url: str, upstream_base: str, owner: str) -> None:
        """Note ``url`` (an absolute URL of the API) as ``owner``'s; URLs elsewhere are ignored."""
        segments = _under(url, upstream_base)
        if segments is None:
            return
        self._owners[(api, segments)] = owner
        self._owners.move_to_end((api, segments))
        while len(self._owners) > self._limit:
            self._owners.popitem(last=False)

    def bind_manifest(self, api: str, doc: Any, upstream_base: str, owner: str) -> None:
        """The file URLs of a bulk-data manifest (``output[].url``, ``error[].url``)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("output"), list):
            return
        for key in ("output", "error", "deleted"):
            entries = doc.get(key)
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                    self.bind(api, entry["url"], upstream_base, owner)

    def owner(self, api: str, segments: tuple[str, ...]) -> str | None:
        """Who the path (decoded segments under the API), or a path above it, was given to."""
        key = _key(segments)
        for n in range(len(key), 0, -1):
            found = self._owners.get((api, key[:n]))
            if found is not None:
                return found
        return None


def _under(url: str, upstream_base: str) -> tuple[str, ...] | None:
    base = upstream_base.rstrip("/")
    url = urljoin(base + "/", url)  # a relative reference is the API's too
    if not url.startswith(base + "/"):
        return None
    path = url[len(base) :].split("?", 1)[0].split("#", 1)[0]
    try:
        return _key(decode_path(path))
    except CodecError:  # what cannot be decoded cannot be requested either
        return None


def _key(segments: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    # In lower case: a server that reads paths without regard to case serves the same job.
    return tuple(s.lower() for s in segments)
