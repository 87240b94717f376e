"""The analyser: walks pglast's raw parse tree with scopes, as PostgreSQL's parse analysis does.

A query level has a scope: the FROM items it can see, the CTEs defined around it, and the
level it is nested in (for correlated references). Every FROM item has a shape: its columns in
order, each with a `Lin`, and, when the number of columns is not known, the lineage of the
columns past the known ones. Whatever cannot be resolved becomes unknown, never constant.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums.parsenodes import A_Expr_Kind, SetOperation
from pglast.enums.primnodes import SubLinkType, XmlExprOp
from pglast.parser import ParseError, parse_sql

from wardgate.sql import catalog as cat
from wardgate.sql.functions import (
    CONTENT_FREE,
    FROM_FUNCTIONS,
    OPAQUE,
    SET_RETURNING,
    SIDE_CHANNELS,
    TOTAL_CASTS,
    TOTAL_OPERATORS,
    total_at,
)
from wardgate.sql.model import Lookup, Options, SourceColumn

# Column types whose values are copies of other columns' values: pg_statistic's histograms and
# most-common values (anyarray) and extended statistics' MCV lists.
OPAQUE_TYPES = frozenset({2277, 5017})
SYSTEM_COLUMNS = ("ctid", "xmin", "xmax", "cmin", "cmax", "tableoid")
# Expressions that pass their parts' values through or test them, and never fail on them.
TOTAL_NODES = (
    ast.CoalesceExpr, ast.MinMaxExpr, ast.NullTest, ast.BooleanTest, ast.BoolExpr, ast.RowExpr,
    ast.A_ArrayExpr, ast.NamedArgExpr, ast.CaseWhen, ast.SetToDefault, ast.ResTarget,
    ast.GroupingFunc,
)  # fmt: skip
# A_Expr kinds that compare their sides (as ``=`` does) whatever the operator's name says.
_COMPARING = (
    A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT, A_Expr_Kind.AEXPR_NULLIF,
    A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN,
    A_Expr_Kind.AEXPR_BETWEEN_SYM, A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
)  # fmt: skip
_TOTAL_XML = (XmlExprOp.IS_XMLCONCAT, XmlExprOp.IS_XMLELEMENT, XmlExprOp.IS_XMLFOREST)
MAX_CTE_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class Lin:
    """``measured``: the sources that reach the value only through functions that return no
    content of theirs (``length(body)``, ``count(ssn)``); ``live`` are the others. ``chosen``:
    an exact value that may also be a constant of the statement instead of a stored value (a
    UNION branch, a VALUES row, a value written by the statement and returned): masked as the
    column, but no stored value to compare with (``stored``), and never given a token."""

    sources: frozenset[SourceColumn] = frozenset()
    exact: bool = False
    unknown: bool = False
    measured: frozenset[SourceColumn] = frozenset()
    chosen: bool = False
    # unknown because a function the lineage cannot follow made it (current_query(),
    # pg_stat_activity's pg_stat_get_activity, a function outside pg_catalog, statistics'
    # copies of values), not merely a relation missing from the catalog: what it holds may be
    # another session's statement, a decoded pseudonym or PHI
    opaque: bool = False

    @property
    def stored(self) -> bool:
        """Only ever a stored value of its sources (cast or not): one a join or a grouping
        compares with another stored value, never with a constant of the client's."""
        return self.exact and not self.chosen and not self.unknown

    @property
    def constant(self) -> bool:
        return not self.sources and not self.unknown

    @property
    def live(self) -> frozenset[SourceColumn]:
        return self.sources - self.measured if self.measured else self.sources


CONST = Lin()
UNKNOWN = Lin(unknown=True)
OPAQUE_VALUE = Lin(unknown=True, opaque=True)


def combine(lins: Iterable[Lin]) -> Lin:
    """A value computed from all of `lins`."""
    sources: set[SourceColumn] = set()
    live: set[SourceColumn] = set()
    unknown = opaque = False
    for lin in lins:
        sources |= lin.sources
        live |= lin.live
        unknown = unknown or lin.unknown
        opaque = opaque or lin.opaque
    return Lin(frozenset(sources), False, unknown, frozenset(sources - live), opaque=opaque)


def either(lins: Sequence[Lin]) -> Lin:
    """A value that is one of `lins` (UNION branches, VALUES rows, merged join columns)."""
    merged = combine(lins)
    exact = any(lin.exact for lin in lins) and all(lin.exact or lin.constant for lin in lins)
    chosen = exact and any(lin.chosen or lin.constant for lin in lins)
    return Lin(merged.sources, exact, merged.unknown, merged.measured, chosen, merged.opaque)


@dataclass
class Shape:
    columns: list[tuple[str, Lin]]
    complete: bool = True
    rest: Lin = UNKNOWN  # lineage of any column past `columns` when not complete

    def whole(self) -> Lin:
        lins = [lin for _, lin in self.columns]
        return combine([*lins, self.rest] if not self.complete else lins)

    def renamed(self, names: Sequence[str]) -> Shape:
        columns = [
            (names[i] if i < len(names) else name, lin)
            for i, (name, lin) in enumerate(self.columns)
        ]
        return Shape(columns, self.complete, self.rest)


@dataclass
class Item:
    """A FROM item: a relation, subquery, function, CTE reference or join."""

    name: str | None
    shape: Shape
    schema: str | None = None
    children: list[Item] = field(default_factory=list)  # addressable inside an unaliased join
    hidden: dict[str, Lin] = field(default_factory=dict)  # system columns, not part of *

    def named(self, name: str) -> list[Item]:
        if self.name is not None:
            return [self] if self.name == name else []
        return [found for child in self.children for found in child.named(name)]

    def lookup(self, column: str) -> Lin | None:
        matches = [lin for name, lin in self.shape.columns if name == column]
        if matches:
            return matches[0] if len(matches) == 1 else combine(matches)
        if column in self.hidden:
            return self.hidden[column]
        return None if self.shape.complete else self.shape.rest


