"""One analysis per statement string: parsed once, read by every addon.

``Analyses`` is the analyser the pipeline is given: a statement string in, its ``Analysis`` out,
from a least-recently-used cache keyed by the exact text (a fingerprint would group statements
that differ in constants or the order of their select list, which lineage depends on; and it
costs a parse to compute). The text is parsed once, when first needed, with PostgreSQL's own grammar
(``parse_tree``, the only place anything in wardgate parses SQL); everything else is derived
from that tree on first use and kept: the classification (kinds, tables, functions, what is
dangerous), the COPY options, the digest an approval is bound to, and the lineage of each
result column, which also depends on the target's catalog and the session's search_path and is
kept per (catalog version, search_path, user).

An analysis never changes once made; the lazily derived parts are computed from the immutable
tree, so computing them twice would give the same answer. A string that does not parse gets an
analysis too, with ``error`` saying why: every reader refuses it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pglast import ast
from pglast.enums.parsenodes import ObjectType
from pglast.parser import ParseError, parse_sql
from pglast.stream import RawStream

from wardgate.sql.catalog import DEFAULT_SEARCH_PATH, Catalog
from wardgate.sql.classify import Classification, classify_tree, plain_select, reads_only
from wardgate.sql.danger import plain
from wardgate.sql.effects import Effects, effects_of_tree, no_effects
from wardgate.sql.model import AnalysisError, Options, StatementLineage

_NO_OPTIONS = Options()
# Statements that create a relation (SELECT ... INTO too).
_OPERATORS = (
    ast.AlterOperatorStmt, ast.CreateOpClassStmt, ast.CreateOpFamilyStmt, ast.AlterOpFamilyStmt,
    ast.CreateCastStmt,
)  # fmt: skip
_CREATES = (ast.CreateStmt, ast.ViewStmt, ast.CreateSeqStmt, ast.CreateTableAsStmt, ast.SelectStmt)
# Statements that create a type, and the attribute holding its qualified name.
_CREATES_TYPE = {
    ast.CreateDomainStmt: "domainname", ast.CreateEnumStmt: "typeName",
    ast.CreateRangeStmt: "typeName", ast.DefineStmt: "defnames",
}  # fmt: skip


class ParseCounter:
    """How many times SQL text was parsed (tests prove that a statement is parsed once)."""

    count = 0


def parse_tree(text: str) -> tuple[Any, ...]:
    """The statements of ``text`` as pglast ``RawStmt`` nodes. Raises `AnalysisError`."""
    ParseCounter.count += 1
    try:
        return tuple(parse_sql(text))
    except ParseError as exc:
        raise AnalysisError(f"statement does not parse: {exc}") from exc


def pieces(text: str, tree: tuple[Any, ...]) -> list[tuple[Any, str]]:
    """Each statement's node with its own slice of ``text``."""
    out = []
    for raw in tree:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        out.append((raw.stmt, text[start:end].strip()))
    return out


@dataclass(frozen=True, slots=True)
class CopyOut:
    """A COPY ... TO STDOUT: its format, and whether it sets options beyond the format
    (delimiter, null, header, quote, escape, encoding...). For CSV, the options that shape
    its rows are kept (``csv``), and ``other_options`` says only whether others are set."""

    format: str  # "text", "csv" or "binary"
    other_options: bool
    # (option, value) of delimiter, quote, escape, null, header, force_quote ("*" or "some")
    csv: tuple[tuple[str, str], ...] = ()

    @property
    def readable(self) -> bool:
        """Its rows can be decoded: text or binary with no options, or CSV with only these."""
        return self.format in ("text", "binary", "csv") and not self.other_options


