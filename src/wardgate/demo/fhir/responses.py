"""DEVELOPMENT ONLY: FHIR JSON responses — resources, OperationOutcomes and searchset Bundles.

Paging links are absolute URLs on the base URL the request came in on (``Host`` included), as
a FHIR server writes them; a gateway in front rewrites them to its own address. A page is named
by ``_offset``: the data never changes, so an offset names the same page every time.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from wardgate.demo.fhir.store import Resource

MEDIA_TYPE = "application/fhir+json"
NDJSON = "application/fhir+ndjson"

_SEVERITY = {4: "error", 5: "fatal"}


class FhirResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def outcome(
    status: int, code: str, text: str, headers: dict[str, str] | None = None
) -> FhirResponse:
    """An OperationOutcome with one issue; ``code`` from FHIR's IssueType (``not-found``...)."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": _SEVERITY.get(status // 100, "information"),
                "code": code,
                "diagnostics": text,
            }
        ],
    }
    return FhirResponse(body, status, headers)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _link(base: str, path: str, params: list[tuple[str, str]], count: int, offset: int) -> str:
    query = urlencode([*params, ("_count", str(count)), ("_offset", str(offset))])
    return f"{base}/{path}?{query}"


def searchset(
    base: str,
    path: str,
    params: list[tuple[str, str]],
    page: list[Resource],
    total: int,
    count: int,
    offset: int,
    *,
    included: list[Resource] | None = None,
    summary_count: bool = False,
) -> dict[str, Any]:
    """A page of ``total`` matches (``count`` from ``offset``), the ``included`` after them.

    ``params`` are the applied search parameters the links repeat, without paging."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now()},
        "type": "searchset",
        "total": total,
    }
    if summary_count:
        bundle["link"] = [{"relation": "self", "url": _link(base, path, params, 0, 0)}]
        return bundle
    links = [{"relation": "self", "url": _link(base, path, params, count, offset)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": _link(base, path, params, count, offset + count)})
    if count and offset > 0:
        back = max(0, min(offset, total) - count)
        links.append({"relation": "previous", "url": _link(base, path, params, count, back)})
    bundle["link"] = links
    entries = [_entry(base, resource, "match") for resource in page]
    entries += [_entry(base, resource, "include") for resource in included or ()]
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(base: str, resource: Resource, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }
