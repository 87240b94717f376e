"""What a statement does, in broad strokes: its kind, the tables it names, risky functions.

This is the groundwork the approvals rules build on. The kind is read from the parse tree, so
`COMMIT; CREATE TABLE ...` is two statements, a transaction control and a DDL, whatever a
read-only wrapper around it believes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pglast import ast

from wardgate.sql.resolve import parse


class StatementKind(StrEnum):
    READ = "read"
    WRITE = "write"
    DDL = "ddl"
    DCL = "dcl"
    TRANSACTION = "transaction"
    ADMIN = "admin"  # session settings, maintenance, LISTEN/NOTIFY, EXECUTE, DO, LOAD ...


DANGEROUS_FUNCTIONS = frozenset(
    {
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
        "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "lo_import", "lo_export",
        "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync",
    }
)  # fmt: skip
DANGEROUS_PREFIXES = ("dblink",)

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
    dangerous: tuple[str, ...]  # why this statement reaches files, programs or other servers
    name: str | None = None  # EXECUTE's prepared statement, FETCH's cursor: resolve by name


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


def classify(text: str) -> Classification:
    """Raises `AnalysisError` if `text` does not parse."""
    out = []
    for raw in parse(text):
        start = raw.stmt_location or 0
        piece = text[start : start + raw.stmt_len if raw.stmt_len else len(text)].strip()
        out.append(_classify(raw.stmt, piece))
    return Classification(tuple(out))


def _classify(stmt: Any, text: str) -> StatementClass:
    nodes = list(_walk(stmt))
    ctes = {str(n.ctename) for n in nodes if isinstance(n, ast.CommonTableExpr)}
    tables = frozenset(
        (n.schemaname, str(n.relname))
        for n in nodes
        if isinstance(n, ast.RangeVar) and (n.schemaname is not None or n.relname not in ctes)
    )
    functions = frozenset(str(n.funcname[-1].sval) for n in nodes if isinstance(n, ast.FuncCall))
    dangerous = [
        f"calls {f}" for f in sorted(functions)
        if f in DANGEROUS_FUNCTIONS or f.startswith(DANGEROUS_PREFIXES)
    ]  # fmt: skip
    for node in nodes:
        if isinstance(node, ast.CopyStmt) and node.is_program:
            dangerous.append("COPY runs a program on the server")
        elif isinstance(node, ast.CopyStmt) and node.filename is not None:
            dangerous.append("COPY reads or writes a file on the server")
        elif isinstance(node, ast.LoadStmt):
            dangerous.append("LOAD loads a shared library")
    name = None
    if isinstance(stmt, ast.ExecuteStmt | ast.FetchStmt):
        name = str(stmt.name if isinstance(stmt, ast.ExecuteStmt) else stmt.portalname)
    writes = any(isinstance(n, _WRITE) for n in nodes)
    return StatementClass(_kind(stmt, writes), text, tables, functions, tuple(dangerous), name)


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
