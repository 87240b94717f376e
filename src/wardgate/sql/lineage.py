"""Column lineage of every statement in a string: where each result column's values come from.

`analyze` parses with libpg_query (PostgreSQL's own grammar, through pglast) and resolves names
against a `Catalog` under a search_path. A string that does not parse raises `AnalysisError`.
A column the analysis cannot follow to its sources is `unknown`, and the caller masks it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pglast import ast

from wardgate.sql.catalog import DEFAULT_SEARCH_PATH, Catalog
from wardgate.sql.model import AnalysisError, ColumnLineage, Kind, Options, StatementLineage
from wardgate.sql.resolve import Analyser, Shape, parse
from wardgate.sql.stores import stores

_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_NO_OPTIONS = Options()


def analyze(
    text: str,
    catalog: Catalog,
    *,
    search_path: str = DEFAULT_SEARCH_PATH,
    user: str | None = None,
    options: Options = _NO_OPTIONS,
) -> tuple[StatementLineage, ...]:
    """Lineage of each statement in `text`, in order; `AnalysisError` if it does not parse."""
    from wardgate.sql.analysis import parse_tree

    tree = parse_tree(text)
    return analyze_tree(
        text, tree, catalog, search_path=search_path, user=user, options=options
    )  # fmt: skip


def analyze_tree(
    text: str,
    tree: tuple[Any, ...],
    catalog: Catalog,
    *,
    search_path: str = DEFAULT_SEARCH_PATH,
    user: str | None = None,
    options: Options = _NO_OPTIONS,
) -> tuple[StatementLineage, ...]:
    """`analyze` of a string already parsed (``analysis.parse_tree``)."""
    from wardgate.sql.analysis import pieces

    path = catalog.effective_path(search_path, user)
    results = []
    for stmt, piece in pieces(text, tree):
        analyser = Analyser(catalog, path, options)
        try:
            found = _statement(stmt, piece, analyser)
        except RecursionError as exc:
            raise AnalysisError("statement nests too deeply to analyse") from exc
        results.append(
            dataclasses.replace(
                found,
                reads=frozenset(analyser.reads),
                compared=frozenset(analyser.compared),
                tested_unknown=analyser.tested_unknown,
                stores_unknown=analyser.stores_unknown,
                lookups=tuple(analyser.lookups.values()),
                joins=tuple(analyser.joins),
                side_channels=tuple(analyser.side_channels),
                stores=tuple(analyser.stores),
                partial=tuple(analyser.partial),
                writes=tuple(analyser.writes),
                opaque=bool(analyser.notes),
            )
        )
    return tuple(results)


def view_columns(definition: str, catalog: Catalog) -> list[str]:
    """The column names a view with this definition would have (for catalogs built by hand)."""
    (raw,) = parse(definition)
    shape = Analyser(catalog, catalog.effective_path(DEFAULT_SEARCH_PATH), _NO_OPTIONS).query(
        raw.stmt, None
    )
    return [name for name, _ in shape.columns]


def _statement(stmt: Any, text: str, analyser: Analyser) -> StatementLineage:
    if isinstance(stmt, ast.SelectStmt):
        if stmt.intoClause is not None:  # SELECT ... INTO table: creates a table, no rows
            stores(stmt, analyser)
            return StatementLineage(Kind.OTHER, text)
        return _rows(Kind.QUERY, text, analyser.query(stmt, None), analyser)
    if isinstance(stmt, _DML):
        shape = analyser.query(stmt, None)
        lineage = _rows(Kind.DML, text, shape, analyser)
        if not stmt.returningList:
            return StatementLineage(Kind.DML, text)
        return lineage
    if isinstance(stmt, ast.DeclareCursorStmt):
        inner = _statement(stmt.query, text, analyser)
        return _named(Kind.CURSOR, inner, str(stmt.portalname))
    if isinstance(stmt, ast.FetchStmt):
        name = str(stmt.portalname)
        return StatementLineage(
            Kind.FETCH, text, shape_known=False, returns_rows=not stmt.ismove, name=name
        )
    if isinstance(stmt, ast.CopyStmt):
        return _copy(stmt, text, analyser)
    if isinstance(stmt, ast.ExplainStmt):
        # The plan's row counts (estimated from statistics, or counted by ANALYZE) answer the
        # inner statement's conditions: its facts are the EXPLAIN's.
        _statement(stmt.query, text, analyser)
        analyze_ = any(o.defname == "analyze" and _truthy(o.arg) for o in stmt.options or ())
        plan = (ColumnLineage("QUERY PLAN"),)
        return StatementLineage(
            Kind.EXPLAIN, text, plan, returns_rows=True, explain_analyze=analyze_
        )
    if isinstance(stmt, ast.PrepareStmt):
        return _named(Kind.PREPARE, _statement(stmt.query, text, analyser), str(stmt.name))
    if isinstance(stmt, ast.ExecuteStmt):
        return StatementLineage(
            Kind.EXECUTE, text, shape_known=False, returns_rows=True, name=str(stmt.name)
        )
    if isinstance(stmt, ast.VariableShowStmt):
        return _show(str(stmt.name), text)
    if isinstance(stmt, ast.CallStmt):  # OUT parameters come back as a row of unknown shape
        analyser.note("CALL returns what the procedure chooses")
        return StatementLineage(
            Kind.OTHER, text, shape_known=False, returns_rows=True, notes=tuple(analyser.notes)
        )
    stores(stmt, analyser)
    return StatementLineage(Kind.OTHER, text)


def _rows(kind: Kind, text: str, shape: Shape, analyser: Analyser) -> StatementLineage:
    columns = tuple(
        ColumnLineage(
            name, lin.sources, lin.exact and not lin.unknown, lin.unknown, lin.measured, lin.chosen
        )
        for name, lin in shape.columns
    )
    return StatementLineage(
        kind,
        text,
        columns,
        shape_known=shape.complete,
        returns_rows=True,
        notes=tuple(analyser.notes),
    )


def _named(kind: Kind, inner: StatementLineage, name: str) -> StatementLineage:
    return StatementLineage(
        kind,
        inner.text,
        inner.columns,
        inner.shape_known,
        inner.returns_rows,
        name,
        notes=inner.notes,
    )


def _copy(stmt: ast.CopyStmt, text: str, analyser: Analyser) -> StatementLineage:
    if stmt.is_from or stmt.filename is not None or stmt.is_program:
        stores(stmt, analyser)
        return StatementLineage(Kind.OTHER, text)  # nothing comes back to the client
    if stmt.query is not None:
        shape = analyser.query(stmt.query, None)
    else:
        from wardgate.sql.resolve import Scope

        item = analyser.range_var(stmt.relation, Scope())
        wanted = [str(n.sval) for n in stmt.attlist or ()]
        if wanted:
            columns = [(name, item.lookup(name) or analyser.note(name)) for name in wanted]
            shape = Shape(columns)
        else:
            shape = item.shape
    return _rows(Kind.COPY, text, shape, analyser)


def _show(name: str, text: str) -> StatementLineage:
    # A custom setting (a dotted name) holds whatever a previous statement put there.
    if name == "all":
        columns = tuple(ColumnLineage(n, unknown=True) for n in ("name", "setting", "description"))
        return StatementLineage(Kind.SHOW, text, columns, returns_rows=True)
    column = ColumnLineage(name, unknown="." in name)
    return StatementLineage(Kind.SHOW, text, (column,), returns_rows=True)


def _truthy(arg: Any) -> bool:
    if isinstance(arg, ast.Integer):
        return bool(arg.ival)
    if isinstance(arg, ast.String):
        return str(arg.sval).lower() not in ("false", "off", "0", "no")
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    return True  # a bare ANALYZE


__all__ = ["AnalysisError", "analyze", "view_columns"]
