"""The masking addon for SQL: PHI masked in every result a session receives, per the identity's
view. (API documents are masked by ``masking.api.DocumentMaskingAddon``.)

``statement``: the lineage of the statement's one analysis (computed against the target's
catalog) is planned, each statement with the search_path it runs with; EXECUTE and FETCH get the
lineage of the statement or cursor they name, as the relay followed them from the server's
answers (``Statement.contexts``, see protocols/postgres/state.py); where the search_path cannot
be known, names resolve in pg_catalog only, so a table's columns are masked whole. What does not
parse is refused; so is a statement whose lineage is unknown when ``masking.unresolved`` is
``deny``, and a COPY in a format whose rows cannot be masked. Refused too: procedural code, a
condition that tests a masked column against a constant (an oracle: ``ssn LIKE '891-4%'``), a
store of masked values anywhere they would not be masked again (another column, a new table, a
generated column, a constraint, an index or a policy), and ``set_config`` or ``pg_notify`` of a
computed value (a reported setting or a notification would carry it past the masking of rows).
``result_header``: the plan of the result, cross-checked with the server's RowDescription.
``row`` and ``rows`` (a batch, a column at a time): the plan applied. ``diagnostic`` and
``server_text``: errors, notices, reported settings, notifications and column names, see
``masking.channels``. ``statement_end``: masked values by label and the plan go into the
exchange's ``masked`` summary for the audit.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from wardgate.core.model import (
    Decision,
    ResultColumn,
    RowBatch,
    SessionContext,
    SessionInfo,
    Statement,
    Via,
)
from wardgate.core.pipeline import Addon, ServerText
from wardgate.masking import channels, lookups, refusals
from wardgate.masking.catalogs import Catalogs
from wardgate.masking.detectors import MrnFormat, Scanner, ScannerConfig
from wardgate.masking.plan import Planner, ResultPlan
from wardgate.masking.text import TextMasker
from wardgate.masking.tokens import Tokens
from wardgate.masking.views import Labels, Policy, View
from wardgate.sql.analysis import Analysis, analyse
from wardgate.sql.catalog import Catalog
from wardgate.sql.classify import StatementKind
from wardgate.sql.crosscheck import crosscheck
from wardgate.sql.model import AnalysisError, ColumnLineage, Kind, StatementLineage

log = logging.getLogger(__name__)

DEFAULT_SEARCH_PATH = '"$user", public'
# Reported settings whose values the server checks against a fixed form (an encoding, a date
# style, on/off); the others (application_name, TimeZone, session_authorization) can spell out
# text, and are withheld while a statement that reads PHI runs.
_NAMES_KEPT = 1024  # column names kept masked per session
_CHECKED_SETTINGS = frozenset(
    {"client_encoding", "server_encoding", "datestyle", "intervalstyle", "integer_datetimes",
     "standard_conforming_strings", "in_hot_standby", "default_transaction_read_only",
     "is_superuser", "server_version"}
)  # fmt: skip

# Kinds of statement whose text the server never shows back (an EXPLAIN prints its conditions,
# with their constants; a prepared statement or a cursor keeps its text in pg_prepared_statements
# or pg_cursors): the only ones whose look-ups are decoded.
_DECODES = frozenset({Kind.QUERY, Kind.DML, Kind.COPY})


@dataclass
class _Session:
    view: View | None = None
    planner: Planner | None = None
    text: TextMasker | None = None
    # PostgreSQL reports changed settings just before ReadyForQuery, after an Execute's
    # CommandComplete has ended its statement: a setting reported then is withheld too.
    settings_after_phi: bool = False
    pending: dict[Statement, _Pending] = field(default_factory=dict)
    # It ran DDL: its own names may mean what no loaded catalog says until it commits, so the
    # pseudonyms of its look-ups are not decoded any more (``lookups``).
    ddl: bool = False
    # Column names as masked, for the catalog they were scanned with (see `_column_name`).
    names: dict[str, str] = field(default_factory=dict)
    names_of: Catalog | None = None


@dataclass
class _Pending:
    """A statement's results in order, and the plan of the result in progress."""

    target: str
    results: list[StatementLineage]
    index: int = 0
    plan: ResultPlan | None = None
    plans: list[list[dict[str, object]]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    phi: bool = False  # it reads masked PHI, or something the analysis could not follow
    ddl: bool = False  # it changes the schema: the catalog is stale again once it has run
    rewritten: bool = False  # the server runs it with its pseudonyms decoded


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
    ) -> None:
        self.labels = labels
        self.policy = policy
        self.catalogs = catalogs
        self.key = key
        self.unresolved = unresolved
        formats = tuple(MrnFormat(p) for p in mrn_patterns) or ScannerConfig().mrn_formats
        self.scanners = {
            target: Scanner(ScannerConfig(formats, extra=(catalogs.known[target],)))
            for target in labels
        }
        self.tokens = Tokens(key)
        self._sessions: dict[str, _Session] = {}

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
                state.planner = Planner(labels, view, self.key, self.unresolved, text, self.tokens)
        return state

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        self._sessions.pop(session.id, None)

    # ---- requests -------------------------------------------------------------------------------

    def statement(self, stmt: Statement) -> Decision | None:
        info = stmt.session
        if info.target not in self.labels:
            return None
        state = self._session(info)
        if state.planner is None:
            return None  # this identity sees every label raw
        catalog = self.catalogs.get(info.target)
        if catalog is None:
            why = self.catalogs.errors.get(info.target, "not loaded yet")
            return _deny(f"PHI masking is not ready for this target ({why})")
        if not state.pending:
            state.settings_after_phi = False
        if stmt.via is Via.FUNCTION_CALL:
            return _deny("function calls cannot be masked")
        analysis = stmt.analysis
        try:
            procedural = any(s.procedural for s in analysis.classification.statements)
        except AnalysisError as exc:
            return _deny(f"the statement cannot be analysed for PHI masking: {exc}")
        if analysis.creates_temp:
            return _deny(
                "temporary tables, views, sequences and types are refused for a role that sees"
                " PHI masked: PostgreSQL looks in pg_temp first, so one would shadow a table or"
                " a type the masking knows"
            )
        if analysis.defines_operators:
            return _deny(
                "operators, operator classes and casts cannot be defined or changed by a role that"
                " sees PHI masked: the masking reads = as PostgreSQL's equality, and an operator"
                " of the role's (public.= over text_lt) would make it an order test"
            )
        if procedural:
            return _deny(
                "procedural code (DO, functions, triggers, rules) is refused for a role that sees"
                " PHI masked: it can send what it reads through notices, errors and settings"
            )
        labels, view = self.labels[info.target], state.view
        assert view is not None  # set with the planner
        # A search_path the relay could not follow (None) resolves nothing but pg_catalog: the
        # columns of unresolved tables are masked whole.
        contexts = stmt.contexts
        paths = [c.search_path or "" for c in contexts] or [DEFAULT_SEARCH_PATH]
        phi = ddl = False
        judged: list[StatementLineage] = []
        try:
            statements = analysis.lineage(catalog, paths[0])
            if contexts and len(contexts) != len(statements):
                return _deny("the statement's session context is not known")
            results: list[StatementLineage] = []
            for index, statement in enumerate(statements):
                context = contexts[index] if contexts else SessionContext(DEFAULT_SEARCH_PATH)
                path = paths[index] if contexts else DEFAULT_SEARCH_PATH
                if path != paths[0]:  # a SET earlier in the same string
                    statement = analysis.lineage(catalog, path)[index]
                refused = self._note(statement, index, analysis, info)
                if refused is not None:
                    return refused
                ddl = ddl or _ddl(statement, index, analysis)
                resolved = self._resolve(statement, context, catalog, stmt)
                decoded = lookups.decode((statement,), labels, view, self.tokens)
                for each in (statement, resolved):
                    reason = refusals.refusal(each, labels, view, decoded)
                    if reason is not None:
                        return _deny(reason)
                judged.append(statement)
                if resolved.returns_rows:
                    results.append(resolved)
                phi = phi or any(refusals.reads_phi(s, labels, view) for s in (statement, resolved))
        except (AnalysisError, ValueError) as exc:
            return _deny(f"the statement cannot be analysed for PHI masking: {exc}")
        state.ddl = state.ddl or ddl
        refused = self._decode(stmt, judged, labels, view, state)
        if refused is not None:
            return refused
        if ddl:  # read the catalog again, once now and once it has run
            self.catalogs.stale(info.target)
        state.pending[stmt] = _Pending(
            info.target, results, phi=phi, ddl=ddl, rewritten=bool(stmt.forward_text)
        )
        return None

    def _decode(
        self,
        stmt: Statement,
        judged: list[StatementLineage],
        labels: Labels,
        view: View,
        state: _Session,
    ) -> Decision | None:
        """The server runs the statement with the pseudonyms of its look-ups decoded (the
        refusals above let only tokens of this gateway through); the audit records which
        pseudonyms were decoded, for which columns, never the values."""
        decoded = lookups.decode(judged, labels, view, self.tokens)
        found = lookups.decoded_lookups(judged, labels, view, decoded)
        if not found:
            return None
        if any(statement.kind not in _DECODES for statement in judged):
            return _deny(
                "a pseudonym is decoded only in a string of SELECT, INSERT, UPDATE, DELETE,"
                " MERGE and COPY (...) TO STDOUT statements: an EXPLAIN, a prepared statement"
                " or a cursor shows the statement's text back, and a schema change beside it"
                " would change what its names mean"
            )
        opaque = [note for statement in judged for note in statement.notes]
        if opaque:
            # current_query() and pg_stat_activity return the text the server runs, which
            # holds the decoded values: tested in a condition (strpos(current_query(), ...)),
            # they would answer what the values are
            return _deny(
                "a pseudonym is not decoded in a string that reads what the analysis cannot"
                f" follow ({opaque[0]}): current_query() and pg_stat_activity would show the"
                " decoded value to a condition"
            )
        if state.ddl or not self.catalogs.current(stmt.session.target):
            return _deny(
                "a pseudonym is not decoded after a change of the schema until the gateway has"
                " read it again (a session that changed it: reconnect; another session: in a"
                " second)"
            )
        if stmt.via is not Via.QUERY:
            return _deny(
                "a pseudonym is decoded only in a simple Query: this statement was prepared"
                " (sent to the server) before it could be decoded; send it unprepared (psycopg:"
                " a text cursor without parameters, or a ClientCursor)"
            )
        analyser = stmt.analyser or analyse
        try:
            stmt.forward_text = lookups.rewrite(stmt.analysis, found, decoded, analyser)
        except lookups.NotRewritable as exc:
            return _deny(f"cannot decode the pseudonyms of this statement: {exc}")
        stmt.masked = {
            "decoded": [
                {
                    "columns": sorted(str(s) for s in lookup.sources),
                    "label": label,
                    "pseudonyms": list(lookup.values),
                }
                for lookup, label in found
            ]
        }
        return None

    def _note(
        self, statement: StatementLineage, index: int, analysis: Analysis, info: SessionInfo
    ) -> Decision | None:
        """Refuse what cannot be masked."""
        kind = statement.kind
        if kind is Kind.COPY:
            copy = analysis.copy_out
            if copy is None or not copy.readable:
                return _deny(
                    "COPY of PHI can be masked only in the default text or binary format, or in"
                    " CSV with no options but DELIMITER, QUOTE, ESCAPE, NULL, HEADER, FORCE_QUOTE"
                )
        if self.unresolved == "deny" and any(c.unknown for c in statement.columns):
            return _deny("the statement's result cannot be traced to its source columns")
        return None

    @staticmethod
    def _resolve(
        statement: StatementLineage, context: SessionContext, catalog: Catalog, stmt: Statement
    ) -> StatementLineage:
        """EXECUTE and FETCH return what the statement or cursor they name returns, as the
        server holds it; a cursor run by a protocol Execute returns its rows."""
        if statement.kind is Kind.CURSOR:
            if stmt.via is Via.EXECUTE:
                return StatementLineage(
                    Kind.FETCH, statement.text, statement.columns, statement.shape_known, True
                )
            return StatementLineage(Kind.OTHER, statement.text)  # DECLARE returns no rows
        if statement.kind not in (Kind.FETCH, Kind.EXECUTE) or not statement.name:
            return statement
        named = None
        if context.refers_to is not None:
            analyser = stmt.analyser or analyse  # the named text's one analysis, cached
            analysed = analyser(context.refers_to).lineage(catalog, context.refers_path or "")
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

    def result_header(self, stmt: Statement, columns: tuple[ResultColumn, ...]) -> None:
        state = self._sessions.get(stmt.session.id)
        pending = state.pending.get(stmt) if state is not None else None
        if pending is None:
            return
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

    def row(self, stmt: Statement, values: list[bytes | None]) -> list[bytes | None]:
        state = self._sessions.get(stmt.session.id)
        pending = state.pending.get(stmt) if state is not None else None
        if pending is None or pending.plan is None:
            if state is not None and state.planner is not None:
                raise RuntimeError("a row arrived without a masking plan")  # fail closed
            return values
        return pending.plan.apply(values)

    def rows(self, stmt: Statement, batch: RowBatch) -> None:
        state = self._sessions.get(stmt.session.id)
        pending = state.pending.get(stmt) if state is not None else None
        if pending is None or pending.plan is None:
            if state is not None and state.planner is not None:
                raise RuntimeError("rows arrived without a masking plan")  # fail closed
            return
        pending.plan.apply_rows(batch)

    def statement_end(self, stmt: Statement) -> None:
        state = self._sessions.get(stmt.session.id)
        pending = state.pending.pop(stmt, None) if state is not None else None
        if pending is None:
            return
        if pending.phi and state is not None:
            state.settings_after_phi = True
        if pending.ddl:  # read again what it changed, now that it has run
            self.catalogs.stale(pending.target)
        if pending.plan is not None:
            pending.plan.tally()
        plans = [p for p in pending.plans if p]
        if pending.counts or plans:
            masked = {"masked": dict(sorted(pending.counts.items())), "plan": plans}
            stmt.masked = {**(stmt.masked or {}), **masked}

    # ---- errors and notices ---------------------------------------------------------------------

    def diagnostic(self, session: SessionInfo, fields: dict[str, str]) -> dict[str, str]:
        if session.target not in self.labels:
            return fields
        state = self._session(session)
        text = state.text
        if text is None:
            return fields
        out = channels.diagnostic(fields, text, self._phi_in_flight(state))
        if any(p.rewritten for p in state.pending.values()):
            # a position in the text the server ran, whose literals are the decoded values:
            # counted in the client's text it would tell how long they are
            out.pop("P", None)
        return out

    def server_text(self, session: SessionInfo, what: ServerText, name: str, text: str) -> str:
        if session.target not in self.labels:
            return text
        state = self._session(session)
        masker = state.text
        if masker is None or not text:
            return text
        if (
            what is ServerText.PARAMETER
            and name.lower() not in _CHECKED_SETTINGS
            and (state.settings_after_phi or self._phi_in_flight(state))
        ):
            return "[MASKED]"
        if what is ServerText.COLUMN_NAME:
            return self._column_name(state, session.target, masker, text)
        return masker.mask(text)

    def _column_name(self, state: _Session, target: str, masker: TextMasker, name: str) -> str:
        """A column name as masked. The same names come back in every result of a session, so
        their scans are kept while the target's catalog is the one they were made with: the
        known values the scanner looks for are replaced before a new catalog is published
        (``Catalogs.load``), so a kept scan is never older than the catalog it is kept for."""
        catalog = self.catalogs.get(target)
        if state.names_of is not catalog:
            state.names, state.names_of = {}, catalog
        found = state.names.get(name)
        if found is None:
            if len(state.names) >= _NAMES_KEPT:
                state.names.clear()
            found = state.names[name] = masker.mask(name)
        return found

    @staticmethod
    def _phi_in_flight(state: _Session) -> bool:
        return any(p.phi for p in state.pending.values())


def _ddl(statement: StatementLineage, index: int, analysis: Analysis) -> bool:
    return (
        statement.kind is Kind.OTHER
        and analysis.classification.statements[index].kind is StatementKind.DDL
    )


def _deny(reason: str) -> Decision:
    return Decision.deny(reason, "masking")
