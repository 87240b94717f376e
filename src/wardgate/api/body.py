"""Reading a request's JSON body without trusting its size: the API and SCIM both use it."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BodyRefused(Exception):
    """``status`` 413 (too large) or 400 (a bad Content-Length, or not JSON)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_json_body(request: Request, limit: int) -> Any:
    """The body parsed as JSON (None when empty), read no further than ``limit`` bytes, whatever
    Content-Length says."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        if length.isdigit():
            raise BodyRefused(413, f"the body exceeds {limit} bytes")
        raise BodyRefused(400, "the Content-Length header is not a number")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BodyRefused(400, "the body is not JSON") from exc