@dataclass(frozen=True, eq=False)
class Analysis:
    text: str
    options: Options = field(default=_NO_OPTIONS, repr=False)
    _lineage: dict[tuple[str, str, str | None], tuple[StatementLineage, ...] | AnalysisError] = (
        field(default_factory=dict, repr=False)
    )

    @cached_property
    def _parse(self) -> tuple[tuple[Any, ...], str]:
        """The parse tree and "", or () and why the text does not parse: parsed once, when
        first needed (effects of the commonest statements need no parse, see ``effects``)."""
        try:
            return parse_tree(self.text), ""
        except AnalysisError as exc:
            return (), str(exc) or "syntax error"
        except RecursionError:
            return (), "statement nests too deeply to analyse"

    @property
    def tree(self) -> tuple[Any, ...]:
        return self._parse[0]

    @property
    def error(self) -> str:
        """Why the text does not parse; "" if it does."""
        return self._parse[1]

    @property
    def parsed(self) -> bool:
        return not self.error

    @cached_property
    def effects(self) -> Effects:
        """What each statement does to the session's state when it completes (``sql/effects``):
        read by PostgreSQL's scanner alone for the commonest statements, else from the tree.
        Raises `AnalysisError`."""
        quick = no_effects(self.text)
        if quick is not None:
            return quick
        self._check()
        return effects_of_tree(self.text, self.tree)

    def _check(self) -> None:
        if self.error:
            raise AnalysisError(self.error)

    @cached_property
    def plain(self) -> bool:
        """One statement at most, naming nothing dangerous, read from the words alone
        (``danger.plain``, no parse): a statement the policy need not classify without rules.
        Kept here so that a statement run again is not read again."""
        return plain(self.text)

    @cached_property
    def classification(self) -> Classification:
        """Kinds, tables, functions, what is dangerous. Raises `AnalysisError`."""
        self._check()
        return classify_tree(self.text, self.tree)

    @cached_property
    def reads_only(self) -> bool:
        """Whether running it can change nothing the server keeps, as far as the text says
        (``classify.reads_only``); False when unsure. A single SELECT with no parenthesis, no
        INTO and no ``;`` but at its end calls no function by name and writes nothing: found
        without a parse, the hot path of ``pgbench -S``."""
        if plain_select(self.text):
            return True
        if self.error:
            return False
        try:
            return reads_only(self.classification)
        except (AnalysisError, RecursionError):
            return False

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the statement as PostgreSQL's parser reads it, printed back: the same for
        any spelling (spacing, keyword case, comments), different for other constants or another
        select list. What an approval is bound to. Raises `AnalysisError`."""
        self._check()
        printed = RawStream()(self.tree)  # type: ignore[no-untyped-call]
        return hashlib.sha256(str(printed).encode()).hexdigest()

    @cached_property
    def defines_operators(self) -> bool:
        """Whether a statement creates or alters an operator, an operator class or family, or
        a cast: what ``=`` means for a type may then be code of the client's choosing (an
        operator ``public.=`` over ``text_lt``), while lineage reads every ``=`` as PostgreSQL's
        equality. Raises `AnalysisError`."""
        self._check()
        for raw in self.tree:
            stmt = raw.stmt
            if isinstance(stmt, ast.DefineStmt) and stmt.kind == ObjectType.OBJECT_OPERATOR:
                return True
            if isinstance(stmt, _OPERATORS):
                return True
        return False

    @cached_property
    def creates_temp(self) -> bool:
        """Whether a statement creates a temporary relation (a table, view or sequence in
        ``pg_temp``, where PostgreSQL looks first for an unqualified name): the session's names
        may then mean something the target's catalog does not show. A type in ``pg_temp`` too:
        a domain named ``text`` there, with a CHECK, would make ``ssn::text`` fail on chosen
        values. Raises `AnalysisError`."""
        self._check()
        for raw in self.tree:
            stmt = raw.stmt
            named = _CREATES_TYPE.get(type(stmt))
            if named is not None:
                names = [str(n.sval) for n in getattr(stmt, named) or () if hasattr(n, "sval")]
                if len(names) > 1 and names[0].startswith("pg_temp"):
                    return True
            if not isinstance(stmt, (*_CREATES, ast.CompositeTypeStmt)):
                continue
            rels = [getattr(stmt, name, None) for name in ("relation", "view", "sequence")]
            rels.append(getattr(stmt, "typevar", None))  # CREATE TYPE t AS (...)
            into = getattr(stmt, "into", None) or getattr(stmt, "intoClause", None)
            rels.append(getattr(into, "rel", None))
            for rel in rels:
                if isinstance(rel, ast.RangeVar) and (
                    rel.relpersistence == "t" or str(rel.schemaname or "").startswith("pg_temp")
                ):
                    return True
        return False

    @cached_property
    def copy_out(self) -> CopyOut | None:
        """The options of a single COPY ... TO STDOUT, or None for anything else."""
        if self.error or len(self.tree) != 1:
            return None
        stmt = self.tree[0].stmt
        if not isinstance(stmt, ast.CopyStmt) or stmt.is_from or stmt.filename is not None:
            return None
        if stmt.is_program:
            return None
        fmt, other, csv = "text", False, dict[str, str]()
        for option in stmt.options or ():
            name = option.defname
            value = getattr(option.arg, "sval", None)
            if name == "format" and value is not None:
                fmt = str(value).lower()
            elif name == "binary":  # the pre-9.0 spelling
                fmt = "binary"
            elif name == "csv":  # the pre-9.0 spelling
                fmt = "csv"
            elif name in _CSV_OPTIONS and (value is not None or option.arg is None):
                csv[name] = "true" if value is None else str(value)
            elif name in ("header", "force_quote"):
                csv[name] = _flag(option.arg)
            else:
                other = True
        if fmt != "csv":
            return CopyOut(fmt, other or bool(csv))
        return CopyOut(fmt, other, tuple(sorted(csv.items())))

    def lineage(
        self, catalog: Catalog, search_path: str = DEFAULT_SEARCH_PATH, user: str | None = None
    ) -> tuple[StatementLineage, ...]:
        """Lineage of each statement under this catalog and search_path (kept per both).
        Raises `AnalysisError`."""
        self._check()
        key = (catalog.version, search_path, user)
        found = self._lineage.get(key)
        if found is None:
            from wardgate.sql.lineage import analyze_tree

            try:
                found = analyze_tree(
                    self.text, self.tree, catalog, search_path=search_path, user=user,
                    options=self.options,
                )  # fmt: skip
            except AnalysisError as exc:
                found = exc
            if len(self._lineage) >= 8:  # catalogs and search paths seen lately
                self._lineage.clear()
            self._lineage[key] = found
        if isinstance(found, AnalysisError):
            raise AnalysisError(*found.args)
        return found


_CSV_OPTIONS = frozenset({"delimiter", "quote", "escape", "null", "header", "force_quote"})


def _flag(arg: Any) -> str:
    """HEADER's or FORCE_QUOTE's argument as text: "true"/"false", "*", or "some" columns."""
    if isinstance(arg, ast.A_Star):
        return "*"
    if isinstance(arg, ast.Boolean):
        return "true" if arg.boolval else "false"
    if isinstance(arg, ast.Integer):
        return "true" if arg.ival else "false"
    if isinstance(arg, tuple | list):
        return "some"
    return "true"


def analyse(text: str, options: Options = _NO_OPTIONS) -> Analysis:
    """A fresh analysis of ``text`` (parsed at most once, when first needed), uncached."""
    return Analysis(text, options)


class Analyses:
    """The analyser of a pipeline: ``analyses(text)``, cached by text. Not thread-safe: one per
    event loop."""

    def __init__(self, maxsize: int = 4096, options: Options | None = None) -> None:
        self.maxsize = maxsize
        self.options = options or _NO_OPTIONS
        self._entries: OrderedDict[str, Analysis] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, text: str) -> Analysis:
        found = self._entries.get(text)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(text)
            return found
        self.misses += 1
        found = analyse(text, self.options)
        self._entries[text] = found
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return found
