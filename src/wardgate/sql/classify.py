"""What a statement does, in broad strokes: its kind, the tables it names, risky functions.

This is the groundwork the policy rules build on. The kind is read from the parse tree, so
`COMMIT; CREATE TABLE ...` is two statements, a transaction control and a DDL, whatever a
read-only wrapper around it believes (``Classification.smuggled``).

Filtered: a statement is ``filtered`` when its WHERE clause, read as a chain of ANDs, holds a
comparison ``key = constant`` (or ``key IN (constants...)``), where a key is a column named ``id``,
ending in ``_id``, or named ``mrn`` or ``ssn``, and a constant is a literal or a bound parameter
(``$1``), cast or not. An OR is not looked into: ``id = 1 OR true`` is not a filter. A set
operation (UNION ...) is filtered when every arm is. This is a naming rule, not the catalog's
unique indexes: a table whose key is called otherwise is never "filtered". ``limit`` is a LIMIT
(or FETCH FIRST, or FETCH n of a cursor): its constant value, or -1 for a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pglast import ast, enums

from wardgate.sql.danger import dangers


class StatementKind(StrEnum):
    READ = "read"
    WRITE = "write"
    DDL = "ddl"
    DCL = "dcl"
    TRANSACTION = "transaction"
    ADMIN = "admin"  # session settings, maintenance, LISTEN/NOTIFY, EXECUTE, DO, LOAD ...


_WRITE = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt, ast.TruncateStmt)
_DCL = (
    ast.GrantStmt, ast.GrantRoleStmt, ast.CreateRoleStmt, ast.AlterRoleStmt, ast.AlterRoleSetStmt,
    ast.DropRoleStmt, ast.AlterDefaultPrivilegesStmt, ast.ReassignOwnedStmt, ast.DropOwnedStmt,
    ast.CreatePolicyStmt, ast.AlterPolicyStmt,
)  # fmt: skip
_TRANSACTION = (ast.TransactionStmt, ast.LockStmt)
_DDL_PREFIXES = ("Create", "Alter", "Drop", "Rename", "Comment", "Define", "Security")
_DDL = (ast.IndexStmt, ast.ViewStmt, ast.RuleStmt, ast.CompositeTypeStmt, ast.ClusterStmt)


@dataclass(frozen=True, slots=True)
class StatementClass:
    kind: StatementKind
    text: str
    tables: frozenset[tuple[str | None, str]]  # (schema or None, name) of every relation named
    functions: frozenset[str]  # every function called, by its last name
    dangerous: tuple[str, ...]  # what in it the gateway cannot judge (sql/danger.py)
    name: str | None = None  # EXECUTE's prepared statement, FETCH's cursor: resolve by name
    filtered: bool = False  # a key = constant filter (see the module's docstring)
    limit: int | None = None  # LIMIT n, FETCH FIRST n, FETCH n; -1 for a parameter
    copy: bool = False  # a COPY, either way
    columns: frozenset[str] = frozenset()  # every column named; "*" for a star or a whole row
    procedural: bool = False  # runs or installs code the server executes (DO, functions, triggers)

    @property
    def unfiltered(self) -> bool:
        """Reads rows of a table with neither a key filter nor a LIMIT."""
        if self.kind is not StatementKind.READ or self.filtered or self.limit is not None:
            return False
        return bool(self.tables) or self.name is not None  # a table, or FETCH ALL of a cursor


@dataclass(frozen=True, slots=True)
class Classification:
    statements: tuple[StatementClass, ...]

    @property
    def multi_statement(self) -> bool:
        return len(self.statements) > 1

    @property
    def kinds(self) -> frozenset[StatementKind]:
        return frozenset(s.kind for s in self.statements)

    @property
    def tables(self) -> frozenset[tuple[str | None, str]]:
        return frozenset(t for s in self.statements for t in s.tables)

    @property
    def dangerous(self) -> tuple[str, ...]:
        return tuple(reason for s in self.statements for reason in s.dangerous)

    @property
    def copy(self) -> bool:
        return any(s.copy for s in self.statements)

    @property
    def unfiltered(self) -> bool:
        return any(s.unfiltered for s in self.statements)

    @property
    def smuggled(self) -> tuple[StatementClass, ...]:
        """Transaction control, DDL or DCL after another statement of the same string: how
        `SELECT 1; COMMIT; CREATE TABLE ...` escapes a read-only transaction its sender opened."""
        risky = (StatementKind.TRANSACTION, StatementKind.DDL, StatementKind.DCL)
        return tuple(s for s in self.statements[1:] if s.kind in risky)


def reads_only(classification: Classification) -> bool:
    """Whether running the statements can change nothing the server keeps, as far as their text
    says: each one a read that calls no function and names no prepared statement or cursor (whose
    text is elsewhere). What runs without being named is not seen: a view's functions, a row
    security policy's, an operator's or a cast's."""
    return all(
        s.kind is StatementKind.READ and not s.functions and s.name is None
        for s in classification.statements
    )


