"""Look-ups by pseudonym: a role that sees a column pseudonymised may still find the row it saw.

``mrn = 'MRN-...'`` (or ``IN`` a list of them) on a column the role sees as tokens
(``masking.tokens``) is a test against a constant like any other, and refused as an oracle
(``masking.refusals``) unless every literal is a token this gateway made for the column's entity
with the role's operator. Then the statement the server runs is the client's with those literals
replaced by the values they stand for, and nothing else changed:

1. ``decode``: the literals of the statement's look-ups (``sql.model.Lookup``, a fact of its one
   analysis) that are tokens of their column's entity, each with its value.
2. ``rewrite``: the text with each of those literals -- found by PostgreSQL's own scanner, and
   written as a plain quoted literal -- replaced by its value as an escaped ``E'...'`` literal.
   A token that stands anywhere else in the statement (the select list, a comment, another
   spelling) is refused: it would put the value where the client can read it.
3. The rewritten text is analysed too (a second analysis, through the same analyser), and its
   parse tree must be the client's, node for node, but for the values of those literals. What
   policy and masking judged (the client's text) is then what the server runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pglast import ast
from pglast.parser import scan

from wardgate.masking.operators import Pseudonym
from wardgate.masking.tokens import Tokens, reversible
from wardgate.masking.views import Labels, View
from wardgate.sql.analysis import Analysis
from wardgate.sql.model import Lookup, StatementLineage

Decoded = dict[tuple[str, str], str]
"""(entity, token) -> the stored value the token stands for."""


class NotRewritable(ValueError):
    """The decoded look-ups cannot be put into the statement soundly; the message says why."""


def label_of(lookup: Lookup, labels: Labels, view: View) -> str | None:
    """The one entity every source of the looked-up column is labelled with, if the view
    masks it with an operator that gives tokens."""
    found = {labels.columns.get(s) for s in lookup.sources}
    if len(found) != 1:
        return None
    (label,) = found
    if label is None or label in view.raw or not reversible(view.operator(label)):
        return None
    return label


def decode(
    statements: Iterable[StatementLineage], labels: Labels, view: View, tokens: Tokens
) -> Decoded:
    """The literals of the statements' look-ups that are tokens of their column's entity."""
    out: Decoded = {}
    for statement in statements:
        for lookup in statement.lookups:
            label = label_of(lookup, labels, view)
            if label is None:
                continue
            operator = view.operator(label)
            if not isinstance(operator, Pseudonym):
                continue
            for value in lookup.values:
                found = tokens.decode(label, operator, value)
                if found is not None:
                    out[(label, value)] = found
    return out


def decoded_lookups(
    statements: Iterable[StatementLineage], labels: Labels, view: View, decoded: Decoded
) -> list[tuple[Lookup, str]]:
    """The look-ups whose literals are all decoded, with their entity."""
    out = []
    for statement in statements:
        for lookup in statement.lookups:
            label = label_of(lookup, labels, view)
            if (
                label is not None
                and not lookup.param
                and all((label, v) in decoded for v in lookup.values)
            ):
                out.append((lookup, label))
    return out


def rewrite(
    analysis: Analysis,
    lookups: Sequence[tuple[Lookup, str]],
    decoded: Mapping[tuple[str, str], str],
    analyser: Callable[[str], Analysis],
) -> str:
    """The client's text with the decoded look-ups' literals replaced by their values, checked
    by a second analysis. Raises `NotRewritable`."""
    values: dict[str, str] = {}
    wanted: Counter[str] = Counter()
    for lookup, label in lookups:
        for token in lookup.values:
            real = decoded[(label, token)]
            if values.setdefault(token, real) != real:
                raise NotRewritable(f"the pseudonym {token} stands for two values")
            wanted[token] += 1
    text = analysis.text
    # Every string of the tree equal to a token (a literal, a name) must be a look-up's.
    found = Counter(s for s in _strings(analysis.tree) if s in values)
    for token, count in wanted.items():
        if found[token] != count:
            raise NotRewritable(
                f"the pseudonym {token} also stands outside a look-up (a column = or IN) in the"
                " statement; use it only there"
            )
    pieces: list[str] = []
    position = 0
    spelled: Counter[str] = Counter()
    for lexeme in scan(text):
        if lexeme.name != "SCONST":
            continue
        literal = text[lexeme.start : lexeme.end + 1]
        inner = literal[1:-1]
        if literal[:1] == "'" and literal[-1:] == "'" and inner in values:
            pieces.append(text[position : lexeme.start])
            pieces.append(_literal(values[inner]))
            position = lexeme.end + 1
            spelled[inner] += 1
    pieces.append(text[position:])
    if spelled != wanted:
        raise NotRewritable(
            "write each pseudonym as a plain quoted literal ('MRN-...'), once per look-up"
        )
    rewritten = "".join(pieces)
    second = analyser(rewritten)
    if second.error or not _same(analysis.tree, second.tree, values):
        raise NotRewritable("the statement with its pseudonyms decoded is not the same statement")
    return rewritten


def _literal(value: str) -> str:
    """``value`` as an SQL string literal, whatever standard_conforming_strings says."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


_POSITIONS = frozenset({"location", "stmt_location", "stmt_len"})


def _fields(node: ast.Node) -> Iterator[tuple[str, Any]]:
    for attr in node:
        if attr not in _POSITIONS:
            yield attr, getattr(node, attr)


def _strings(value: Any) -> Iterator[str]:
    """Every String node's value in a tree (literals, names, operators)."""
    if isinstance(value, ast.String):
        yield str(value.sval)
    elif isinstance(value, ast.Node):
        for _, child in _fields(value):
            yield from _strings(child)
    elif isinstance(value, tuple | list):
        for child in value:
            yield from _strings(child)


def _same(before: Any, after: Any, values: Mapping[str, str]) -> bool:
    """The two trees are equal but for String nodes holding a token before and its value after;
    positions are not compared (the literals' lengths changed)."""
    if isinstance(before, ast.String) and isinstance(after, ast.String):
        was, now = str(before.sval), str(after.sval)
        return now == values[was] if was in values else now == was
    if isinstance(before, ast.Node):
        if type(before) is not type(after):
            return False
        mine, theirs = dict(_fields(before)), dict(_fields(after))
        return mine.keys() == theirs.keys() and all(_same(mine[k], theirs[k], values) for k in mine)
    if isinstance(before, tuple | list):
        return (
            isinstance(after, tuple | list)
            and len(before) == len(after)
            and all(_same(b, a, values) for b, a in zip(before, after, strict=True))
        )
    return bool(before == after)
