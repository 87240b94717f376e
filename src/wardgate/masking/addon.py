"""The masking addon: PHI masked in every result a session receives, per the identity's view.

``request``: the statement is analysed (lineage, cached by text) against the target's catalog.
What does not parse is refused; so is a statement whose lineage is unknown when
``masking.unresolved`` is ``deny``, and a COPY in a format whose rows cannot be masked (CSV, other
delimiters). Each statement is analysed with the search_path it runs with, and EXECUTE and FETCH
get the lineage of the statement or cursor they name, as the relay followed them from the
server's answers (``Request.contexts``, see protocols/postgres/state.py); where the search_path
cannot be known, names resolve in pg_catalog only, so a table's columns are masked whole.
``result_header``: the plan of the result, cross-checked with the server's RowDescription.
``row``: the plan applied. ``diagnostic``: errors and notices, which can echo stored values, are
content-scanned and the values a constraint violation quotes are masked. ``result_end``: masked
values by label and the plan go into the audit record.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from wardgate.core.model import Column, Decision, Request, SessionContext, SessionInfo, Verdict
from wardgate.core.pipeline import Addon
from wardgate.masking.catalogs import Catalogs
from wardgate.masking.detectors import MrnFormat, Scanner, ScannerConfig
from wardgate.masking.documents import Documents, UnknownPseudonym
from wardgate.masking.plan import Planner, ResultPlan
from wardgate.masking.policy import Labels, Policy, View
from wardgate.masking.text import TextMasker
from wardgate.sql.crosscheck import crosscheck
from wardgate.sql.fingerprint import LineageCache
from wardgate.sql.model import AnalysisError, ColumnLineage, Kind, StatementLineage

log = logging.getLogger(__name__)

DEFAULT_SEARCH_PATH = '"$user", public'
# Constraint violations quote stored values: "Key (ssn)=(123-45-6789) already exists.",
# "Failing row contains (1, MRN-..., Ann, ...)."
_QUOTED_VALUES = re.compile(r"(Key \([^)]*\)=\()(.*)(\))|(Failing row contains \()(.*)(\))", re.S)
_DIAGNOSTIC_FIELDS = ("M", "D", "W", "H", "q")


@dataclass
class _Session:
    view: View | None = None
    planner: Planner | None = None
    text: TextMasker | None = None


@dataclass
class _Pending:
    """A request's results in order, and the plan of the result in progress."""

    target: str
    results: list[StatementLineage]
    index: int = 0
    plan: ResultPlan | None = None
    plans: list[list[dict[str, object]]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class MaskingAddon(Addon):
    name = "masking"

    def __init__(
        self,
        labels: dict[str, Labels],
        policy: Policy,
        catalogs: Catalogs,
        key: bytes,
        *,
        unresolved: str = "redact",
        mrn_patterns: tuple[str, ...] = (),
        documents: Documents | None = None,
    ) -> None:
        self.labels = labels
        self.policy = policy
        self.catalogs = catalogs
        self.key = key
        self.unresolved = unresolved
        formats = tuple(MrnFormat(p) for p in mrn_patterns) or ScannerConfig().mrn_formats
        self.scanner = Scanner(ScannerConfig(formats))  # for API documents
        self.scanners = {
            target: Scanner(ScannerConfig(formats, extra=(catalogs.known[target],)))
            for target in labels
        }
        self.cache = LineageCache()
        self.documents = documents
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[int, _Pending] = {}

    # ---- per session ----------------------------------------------------------------------------

    def _session(self, info: SessionInfo) -> _Session:
        state = self._sessions.get(info.id)
        if state is None:
            state = self._sessions[info.id] = _Session()
        if state.view is None:
            labels = self.labels.get(info.target)
            view = self.policy.view(info.identity)
            state.view = view
            if labels is not None and not view.sees_all(labels.entities() | {"UNRESOLVED"}):
                text = TextMasker(self.key, view.text_operators(), self.scanners[info.target])
                state.text = text
                state.planner = Planner(labels, view, self.key, self.unresolved, text)
        return state

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._sessions.pop(session.id, None)

    # ---- requests -------------------------------------------------------------------------------

    def request(self, request: Request) -> Decision | None:
        if request.kind == "http":
            return self._http_request(request)
        info = request.session
        if info.target not in self.labels:
            return None
        state = self._session(info)
        if state.planner is None:
            return None  # this identity sees every label raw
        catalog = self.catalogs.get(info.target)
        if catalog is None:
            why = self.catalogs.errors.get(info.target, "not loaded yet")
            return _deny(f"PHI masking is not ready for this target ({why})")
        if request.kind == "function_call":
            return _deny("function calls cannot be masked")
        # A search_path the relay could not follow (None) resolves nothing but pg_catalog: the
        # columns of unresolved tables are masked whole.
        contexts = request.contexts
        paths = [c.search_path or "" for c in contexts] or [DEFAULT_SEARCH_PATH]
        try:
            statements = self.cache.analyze(request.text, catalog, search_path=paths[0])
            if contexts and len(contexts) != len(statements):
                return _deny("the statement's session context is not known")
            results: list[StatementLineage] = []
            for index, statement in enumerate(statements):
                context = contexts[index] if contexts else SessionContext(DEFAULT_SEARCH_PATH)
                path = paths[index] if contexts else DEFAULT_SEARCH_PATH
                if path != paths[0]:  # a SET earlier in the same string
                    (statement,) = self.cache.analyze(statement.text, catalog, search_path=path)
                refused = self._note(statement, request)
                if refused is not None:
                    return refused
                resolved = self._resolve(statement, context, catalog, request.kind)
                if resolved.returns_rows:
                    results.append(resolved)
        except (AnalysisError, ValueError) as exc:
            return _deny(f"the statement cannot be analysed for PHI masking: {exc}")
        self._pending[id(request)] = _Pending(info.target, results)
        return None

    def _note(self, statement: StatementLineage, request: Request) -> Decision | None:
        """Refuse what cannot be masked; a catalog change makes the catalog stale."""
        kind = statement.kind
        if kind is Kind.COPY:
            if not _maskable_copy(statement.text):
                return _deny("COPY of PHI can be masked only in the default text or binary format")
            request.copy_rows = True
        elif kind is Kind.OTHER and _is_ddl(statement.text):
            self.catalogs.stale(request.session.target)
        if self.unresolved == "deny" and any(c.unknown for c in statement.columns):
            return _deny("the statement's result cannot be traced to its source columns")
        return None

    def _resolve(
        self, statement: StatementLineage, context: SessionContext, catalog: Any, kind: str
    ) -> StatementLineage:
        """EXECUTE and FETCH return what the statement or cursor they name returns, as the
        server holds it; a cursor run by a protocol Execute returns its rows."""
        if statement.kind is Kind.CURSOR:
            if kind == "execute":
                return StatementLineage(
                    Kind.FETCH, statement.text, statement.columns, statement.shape_known, True
                )
            return StatementLineage(Kind.OTHER, statement.text)  # DECLARE returns no rows
        if statement.kind not in (Kind.FETCH, Kind.EXECUTE) or not statement.name:
            return statement
        named = None
        if context.refers_to is not None:
            analysed = self.cache.analyze(
                context.refers_to, catalog, search_path=context.refers_path or ""
            )
            named = analysed[0] if len(analysed) == 1 else None
        if named is None:
            return StatementLineage(statement.kind, statement.text, (), False, True)
        if statement.kind is Kind.FETCH:
            return StatementLineage(
                Kind.FETCH, statement.text, named.columns, named.shape_known, True
            )
        return StatementLineage(
            Kind.EXECUTE, statement.text, named.columns, named.shape_known, named.returns_rows
        )

    # ---- results --------------------------------------------------------------------------------

    def result_header(self, request: Request, columns: tuple[Column, ...]) -> None:
        pending = self._pending.get(id(request))
        if pending is None:
            return
        state = self._sessions.get(request.session.id)
        planner = state.planner if state is not None else None
        catalog = self.catalogs.get(pending.target)
        if planner is None or catalog is None:
            raise RuntimeError("masking state lost for a pending request")  # fail closed
        statement = pending.results[pending.index] if pending.index < len(pending.results) else None
        pending.index += 1
        lineage: tuple[ColumnLineage, ...] = (
            statement.columns_for(len(columns)) if statement is not None else ()
        )
        suspect: set[int] = set()
        copy = bool(columns) and all(c.type_oid == 0 and not c.name for c in columns)
        if statement is not None and not copy and any(c.table_oid for c in columns):
            described = [(c.table_oid, c.column_number) for c in columns]
            for found in crosscheck(statement, described, catalog):
                suspect.add(found.index)
                log.warning("masking: cross-check: column %d: %s", found.index, found.reason)
        if pending.plan is not None:
            pending.plan.tally()
        plan = planner.plan(lineage, columns, catalog, suspect=frozenset(suspect))
        plan.counts = pending.counts
        pending.plan = plan
        pending.plans.append(plan.describe())

    def row(self, request: Request, values: list[bytes | None]) -> list[bytes | None]:
        pending = self._pending.get(id(request))
        if pending is None or pending.plan is None:
            if request.session.target in self.labels and self._masks(request.session):
                raise RuntimeError("a row arrived without a masking plan")  # fail closed
            return values
        return pending.plan.apply(values)

    def _masks(self, info: SessionInfo) -> bool:
        state = self._sessions.get(info.id)
        return state is not None and state.planner is not None

    def result_end(self, request: Request) -> None:
        pending = self._pending.pop(id(request), None)
        if pending is None:
            return
        if pending.plan is not None:
            pending.plan.tally()
        plans = [p for p in pending.plans if p]
        if pending.counts or plans:
            request.masking = {"masked": dict(sorted(pending.counts.items())), "plan": plans}

    # ---- HTTP APIs -------------------------------------------------------------------------------

    def _http_request(self, request: Request) -> Decision | None:
        """Pseudonymous patient ids the client sends back go to the API as the real ones."""
        if self.documents is None:
            return None
        target = request.text.partition(" ")[2]
        try:
            decoded = self.documents.decode_target(target)
        except UnknownPseudonym as exc:
            return _deny(str(exc))
        if decoded != target:
            request.forward_target = decoded
        return None

    def document(self, request: Request, body: Any) -> Any:
        if self.documents is None or request.kind != "http":
            return body
        info = request.session
        masked, counts = self.documents.mask(info.target, info.identity, body)
        if counts:
            previous = (request.masking or {}).get("masked", {})
            merged = {k: previous.get(k, 0) + counts.get(k, 0) for k in {*previous, *counts}}
            request.masking = {"masked": dict(sorted(merged.items()))}
        return masked

    # ---- errors and notices ---------------------------------------------------------------------

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        if session.target not in self.labels:
            return fields
        state = self._session(session)
        text = state.text
        if text is None:
            return fields
        out = dict(fields)
        for code in _DIAGNOSTIC_FIELDS:
            value = out.get(code)
            if value:
                out[code] = text.mask(_QUOTED_VALUES.sub(_masked_quote, value))
        return out


def _masked_quote(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)}[MASKED]{match.group(3)}"
    return f"{match.group(4)}[MASKED]{match.group(6)}"


def _maskable_copy(text: str) -> bool:
    """COPY ... TO STDOUT in the default text format or binary: rows the relay can decode."""
    import pglast

    try:
        (raw,) = pglast.parse_sql(text)
    except (pglast.parser.ParseError, ValueError):
        return False
    for option in raw.stmt.options or ():
        name = option.defname
        value = getattr(option.arg, "sval", None) or getattr(option.arg, "boolval", None)
        if name == "format" and str(value).lower() in ("text", "binary"):
            continue
        if name == "binary" or (name == "format" and value is None):
            continue
        return False  # csv, delimiter, null, header, quote, escape, encoding...
    return True


def _deny(reason: str) -> Decision:
    return Decision(Verdict.DENY, reason, "masking")


_DDL = re.compile(r"^\s*(create|alter|drop|comment|grant|revoke)\b", re.I)


def _is_ddl(text: str) -> bool:
    return bool(_DDL.match(text))
