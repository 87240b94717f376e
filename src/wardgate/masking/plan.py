"""The masking plan of one result: for each column, the masker its lineage and the view call for.

Lineage first: a column derived from labelled columns gets its entity's operator when it is the
stored value (possibly cast), and the strictest operator among its inputs when it is computed
from them. A source the column only measures (``length(body)``, ``count(ssn)``) does not count.
Content second: free text (``TEXT``) as stored, and unlabelled columns of labelled tables, are
scanned by the detectors; free text transformed by any function (``upper(body)``, a base64 of
it, the SSNs ``regexp_matches`` pulls out of it) is masked whole, because the transformed text
no longer looks like the identifiers it holds. A column whose lineage is unknown is masked
whole (``redact``) or content-scanned (``scan``), as ``masking.unresolved`` says; and a column
the server describes differently from our lineage (the RowDescription cross-check) is masked
whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wardgate.core.model import ResultColumn, RowBatch
from wardgate.masking.arrays import ELEMENTS
from wardgate.masking.column import ColumnMasker, column_masker
from wardgate.masking.operators import OperatorSpec, Pseudonym, Redact, operator_config
from wardgate.masking.pgtypes import Family, Format, family_of
from wardgate.masking.text import ContentScan, TextMasker
from wardgate.masking.tokens import Reversible, Tokens, reversible
from wardgate.masking.views import TEXT, Labels, View, strictest
from wardgate.sql.catalog import Catalog
from wardgate.sql.model import ColumnLineage, SourceColumn

MASKED = Redact("[MASKED]")
_SCANNABLE = (Family.TEXT, Family.JSON, Family.JSONB)
TEXT_OID = 25


@dataclass
class ColumnPlan:
    """``masker`` None: the column passes. ``labels`` are what the audit counts it as."""

    masker: ColumnMasker | None
    labels: tuple[str, ...] = ()
    why: str = ""


class ResultPlan:
    """The masking of one result. ``apply`` is the per-row path: it visits only the masked
    columns and counts cells per column; ``apply_rows`` does the same for a batch of rows, a
    column at a time; ``tally`` turns the counts into counts by label."""

    def __init__(
        self,
        columns: list[ColumnPlan],
        counts: Counter[str] | None = None,
        scans: dict[ColumnMasker, Scans] | None = None,
    ) -> None:
        self.columns = columns
        self.counts: Counter[str] = counts if counts is not None else Counter()
        scans = {} if scans is None else scans
        self._masked = [
            (i, _remembering(c.masker, scans))
            for i, c in enumerate(columns)
            if c.masker is not None
        ]
        self._cells = [0] * len(columns)

    @property
    def masks(self) -> bool:
        return bool(self._masked)

    def apply(self, values: list[bytes | None]) -> list[bytes | None]:
        cells = self._cells
        width = len(values)
        for i, masker in self._masked:
            if i < width:
                raw = values[i]
                if raw is not None:
                    values[i] = masker(raw)
                    cells[i] += 1
        return values

    def apply_rows(self, batch: RowBatch) -> None:
        """``apply`` to every row of the batch, a masked column at a time."""
        masked = self._masked
        if not masked or not len(batch):
            return
        cells = self._cells
        indices = tuple(i for i, _ in masked)
        found = batch.columns(indices)
        out = []
        for (i, masker), values in zip(masked, found, strict=True):
            cells[i] += len(values) - values.count(None)
            out.append(masker.column(values))
        batch.replace(indices, tuple(out))

    def tally(self) -> None:
        """Add the cells masked so far to ``counts``, by label, and start counting again."""
        for i, n in enumerate(self._cells):
            if n:
                for label in self.columns[i].labels:
                    self.counts[label] += n
        self._cells = [0] * len(self.columns)

    def describe(self) -> list[dict[str, object]]:
        """The plan as the audit records it: per masked column, labels, operator, why."""
        out: list[dict[str, object]] = []
        for i, plan in enumerate(self.columns):
            if plan.masker is None:
                continue
            entry: dict[str, object] = {"column": i, "labels": list(plan.labels), "why": plan.why}
            operator = plan.masker.operator
            if isinstance(operator, ContentScan):
                entry["operator"] = "scan"
            elif isinstance(operator, Reversible):
                entry["operator"] = {**operator_config(operator.pseudonym), "token": True}
            else:
                entry["operator"] = operator_config(operator)
            out.append(entry)
        return out


_SHORT = 64  # bytes: a scanned text this short may repeat (a state, a code, a kind)
_KEPT = 4096  # such texts remembered per column masker


Scans = dict[bytes, bytes | None]  # short scanned texts, as masked


class Masks(Protocol):
    """What a plan applies to a masked column: a cell at a time, or a batch's column."""

    def __call__(self, raw: bytes) -> bytes | None: ...

    def column(self, values: list[bytes | None]) -> list[bytes | None]: ...


