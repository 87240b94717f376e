"""What a statement stores, and where: the facts that let masking refuse laundering.

A masked value must not come back unmasked because it was first copied somewhere masking does
not look: into another column (``UPDATE patients SET state = reverse(ssn)``), into a new table
(``CREATE TABLE t AS SELECT ssn ...``, ``SELECT ... INTO``, a server file by COPY), or into an
expression the server
stores and evaluates over every row (a generated column, a CHECK constraint, an index
expression or predicate, a row-level security policy, extended statistics). Each store is a
pair: the columns written (empty for a new place) and the sources of what is written there.
The DML writes are recorded by the resolver as it follows them (``Analyser.returning``); the
statements here are the ones that create or change a relation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast
from pglast.enums.parsenodes import AlterTableType, ConstrType

from wardgate.sql.model import SourceColumn
from wardgate.sql.resolve import UNKNOWN, Analyser, Lin, Scope, Shape, combine

DEFAULT_SCHEMA = "public"


def stores(stmt: Any, analyser: Analyser) -> None:
    """Record in ``analyser`` what ``stmt`` (a DDL statement, or SELECT INTO) stores."""
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        analyser.store(frozenset(), analyser.query(stmt, None).whole())
    elif isinstance(stmt, ast.CreateTableAsStmt):
        analyser.store(frozenset(), analyser.query(stmt.query, None).whole())
    elif isinstance(stmt, ast.CopyStmt) and not stmt.is_from:  # to a file or a program
        if stmt.query is not None:
            shape = analyser.query(stmt.query, None)
        else:
            item = analyser.range_var(stmt.relation, Scope())
            wanted = [str(n.sval) for n in stmt.attlist or ()]
            columns = [lin for name, lin in item.shape.columns if not wanted or name in wanted]
            shape = Shape([("", lin) for lin in columns], item.shape.complete or bool(wanted))
        analyser.store(frozenset(), shape.whole())
    elif isinstance(stmt, ast.CopyStmt):  # FROM: the client's values into these columns
        item = analyser.range_var(stmt.relation, Scope())
        wanted = [str(n.sval) for n in stmt.attlist or ()]
        for name, lin in item.shape.columns:
            if not wanted or name in wanted:
                analyser.writes.append((lin.sources, frozenset(), False))
    elif isinstance(stmt, ast.ViewStmt):
        analyser.query(stmt.query, None)  # read through on every use; its conditions count
    else:
        _foreign_keys(stmt, analyser)
        relation = _relation(stmt)
        if relation is None:
            return
        item = analyser.range_var(relation, Scope())
        scope = Scope([item])
        lins = [analyser.expr(node, scope) for node in _expressions(stmt)]
        for name, default in _defaults(stmt):  # what an INSERT will write there unasked
            own = item.lookup(name)
            value = analyser.expr(default, scope)
            analyser.writes.append((own.sources if own else frozenset(), value.live, False))
        analyser.store(frozenset(), combine(lins))


def _foreign_keys(stmt: Any, analyser: Analyser) -> None:
    """A foreign key compares every value written into its columns with the stored values of
    the columns it references: a join of the two (``scratch.x REFERENCES patients (ssn)``
    answers an INSERT of a guessed SSN with 23503 or not). Referencing a table's primary key
    without naming it references, for all the analysis knows, any of its columns."""
    found: list[tuple[str | None, Any]] = []
    if isinstance(stmt, ast.AlterTableStmt):
        item = analyser.range_var(stmt.relation, Scope())
        defs = [cmd.def_ for cmd in stmt.cmds or ()]

        def own(name: str) -> Lin:
            return item.lookup(name) or UNKNOWN

    elif isinstance(stmt, ast.CreateStmt):
        rel = stmt.relation
        schema = str(rel.schemaname or DEFAULT_SCHEMA)
        defs = list(stmt.tableElts or ())

        def own(name: str) -> Lin:
            return Lin(frozenset({SourceColumn(schema, str(rel.relname), name)}), exact=True)

    else:
        return
    for node in defs:
        if isinstance(node, ast.Constraint):
            found.append((None, node))
        elif isinstance(node, ast.ColumnDef):
            found.extend((str(node.colname), c) for c in node.constraints or ())
    for column, constraint in found:
        if constraint.contype != ConstrType.CONSTR_FOREIGN:
            continue
        names = [column] if column else [str(n.sval) for n in constraint.fk_attrs or ()]
        referenced = analyser.range_var(constraint.pktable, Scope())
        wanted = [str(n.sval) for n in constraint.pk_attrs or ()]
        columns = [lin for name, lin in referenced.shape.columns if not wanted or name in wanted]
        left = [own(name) for name in names]
        stored = all(lin.stored for lin in left) and all(lin.stored for lin in columns)
        sources = combine(left).sources
        analyser.joins.append((sources, stored, combine(columns).sources, stored))


def _relation(stmt: Any) -> ast.RangeVar | None:
    found: Any = None
    if isinstance(stmt, ast.AlterTableStmt | ast.IndexStmt):
        found = stmt.relation
    elif isinstance(stmt, ast.CreatePolicyStmt | ast.AlterPolicyStmt):
        found = stmt.table
    elif isinstance(stmt, ast.CreateStatsStmt) and len(stmt.relations or ()) == 1:
        found = stmt.relations[0]
    return found if isinstance(found, ast.RangeVar) else None


def _expressions(stmt: Any) -> Iterator[Any]:
    """The expressions over the relation's rows that the statement stores."""
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            yield from _definition(cmd.def_)
    elif isinstance(stmt, ast.IndexStmt):
        yield from (p.expr for p in stmt.indexParams or () if p.expr is not None)
        yield from (p.expr for p in stmt.indexIncludingParams or () if p.expr is not None)
        if stmt.whereClause is not None:
            yield stmt.whereClause
    elif isinstance(stmt, ast.CreatePolicyStmt | ast.AlterPolicyStmt):
        yield from (e for e in (stmt.qual, stmt.with_check) if e is not None)
    elif isinstance(stmt, ast.CreateStatsStmt):
        yield from (e.expr for e in stmt.exprs or () if e.expr is not None)


def _defaults(stmt: Any) -> Iterator[tuple[str, Any]]:
    """``ALTER TABLE ... ALTER COLUMN c SET DEFAULT e``: (c, e)."""
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            if cmd.subtype == AlterTableType.AT_ColumnDefault and cmd.def_ is not None:
                yield str(cmd.name), cmd.def_


def _definition(node: Any) -> Iterator[Any]:
    if isinstance(node, ast.ColumnDef):
        if node.raw_default is not None:
            yield node.raw_default
        for constraint in node.constraints or ():
            yield from _definition(constraint)
    elif isinstance(node, ast.Constraint):
        yield from (e for e in (node.raw_expr, node.where_clause) if e is not None)


__all__ = ["stores"]