def plain_select(text: str) -> bool:
    """A single SELECT that names no function and writes nothing, found without a parse: its
    first word is ``select`` and the text holds no ``(`` (no call), no ``into`` and no ``;`` but
    at its end, anywhere, comments and literals included. Comments and literals only add
    characters, so a text that passes holds none of these in its code either; one that does not
    pass is not judged here (``reads_only`` of its classification is)."""
    lower = text.lower()
    body = lower.rstrip().rstrip(";")
    if "(" in body or ";" in body or "into" in body:
        return False
    words = body.split(None, 1)
    return bool(words) and words[0] == "select"


def classify(text: str) -> Classification:
    """``Analysis.classification`` of a fresh analysis of ``text`` (the gateway reads it from a
    statement's one cached analysis). Raises `AnalysisError` if `text` does not parse."""
    from wardgate.sql.analysis import analyse

    return analyse(text).classification


def classify_tree(text: str, tree: tuple[Any, ...]) -> Classification:
    """The classification of ``text`` from its parse tree (``analysis.parse_tree``)."""
    from wardgate.sql.analysis import pieces

    return Classification(tuple(_classify(stmt, piece) for stmt, piece in pieces(text, tree)))


def _classify(stmt: Any, text: str) -> StatementClass:
    nodes = list(_walk(stmt))
    ctes = {str(n.ctename) for n in nodes if isinstance(n, ast.CommonTableExpr)}
    tables = frozenset(
        (n.schemaname, str(n.relname))
        for n in nodes
        if isinstance(n, ast.RangeVar) and (n.schemaname is not None or n.relname not in ctes)
    )
    functions = frozenset(str(n.funcname[-1].sval) for n in nodes if isinstance(n, ast.FuncCall))
    dangerous = dangers(nodes)
    name = None
    if isinstance(stmt, ast.ExecuteStmt | ast.FetchStmt):
        name = str(stmt.name if isinstance(stmt, ast.ExecuteStmt) else stmt.portalname)
    writes = any(isinstance(n, _WRITE) for n in nodes)
    filtered, limit = _filter(stmt)
    return StatementClass(
        _kind(stmt, writes), text, tables, functions, tuple(dangerous), name,
        filtered, limit, isinstance(stmt, ast.CopyStmt), _columns(nodes, tables),
        isinstance(stmt, _PROCEDURAL),
    )  # fmt: skip


# Code the server runs later or at once: it can read any table and send what it reads through
# notices, errors and settings, which no analysis of the statement that runs it can follow.
_PROCEDURAL = (
    ast.DoStmt, ast.CreateFunctionStmt, ast.AlterFunctionStmt, ast.CreateTrigStmt,
    ast.RuleStmt, ast.CreateEventTrigStmt, ast.CreateTransformStmt,
)  # fmt: skip


_KEY_NAMES = frozenset({"id", "mrn", "ssn"})
_FETCH_ALL = 9223372036854775807


def _columns(nodes: list[Any], tables: frozenset[tuple[str | None, str]]) -> frozenset[str]:
    """Every column named, by its last name; "*" for a star or a reference to a whole row
    (``SELECT p FROM patients p``, ``row_to_json(p)``: a name that is a table or alias)."""
    aliases = {str(n.alias.aliasname) for n in nodes if isinstance(n, ast.RangeVar) and n.alias}
    aliases |= {name for _, name in tables}
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ColumnRef):
            last = node.fields[-1]
            if isinstance(last, ast.A_Star):
                out.add("*")
            else:
                name = str(last.sval)
                out.add(name)
                if len(node.fields) == 1 and name in aliases:
                    out.add("*")
        elif isinstance(node, ast.CopyStmt) and node.query is None and not node.attlist:
            out.add("*")  # COPY table: every column
        elif isinstance(node, ast.CopyStmt) and node.attlist:
            out.update(str(a.sval) for a in node.attlist)
    return frozenset(out)


