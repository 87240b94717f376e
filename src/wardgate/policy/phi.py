"""Which labelled tables and columns a classified statement touches: the ``phi`` condition."""

from __future__ import annotations

from collections.abc import Iterable

from wardgate.masking.views import Labels
from wardgate.sql.classify import StatementClass


def touched_phi(
    statements: Iterable[StatementClass], labels: Labels
) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """The labelled tables these statements touch, and the labelled columns
    (``table.column``) they name or reach through a star or a whole-row reference. By name: a
    table without a schema matches a labelled table of that name in any schema (search_path is
    not followed, so this errs towards PHI)."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for schema, table in labels.tables:
        by_name.setdefault(table, []).append((schema, table))
    tables: set[tuple[str, str]] = set()
    columns: set[str] = set()
    for statement in statements:
        touched = [
            t
            for schema, name in statement.tables
            for t in by_name.get(name, ())
            if schema is None or schema == t[0]
        ]
        tables.update(touched)
        for source in labels.columns:
            if (source.schema, source.table) in touched and (
                source.column in statement.columns or "*" in statement.columns
            ):
                columns.add(f"{source.table}.{source.column}")
    return frozenset(tables), frozenset(columns)