@dataclass
class Scope:
    items: list[Item] = field(default_factory=list)
    parent: Scope | None = None
    ctes: dict[str, Shape] = field(default_factory=dict)

    def cte(self, name: str) -> Shape | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.parent
        return None


def _strings(nodes: Sequence[Any] | None) -> list[str]:
    return [str(n.sval) for n in nodes or () if isinstance(n, ast.String)]


def _func_name(call: ast.FuncCall) -> tuple[str | None, str]:
    names = _strings(call.funcname)
    return (names[-2] if len(names) > 1 else None), names[-1]


class Analyser:
    def __init__(
        self, catalog: cat.Catalog, path: Sequence[str], options: Options, depth: int = 0
    ) -> None:
        self.catalog = catalog
        self.path = tuple(path)
        self.options = options
        self.depth = depth
        self.notes: list[str] = []
        self._views: dict[int, Shape] = {}
        # Facts of the whole statement, beside its result columns (see `StatementLineage`).
        self.reads: set[SourceColumn] = set()
        self.compared: set[SourceColumn] = set()
        # a value of unknown lineage (current_query(), pg_stat_activity.query, a function
        # outside pg_catalog) is tested in a condition, a grouping or a count
        self.tested_unknown = False
        self.stores_unknown = False  # a value of unknown lineage is stored (`stores`)
        # equality of a stored column with literals, by the condition's node (each node once,
        # however often it is walked)
        self.lookups: dict[int, Lookup] = {}
        # column against column: (left sources, left exact, right sources, right exact)
        self.joins: list[tuple[frozenset[SourceColumn], bool, frozenset[SourceColumn], bool]] = []
        self.side_channels: list[str] = []
        # (columns written, or none for a new place; the sources of what is written there)
        self.stores: list[tuple[frozenset[SourceColumn], frozenset[SourceColumn]]] = []
        # (what may fail, the sources of the value it was given): see `functions.TOTAL`
        self.partial: list[tuple[str, frozenset[SourceColumn]]] = []
        # (the columns written, the sources of the value, whether it is a stored value as is)
        self.writes: list[tuple[frozenset[SourceColumn], frozenset[SourceColumn], bool]] = []

    def may_fail(self, what: str, lins: Iterable[Lin]) -> None:
        """``what`` is given values computed from ``lins`` and may fail on some of them: whether
        it fails tests them (a value of unknown lineage, such as another session's statement
        text in pg_stat_activity, is then ``tested_unknown``)."""
        lins = tuple(lins)
        live = frozenset().union(*(lin.live for lin in lins))
        if live:
            self.partial.append((what, live))
        if any(lin.opaque for lin in lins):
            self.tested_unknown = True

    def note(self, text: str, *, opaque: bool = False) -> Lin:
        if text not in self.notes:
            self.notes.append(text)
        return OPAQUE_VALUE if opaque else UNKNOWN

    # ---- queries -------------------------------------------------------------------------

    def query(self, node: Any, parent: Scope | None) -> Shape:
        """Any statement that yields rows inside a query: SELECT, or DML with RETURNING."""
        if isinstance(node, ast.SelectStmt):
            return self.select(node, parent)
        if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            return self.returning(node, parent)
        self.note(f"cannot analyse a {type(node).__name__} here")
        return Shape([], complete=False)

    def select(self, stmt: ast.SelectStmt, parent: Scope | None) -> Shape:
        scope = Scope(parent=parent)
        if stmt.withClause is not None:
            self.with_clause(stmt.withClause, scope)
        if stmt.op != SetOperation.SETOP_NONE:
            left = self.select(stmt.larg, scope)
            right = self.select(stmt.rarg, scope)
            if not (stmt.op == SetOperation.SETOP_UNION and stmt.all):
                # UNION, INTERSECT, EXCEPT compare every value of a branch with the other's
                # (`SELECT ssn ... INTERSECT SELECT '123-45-6789'`, then count the rows): an
                # oracle, as a condition is.
                for shape in (left, right):
                    for _, lin in shape.columns:
                        self.tested(lin)
                    self.tested(shape.rest)
            return self.set_operation([left, right])
        if stmt.valuesLists:
            rows = [[self.expr(value, scope) for value in row] for row in stmt.valuesLists]
            width = max(len(row) for row in rows)
            columns = [
                (f"column{i + 1}", either([row[i] for row in rows if i < len(row)]))
                for i in range(width)
            ]
            return Shape(columns)
        items: list[Item] = []
        for node in stmt.fromClause or ():
            items.append(self.from_item(node, scope, items))
        scope.items = items
        self.condition(stmt.whereClause, scope)
        self.condition(stmt.havingClause, scope)
        targets = stmt.targetList or ()
        self.keys(stmt.groupClause, scope, targets)
        if stmt.distinctClause and all(node is None for node in stmt.distinctClause):
            # plain DISTINCT: the rows are grouped by every output column
            self.keys([t.val for t in targets if isinstance(t, ast.ResTarget)], scope, targets)
        else:
            self.keys(stmt.distinctClause, scope, targets)
        self.keys(stmt.sortClause, scope)  # sorting tells an order, not a class: names skipped
        for limit in (stmt.limitCount, stmt.limitOffset):  # how many rows: a count, too
            if limit is not None:
                self.tested(self.expr(limit, scope))
        return self.targets(stmt.targetList or (), scope)

    def keys(self, nodes: Sequence[Any] | None, scope: Scope, targets: Sequence[Any] = ()) -> None:
        """GROUP BY, ORDER BY, DISTINCT, PARTITION BY: grouping or sorting by a stored column is
        fine, but by a computation on it (``GROUP BY ssn LIKE '8%'``, ``ORDER BY substr(ssn, 1,
        3)``) sorts rows into classes of its value, which ``min(id)`` or a count then names: an
        oracle, as a condition is. A bare name is a column of the FROM items (a subquery's may be
        computed) or, failing that, an output column (``targets``), as PostgreSQL reads it."""
        for node in nodes or ():
            if isinstance(node, ast.SortBy):
                node = node.node
            if isinstance(node, ast.GroupingSet):
                self.keys(node.content, scope, targets)
                continue
            if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
                position = node.val.ival  # GROUP BY 1: the first output column
                if isinstance(position, int) and 0 < position <= len(targets):
                    target = targets[position - 1]
                    if isinstance(target, ast.ResTarget):
                        node = target.val
            if node is None or isinstance(node, ast.A_Const):
                continue
            if isinstance(node, ast.ColumnRef):
                if not targets:
                    continue  # ORDER BY, PARTITION BY: a bare name may be an output alias
                lin = self._key_name(node, scope, targets)
            else:
                lin = self.expr(node, scope)
            if lin is not None and not lin.stored:
                self.tested(lin)

    def _key_name(self, node: ast.ColumnRef, scope: Scope, targets: Sequence[Any]) -> Lin | None:
        if isinstance(node.fields[-1], ast.A_Star):
            return None
        names = _strings(node.fields)
        found = self._column_at(names, scope)
        if found is not None or len(names) != 1:
            return found
        for target in targets:
            if isinstance(target, ast.ResTarget) and target.name == names[0]:
                return self.expr(target.val, scope)
        return None

    def set_operation(self, branches: list[Shape]) -> Shape:
        complete = [b for b in branches if b.complete]
        if not complete:
            return Shape([], complete=False, rest=combine(b.rest for b in branches))
        first = complete[0]
        columns = []
        for i, (name, _) in enumerate(first.columns):
            lins = [b.columns[i][1] if i < len(b.columns) else b.rest for b in branches]
            columns.append((name, either(lins)))
        return Shape(columns)

    def targets(self, targets: Sequence[Any], scope: Scope) -> Shape:
        columns: list[tuple[str, Lin]] = []
        complete = True
        for target in targets:
            value = target.val
            if isinstance(value, ast.ColumnRef) and isinstance(value.fields[-1], ast.A_Star):
                shape = self.star(value.fields[:-1], scope)
                self.reads.update(s for _, lin in shape.columns for s in lin.sources)
                columns.extend(shape.columns)
                complete = complete and shape.complete
                continue
            name = target.name or _column_name(value)
            columns.append((name, self.expr(value, scope)))
        return Shape(columns, complete, UNKNOWN)

    def star(self, qualifier: Sequence[Any], scope: Scope) -> Shape:
        names = _strings(qualifier)
        if not names:
            items = scope.items
        else:
            items = self.items_named(names, scope)
            if not items:
                self.note(f"cannot expand {'.'.join(names)}.*")
                return Shape([], complete=False)
        columns = [column for item in items for column in item.shape.columns]
        return Shape(columns, all(item.shape.complete for item in items))

    def items_named(self, names: Sequence[str], scope: Scope) -> list[Item]:
        level: Scope | None = scope
        while level is not None:
            found = self._items_at(names, level)
            if found:
                return found
            level = level.parent
        return []

    @staticmethod
    def _items_at(names: Sequence[str], scope: Scope) -> list[Item]:
        found = [hit for item in scope.items for hit in item.named(names[-1])]
        if len(names) > 1:
            found = [item for item in found if item.schema == names[-2]]
        return found

    def with_clause(self, clause: ast.WithClause, scope: Scope) -> None:
        for cte in clause.ctes:
            names = _strings(cte.aliascolnames)
            query = cte.ctequery
            recursive = (
                clause.recursive
                and isinstance(query, ast.SelectStmt)
                and query.op == SetOperation.SETOP_UNION
            )
            if not recursive:
                scope.ctes[cte.ctename] = self.query(query, scope).renamed(names)
                continue
            shape = self.select(query.larg, scope).renamed(names)
            for _ in range(MAX_CTE_ROUNDS):
                scope.ctes[cte.ctename] = shape
                grown = self.set_operation([shape, self.select(query.rarg, scope)])
                grown = grown.renamed([name for name, _ in shape.columns])
                if grown.columns == shape.columns and grown.complete == shape.complete:
                    break
                shape = grown
            else:
                lin = self.note(f"recursive CTE {cte.ctename} did not settle", opaque=True)
                shape = Shape([(name, lin) for name, _ in shape.columns], shape.complete)
            scope.ctes[cte.ctename] = shape

    # ---- FROM ----------------------------------------------------------------------------

    def from_item(self, node: Any, scope: Scope, visible: list[Item]) -> Item:
        # what a LATERAL item (and a function's arguments) can refer to
        lateral = Scope(list(visible), scope.parent, scope.ctes)
        if isinstance(node, ast.RangeVar):
            return self.range_var(node, scope)
        if isinstance(node, ast.RangeSubselect):
            outer = lateral if node.lateral else Scope([], scope.parent, scope.ctes)
            shape = self.query(node.subquery, outer)
            return self._aliased(node.alias, None, shape)
        if isinstance(node, ast.RangeFunction):
            return self.range_function(node, lateral)
        if isinstance(node, ast.JoinExpr):
            return self.join(node, scope, visible)
        if isinstance(node, ast.RangeTableSample):
            return self.from_item(node.relation, scope, visible)
        if isinstance(node, ast.RangeTableFunc):
            source = combine([self.expr(node.docexpr, lateral), self.expr(node.rowexpr, lateral)])
            columns = [
                (str(c.colname), combine([source, self.expr(c.colexpr, lateral)]))
                for c in node.columns or ()
            ]
            return self._aliased(node.alias, None, Shape(columns))
        self.note(f"cannot analyse {type(node).__name__} in FROM")
        return self._aliased(getattr(node, "alias", None), None, Shape([], complete=False))

    def _aliased(self, alias: Any, default: str | None, shape: Shape) -> Item:
        if alias is None:
            return Item(default, shape)
        return Item(str(alias.aliasname), shape.renamed(_strings(alias.colnames)))

    def range_var(self, node: ast.RangeVar, scope: Scope) -> Item:
        name, schema = str(node.relname), node.schemaname
        if schema is None:
            shape = scope.cte(name)
            if shape is not None:
                return self._aliased(node.alias, name, shape)
        relation = self.catalog.resolve(name, schema, self.path)
        if relation is None:
            self.note(f"unknown relation {f'{schema}.' if schema else ''}{name}")
            return self._aliased(node.alias, name, Shape([], complete=False))
        item = self._aliased(node.alias, relation.name, self.relation_shape(relation))
        if node.alias is None:
            item.schema = relation.schema
        if relation.kind not in (cat.VIEW, cat.MATVIEW):
            item.hidden = dict.fromkeys(SYSTEM_COLUMNS, CONST)
        return item

    def relation_shape(self, relation: cat.Relation) -> Shape:
        if relation.kind in (cat.VIEW, cat.MATVIEW):
            return self.view(relation)
        return Shape([(c.name, self.stored(relation, c)) for c in relation.columns])

    def stored(self, relation: cat.Relation, column: cat.Column) -> Lin:
        sources = {SourceColumn(relation.schema, relation.name, column.name)}
        pending, seen = list(relation.parents), set()
        while pending:  # a partition's or child's rows are its parents' rows too
            parent = self.catalog.by_oid(pending.pop())
            if parent is None or parent.oid in seen:
                continue
            seen.add(parent.oid)
            if parent.column(column.name) is not None:
                sources.add(SourceColumn(parent.schema, parent.name, column.name))
            pending.extend(parent.parents)
        unknown = column.type_oid in OPAQUE_TYPES
        if unknown:
            self.note(f"{relation.schema}.{relation.name}.{column.name} holds copies of values")
        return Lin(frozenset(sources), True, unknown, opaque=unknown)

    def view(self, relation: cat.Relation) -> Shape:
        if relation.oid in self._views:
            return self._views[relation.oid]
        names = [c.name for c in relation.columns]
        if self.depth >= self.options.max_view_depth or relation.definition is None:
            # not read: it may compute from anything (a view over pg_stat_activity)
            lin = self.note(f"view {relation.schema}.{relation.name} not expanded", opaque=True)
            return Shape([(name, lin) for name in names])
        inner = Analyser(
            self.catalog, ("pg_catalog", relation.schema), self.options, self.depth + 1
        )
        try:
            (raw,) = _view_tree(relation.definition)
            shape = inner.query(raw.stmt, None)
        except (ParseError, ValueError):
            shape = Shape([], complete=False)
            inner.note(f"definition of view {relation.schema}.{relation.name} does not parse")
        self.notes.extend(n for n in inner.notes if n not in self.notes)
        columns = []
        for i, name in enumerate(names):
            lin = shape.columns[i][1] if i < len(shape.columns) else shape.rest
            if relation.kind == cat.MATVIEW:  # stored: the matview's own column is a source too
                column = relation.columns[i]
                own = SourceColumn(relation.schema, relation.name, column.name)
                lin = dataclasses.replace(lin, sources=lin.sources | {own})
            columns.append((name, lin))
        result = Shape(columns)
        self._views[relation.oid] = result
        return result

    def range_function(self, node: ast.RangeFunction, lateral: Scope) -> Item:
        columns: list[tuple[str, Lin]] = []
        complete = True
        rest = UNKNOWN
        alias = node.alias
        single = len(node.functions) == 1 and not node.is_rowsfrom
        for call, coldefs in node.functions:
            coldefs = coldefs or (node.coldeflist if single else None)
            defined = [str(c.colname) for c in coldefs or ()]
            if not isinstance(call, ast.FuncCall):  # e.g. a SQLValueFunction: current_date
                columns.append((_column_name(call), self.expr(call, lateral)))
                continue
            schema, name = _func_name(call)
            each = [self.expr(arg, lateral) for arg in call.args or ()]
            args = combine(each)
            kind = self.function_kind(schema, name)
            self._through(kind, name, each)
            if kind == "builtin" and name in SIDE_CHANNELS and not args.constant:
                self.side_channels.append(name)
            if name in SET_RETURNING:  # its row count tells about its arguments
                self.tested(args)
            if kind == "phi":
                lin = Lin(
                    args.sources | self.phi_sources(schema, name),
                    False,
                    args.unknown,
                    opaque=args.opaque,
                )
            elif kind == "builtin" and name in FROM_FUNCTIONS:
                lin = args
            else:
                lin = self.note(
                    f"function {name} in FROM is not known to compute from its input",
                    opaque=kind == "unknown",  # OPAQUE, or not pg_catalog's: may read anything
                )
            outputs = FROM_FUNCTIONS.get(name, ()) if kind == "builtin" else ()
            if outputs == "args" and len(call.args or ()) > 1:
                names = [name] * len(call.args)
            elif outputs is None or outputs == "args":
                names = [str(alias.aliasname) if alias is not None and single else name]
            else:
                names = defined or list(outputs)
            columns.extend((n, lin) for n in names)
            if not names:
                complete, rest = False, lin
        if node.ordinality:
            columns.append(("ordinality", CONST))
        shape = Shape(columns, complete, rest)
        if alias is None:
            return Item(_func_name(node.functions[0][0])[1] if single else None, shape)
        return Item(str(alias.aliasname), shape.renamed(_strings(alias.colnames)))

    def join(self, node: ast.JoinExpr, scope: Scope, visible: list[Item]) -> Item:
        left = self.from_item(node.larg, scope, visible)
        right = self.from_item(node.rarg, scope, [*visible, left])
        if node.quals is not None:
            self.condition(node.quals, Scope([*visible, left, right], scope.parent, scope.ctes))
        if node.isNatural:
            right_names = {name for name, _ in right.shape.columns}
            merged = [name for name, _ in left.shape.columns if name in right_names]
            if not (left.shape.complete and right.shape.complete):
                self.note("NATURAL JOIN of a relation of unknown shape")
        else:
            merged = _strings(node.usingClause)
        merged_columns = []
        for name in merged:
            lins = [side.lookup(name) or UNKNOWN for side in (left, right)]
            merged_columns.append((name, either(lins)))
        rest = [
            (name, lin)
            for side in (left, right)
            for name, lin in side.shape.columns
            if name not in merged
        ]
        complete = left.shape.complete and right.shape.complete
        shape = Shape(merged_columns + rest, complete, combine([left.shape.rest, right.shape.rest]))
        children = [left, right]
        if node.join_using_alias is not None:
            children.append(Item(str(node.join_using_alias.aliasname), Shape(merged_columns)))
        if node.alias is not None:
            return Item(str(node.alias.aliasname), shape.renamed(_strings(node.alias.colnames)))
        return Item(None, shape, children=children)

    # ---- DML with RETURNING -----------------------------------------------------------------

    def returning(self, stmt: Any, parent: Scope | None) -> Shape:
        scope = Scope(parent=parent)
        if stmt.withClause is not None:
            self.with_clause(stmt.withClause, scope)
        target = self.range_var(stmt.relation, scope)
        written: dict[str, list[Lin]] = {}
        items = [target]
        if isinstance(stmt, ast.InsertStmt):
            names = [str(t.name) for t in stmt.cols or ()] or [n for n, _ in target.shape.columns]
            if stmt.selectStmt is not None:
                values = self.query(stmt.selectStmt, Scope([], scope.parent, scope.ctes))
                for i, name in enumerate(names):
                    lin = values.columns[i][1] if i < len(values.columns) else values.rest
                    written.setdefault(name, []).append(lin)
            conflict = stmt.onConflictClause
            if conflict is not None and conflict.targetList:
                excluded = Item("excluded", target.shape)
                self._assignments(conflict.targetList, Scope([target, excluded], scope), written)
        elif isinstance(stmt, ast.UpdateStmt):
            for node in stmt.fromClause or ():
                items.append(self.from_item(node, scope, items))
            self._assignments(stmt.targetList, Scope(items, scope), written)
        elif isinstance(stmt, ast.DeleteStmt):
            for node in stmt.usingClause or ():
                items.append(self.from_item(node, scope, items))
        else:  # MERGE
            items.append(self.from_item(stmt.sourceRelation, scope, items))
            self.condition(stmt.joinCondition, Scope(items, scope))
            for clause in stmt.mergeWhenClauses or ():
                self.condition(clause.condition, Scope(items, scope))
            for clause in stmt.mergeWhenClauses or ():
                if clause.values:  # WHEN NOT MATCHED THEN INSERT (cols) VALUES (...)
                    names = [str(t.name) for t in clause.targetList or ()] or [
                        n for n, _ in target.shape.columns
                    ]
                    for name, value in zip(names, clause.values, strict=False):
                        written.setdefault(name, []).append(self.expr(value, Scope(items, scope)))
                elif clause.targetList:
                    self._assignments(clause.targetList, Scope(items, scope), written)
        if isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
            self.condition(stmt.whereClause, Scope(items, scope))
        for name, assigned in written.items():
            own = target.lookup(name)
            targets = own.sources if own is not None else frozenset()
            value = combine(assigned)
            self.store(targets, value)
            as_is = all(lin.stored and lin.live for lin in assigned)
            self.writes.append((targets, value.live, as_is))
        if written:  # what RETURNING sees of the target is what was just written into it
            columns = [
                (name, _written(lin, written.get(name, []))) for name, lin in target.shape.columns
            ]
            items[0] = Item(target.name, Shape(columns, target.shape.complete), target.schema)
            items[0].hidden = target.hidden
        scope.items = items
        return self.targets(stmt.returningList or (), scope)

    def _assignments(
        self, targets: Sequence[Any], scope: Scope, written: dict[str, list[Lin]]
    ) -> None:
        for target in targets:
            written.setdefault(str(target.name), []).append(self.expr(target.val, scope))

    # ---- expressions -------------------------------------------------------------------------

    def expr(self, node: Any, scope: Scope) -> Lin:
        if node is None:
            return CONST
        if isinstance(node, tuple | list):
            return combine(self.expr(n, scope) for n in node)
        if isinstance(node, ast.ColumnRef):
            return self.column_ref(node, scope)
        if isinstance(node, ast.A_Const | ast.ParamRef | ast.SQLValueFunction | ast.String):
            return CONST
        if isinstance(node, ast.TypeCast):
            return self.cast(node, scope)
        if isinstance(node, ast.CollateClause):
            return self.expr(node.arg, scope)
        if isinstance(node, ast.A_Expr):
            left, right = self.expr(node.lexpr, scope), self.expr(node.rexpr, scope)
            self._operator(node, left, right)
            return combine([left, right])
        if isinstance(node, ast.FuncCall):
            return self.function(node, scope)
        if isinstance(node, ast.SubLink):
            return self.sublink(node, scope)
        if isinstance(node, ast.A_Indirection):
            return self.indirection(node, scope)
        if isinstance(node, ast.MultiAssignRef):
            return self.multi_assign(node, scope)
        if isinstance(node, ast.CaseExpr):
            return self.case(node, scope)
        if isinstance(node, ast.SelectStmt):
            return self.query(node, scope).whole()
        if isinstance(node, ast.Node):  # any other expression: computed from all its parts
            parts = (getattr(node, attr) for attr in node if attr != "location")
            lins = [self.expr(p, scope) for p in parts if isinstance(p, ast.Node | tuple)]
            if not isinstance(node, TOTAL_NODES) and not (
                isinstance(node, ast.XmlExpr) and node.op in _TOTAL_XML
            ):
                self.may_fail(_expression_name(node), lins)
            return combine(lins)
        return CONST

    def cast(self, node: ast.TypeCast, scope: Scope) -> Lin:
        """A cast to text keeps the value (exact stays exact) and never fails; one with a length
        (``ssn::varchar(1)``) cuts it, and one to another type parses it, failing on what does
        not parse (``(substr(ssn, 1, 1) || 'x')::int``)."""
        lin = self.expr(node.arg, scope)
        type_name = node.typeName
        names = _strings(type_name.names) if type_name is not None else []
        total = bool(names) and names[-1] in TOTAL_CASTS and not type_name.arrayBounds
        if not total or not self._builtin_name(names):
            self.may_fail(f"a cast to {'.'.join(names) or 'another type'}", [lin])
        # A cast that keeps the value keeps it exact; one that can cut or round it
        # (``ssn::varchar(3)``, ``mrn::"char"``, ``mrn::numeric(10,-4)``, ``::name``) makes a
        # value computed from it: equal to a constant, or to a column the role writes, for many
        # values.
        return lin if not lin.exact or _lossless(type_name) else combine([lin])

    def _builtin_name(self, names: Sequence[str]) -> bool:
        """A type or operator name that means pg_catalog's: qualified so, or unqualified with
        pg_catalog searched first (a domain ``text`` with a CHECK, or an operator ``||`` of
        another schema, placed before it would fail on chosen values)."""
        if len(names) > 1:
            return names[0] == "pg_catalog"
        return self.path[:1] == ("pg_catalog",)

    def _operator(self, node: ast.A_Expr, left: Lin, right: Lin) -> None:
        if node.kind in _COMPARING:
            return
        names = _strings(node.name)
        name = names[-1] if names else "?"
        side = TOTAL_OPERATORS.get(name) if self._builtin_name(names) else None
        if side != "both":
            self.may_fail(f"the operator {name}", [right] if side == "left" else [left, right])

    def column_ref(self, node: ast.ColumnRef, scope: Scope) -> Lin:
        fields = node.fields
        if isinstance(fields[-1], ast.A_Star):  # t.* inside an expression: the whole row
            whole = self.star(fields[:-1], scope).whole()
            self.reads.update(whole.sources)
            return whole
        names = _strings(fields)
        level: Scope | None = scope
        while level is not None:
            found = self._column_at(names, level)
            if found is not None:
                self.reads.update(found.sources)
                return found
            level = level.parent
        return self.note(f"cannot resolve column {'.'.join(names)}")

    def _column_at(self, names: list[str], scope: Scope) -> Lin | None:
        if len(names) == 1:
            hits = [lin for item in scope.items if (lin := item.lookup(names[0])) is not None]
            if hits:
                return hits[0] if len(hits) == 1 else combine(hits)
            rows = [hit for item in scope.items for hit in item.named(names[0])]
            if rows:  # `SELECT p FROM patients p`: the whole row
                whole = combine(row.shape.whole() for row in rows)
                self.reads.update(whole.sources)
                return whole
            return None
        for split in (len(names) - 1, len(names) - 2):  # t.col, s.t.col, then fields of a row
            if split < 1:
                continue
            items = self._items_at(names[:split], scope)
            if items:
                found = [item.lookup(names[split]) for item in items]
                lins = [lin if lin is not None else UNKNOWN for lin in found]
                lin = lins[0] if len(lins) == 1 else combine(lins)
                return lin if split == len(names) - 1 else combine([lin])
        first = self._column_at(names[:1], scope)
        return None if first is None else combine([first])  # (composite column).field

    def function(self, call: ast.FuncCall, scope: Scope) -> Lin:
        schema, name = _func_name(call)
        if name == "extract" and schema == "pg_catalog" and not self._has("pg_catalog", name):
            name = "date_part"  # EXTRACT(... FROM ...) before PostgreSQL 14
        args = [self.expr(arg, scope) for arg in call.args or ()]
        if call.agg_order:  # string_agg(x, ',' ORDER BY y): y decides what comes first
            args.append(combine(self.expr(s.node, scope) for s in call.agg_order))
        if call.agg_filter is not None:
            self.condition(call.agg_filter, scope)
        if call.over is not None:
            self.keys(call.over.partitionClause, scope)
            self.keys(call.over.orderClause, scope)
        kind = self.function_kind(schema, name)
        if call.agg_distinct:  # count(DISTINCT substr(ssn, 1, 1)) compares, as DISTINCT does
            for lin in args:
                if not lin.stored:
                    self.compared.update(lin.live)
        self._through(kind, name, args[: len(call.args or ())])
        if kind == "phi":
            extra = Lin(self.phi_sources(schema, name))
            return combine([*args, extra])
        if kind == "unknown":
            return self.note(
                f"function {name} is not known to compute only from its arguments", opaque=True
            )
        if name in SIDE_CHANNELS and any(not lin.constant for lin in args):
            self.side_channels.append(name)
        merged = combine(args)
        if name in SET_RETURNING:  # in the select list too, its row count tells
            self.tested(merged)
        if name in CONTENT_FREE:
            # A length or a count of a stored value tells how long or how many, never what;
            # of a computed one it tells anything (length(repeat('x', ascii(ssn)))): only the
            # arguments that are stored values, cast or not, are measured.
            live = set().union(*(lin.live for lin in args if not lin.exact))
            return Lin(
                merged.sources, False, merged.unknown, merged.sources - live, opaque=merged.opaque
            )
        return merged

    def _through(self, kind: str, name: str, args: Sequence[Lin]) -> None:
        """The arguments given to a function it may fail on (`functions.TOTAL`)."""
        failing = [lin for i, lin in enumerate(args) if kind != "builtin" or not total_at(name, i)]
        self.may_fail(f"the function {name}", failing)

    def _has(self, schema: str, name: str) -> bool:
        """Whether the target has the function (True where the catalog holds no functions)."""
        schemas = self.catalog.function_schemas(name)
        return schemas is None or schema in schemas

    def function_kind(self, schema: str | None, name: str) -> str:
        qualified = f"{schema}.{name}" if schema else None
        phi = self.options.phi_functions
        if name in phi or (qualified and qualified in phi):
            return "phi"
        trusted = self.options.trusted_functions
        if name in trusted or (qualified and qualified in trusted):
            return "builtin"
        schemas = self.catalog.function_schemas(name)
        if schema is not None:
            on_path = [schema] if schemas is None or schema in schemas else []
        elif schemas is None:  # functions not loaded (a catalog built by hand): builtin
            on_path = ["pg_catalog"]
        else:
            on_path = [s for s in self.path if s in schemas]
        if on_path != ["pg_catalog"] or name in OPAQUE:
            return "unknown"
        return "builtin"

    def phi_sources(self, schema: str | None, name: str) -> frozenset[SourceColumn]:
        phi = self.options.phi_functions
        found = phi.get(name, frozenset())
        return found | phi.get(f"{schema}.{name}", frozenset()) if schema else found

    def case(self, node: ast.CaseExpr, scope: Scope) -> Lin:
        """Its value comes from every part; its WHEN tests are conditions (`CASE ssn WHEN
        '123-45-6789' THEN 1 END` compares ``ssn`` with a constant)."""
        lins = [self.expr(node.arg, scope), self.expr(node.defresult, scope)]
        for when in node.args or ():
            if node.arg is not None:
                test = self.expr(when.expr, scope)
                self._compare(lins[0], test)
                lins.append(test)
            else:
                lins.append(self.condition(when.expr, scope))
            lins.append(self.expr(when.result, scope))
        return combine(lins)

    def condition(self, node: Any, scope: Scope) -> Lin:
        """Walk a condition (WHERE, HAVING, JOIN ON, CASE WHEN, FILTER): note in ``compared``
        the sources a test holds against constants (an oracle on their values); a comparison of
        two sides that both come from columns is a join, and a NULL test tells only NULL-ness."""
        if node is None:
            return CONST
        if isinstance(node, ast.BoolExpr):
            return combine(self.condition(arg, scope) for arg in node.args or ())
        if isinstance(node, ast.NullTest):
            return self.expr(node.arg, scope)
        if isinstance(node, ast.A_Expr):
            left, right = self.expr(node.lexpr, scope), self.expr(node.rexpr, scope)
            self._operator(node, left, right)
            if not self._lookup(node, left, right):
                equality = node.kind in _EQUALITY_KINDS and _strings(node.name) in _EQUALITY
                self._compare(left, right, equality=equality)
            return combine([left, right])
        if isinstance(node, ast.SubLink) and node.testexpr is not None:
            test = self.expr(node.testexpr, scope)
            shape = self.query(node.subselect, scope)
            single = shape.complete and len(shape.columns) == 1
            values = shape.columns[0][1] if single else shape.whole()
            self._sublink_operator(node, test, values)
            equality = node.operName is None or _strings(node.operName) in _EQUALITY
            self._compare(test, values, equality=equality)
            return test
        lin = self.expr(node, scope)  # a boolean function, column or anything else
        self.tested(lin)
        return lin

    def _lookup(self, node: ast.A_Expr, left: Lin, right: Lin) -> bool:
        """``column = 'literal'``, ``'literal' = column`` or ``column IN ('a', 'b')``, where the
        column is a stored value (cast or not) and every literal a string constant or a
        parameter: noted as a ``Lookup`` rather than a comparison, in the statement's own text
        only (a view's conditions are not the client's literals)."""
        kind = node.kind
        if self.depth or _strings(node.name) != ["="]:
            return False
        if kind == A_Expr_Kind.AEXPR_OP and left.live and not right.live:
            column, literals = left, (node.rexpr,)
        elif kind == A_Expr_Kind.AEXPR_OP and right.live and not left.live:
            column, literals = right, (node.lexpr,)
        elif kind == A_Expr_Kind.AEXPR_IN and left.live and not right.live:
            column, literals = left, tuple(node.rexpr or ())
        else:
            return False
        if not column.exact or column.unknown or column.chosen or not literals:
            return False
        values: list[str] = []
        param = False
        for literal in literals:
            if isinstance(literal, ast.ParamRef):
                param = True
            elif isinstance(literal, ast.A_Const) and isinstance(literal.val, ast.String):
                values.append(str(literal.val.sval))
            else:
                return False
        self.lookups[id(node)] = Lookup(column.live, tuple(values), param)
        return True

    def store(self, targets: frozenset[SourceColumn], lin: Lin) -> None:
        """The statement stores ``lin`` in ``targets`` (none: a new place): its live sources are
        noted in ``stores``; a value of unknown lineage in ``stores_unknown``."""
        if lin.live:
            self.stores.append((targets, lin.live))
        self.stores_unknown = self.stores_unknown or lin.opaque

    def tested(self, lin: Lin) -> None:
        """A condition, a grouping or a count holds ``lin`` against something: its stored
        sources are ``compared``; a value of unknown lineage is ``tested_unknown``."""
        self.compared.update(lin.live)
        self.tested_unknown = self.tested_unknown or lin.opaque

    def _compare(self, left: Lin, right: Lin, *, equality: bool = True) -> None:
        """``equality``: the test is ``=`` or ``<>`` (IN, IS [NOT] DISTINCT FROM); only then is
        column against column a join. An order or a pattern (``p.ssn < q.ssn``, ``p.ssn LIKE
        q.ssn``) against a column the role wrote answers ``ssn < '5'``: a comparison."""
        self.tested_unknown = self.tested_unknown or left.opaque or right.opaque
        if left.live and right.live and equality:
            self.joins.append((left.live, left.stored, right.live, right.stored))
            return
        self.compared.update(left.live | right.live)

    def sublink(self, node: ast.SubLink, scope: Scope) -> Lin:
        shape = self.query(node.subselect, scope)
        kind = node.subLinkType
        if kind in (SubLinkType.EXPR_SUBLINK, SubLinkType.ARRAY_SUBLINK):
            lin = shape.columns[0][1] if shape.columns else shape.rest
            return lin if kind == SubLinkType.EXPR_SUBLINK else combine([lin])
        test = self.expr(node.testexpr, scope)
        self._sublink_operator(node, test, shape.whole())
        return combine([test, shape.whole()])

    def _sublink_operator(self, node: ast.SubLink, test: Lin, values: Lin) -> None:
        """``x op ANY (SELECT ...)``: the operator, given the two sides, as `_operator`."""
        names = _strings(node.operName)
        if not names:  # EXISTS, or IN: equality
            return
        side = TOTAL_OPERATORS.get(names[-1]) if self._builtin_name(names) else None
        if side != "both":
            self.may_fail(
                f"the operator {names[-1]}", [values] if side == "left" else [test, values]
            )

    def indirection(self, node: ast.A_Indirection, scope: Scope) -> Lin:
        arg = node.arg
        fields = node.indirection
        if (
            isinstance(arg, ast.ColumnRef)
            and len(arg.fields) == 1
            and len(fields) == 1
            and isinstance(fields[0], ast.String)
        ):  # (p).ssn where p is a FROM item: exactly that column
            items = self._items_at(_strings(arg.fields), scope)
            column_hit = any(i.lookup(_strings(arg.fields)[0]) for i in scope.items)
            if len(items) == 1 and not column_hit:
                found = items[0].lookup(str(fields[0].sval))
                return found if found is not None else self.note("cannot resolve row field")
        indices = [
            self.expr([field.lidx, field.uidx], scope)
            for field in fields
            if isinstance(field, ast.A_Indices)
        ]
        self.may_fail("an array subscript", indices)
        return combine([self.expr(arg, scope), *indices])

    def multi_assign(self, node: ast.MultiAssignRef, scope: Scope) -> Lin:
        source, index = node.source, node.colno - 1
        if isinstance(source, ast.SubLink):
            shape = self.query(source.subselect, scope)
            return shape.columns[index][1] if index < len(shape.columns) else shape.rest
        if isinstance(source, ast.RowExpr) and index < len(source.args):
            return self.expr(source.args[index], scope)
        return self.expr(source, scope)


