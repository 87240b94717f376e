"""The results of statement analysis: source columns, per-column lineage, per-statement lineage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AnalysisError(ValueError):
    """The statement does not parse (or is too deep to analyse): the caller fails closed."""


@dataclass(frozen=True, slots=True, order=True)
class SourceColumn:
    schema: str
    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class ColumnLineage:
    """Where one result column comes from.

    `exact`: the value is a stored value of its sources, possibly cast (`ssn`, `ssn::text`,
    `(SELECT ssn ...)`); otherwise it is computed from them, which may still contain a whole
    stored value (`lower(ssn)`, `min(ssn)`, `concat(ssn)`). `unknown`: it may also derive from
    data the analysis could not see; the caller masks it.
    """

    name: str
    sources: frozenset[SourceColumn] = frozenset()
    exact: bool = False
    unknown: bool = False
    measured: frozenset[SourceColumn] = frozenset()  # sources only measured (length, count)
    # exact, but may be a constant of the statement instead (a UNION or VALUES branch, a value
    # the statement wrote and returns): not necessarily a value the sources hold
    chosen: bool = False


@dataclass(frozen=True, slots=True)
class Lookup:
    """A stored column (cast or not) tested for equality with literals: ``mrn = 'x'``,
    ``'x' = mrn``, ``mrn IN ('x', 'y')``. ``values``: the string literals, in order; ``param``:
    a parameter (``$1``) stands among them. Not counted in ``compared``: whoever reads the
    statement decides whether the literals are what the column may be looked up by (a role
    that sees the column pseudonymised may look it up by the pseudonyms it was given)."""

    sources: frozenset[SourceColumn]
    values: tuple[str, ...]
    param: bool = False


class Kind(StrEnum):
    QUERY = "query"  # SELECT, VALUES, TABLE
    DML = "dml"  # INSERT/UPDATE/DELETE/MERGE; columns are the RETURNING list
    CURSOR = "cursor"  # DECLARE name CURSOR FOR ...; a later FETCH name returns these columns
    FETCH = "fetch"  # FETCH/MOVE name: the caller looks up the cursor's lineage by `name`
    COPY = "copy"  # COPY ... TO STDOUT
    EXPLAIN = "explain"  # one text column of plan, treated as non-PHI
    PREPARE = "prepare"  # PREPARE name AS ...; columns are the inner statement's
    EXECUTE = "execute"  # EXECUTE name: the caller looks up the prepared lineage by `name`
    SHOW = "show"
    OTHER = "other"  # anything else: no result rows expected


@dataclass(frozen=True, slots=True)
class StatementLineage:
    kind: Kind
    text: str  # this statement's slice of the string analysed
    columns: tuple[ColumnLineage, ...] = ()
    shape_known: bool = True  # False: how many columns come back is not known (`SELECT *` of
    #                           an unknown function); every column past the known ones is unknown
    returns_rows: bool = False
    name: str | None = None  # cursor or prepared-statement name
    explain_analyze: bool = False  # EXPLAIN ANALYZE runs the inner statement
    notes: tuple[str, ...] = ()  # why columns are unknown, for the audit trail
    # Facts of the whole statement, not only of its result columns:
    reads: frozenset[SourceColumn] = frozenset()  # every column it refers to, anywhere
    compared: frozenset[SourceColumn] = frozenset()  # tested against constants in conditions
    # a value of unknown lineage is tested in a condition, a grouping or a count: whatever it
    # holds (another session's statement, what a function read) answers the test
    tested_unknown: bool = False
    lookups: tuple[Lookup, ...] = ()  # stored columns tested for equality with literals
    # column tested against column: (left sources, left exact, right sources, right exact)
    joins: tuple[tuple[frozenset[SourceColumn], bool, frozenset[SourceColumn], bool], ...] = ()
    side_channels: tuple[str, ...] = ()  # set_config/pg_notify called with non-constant values
    # What it stores where: (columns written, empty for a new place; sources of the values)
    stores: tuple[tuple[frozenset[SourceColumn], frozenset[SourceColumn]], ...] = ()
    # What may fail on the values it is given, with their sources: whether the statement fails
    # then tells about them (`functions.TOTAL` names what never fails)
    partial: tuple[tuple[str, frozenset[SourceColumn]], ...] = ()
    # What it writes into existing columns: (columns written, sources of the values, whether
    # every value is a stored value as it is, ``SET city = city``)
    writes: tuple[tuple[frozenset[SourceColumn], frozenset[SourceColumn], bool], ...] = ()
    # a value of unknown lineage is stored: whatever it holds comes back unmasked from there
    stores_unknown: bool = False
    opaque: bool = False  # something in it could not be followed (an unknown function...)

    def columns_for(self, count: int) -> tuple[ColumnLineage, ...]:
        """Lineage for a result of `count` columns; all unknown if that is not what we expect."""
        if self.returns_rows and self.shape_known and count == len(self.columns):
            return self.columns
        return tuple(ColumnLineage(f"?{i}", unknown=True) for i in range(count))


@dataclass(frozen=True)
class Options:
    """Knowledge the catalog does not hold.

    `phi_functions`: function names (lower case, optionally "schema.name") whose result derives
    from the given source columns whatever their arguments, e.g. a SECURITY DEFINER lookup.
    `trusted_functions`: non-builtin functions known to compute only from their arguments.
    """

    phi_functions: Mapping[str, frozenset[SourceColumn]] = field(default_factory=dict)
    trusted_functions: frozenset[str] = frozenset()
    max_view_depth: int = 16
