"""Addons on typed hooks, and the pipeline that calls them.

Hooks are per exchange type, as mitmproxy's are per protocol.

- ``connect(attempt)``: every session start, refused ones too.
- SQL (``Statement``): ``statement(stmt)`` before it reaches the target (returns a ``Decision``
  or None); ``statement_sent(stmt)`` when an allowed one goes to the target;
  ``result_header(stmt, columns)`` before a result's rows; ``row(stmt, values)`` for each row,
  decoded (returns the values to send), and ``rows(stmt, batch)``, the same for the rows that
  arrived together (a ``RowBatch``, changed in place; by default each row goes through ``row``:
  an addon that wants rows overrides ``row``, and ``rows`` too where a column at a time is
  faster); ``statement_end(stmt)`` when its result is complete or it was refused.
- APIs (``ApiCall``): ``api_call(call)`` before it reaches the API; ``api_call_sent(call)`` when
  an allowed one goes to it; ``document(call, body)`` for
  each JSON document the API answers (returns the document to send); ``api_call_end(call)``.
- Either: ``approve(exchange, decision)`` resolves a ``Verdict.APPROVE``.
- ``diagnostic(session, fields)``: each error or notice the server sends (returns the fields to
  send); ``server_text(session, what, name, text)``: the other text a server sends outside rows
  (a reported setting, a notification's payload, a result column's name; returns the text to
  send); ``disconnect(session, reason)``: the session is over.
- ``commit()``: make what was recorded durable before results are released (group commit);
  ``unavailable()``: why no new session should start, or "".

Deciding: the decisions returned by ``statement`` (or ``api_call``) are combined, the strictest
winning (``Decision.stricter``); the first denial ends it. A ``Verdict.APPROVE`` must then be
resolved by an ``approve`` hook (a grant: ALLOW with its ``approval_id``; a ``Hold``; a denial);
with none, it is a denial. Only the pipeline writes ``exchange.decision``.

An addon overrides only the hooks it needs; the pipeline notes which, so that a session with no
``row`` hook never decodes a row, and a statement no addon reads is never parsed (its
``analysis`` is computed on first use, by the analyser the pipeline was given).

Failing closed: an exception in ``statement``, ``api_call`` or ``approve`` turns into a denial; an
exception anywhere else raises ``PipelineFailure`` and the protocol glue ends the session, because
a result that could not be masked or an access that could not be audited must not reach the
client.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from wardgate.core.model import (
    ALLOW,
    Analyser,
    ApiCall,
    ConnectAttempt,
    Decision,
    Exchange,
    ResultColumn,
    RowBatch,
    SessionInfo,
    Statement,
    Verdict,
)

log = logging.getLogger(__name__)


class ServerText(StrEnum):
    """Text a server sends outside result rows and diagnostics (``Addon.server_text``)."""

    PARAMETER = "parameter"  # a reported setting's new value (ParameterStatus); name: the setting
    NOTIFICATION = "notification"  # a NOTIFY payload; name: the channel
    COLUMN_NAME = "column name"  # a result column's name (RowDescription); name: ""


class PipelineFailure(Exception):
    """An addon failed where the only safe continuation is to stop the session."""


class Addon:
    name = "addon"
    # True if ``commit`` waits on the disk (fsync): the glue then runs it off the event loop.
    commit_blocks = False

    def connect(self, attempt: ConnectAttempt) -> None:
        pass

    # ---- SQL statements ----

    def statement(self, stmt: Statement) -> Decision | None:
        return None

    def statement_sent(self, stmt: Statement) -> None:
        """An allowed statement goes to the server: whatever of its result the client receives
        comes after what this records is durable, and so does the statement itself unless it
        is a plain read (the audit's write-ahead record; docs/audit.md)."""

    def result_header(self, stmt: Statement, columns: tuple[ResultColumn, ...]) -> None:
        pass

    def row(self, stmt: Statement, values: list[bytes | None]) -> list[bytes | None]:
        return values

    def rows(self, stmt: Statement, batch: RowBatch) -> None:
        """Rows that arrived together; called only on addons that override ``row``."""
        row = self.row
        batch.set_rows([row(stmt, values) for values in batch.rows()])

    def statement_end(self, stmt: Statement) -> None:
        pass

    # ---- API calls ----

    def api_call(self, call: ApiCall) -> Decision | None:
        return None

    def api_call_sent(self, call: ApiCall) -> None:
        """An allowed call goes to the API now (the audit's write-ahead record)."""

    def document(self, call: ApiCall, body: Any) -> Any:
        """A JSON document an HTTP API answered (parsed: dicts, lists, str, numbers, None);
        return the document to send instead. Called only while the response is held whole."""
        return body

    def api_call_end(self, call: ApiCall) -> None:
        pass

    # ---- either ----

    def approve(self, exchange: Exchange, decision: Decision) -> Decision | None:
        """Resolve a ``Verdict.APPROVE`` decision: run on a grant, hold, or deny."""
        return None

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        """An error or notice the server sends (its fields by code: M message, D detail, ...),
        which may echo stored values; return the fields to send instead."""
        return fields

    def server_text(self, session: SessionInfo, what: ServerText, name: str, text: str) -> str:
        """A setting's value, a notification's payload or a column's name the server sends;
        return the text to send instead."""
        return text

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        pass

    def commit(self) -> None:
        pass

    def unavailable(self) -> str:
        """Why no new session should start now (say, the audit store cannot write); "" if fine."""
        return ""


HOOKS = (
    "connect", "statement", "statement_sent", "result_header", "row", "statement_end",
    "api_call", "api_call_sent", "document", "api_call_end", "approve", "diagnostic",
    "server_text", "disconnect", "commit",
)  # fmt: skip


def _overrides(addon: Addon, hook: str) -> bool:
    return getattr(type(addon), hook) is not getattr(Addon, hook)


class Pipeline:
    def __init__(self, addons: list[Addon], analyser: Analyser | None = None) -> None:
        self.addons = list(addons)
        self.analyser = analyser
        self._by_hook = {hook: [a for a in self.addons if _overrides(a, hook)] for hook in HOOKS}
        self._bound = {
            hook: [(a.name, getattr(a, hook)) for a in addons]
            for hook, addons in self._by_hook.items()
        }
        self.wants_rows = bool(self._by_hook["row"])
        self.wants_columns = self.wants_rows or bool(self._by_hook["result_header"])
        self.wants_commit = bool(self._by_hook["commit"])
        self.wants_diagnostics = bool(self._by_hook["diagnostic"])
        self.wants_server_text = bool(self._by_hook["server_text"])
        self.wants_documents = bool(self._by_hook["document"])
        self.commit_blocks = any(a.commit_blocks for a in self._by_hook["commit"])

    def connect(self, attempt: ConnectAttempt) -> None:
        self._notify("connect", attempt)

    # ---- deciding ----

    def statement(self, stmt: Statement) -> Decision:
        stmt.analyser = self.analyser
        return self._settle(stmt, self._decide("statement", stmt))

    def api_call(self, call: ApiCall) -> Decision:
        return self._settle(call, self._decide("api_call", call))

    @staticmethod
    def _settle(exchange: Exchange, decision: Decision) -> Decision:
        """The exchange's decision is this one; a hold's, the one it resolves to (before the
        protocol, which registered later, hears of it)."""
        exchange.decision = decision
        hold = decision.hold
        if decision.verdict is Verdict.HOLD and hold is not None:
            hold.when_resolved(lambda final: setattr(exchange, "decision", final))
        return decision

    def _decide(self, hook: str, exchange: Exchange) -> Decision:
        decision = ALLOW
        for name, call in self._bound[hook]:
            try:
                found = call(exchange)
            except Exception:
                log.exception("addon %s failed in %s; denying", name, hook)
                return Decision.deny("the gateway could not evaluate its policy", name)
            if found is not None:
                decision = decision.stricter(found)
                if decision.verdict is Verdict.DENY:
                    return decision
        if decision.verdict is not Verdict.APPROVE:
            return decision
        for addon in self._by_hook["approve"]:
            try:
                resolved = addon.approve(exchange, decision)
            except Exception:
                log.exception("addon %s failed in approve; denying", addon.name)
                return Decision.deny("the gateway could not check for an approval", addon.name)
            if resolved is not None:
                return resolved
        return Decision.deny(
            f"{decision.reason or 'this needs approval'}, and this gateway keeps no approvals",
            decision.by,
        )

    def statement_sent(self, stmt: Statement) -> None:
        self._notify("statement_sent", stmt)

    def api_call_sent(self, call: ApiCall) -> None:
        self._notify("api_call_sent", call)

    # ---- results ----

    def result_header(self, stmt: Statement, columns: tuple[ResultColumn, ...]) -> None:
        self._notify("result_header", stmt, columns)

    def row(self, stmt: Statement, values: list[bytes | None]) -> list[bytes | None]:
        return self._fold("row", "a result row", stmt, values)  # type: ignore[no-any-return]

    def rows(self, stmt: Statement, batch: RowBatch) -> None:
        for addon in self._by_hook["row"]:
            try:
                addon.rows(stmt, batch)
            except Exception as exc:
                log.exception("addon %s failed on result rows", addon.name)
                raise PipelineFailure(f"{addon.name} failed on result rows") from exc

    def statement_end(self, stmt: Statement) -> None:
        self._notify("statement_end", stmt)

    def document(self, call: ApiCall, body: Any) -> Any:
        return self._fold("document", "a response document", call, body)

    def api_call_end(self, call: ApiCall) -> None:
        self._notify("api_call_end", call)

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        found = self._fold("diagnostic", "an error or notice", session, fields)
        return found  # type: ignore[no-any-return]

    def _fold(self, hook: str, what: str, context: object, value: Any) -> Any:
        """Each addon's hook turns the value into the next one's; a failure ends the session."""
        for name, call in self._bound[hook]:
            try:
                value = call(context, value)
            except Exception as exc:
                log.exception("addon %s failed on %s", name, what)
                raise PipelineFailure(f"{name} failed on {what}") from exc
        return value

    def server_text(self, session: SessionInfo, what: ServerText, name: str, text: str) -> str:
        for addon in self._by_hook["server_text"]:
            try:
                text = addon.server_text(session, what, name, text)
            except Exception as exc:
                log.exception("addon %s failed on %s text", addon.name, what)
                raise PipelineFailure(f"{addon.name} failed on {what} text") from exc
        return text

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
        for name, call in self._bound[hook]:
            try:
                call(*args)
            except Exception as exc:
                log.exception("addon %s failed in %s", name, hook)
                failed = failed or (name, exc)
        if failed is not None:
            raise PipelineFailure(f"{failed[0]} failed in {hook}") from failed[1]
