"""FHIR reads and searches through the gateway's HTTP listener, with the agent's credential as
the bearer token. The gateway tells an HTTP client nothing while it holds a call for approval,
so a call slower than ``hold_after`` is reported as waiting and kept running as a job."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import ssl
from typing import Any

import httpx

from wardgate.mcp.errors import Refusal
from wardgate.mcp.jobs import Jobs
from wardgate.mcp.settings import Settings

RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
RESOURCE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 id
MAX_BODY = 200_000  # characters handed to the assistant


class FhirClient:
    def __init__(self, settings: Settings, jobs: Jobs) -> None:
        self._settings = settings
        self._jobs = jobs
        self._client: httpx.AsyncClient | None = None
        self._numbers = itertools.count(1)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self._settings
            assert s.http_url is not None  # settings refuse APIs without it
            tls = s.http_tls or ssl.create_default_context(cafile=str(s.ca) if s.ca else None)
            self._client = httpx.AsyncClient(
                base_url=s.http_url,
                headers={"Authorization": f"Bearer {s.credential}"},
                verify=tls,
                timeout=httpx.Timeout(30.0, read=None),  # a held call waits for its approver
                follow_redirects=False,
            )
        return self._client

    async def read(self, api: str, resource_type: str, resource_id: str) -> str:
        _check_type(resource_type)
        if not RESOURCE_ID.match(resource_id):
            raise Refusal(f"{resource_id!r} is not a FHIR resource id")
        return await self._get(f"/{api}/{resource_type}/{resource_id}", None)

    async def search(self, api: str, resource_type: str, params: dict[str, str]) -> str:
        _check_type(resource_type)
        return await self._get(f"/{api}/{resource_type}", params)

    async def _get(self, path: str, params: dict[str, str] | None) -> str:
        task = asyncio.create_task(self._fetch(path, params))
        done, _ = await asyncio.wait({task}, timeout=self._settings.hold_after)
        if task in done:
            return task.result()
        key = f"http_{next(self._numbers)}"
        self._jobs.add(key, task)
        return (
            f"pending: GET {path} is still waiting after {self._settings.hold_after:g} s, most "
            "likely held for approval (`wardgate approvals list` shows the request). Call "
            f"approval_status('{key}') to get the result."
        )

    async def _fetch(self, path: str, params: dict[str, str] | None) -> str:
        try:
            answer = await self._http().get(path, params=params)
        except httpx.HTTPError as exc:
            raise Refusal(f"no answer from the gateway's HTTP listener: {exc}") from None
        if answer.status_code == 401:
            raise Refusal(
                "the gateway refused the agent credential (401): it is wrong or expired, or it "
                "or its owner was revoked. Ask the owner for a new one."
            )
        if answer.status_code >= 400:
            raise Refusal(f"the gateway answered {answer.status_code}: {_message(answer)}")
        text = answer.text
        if len(text) > MAX_BODY:
            return text[:MAX_BODY] + f"\n[truncated: {len(text)} characters; ask for fewer]"
        return text

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _check_type(resource_type: str) -> None:
    if not RESOURCE_TYPE.match(resource_type):
        raise Refusal(f"{resource_type!r} is not a FHIR resource type (Patient, Observation, ...)")


def _message(answer: httpx.Response) -> str:
    try:
        body: Any = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return answer.text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        issues = body.get("issue")
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            return str(issues[0].get("diagnostics") or issues[0].get("details") or issues[0])
    return answer.text[:500]