class _Remembering:
    """A content-scanning column masker that remembers in ``memo`` what its short texts
    became: a content scan of a categorical column (an unlabelled ``state`` of a labelled
    table) is then done once per value, not twice per row. The planner keeps the memos only
    while the target's catalog stays the same (see `Planner.plan`)."""

    __slots__ = ("masker", "memo")

    def __init__(self, masker: ColumnMasker, memo: Scans) -> None:
        self.masker = masker
        self.memo = memo

    def __call__(self, raw: bytes) -> bytes | None:
        if len(raw) > _SHORT:
            return self.masker(raw)
        memo = self.memo
        try:
            return memo[raw]
        except KeyError:
            if len(memo) >= _KEPT:
                memo.clear()
            found = memo[raw] = self.masker(raw)
            return found

    def column(self, values: list[bytes | None]) -> list[bytes | None]:
        return [None if v is None else self(v) for v in values]


def _remembering(masker: ColumnMasker, scans: dict[ColumnMasker, Scans]) -> Masks:
    """The column's masker, or for a content scan of text one that remembers its short texts'
    scans in ``scans`` (`_Remembering`)."""
    if not isinstance(masker.operator, ContentScan) or masker.family is not Family.TEXT:
        return masker
    return _Remembering(masker, scans.setdefault(masker, {}))


