"""TESTS ONLY: endpoints that misbehave the ways an upstream FHIR server can, so that the tests can
show what the gateway does then. Served only when the server is built with ``misbehave=True``;
the demo never is.

- ``/_test/malformed``: 200, ``application/fhir+json``, a body that is not JSON;
- ``/_test/error``: 503 with an OperationOutcome;
- ``/_test/huge``: a searchset Bundle of exactly 100 MiB (``?bytes=N`` for another size),
  generated while it is sent, with ``Content-Length`` (``?chunked=1``: without, so chunked);
- ``/_test/slow?seconds=N``: an empty searchset Bundle after N seconds (at most 300);
- ``/_test/text?say=...``: 200, ``text/plain``, the words given (a server's plain-text page
  that quotes what it holds);
- ``/_test/base``: 201, an Observation that names the server's own base URL wherever a server
  may (an absolute reference, an extension URL, free text, ``Location``, ``Content-Location``
  and ``Link`` headers); ``?outcome=1``: a 404 OperationOutcome that quotes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from wardgate.demo.fhir.responses import MEDIA_TYPE, FhirResponse, now, outcome

HUGE_BYTES = 100 * 1024 * 1024
MAX_HUGE_BYTES = 1024 * 1024 * 1024
MAX_DELAY = 300.0
_ENTRIES_PER_CHUNK = 64

_HEAD = b'{"resourceType":"Bundle","type":"searchset","entry":['
_TAIL = b"]}"
_FILLER = "Synthetic filler for a size test; no person. " * 16


def _entry(index: int) -> bytes:
    rid = f"huge-{index:010d}"  # fixed width: every entry is the same size
    resource = {
        "resourceType": "Patient",
        "id": rid,
        "name": [{"family": "Filler", "given": ["Huge"]}],
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{_FILLER}</div>',
        },
    }
    entry = {"fullUrl": f"Patient/{rid}", "resource": resource, "search": {"mode": "match"}}
    return json.dumps(entry, separators=(",", ":")).encode()


def huge_layout(size: int) -> tuple[int, int]:
    """How many entries, and how many spaces before the closing ``]}``, make ``size`` bytes."""
    room = size - len(_HEAD) - len(_TAIL)
    if room < 0:
        raise ValueError(f"a Bundle needs at least {len(_HEAD) + len(_TAIL)} bytes")
    width = len(_entry(0))
    count = (room + 1) // (width + 1)
    used = count * width + max(count - 1, 0)
    return count, room - used


async def _huge_body(size: int, stopping: asyncio.Event) -> AsyncIterator[bytes]:
    count, padding = huge_layout(size)
    yield _HEAD
    for start in range(0, count, _ENTRIES_PER_CHUNK):
        if stopping.is_set():
            return  # the server is stopping: cut the body short
        stop = min(start + _ENTRIES_PER_CHUNK, count)
        chunk = b",".join(_entry(i) for i in range(start, stop))
        yield chunk if start == 0 else b"," + chunk
    yield b" " * padding + _TAIL


class Misbehaviour:
    """The test endpoints; ``stopping``, once set, ends a slow answer or a huge body early, so
    that the server stops at once."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping

    async def malformed(self, request: Request) -> Response:
        body = b'{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":'
        return Response(body, media_type=MEDIA_TYPE)

    async def error(self, request: Request) -> Response:
        text = "the upstream is unavailable (a test of error handling)"
        return outcome(503, "transient", text, {"Retry-After": "5"})

    async def huge(self, request: Request) -> Response:
        raw = request.query_params.get("bytes", str(HUGE_BYTES))
        if not raw.isdigit() or not len(_HEAD) + len(_TAIL) <= int(raw) <= MAX_HUGE_BYTES:
            return outcome(400, "invalid", f"bytes must be a size up to {MAX_HUGE_BYTES}")
        size = int(raw)
        headers = (
            {} if request.query_params.get("chunked") == "1" else {"Content-Length": str(size)}
        )
        return StreamingResponse(
            _huge_body(size, self.stopping), media_type=MEDIA_TYPE, headers=headers
        )

    async def slow(self, request: Request) -> Response:
        try:
            seconds = float(request.query_params.get("seconds", "5"))
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            return outcome(400, "invalid", "seconds must be a number")
        delay = min(max(seconds, 0.0), MAX_DELAY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
            return outcome(503, "transient", "the server is stopping")
        body = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 0,
            "meta": {"lastUpdated": now()},
        }
        return FhirResponse(body)

    async def text(self, request: Request) -> Response:
        return Response(request.query_params.get("say", ""), media_type="text/plain")

    async def base(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        if request.query_params.get("outcome") == "1":
            return outcome(404, "not-found", f"nothing at {base}/Observation/gone (see {base})")
        body = {
            "resourceType": "Observation",
            "id": "base-1",
            "status": "final",
            "code": {"text": f"served by {base}/metadata"},
            "subject": {"reference": f"{base}/Observation/base-0"},
            "extension": [{"url": f"{base}/StructureDefinition/x", "valueUri": base}],
        }
        headers = {
            "Location": f"{base}/Observation/base-1/_history/1",
            "Content-Location": f"{base}/Observation/base-1",
            "Link": f'<{base}/Observation?_offset=1>; rel="next"',
        }
        return FhirResponse(body, 201, headers)

    def routes(self) -> list[Route]:
        return [
            Route("/_test/base", self.base),
            Route("/_test/text", self.text),
            Route("/_test/malformed", self.malformed),
            Route("/_test/error", self.error),
            Route("/_test/huge", self.huge),
            Route("/_test/slow", self.slow),
        ]
