"""DEVELOPMENT ONLY: FHIR Bulk Data export (``$export``), kept in memory.

The flow of the Bulk Data Access IG: a kick-off with ``Prefer: respond-async`` answers 202 with
``Content-Location``, the status URL; that URL answers 202 (in progress) at the first poll and
the manifest (200) after; the manifest lists one NDJSON file per resource type. ``DELETE`` on
the status URL cancels. The files are built at kick-off; only the newest ``MAX_JOBS`` jobs are
kept. Group export is not supported.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wardgate.demo.fhir.params import date_range
from wardgate.demo.fhir.responses import NDJSON, now, outcome
from wardgate.demo.fhir.store import FhirStore, Resource

MAX_JOBS = 16
_FORMATS = (None, "application/fhir+ndjson", "application/ndjson", "ndjson")


@dataclass
class ExportJob:
    id: str
    request: str
    transaction_time: str
    files: dict[str, bytes] = field(default_factory=dict)  # type -> NDJSON
    counts: dict[str, int] = field(default_factory=dict)
    polls: int = 0


class Exports:
    def __init__(self, store: FhirStore) -> None:
        self.store = store
        self._jobs: OrderedDict[str, ExportJob] = OrderedDict()

    def start(self, request: str, by_type: dict[str, list[Resource]]) -> ExportJob:
        job = ExportJob(secrets.token_urlsafe(16), request, now())
        for kind, resources in sorted(by_type.items()):
            if resources:
                lines = (
                    json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in resources
                )
                job.files[kind] = ("\n".join(lines) + "\n").encode()
                job.counts[kind] = len(resources)
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> ExportJob | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        return self._jobs.pop(job_id, None) is not None

    def routes(self) -> list[Route]:
        return [
            Route("/$export", self.kick_off_system),
            Route("/Patient/$export", self.kick_off_patients),
            Route("/_export/{job}", self.status, methods=["GET", "DELETE"]),
            Route("/_export/{job}/{name}", self.file),
        ]

    async def kick_off_system(self, request: Request) -> Response:
        return self._kick_off(request, {k: self.store.all_of(k) for k in self.store.types})

    async def kick_off_patients(self, request: Request) -> Response:
        return self._kick_off(request, self.store.in_any_compartment())

    def _kick_off(self, request: Request, by_type: dict[str, list[Resource]]) -> Response:
        prefer = [p.strip().lower() for p in request.headers.get("prefer", "").split(",")]
        if "respond-async" not in prefer:
            return outcome(400, "invalid", "$export needs the header Prefer: respond-async")
        if request.query_params.get("_outputFormat") not in _FORMATS:
            return outcome(400, "not-supported", "only NDJSON output is supported")
        wanted = request.query_params.get("_type")
        if wanted:
            kinds = [k.strip() for k in wanted.split(",") if k.strip()]
            unknown = [k for k in kinds if k not in self.store.by_type]
            if unknown:
                return outcome(400, "not-supported", f"unknown _type: {', '.join(unknown)}")
            by_type = {k: v for k, v in by_type.items() if k in kinds}
        since = request.query_params.get("_since")
        if since:
            span = date_range(since)
            loaded = date_range(self.store.loaded_at)
            if span is None or loaded is None:
                return outcome(400, "invalid", f"_since: {since!r} is not an instant")
            if loaded[0] < span[0]:
                by_type = {}  # nothing changed since then
        job = self.start(str(request.url), by_type)
        location = f"{_base(request)}/_export/{job.id}"
        text = f"export {job.id} accepted; poll {location}"
        return outcome(202, "informational", text, {"Content-Location": location})

    async def status(self, request: Request) -> Response:
        job_id = request.path_params["job"]
        if request.method == "DELETE":
            if not self.cancel(job_id):
                return outcome(404, "not-found", "no such export")
            return outcome(202, "informational", f"export {job_id} cancelled")
        job = self.get(job_id)
        if job is None:
            return outcome(404, "not-found", "no such export")
        job.polls += 1
        if job.polls == 1:
            return Response(
                status_code=202, headers={"X-Progress": "in progress", "Retry-After": "1"}
            )
        base = _base(request)
        manifest = {
            "transactionTime": job.transaction_time,
            "request": job.request,
            "requiresAccessToken": True,
            "output": [
                {"type": kind, "url": f"{base}/_export/{job.id}/{kind}.ndjson", "count": n}
                for kind, n in job.counts.items()
            ],
            "error": [],
        }
        return JSONResponse(manifest, headers={"Expires": "0"})

    async def file(self, request: Request) -> Response:
        job = self.get(request.path_params["job"])
        kind = request.path_params["name"].removesuffix(".ndjson")
        if (
            job is None
            or kind not in job.files
            or not request.path_params["name"].endswith(".ndjson")
        ):
            return outcome(404, "not-found", "no such export file")
        return Response(job.files[kind], media_type=NDJSON)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
