"""A small API of our own for the proxy tests: requires an API key, and misbehaves on request
(malformed JSON, 503, a 100 MB body, slowness, echoing its credential)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wardgate.api.asgi import AsgiListener

API_KEY = "upstream-key-7f3a9c2e51d84b06"
BEARER = "upstream-bearer-0b9d6e21c4a7"
BIG = 100 * 1000 * 1000


@dataclass
class Seen:
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def build(seen: Seen, base: list[str]) -> Starlette:
    async def guard(request: Request) -> Response | None:
        seen.headers.append(dict(request.headers))
        keyed = request.headers.get("x-api-key") == API_KEY
        if not keyed and request.headers.get("authorization") != f"Bearer {BEARER}":
            return JSONResponse({"error": "no key"}, status_code=401)
        return None

    async def patient(request: Request) -> Response:
        return await guard(request) or JSONResponse(
            {"resourceType": "Patient", "id": request.path_params["pid"],
             "name": [{"family": "Smith", "given": ["Ann"]}]},
            media_type="application/fhir+json",
        )  # fmt: skip

    async def search(request: Request) -> Response:
        refused = await guard(request)
        if refused is not None:
            return refused
        url = base[0]
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [
                    {"relation": "self", "url": f"{url}/Patient?{request.url.query}"},
                    {"relation": "next", "url": f"{url}/Patient?page=2"},
                    {"relation": "other", "url": "https://elsewhere.example/Patient"},
                ],
                "entry": [
                    {"fullUrl": f"{url}/Patient/1",
                     "resource": {"resourceType": "Patient", "id": "1",
                                  "name": [{"family": "Smith"}]}},
                ],
            },
            media_type="application/fhir+json",
            headers={"set-cookie": "upstream=1", "x-upstream": "yes",
                     "location": f"{url}/Patient/1"},
        )  # fmt: skip

    async def echo(request: Request) -> Response:
        refused = await guard(request)
        if refused is not None:
            return refused
        body = await request.body()
        seen.bodies.append(body)
        return JSONResponse({"length": len(body), "method": request.method})

    async def misbehave(request: Request) -> Response:
        refused = await guard(request)
        if refused is not None:
            return refused
        how = request.path_params["how"]
        if how == "malformed":
            return Response(b'{"resourceType": "Patient", "name": [', media_type="application/json")
        if how == "unavailable":
            return JSONResponse({"secret": "Smith, Ann, SSN 123-45-6789"}, status_code=503)
        if how == "crash":
            return Response(b"Traceback: patient Smith", status_code=500)
        if how == "slow":
            await asyncio.sleep(5)
            return JSONResponse({"late": True})
        if how == "leak":
            return JSONResponse({"key": API_KEY})
        if how == "leak-header":
            return Response(b"ok", headers={"x-debug": f"key={API_KEY}"})
        if how == "text":
            return Response(b"plain text answer", media_type="text/plain")
        if how in ("big", "big-binary", "big-declared"):

            async def chunks() -> AsyncIterator[bytes]:
                chunk = b" " * (1 << 20)
                for _ in range(BIG // len(chunk) + 1):
                    yield chunk

            headers = {"content-length": str(BIG)} if how == "big-declared" else None
            media = "application/json" if how == "big" else "application/octet-stream"
            return StreamingResponse(chunks(), media_type=media, headers=headers)
        return JSONResponse({"error": "unknown"}, status_code=404)

    return Starlette(
        routes=[
            Route("/base/Patient", search),
            Route("/base/Patient/{pid}", patient),
            Route("/base/echo", echo, methods=["GET", "POST", "PUT"]),
            Route("/base/misbehave/{how}", misbehave),
        ]
    )


@contextmanager
def serving() -> Iterator[tuple[str, Seen]]:
    """The API on a loopback port, on an event loop thread of its own; yields its base URL."""
    seen = Seen()
    base: list[str] = []
    loop = asyncio.new_event_loop()
    listener = AsgiListener("upstream", build(seen, base), "127.0.0.1", 0, None)
    started: Future[Any] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(listener.start()))
        except BaseException as exc:
            started.set_exception(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=main, name="upstream-loop", daemon=True)
    thread.start()
    host, port = started.result(30)
    base.append(f"http://{host}:{port}/base")
    try:
        yield base[0], seen
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
