"""Addons on typed hooks, and the pipeline that calls them.

Hooks, in the order a session meets them: ``connect`` (every attempt, failed ones too),
``request`` (may return a ``Decision``), ``result_header``, ``row``, ``result_end`` and
``disconnect``; ``diagnostic`` for each error or notice the server sends; ``document`` for each
JSON document an HTTP API answers (parsed; what it returns is what the client gets). ``commit``
is not about one session: it asks an addon that records (the audit) to
make durable everything it has recorded so far. The protocol glue calls it before it releases any
result to a client, once for all the sessions served in one turn of the event loop (group
commit). An addon overrides only the hooks it needs; the pipeline notes which, so that a
session with no ``row`` hook never decodes a row.

Failing closed: an exception in ``request`` turns into a denial; an exception anywhere else
raises ``PipelineFailure`` and the protocol glue ends the session, because a result that could not
be masked or an access that could not be audited must not reach the client.
"""

from __future__ import annotations

import logging
from typing import Any

from wardgate.core.model import (
    ALLOW,
    Column,
    ConnectAttempt,
    Decision,
    Request,
    SessionInfo,
    Verdict,
)

log = logging.getLogger(__name__)


class PipelineFailure(Exception):
    """An addon failed where the only safe continuation is to stop the session."""


class Addon:
    name = "addon"
    # True if ``commit`` waits on the disk (fsync): the glue then runs it off the event loop.
    commit_blocks = False

    def connect(self, attempt: ConnectAttempt) -> None:
        pass

    def request(self, request: Request) -> Decision | None:
        return None

    def sent(self, request: Request) -> None:
        """An allowed statement (or call) goes to the server now: whatever of its result the
        client receives comes after this (the audit's write-ahead record)."""

    def result_header(self, request: Request, columns: tuple[Column, ...]) -> None:
        pass

    def row(self, request: Request, values: list[bytes | None]) -> list[bytes | None]:
        return values

    def result_end(self, request: Request) -> None:
        pass

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        """An error or notice the server sends (its fields by code: M message, D detail, ...),
        which may echo stored values; return the fields to send instead."""
        return fields

    def document(self, request: Request, body: Any) -> Any:
        """A JSON document an HTTP API answered (parsed: dicts, lists, str, numbers, None);
        return the document to send instead. Called only while the response is held whole."""
        return body

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        pass

    def commit(self) -> None:
        pass

    def unavailable(self) -> str:
        """Why no new session should start now (say, the audit store cannot write); "" if fine."""
        return ""


HOOKS = (
    "connect", "request", "result_header", "row", "result_end", "diagnostic", "document",
    "disconnect", "commit", "sent",
)  # fmt: skip


def _overrides(addon: Addon, hook: str) -> bool:
    return getattr(type(addon), hook) is not getattr(Addon, hook)


class Pipeline:
    def __init__(self, addons: list[Addon]) -> None:
        self.addons = list(addons)
        self._by_hook = {hook: [a for a in self.addons if _overrides(a, hook)] for hook in HOOKS}
        self.wants_rows = bool(self._by_hook["row"])
        self.wants_columns = self.wants_rows or bool(self._by_hook["result_header"])
        self.wants_commit = bool(self._by_hook["commit"])
        self.wants_diagnostics = bool(self._by_hook["diagnostic"])
        self.wants_documents = bool(self._by_hook["document"])
        self.commit_blocks = any(a.commit_blocks for a in self._by_hook["commit"])

    def connect(self, attempt: ConnectAttempt) -> None:
        self._notify("connect", attempt)

    def request(self, request: Request) -> Decision:
        for addon in self._by_hook["request"]:
            try:
                decision = addon.request(request)
            except Exception:
                log.exception("addon %s failed in request; denying", addon.name)
                return Decision(
                    Verdict.DENY, "the gateway could not evaluate its policy", addon.name
                )
            if decision is not None and not decision.allowed:
                return decision
        return ALLOW

    def sent(self, request: Request) -> None:
        self._notify("sent", request)

    def result_header(self, request: Request, columns: tuple[Column, ...]) -> None:
        self._notify("result_header", request, columns)

    def row(self, request: Request, values: list[bytes | None]) -> list[bytes | None]:
        for addon in self._by_hook["row"]:
            try:
                values = addon.row(request, values)
            except Exception as exc:
                log.exception("addon %s failed on a row", addon.name)
                raise PipelineFailure(f"{addon.name} failed on a result row") from exc
        return values

    def result_end(self, request: Request) -> None:
        self._notify("result_end", request)

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        for addon in self._by_hook["diagnostic"]:
            try:
                fields = addon.diagnostic(session, fields)
            except Exception as exc:
                log.exception("addon %s failed on an error or notice", addon.name)
                raise PipelineFailure(f"{addon.name} failed on an error or notice") from exc
        return fields

    def document(self, request: Request, body: Any) -> Any:
        for addon in self._by_hook["document"]:
            try:
                body = addon.document(request, body)
            except Exception as exc:
                log.exception("addon %s failed on a document", addon.name)
                raise PipelineFailure(f"{addon.name} failed on a response document") from exc
        return body

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._notify("disconnect", session, reason)

    def commit(self) -> None:
        self._notify("commit")

    def unavailable(self) -> str:
        return next((why for addon in self.addons if (why := addon.unavailable())), "")

    def _notify(self, hook: str, *args: object) -> None:
        """Call every addon's hook, even after one fails (the audit must still see the event),
        then raise for the first failure."""
        failed: tuple[str, Exception] | None = None
        for addon in self._by_hook[hook]:
            try:
                getattr(addon, hook)(*args)
            except Exception as exc:
                log.exception("addon %s failed in %s", addon.name, hook)
                failed = failed or (addon.name, exc)
        if failed is not None:
            raise PipelineFailure(f"{failed[0]} failed in {hook}") from failed[1]
