"""What in a statement the gateway cannot judge: one walk over the whole parse tree.

A statement is dangerous when anything anywhere in it (a subquery, a CTE, the body of a
SQL-standard function, the query of a PREPARE, EXPLAIN or COPY) is one of:

- a call of a function of `functions.DANGEROUS` (by its last name, whatever its schema);
- ``set_config`` of a dangerous setting, or of a setting whose name is computed;
- procedural code: ``DO``, ``CREATE FUNCTION``/``PROCEDURE`` in any language, ``CREATE
  LANGUAGE``, ``CALL`` (a procedure's body is not analysed);
- the server's configuration, libraries and extensions: ``ALTER SYSTEM``, ``LOAD``,
  ``CREATE``/``ALTER EXTENSION``, event triggers;
- foreign data: wrappers, servers, foreign tables, ``IMPORT FOREIGN SCHEMA``, user mappings;
- ``COPY`` to or from a program or a server file;
- ``SET`` (also ``ALTER ROLE``/``DATABASE ... SET``) of a setting in `DANGEROUS_SETTINGS`,
  but to a value that keeps what the gateway assumes (``client_encoding`` UTF8,
  ``standard_conforming_strings`` on, an ISO ``DateStyle``).

`KEYWORDS` holds, for each dangerous statement, a word its text must contain; the policy's
fast path (`policy/addon.py`) relies on it, and a property test checks it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

from pglast import ast, enums

from wardgate.sql.functions import DANGEROUS, DANGEROUS_PREFIXES, danger

_STATEMENTS: dict[type[Any], str] = {
    ast.DoStmt: "DO runs procedural code, which the gateway cannot judge",
    ast.CreateFunctionStmt: "CREATE FUNCTION or PROCEDURE defines code the gateway cannot judge",
    ast.CreatePLangStmt: "CREATE LANGUAGE installs a procedural language",
    ast.CallStmt: "CALL runs a procedure whose body the gateway has not analysed",
    ast.AlterSystemStmt: "ALTER SYSTEM changes the server's configuration",
    ast.LoadStmt: "LOAD loads a shared library into the server",
    ast.CreateExtensionStmt: "CREATE EXTENSION installs code into the server",
    ast.AlterExtensionStmt: "ALTER EXTENSION changes code installed in the server",
    ast.AlterExtensionContentsStmt: "ALTER EXTENSION changes code installed in the server",
    ast.CreateEventTrigStmt: "CREATE EVENT TRIGGER runs code on every DDL statement",
    ast.CreateFdwStmt: "a foreign data wrapper reaches other servers, files or programs",
    ast.AlterFdwStmt: "a foreign data wrapper reaches other servers, files or programs",
    ast.CreateForeignServerStmt: "a foreign server reaches another server, files or programs",
    ast.AlterForeignServerStmt: "a foreign server reaches another server, files or programs",
    ast.CreateForeignTableStmt: "a foreign table reads another server, files or programs",
    ast.ImportForeignSchemaStmt: "IMPORT FOREIGN SCHEMA reaches another server",
    ast.CreateUserMappingStmt: "a user mapping holds credentials for another server",
    ast.AlterUserMappingStmt: "a user mapping holds credentials for another server",
}

# Words that dangerous statements cannot be written without (keywords are never quoted).
KEYWORDS = frozenset(
    {
        "do", "function", "procedure", "language", "call", "system", "load", "extension",
        "event", "foreign", "server", "wrapper", "mapping", "copy", "set", "set_config",
    }
)  # fmt: skip

_LIBRARIES = "loads libraries into the server"
_WHO = "changes whose privileges the server applies"
_READING = "changes how the gateway reads the protocol"
DANGEROUS_SETTINGS: dict[str, str] = {
    "session_preload_libraries": _LIBRARIES,
    "local_preload_libraries": _LIBRARIES,
    "shared_preload_libraries": _LIBRARIES,
    "dynamic_library_path": _LIBRARIES,
    "jit_provider": _LIBRARIES,
    "role": _WHO,
    "session_authorization": _WHO,
    "client_encoding": _READING,
    "standard_conforming_strings": _READING,
    "backslash_quote": _READING,
    "datestyle": _READING,
    "session_replication_role": "turns off triggers and rules",
    "allow_system_table_mods": "allows changes to the system catalogs",
    "lo_compat_privileges": "turns off large-object permission checks",
    "zero_damaged_pages": "destroys damaged data",
    "ignore_system_indexes": "changes how the server reads its catalogs",
}
DANGEROUS_SETTING_PREFIXES = ("log_", "debug_", "pgaudit.", "trace_")  # the server's own trail
# Values of those settings that keep what the gateway assumes (its parser reads strings as
# standard-conforming; masking reads UTF-8 and ISO dates), as drivers and ORMs set them.
_KEPT: dict[str, Callable[[str], bool]] = {
    "client_encoding": lambda v: v.replace("-", "").replace("_", "") in ("utf8", "unicode"),
    "standard_conforming_strings": lambda v: v in ("on", "true", "1", "yes"),
    "datestyle": lambda v: "iso" in v.replace(",", " ").split(),
}

_UNSET = (enums.VariableSetKind.VAR_RESET, enums.VariableSetKind.VAR_RESET_ALL)


# Words in which a dangerous function or statement could be named: a statement with none of
# them, no word starting as a dangerous family does, and no Unicode-escaped identifier cannot
# be dangerous. tests/policy/test_plain_property.py checks this.
_SUSPECT = frozenset(DANGEROUS) | KEYWORDS
_starts_suspect = operator.methodcaller("startswith", tuple(DANGEROUS_PREFIXES))
_WORD = re.compile(r"[a-z_][a-z0-9_$]*")


def plain(text: str) -> bool:
    """One statement at most, naming nothing dangerous (a cheap over-approximation, read from
    the words of the text without a parse: the policy's shortcut, ``Analysis.plain``)."""
    if ";" in text.rstrip().rstrip(";"):
        return False
    lower = text.lower()
    if "u&" in lower:
        return False
    words = _WORD.findall(lower)
    return _SUSPECT.isdisjoint(words) and not any(map(_starts_suspect, words))


def setting_danger(name: str, value: str | None = None) -> str | None:
    """Why setting ``name`` (to ``value``, None if it cannot be read) is dangerous, or None.
    Names and the values judged are case-insensitive."""
    name = name.lower()
    kept = _KEPT.get(name)
    if kept is not None and value is not None and kept(value.lower().strip()):
        return None
    found = DANGEROUS_SETTINGS.get(name)
    if found is None and name.startswith(DANGEROUS_SETTING_PREFIXES):
        found = "changes the server's own log or audit trail"
    return found


def dangers(nodes: Iterable[Any]) -> list[str]:
    """Why the statement whose every node is in ``nodes`` is dangerous; empty if it is not."""
    out: list[str] = []
    for node in nodes:
        kind = _STATEMENTS.get(type(node))
        if kind is not None:
            out.append(kind)
        elif isinstance(node, ast.FuncCall):
            out.extend(_call(node))
        elif isinstance(node, ast.CopyStmt) and node.is_program:
            out.append("COPY runs a program on the server")
        elif isinstance(node, ast.CopyStmt) and node.filename is not None:
            out.append("COPY reads or writes a file on the server")
        elif isinstance(node, ast.VariableSetStmt) and node.kind not in _UNSET and node.name:
            value = None
            if node.kind is enums.VariableSetKind.VAR_SET_VALUE:
                value = _constants(node.args or ())
            why = setting_danger(str(node.name), value)
            if why is not None:
                out.append(f"SET {node.name} {why}")
    return list(dict.fromkeys(out))


def _call(node: ast.FuncCall) -> list[str]:
    name = str(node.funcname[-1].sval)
    if name == "set_config":
        first = node.args[0] if node.args else None
        if not (isinstance(first, ast.A_Const) and isinstance(first.val, ast.String)):
            return ["calls set_config with a setting name the gateway cannot read"]
        value = _constants(node.args[1:2])
        why = setting_danger(str(first.val.sval), value)
        return [f"calls set_config({first.val.sval}), which {why}"] if why else []
    why = danger(name)
    return [f"calls {name}, which {why}"] if why else []


def _constants(args: Iterable[Any]) -> str | None:
    """Constant arguments as the server would join them ("iso, mdy"); None for anything else."""
    out = []
    for arg in args:
        if not isinstance(arg, ast.A_Const) or arg.isnull:
            return None
        value = arg.val
        if isinstance(value, ast.String):
            out.append(str(value.sval))
        elif isinstance(value, ast.Integer):
            out.append(str(value.ival))
        else:
            return None
    return ", ".join(out) if out else None
