"""Statement analysis: what a SQL statement does and where its result columns come from.

Glossary:
- catalog: the target's schemas, relations, columns and view definitions (`catalog.py`).
- lineage: per result column, the source columns (schema, table, column) its values derive from;
  exact when the value is a stored value (possibly cast), transformed otherwise (`lineage.py`,
  the analyser itself in `resolve.py`).
- unknown: a column the analysis cannot follow to its sources; the caller masks it.
- cross-check: lineage compared with the (table OID, column number) pairs of PostgreSQL's
  RowDescription (`crosscheck.py`).
- fingerprint: libpg_query's statement fingerprint; the lineage cache (`fingerprint.py`).
- classification: statement kind, tables, columns, filters (`classify.py`).
- dangerous: what the gateway cannot judge, found anywhere in the parse tree (`danger.py`),
  with the one list of dangerous functions (`functions.py`).

Parsing is PostgreSQL's own grammar (libpg_query through pglast); nothing here does I/O except
`catalog.load_catalog`, which reads through a connection it is given.
"""

from wardgate.sql.catalog import Catalog, Column, Relation, catalog_from_rows, load_catalog
from wardgate.sql.classify import Classification, StatementClass, StatementKind, classify
from wardgate.sql.crosscheck import Disagreement, crosscheck
from wardgate.sql.fingerprint import fingerprint
from wardgate.sql.lineage import analyze
from wardgate.sql.model import (
    AnalysisError,
    ColumnLineage,
    Kind,
    Options,
    SourceColumn,
    StatementLineage,
)

__all__ = [
    "AnalysisError",
    "Catalog",
    "Classification",
    "Column",
    "ColumnLineage",
    "Disagreement",
    "Kind",
    "Options",
    "Relation",
    "SourceColumn",
    "StatementClass",
    "StatementKind",
    "StatementLineage",
    "analyze",
    "catalog_from_rows",
    "classify",
    "crosscheck",
    "fingerprint",
    "load_catalog",
]