def _written(own: Lin, values: list[Lin]) -> Lin:
    if not values:
        return own
    merged = combine([own, *values])
    return Lin(merged.sources, own.exact, merged.unknown, chosen=True, opaque=merged.opaque)


# Tests of a column against a column that are joins (equality, or its negation): any other
# operator between two masked columns compares them, as with a constant.
_EQUALITY = (["="], ["pg_catalog", "="], ["<>"], ["pg_catalog", "<>"])
_EQUALITY_KINDS = frozenset(
    {A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_DISTINCT,
     A_Expr_Kind.AEXPR_NOT_DISTINCT}
)  # fmt: skip

# Cast targets that keep every value they are given from a stored value of its own kind: no
# typmod (a length or a precision cuts or rounds), no array, none of "char", name, float4 or
# float8 (the first byte, 63 bytes, rounded digits).
_LOSSLESS_CASTS = frozenset(
    {"text", "varchar", "bpchar", "int2", "int4", "int8", "numeric", "date", "timestamp",
     "timestamptz", "uuid", "bytea"}
)  # fmt: skip


def _lossless(type_name: ast.TypeName | None) -> bool:
    if type_name is None or type_name.typmods or type_name.arrayBounds or type_name.pct_type:
        return False
    names = _strings(type_name.names)
    schema_ok = len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog")
    return schema_ok and names[-1] in _LOSSLESS_CASTS