class Planner:
    """Builds result plans for one view of one target. Cheap to call per result."""

    def __init__(
        self,
        labels: Labels,
        view: View,
        key: bytes,
        unresolved: str,
        scanner: TextMasker,
        tokens: Tokens | None = None,
    ) -> None:
        self.labels = labels
        self.view = view
        self.key = key
        self.unresolved = unresolved
        self.scan = ContentScan(scanner)
        self.tokens = tokens
        # Short texts' scans, kept while the catalog is the one they were made with: the
        # known values the scanner looks for are replaced before a new catalog is published
        # (``Catalogs.load``), so a kept scan is never older than the catalog it is kept for.
        self._scans: dict[ColumnMasker, Scans] = {}
        self._scans_of: Catalog | None = None

    def plan(
        self,
        lineage: Sequence[ColumnLineage],
        columns: Sequence[ResultColumn],
        catalog: Catalog,
        *,
        suspect: frozenset[int] = frozenset(),
    ) -> ResultPlan:
        """``suspect``: columns the cross-check says we may have wrong (-1 in it: all)."""
        plans = []
        for i, column in enumerate(columns):
            line = lineage[i] if i < len(lineage) else ColumnLineage(f"?{i}", unknown=True)
            if i in suspect or -1 in suspect:
                plans.append(self._whole(column, "the server describes it otherwise"))
            else:
                plans.append(self._column(line, column, catalog))
        if self._scans_of is not catalog:
            self._scans, self._scans_of = {}, catalog
        return ResultPlan(plans, scans=self._scans)

    def _whole(self, column: ResultColumn, why: str) -> ColumnPlan:
        operator: OperatorSpec | ContentScan = self.scan if self.unresolved == "scan" else MASKED
        return ColumnPlan(self._masker(column, operator), ("UNRESOLVED",), why)

    def _column(self, line: ColumnLineage, column: ResultColumn, catalog: Catalog) -> ColumnPlan:
        if line.unknown:
            return self._whole(column, "lineage unknown")
        live = line.sources - line.measured
        labels = sorted({lab for s in live if (lab := self.labels.label(s)) is not None})
        masked = [lab for lab in labels if lab not in self.view.raw]
        if not masked:
            return ColumnPlan(None)
        entity_ops = [op for lab in masked if (op := self.view.operator(lab)) is not None]
        scannable = not column.type_oid or family_of(column.type_oid) in _SCANNABLE
        # Free text transformed (or cast to a type that cannot be scanned, such as bytea).
        transformed = not line.exact or not scannable
        if transformed and TEXT not in self.view.raw and self._free_text(live):
            why = "transformed free text"
            return ColumnPlan(self._masker(column, MASKED), tuple(masked), why)
        if not entity_ops:  # only free text, or unlabelled columns of labelled tables
            # an array is judged by its elements (array_agg(body) is text); a type that is
            # neither text nor known to hold no text (bytea, xml...) is scanned, so: NULL
            family = family_of(ELEMENTS.get(column.type_oid, column.type_oid))
            if column.type_oid and family not in _SCANNABLE and family is not Family.OTHER:
                return ColumnPlan(None)  # a number, a date...: only a label can make it PHI
            return ColumnPlan(self._masker(column, self.scan), tuple(masked), "content scan")
        if not line.exact:
            # An operator is made for the stored value (a date to its year, a ZIP to three
            # digits, an id to its pseudonym); applied to a value computed from it, it keeps
            # what the computation chose to put there (make_date(month * 100 + day, 1, 1)
            # keeps the day of birth in the year): a derived value is masked whole.
            why = "derived from PHI"
            return ColumnPlan(self._masker(column, MASKED), tuple(masked), why)
        operator = strictest(entity_ops)
        why = "stored value" if len(masked) == 1 else "derived from PHI"
        if self._tokens(line, masked, operator, column, catalog):
            assert self.tokens is not None and isinstance(operator, Pseudonym)
            token = Reversible(operator, masked[0], self.tokens)
            return ColumnPlan(self._masker(column, token), tuple(masked), "stored value, token")
        return ColumnPlan(self._masker(column, operator, line, catalog), tuple(masked), why)

    def _tokens(
        self,
        line: ColumnLineage,
        masked: list[str],
        operator: OperatorSpec,
        column: ResultColumn,
        catalog: Catalog,
    ) -> bool:
        """A token the role may look rows up by (``masking.tokens``) only for a value the
        columns of one entity hold: every source labelled with it (not a column the role can
        fill, such as an unlabelled one in a UNION), no constant of the statement in its place
        (``chosen``: a UNION or VALUES branch, a value the statement wrote), and scalar text,
        not an array or JSON. Anything else would make the gateway seal a value the client
        chose, and decode it for a look-up: an oracle."""
        if self.tokens is None or len(masked) != 1 or not reversible(operator) or line.chosen:
            return False
        live = line.sources - line.measured
        if not live or any(self.labels.columns.get(s) != masked[0] for s in live):
            return False
        type_oid = column.type_oid or _source_type(line, catalog)
        if not type_oid and not column.binary:
            type_oid = TEXT_OID
        return type_oid not in ELEMENTS and family_of(type_oid) is Family.TEXT

    def _free_text(self, sources: frozenset[SourceColumn]) -> bool:
        """A source labelled TEXT by name (not an unlabelled column of a labelled table)."""
        return any(self.labels.columns.get(s) == TEXT for s in sources)

    def _masker(
        self,
        column: ResultColumn,
        operator: OperatorSpec | ContentScan | Reversible,
        line: ColumnLineage | None = None,
        catalog: Catalog | None = None,
    ) -> ColumnMasker:
        type_oid = column.type_oid
        if type_oid == 0:  # COPY: no RowDescription; the stored column's type, or text
            type_oid = _source_type(line, catalog) or (0 if column.binary else TEXT_OID)
        fmt: Format = 1 if column.binary else 0
        # shared across results: compiled once, with its operator's cache of values
        return column_masker(type_oid, fmt, operator, self.key)


def _source_type(line: ColumnLineage | None, catalog: Catalog | None) -> int:
    if line is None or catalog is None or not line.exact or len(line.sources) != 1:
        return 0
    (source,) = line.sources
    relation = catalog.relation(source.schema, source.table)
    found = relation.column(source.column) if relation is not None else None
    return found.type_oid if found is not None else 0


__all__ = ["TEXT", "ColumnPlan", "Planner", "ResultPlan"]
