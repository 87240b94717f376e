"""``StatementEntries``: statement events prepared for the chained store straight from a Request.

A statement event is the hot path of the audit trail: one for every statement through the gateway.
``store.prepare(statement_event(r))`` builds a dictionary, sorts its keys and checks the output for
what JSON and RFC 8785 write differently; this writes the same bytes directly, with the keys in
their canonical order and what is fixed for a session (``who``, ``session`` and the search
columns) encoded once. ``tests/audit/test_prepared.py`` checks the output equals both the generic
path and the ``rfc8785`` package. Anything this cannot write exactly (a float in exponent form, a
string JSON cannot carry, a second that rounding reaches) takes the generic path.
"""

from __future__ import annotations

from dataclasses import dataclass
from json.encoder import encode_basestring as _quote  # JCS escapes strings alike (canonical.py)

from wardgate.audit.events import MAX_STATEMENT_BYTES, UtcText, start_event, statement_event
from wardgate.audit.store import Prepared, prepare
from wardgate.core.model import Identity, SessionInfo, Statement


def js_number(value: float) -> str | None:
    """ECMAScript's text of ``value`` (RFC 8785 3.2.2.3) where Python's ``repr`` gives it, else
    None. ``repr`` and ECMAScript choose the same shortest digits; they differ in exponent form
    (Python from 1e16 and below 1e-4, ECMAScript from 1e21 and below 1e-6), which is left to the
    exact path, and in the ``.0`` Python puts after integral values."""
    if value == 0:
        return "0"  # and -0.0
    text = repr(value)
    if "e" in text or "n" in text:  # an exponent, inf, nan
        return None
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class _SessionParts:
    identity: Identity | None
    claimed_user: str
    client_addr: str
    target: str
    session: str  # the canonical JSON of "session"
    who: str  # ... and of "who"
    subject: str | None
    on_behalf: str

    def fits(self, s: SessionInfo) -> bool:
        return (
            self.identity is s.identity
            and self.target == s.target
            and self.client_addr == s.client_addr
            and self.claimed_user == s.claimed_user
        )


def _parts(s: SessionInfo) -> _SessionParts:
    session = (
        f'{{"client_addr":{_quote(s.client_addr)},"id":{_quote(s.id)},"target":{_quote(s.target)}}}'
    )
    identity = s.identity
    if identity is None:
        who = f'{{"claimed_user":{_quote(s.claimed_user)},"verified":false}}'
        subject = s.claimed_user or None
        on_behalf = ""
    else:
        chain = ",".join(_quote(name) for name in identity.on_behalf_of)
        roles = ",".join(_quote(role) for role in identity.roles)
        who = (
            f'{{"method":{_quote(identity.method)},"on_behalf_of":[{chain}],'
            f'"roles":[{roles}],"subject":{_quote(identity.subject)},"verified":true}}'
        )
        subject = identity.subject or None
        on_behalf = f"|{'|'.join(identity.on_behalf_of)}|" if identity.on_behalf_of else ""
    return _SessionParts(
        identity, s.claimed_user, s.client_addr, s.target, session, who, subject, on_behalf
    )


class StatementEntries:
    """``store.prepare(statement_event(request, 0.0))``, fast. Not thread-safe: one per thread
    that ends requests (the event loop's)."""

    def __init__(self, limit: int = MAX_STATEMENT_BYTES) -> None:
        self._sessions: dict[str, _SessionParts] = {}
        self._time = UtcText()
        self.limit = limit

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _session_parts(self, s: SessionInfo) -> _SessionParts:
        parts = self._sessions.get(s.id)
        if parts is None or not parts.fits(s):
            parts = self._sessions[s.id] = _parts(s)
        return parts

    def start(self, request: Statement) -> Prepared:
        """``store.prepare(start_event(request))``, fast."""
        started = self._time.of(request.started)
        if started is None or len(request.text) * 4 > self.limit:  # perhaps clipped
            return prepare(start_event(request, self.limit))
        parts = self._session_parts(request.session)
        text = (
            f'{{"kind":{_quote(request.kind)},"seq":{request.seq:d},"session":{parts.session},'
            f'"statement":{_quote(request.text)},"time":"{started}","type":"statement.start",'
            f'"who":{parts.who}}}'
        )
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return prepare(start_event(request, self.limit))
        return (
            started,
            "statement.start",
            text,
            data,
            parts.subject,
            parts.on_behalf,
            parts.target or None,
            "",
            None,
        )

    def prepare(self, request: Statement) -> Prepared:
        s = request.session
        parts = self._sessions.get(s.id)
        if parts is None or not parts.fits(s):
            parts = self._sessions[s.id] = _parts(s)
        started = self._time.of(request.started)
        duration = js_number(round(request.duration_ms, 3))
        decision = request.decision
        if (
            started is None
            or duration is None
            or request.masked
            or request.row_cap is not None
            or decision.approval_id
            or len(request.text) * 4 > self.limit  # perhaps clipped
        ):
            return prepare(statement_event(request, 0.0, self.limit))
        verdict = decision.verdict.value
        tail = ',"reason":' + _quote(decision.reason) if decision.reason else ""
        error = (
            f',"error":{{"message":{_quote(request.error)},'
            f'"sqlstate":{_quote(request.error_code)}}}'
            if request.error_code
            else ""
        )
        text = (
            f'{{"bytes":{request.bytes_out:d},"decision":{_quote(verdict)},'
            f'"duration_ms":{duration}{error},"kind":{_quote(request.kind)},'
            f'"outcome":{_quote(request.outcome.value)}{tail},"rows":{request.rows:d},'
            f'"seq":{request.seq:d},"session":{parts.session},'
            f'"statement":{_quote(request.text)},"time":"{started}","type":"statement",'
            f'"who":{parts.who}}}'
        )
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: the generic path records what it can
            return prepare(statement_event(request, 0.0, self.limit))
        target = parts.target or None
        return (
            started,
            "statement",
            text,
            data,
            parts.subject,
            parts.on_behalf,
            target,
            "",
            verdict,
        )