def _expression_name(node: Any) -> str:
    if isinstance(node, ast.XmlExpr):
        return f"the XML expression {XmlExprOp(node.op).name.removeprefix('IS_')}"
    return f"the expression {type(node).__name__}"


def _column_name(node: Any) -> str:
    """The name PostgreSQL gives an unnamed result column (FigureColname, roughly)."""
    if isinstance(node, ast.ColumnRef):
        names = _strings(node.fields)
        return names[-1] if names else "?column?"
    if isinstance(node, ast.A_Indirection):
        last = node.indirection[-1]
        return str(last.sval) if isinstance(last, ast.String) else _column_name(node.arg)
    if isinstance(node, ast.FuncCall):
        return _func_name(node)[1]
    if isinstance(node, ast.TypeCast):
        name = _column_name(node.arg)
        return name if name != "?column?" else _strings(node.typeName.names)[-1]
    if isinstance(node, ast.CollateClause):
        return _column_name(node.arg)
    if isinstance(node, ast.SubLink):
        if node.subLinkType == SubLinkType.EXISTS_SUBLINK:
            return "exists"
        if node.subLinkType == SubLinkType.ARRAY_SUBLINK:
            return "array"
        if node.subLinkType == SubLinkType.EXPR_SUBLINK:
            first = (node.subselect.targetList or (None,))[0]
            if first is not None:
                return str(first.name) if first.name else _column_name(first.val)
        return "?column?"
    simple = {
        ast.CaseExpr: "case",
        ast.CoalesceExpr: "coalesce",
        ast.A_ArrayExpr: "array",
        ast.RowExpr: "row",
    }
    for kind, name in simple.items():
        if isinstance(node, kind):
            return name
    if isinstance(node, ast.MinMaxExpr):
        return "greatest" if int(node.op) == 0 else "least"
    if isinstance(node, ast.A_Expr) and int(node.kind) == 5:  # AEXPR_NULLIF
        return "nullif"
    return "?column?"


@functools.lru_cache(maxsize=1024)
def _view_tree(definition: str) -> tuple[Any, ...]:
    """A view's definition parsed, once per definition: catalog data, not a statement, and the
    same for every statement that reads the view."""
    return tuple(parse_sql(definition))


def parse(text: str) -> tuple[Any, ...]:
    from wardgate.sql.analysis import parse_tree

    return parse_tree(text)