def _filter(stmt: Any) -> tuple[bool, int | None]:
    """(filtered, limit) of the statement whose rows it reads or changes."""
    if isinstance(stmt, ast.ExplainStmt):
        return True, None  # returns a plan, not rows
    if isinstance(stmt, ast.DeclareCursorStmt | ast.PrepareStmt | ast.CopyStmt):
        inner = stmt.query
        return _filter(inner) if inner is not None else (False, None)
    if isinstance(stmt, ast.FetchStmt):
        many = stmt.howMany if isinstance(stmt.howMany, int) else 0
        return False, None if many in (_FETCH_ALL, 0) else many
    if isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        return _keyed(stmt.whereClause), None
    if not isinstance(stmt, ast.SelectStmt):
        return False, None
    limit = _limit(stmt.limitCount)
    if stmt.op is not enums.SetOperation.SETOP_NONE:
        left, right = _filter(stmt.larg), _filter(stmt.rarg)
        return left[0] and right[0], limit
    return _keyed(stmt.whereClause), limit


def _limit(node: Any) -> int | None:
    if node is None or (isinstance(node, ast.A_Const) and node.isnull):
        return None  # no LIMIT, LIMIT ALL, LIMIT NULL
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
        return node.val.ival if isinstance(node.val.ival, int) else -1
    return -1  # a parameter or an expression


def _keyed(where: Any) -> bool:
    """A key = constant comparison somewhere in the WHERE's chain of ANDs."""
    if where is None:
        return False
    if isinstance(where, ast.BoolExpr):
        return where.boolop is enums.BoolExprType.AND_EXPR and any(_keyed(a) for a in where.args)
    if not isinstance(where, ast.A_Expr) or len(where.name or ()) != 1:
        return False
    if str(where.name[0].sval) != "=":
        return False
    if where.kind is enums.A_Expr_Kind.AEXPR_OP:
        pairs = [(where.lexpr, where.rexpr), (where.rexpr, where.lexpr)]
        return any(_is_key(c) and _is_constant(v) for c, v in pairs)
    if where.kind is enums.A_Expr_Kind.AEXPR_IN and isinstance(where.rexpr, tuple | list):
        return _is_key(where.lexpr) and all(_is_constant(v) for v in where.rexpr)
    return False


def _is_key(node: Any) -> bool:
    if not isinstance(node, ast.ColumnRef) or isinstance(node.fields[-1], ast.A_Star):
        return False
    name = str(node.fields[-1].sval).lower()
    return name in _KEY_NAMES or name.endswith("_id")


def _is_constant(node: Any) -> bool:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.ParamRef) or (isinstance(node, ast.A_Const) and not node.isnull)


def _kind(stmt: Any, writes: bool) -> StatementKind:
    if isinstance(stmt, ast.SelectStmt):
        if stmt.intoClause is not None:
            return StatementKind.DDL
        return StatementKind.WRITE if writes else StatementKind.READ
    if isinstance(stmt, ast.CopyStmt):
        return StatementKind.WRITE if stmt.is_from or writes else StatementKind.READ
    if isinstance(stmt, ast.ExplainStmt) and not any(
        o.defname == "analyze" for o in stmt.options or ()
    ):
        return StatementKind.READ  # planned, not run
    if isinstance(stmt, ast.ExplainStmt | ast.PrepareStmt | ast.DeclareCursorStmt):
        inner = _kind(stmt.query, writes)
        return StatementKind.READ if inner is StatementKind.READ else inner
    if isinstance(stmt, ast.FetchStmt | ast.ClosePortalStmt):
        return StatementKind.READ
    if isinstance(stmt, (*_WRITE, ast.CallStmt)):
        return StatementKind.WRITE
    if isinstance(stmt, _DCL):
        return StatementKind.DCL
    if isinstance(stmt, _TRANSACTION):
        return StatementKind.TRANSACTION
    if isinstance(stmt, _DDL) or type(stmt).__name__.startswith(_DDL_PREFIXES):
        return StatementKind.DDL
    return StatementKind.ADMIN


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for attr in node:
            value = getattr(node, attr)
            if isinstance(value, ast.Node | tuple | list):
                yield from _walk(value)
