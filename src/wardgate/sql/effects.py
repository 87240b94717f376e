"""What a statement does to its session's state, read from the parse tree.

A statement's effects are what PostgreSQL changes in the session when the statement completes:
named prepared statements (PREPARE, DEALLOCATE), cursors (DECLARE, CLOSE), settings (SET,
SET LOCAL, RESET, ``set_config`` with constant arguments), DISCARD, and transaction control
(BEGIN ... ROLLBACK TO SAVEPOINT). The references a statement makes to such state (EXECUTE of a
prepared statement, FETCH or MOVE of a cursor, EXPLAIN or CREATE TABLE AS of an EXECUTE) are
effects too, so that whoever follows the session can say what they will run.

The function is pure: text in, one tuple of effects per statement out. It knows nothing about
whether the statement will succeed; ``protocols/postgres/state.py`` applies the effects when the
server confirms a statement, with PostgreSQL's transaction rules. A ``set_config`` whose name or
value is not a constant is reported with ``value=None``: the setting can no longer be known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pglast import ast, enums
from pglast.parser import scan

from wardgate.sql.resolve import parse

_HOLD = 0x0020  # CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h


@dataclass(frozen=True, slots=True)
class Prepare:
    name: str
    text: str  # the whole PREPARE statement, whose analysis gives the inner statement's result
    runs: tuple[Effect, ...] = ()  # what the prepared statement does each time it is executed


@dataclass(frozen=True, slots=True)
class Deallocate:
    name: str | None  # None: DEALLOCATE ALL


@dataclass(frozen=True, slots=True)
class Declare:
    name: str
    text: str  # the whole DECLARE statement
    hold: bool  # WITH HOLD: outlives the transaction that commits it
    runs: tuple[Effect, ...] = ()  # what fetching from it does (its query runs as it is read)


@dataclass(frozen=True, slots=True)
class CloseCursor:
    name: str | None  # None: CLOSE ALL


@dataclass(frozen=True, slots=True)
class Executes:
    """EXECUTE name (also under EXPLAIN ANALYZE or CREATE TABLE AS): runs that statement."""

    name: str


@dataclass(frozen=True, slots=True)
class Fetches:
    """FETCH or MOVE of a cursor (a portal)."""

    name: str


@dataclass(frozen=True, slots=True)
class Set:
    """SET, SET LOCAL, RESET (``value`` is ``DEFAULT``) or set_config; ``value=None``: unknown."""

    name: str  # lower case; "" for RESET ALL
    value: str | None
    local: bool = False
    default: bool = False  # RESET name, SET name TO DEFAULT, RESET ALL


class Discard(StrEnum):
    ALL = "all"
    PLANS = "plans"
    SEQUENCES = "sequences"
    TEMP = "temp"


@dataclass(frozen=True, slots=True)
class DiscardEffect:
    what: Discard


class Tx(StrEnum):
    BEGIN = "begin"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"
    RELEASE = "release"
    ROLLBACK_TO = "rollback_to"
    PREPARE = "prepare"  # PREPARE TRANSACTION: the session's transaction ends
    OTHER = "other"  # COMMIT PREPARED, ROLLBACK PREPARED: not the session's transaction


@dataclass(frozen=True, slots=True)
class Transaction:
    op: Tx
    savepoint: str = ""
    chain: bool = False  # COMMIT/ROLLBACK AND CHAIN: a new transaction block starts at once


Effect = (
    Prepare
    | Deallocate
    | Declare
    | CloseCursor
    | Executes
    | Fetches
    | Set
    | DiscardEffect
    | Transaction
)
Effects = tuple[tuple[Effect, ...], ...]

_TX = {
    enums.TransactionStmtKind.TRANS_STMT_BEGIN: Tx.BEGIN,
    enums.TransactionStmtKind.TRANS_STMT_START: Tx.BEGIN,
    enums.TransactionStmtKind.TRANS_STMT_COMMIT: Tx.COMMIT,
    enums.TransactionStmtKind.TRANS_STMT_ROLLBACK: Tx.ROLLBACK,
    enums.TransactionStmtKind.TRANS_STMT_SAVEPOINT: Tx.SAVEPOINT,
    enums.TransactionStmtKind.TRANS_STMT_RELEASE: Tx.RELEASE,
    enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: Tx.ROLLBACK_TO,
    enums.TransactionStmtKind.TRANS_STMT_PREPARE: Tx.PREPARE,
}
_DISCARD = {
    enums.DiscardMode.DISCARD_ALL: Discard.ALL,
    enums.DiscardMode.DISCARD_PLANS: Discard.PLANS,
    enums.DiscardMode.DISCARD_SEQUENCES: Discard.SEQUENCES,
    enums.DiscardMode.DISCARD_TEMP: Discard.TEMP,
}


# The tokens that begin (or, for EXECUTE, end) a statement with an effect.
_KEYWORDS = frozenset(
    {
        "SET", "RESET", "PREPARE", "EXECUTE", "DEALLOCATE", "DECLARE", "CLOSE", "FETCH", "MOVE",
        "DISCARD", "BEGIN_P", "START", "COMMIT", "END_P", "ROLLBACK", "ABORT_P", "SAVEPOINT",
        "RELEASE",
    }
)  # fmt: skip


def effects(text: str) -> Effects:
    """The effects of each statement of ``text``, in order: ``Analysis.effects`` of a fresh
    analysis (the gateway reads them from a statement's one cached analysis). Raises
    ``AnalysisError`` if the text does not parse (the caller then cannot follow the session and
    fails closed)."""
    from wardgate.sql.analysis import analyse

    return analyse(text).effects


def parse_effects(text: str) -> Effects:
    """``effects`` read from the whole parse tree, without the scanner's shortcut."""
    return effects_of_tree(text, parse(text))


def effects_of_tree(text: str, tree: tuple[Any, ...]) -> Effects:
    """``effects`` of a text already parsed (``analysis.parse_tree``)."""
    out: list[tuple[Effect, ...]] = []
    for raw in tree:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        out.append(tuple(_statement(raw.stmt, text[start:end].strip())))
    return tuple(out)


# Words without which no statement can have an effect (a superset of the keywords above, as
# substrings: "offset" holds "set"), and what could hide a statement boundary or a name.
_HINTS = (
    "set", "prepare", "execute", "deallocate", "declare", "close", "fetch", "move", "discard",
    "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "u&", "--",
    "/*",
)  # fmt: skip
_PLAIN_STARTS = ("select", "insert", "update", "delete", "with", "values", "table", "show")
_HINTED = re.compile("|".join(map(re.escape, _HINTS))).search  # any of them, in one scan


def no_effects(text: str) -> Effects | None:
    """For most statements (no keyword above, no set_config), one empty tuple each, found by
    PostgreSQL's scanner at a fraction of a parse's cost; None: parse them. One plain statement
    (no ``;`` but at its end, a common first word, none of ``_HINTS`` anywhere) is found by
    looking at the text alone: the hot path of a gateway with no rules."""
    lower = text.lower()
    body = lower.rstrip().rstrip(";").strip()
    if ";" not in body and _HINTED(lower) is None:
        word = body.split(None, 1)[0].split("(", 1)[0] if body else ""
        if word in _PLAIN_STARTS:
            return ((),)
    if not text.isascii():  # token offsets are bytes; keep it simple
        return None
    try:
        tokens = scan(text)
    except Exception:
        return None  # the parse says why
    count, first = 0, True  # statements, and whether the next token starts one
    for token in tokens:
        name = token.name
        if name in _KEYWORDS or name == "UIDENT":
            return None
        if name == "IDENT" and "set_config" in text[token.start : token.end + 1].lower():
            return None
        if name == "ASCII_59":  # ';'
            first = True
            continue
        if name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        if first:
            if name == "IDENT":
                return None  # no statement starts with a plain name: let the parse say why
            count, first = count + 1, False
    return ((),) * count


def _statement(stmt: Any, text: str) -> list[Effect]:
    found: list[Effect] = []
    if isinstance(stmt, ast.PrepareStmt):
        return [Prepare(str(stmt.name), text, tuple(_set_configs(stmt.query)))]
    if isinstance(stmt, ast.DeclareCursorStmt):
        hold = bool((stmt.options or 0) & _HOLD)
        return [Declare(str(stmt.portalname), text, hold, tuple(_set_configs(stmt.query)))]
    if isinstance(stmt, ast.DeallocateStmt):
        found.append(Deallocate(None if stmt.name is None else str(stmt.name)))
    elif isinstance(stmt, ast.ClosePortalStmt):
        found.append(CloseCursor(None if stmt.portalname is None else str(stmt.portalname)))
    elif isinstance(stmt, ast.FetchStmt):
        found.append(Fetches(str(stmt.portalname)))
    elif isinstance(stmt, ast.ExecuteStmt):
        found.append(Executes(str(stmt.name)))
    elif isinstance(stmt, ast.ExplainStmt | ast.CreateTableAsStmt):
        if isinstance(stmt.query, ast.ExecuteStmt):
            found.append(Executes(str(stmt.query.name)))
    elif isinstance(stmt, ast.VariableSetStmt):
        found.append(_set(stmt))
    elif isinstance(stmt, ast.DiscardStmt):
        found.append(DiscardEffect(_DISCARD[enums.DiscardMode(stmt.target or 0)]))
    elif isinstance(stmt, ast.TransactionStmt):
        op = _TX.get(stmt.kind, Tx.OTHER)
        found.append(Transaction(op, str(stmt.savepoint_name or ""), bool(stmt.chain)))
    found.extend(_set_configs(stmt))
    return found


def _set(stmt: ast.VariableSetStmt) -> Set:
    kind = enums.VariableSetKind
    local = bool(stmt.is_local)
    if stmt.kind == kind.VAR_RESET_ALL:
        return Set("", None, local=False, default=True)
    name = str(stmt.name or "").lower()
    if stmt.kind in (kind.VAR_RESET, kind.VAR_SET_DEFAULT):
        return Set(name, None, local=local, default=True)
    if stmt.kind == kind.VAR_SET_VALUE:
        return Set(name, _list_value(stmt.args or ()), local=local)
    return Set(name, None, local=local)  # FROM CURRENT, SET TRANSACTION ...: not followed


def _list_value(args: Any) -> str | None:
    """The value as the server stores a list setting: each item quoted as an identifier."""
    items: list[str] = []
    for arg in args:
        value = getattr(arg, "val", None)
        string = getattr(value, "sval", None)
        if string is None:
            return None
        items.append(quote_identifier(str(string)))
    return ", ".join(items)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _set_configs(stmt: Any) -> list[Effect]:
    """Calls of set_config(name, value, is_local) anywhere in the statement."""
    found: list[Effect] = []
    for node in _walk(stmt):
        if not isinstance(node, ast.FuncCall):
            continue
        names = [getattr(n, "sval", "") for n in node.funcname or ()]
        if not names or names[-1] != "set_config":
            continue
        args = list(node.args or ())
        constants = [_constant(a) for a in args]
        name = constants[0] if constants else None
        value = constants[1] if len(constants) > 1 else None
        local = constants[2] if len(constants) > 2 else None
        if name is None:  # a computed name may be any setting, search_path included
            found.append(Set("search_path", None))
            continue
        is_local = local is not None and local.lower() in ("true", "t", "on", "1", "yes")
        if local is None:
            found.append(Set(name.lower(), None))
        else:
            found.append(Set(name.lower(), value, local=is_local))
    return found


def _constant(node: Any) -> str | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    value = node.val
    for attr in ("sval", "boolval", "ival"):
        got = getattr(value, attr, None)
        if got is not None:
            return str(got).lower() if attr == "boolval" else str(got)
    return None


def _walk(node: Any) -> Any:
    if isinstance(node, ast.Node):
        yield node
        for attr in node:
            yield from _walk(getattr(node, attr))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
