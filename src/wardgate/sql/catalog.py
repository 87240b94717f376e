"""What the target holds: schemas, relations, columns, view definitions and function names.

A `Catalog` is immutable and content-addressed: `version` is a digest of everything in it, so two
loads of an unchanged database give the same version and cached analyses stay valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SEARCH_PATH = '"$user", public'

# relkind letters of pg_class that can appear in FROM
TABLE, PARTITIONED, FOREIGN, VIEW, MATVIEW, SEQUENCE = "r", "p", "f", "v", "m", "S"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    attnum: int


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # a pg_class.relkind letter
    columns: tuple[Column, ...]
    definition: str | None = None  # views and materialized views: pg_get_viewdef, schema-qualified
    parents: tuple[int, ...] = ()  # pg_inherits: partitions and inheritance children point up

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def attnum(self, attnum: int) -> Column | None:
        return next((c for c in self.columns if c.attnum == attnum), None)


@dataclass(frozen=True)
class Catalog:
    relations: tuple[Relation, ...]
    functions: frozenset[tuple[str, str]] | None = None  # (schema, name); None: not loaded
    user: str = "postgres"  # what "$user" in search_path stands for
    version: str = field(init=False)
    _by_name: dict[tuple[str, str], Relation] = field(init=False, repr=False, compare=False)
    _by_oid: dict[int, Relation] = field(init=False, repr=False, compare=False)
    _function_schemas: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_by_name", {(r.schema, r.name): r for r in self.relations})
        set_(self, "_by_oid", {r.oid: r for r in self.relations})
        schemas: dict[str, set[str]] = {}
        for schema, name in self.functions or ():
            schemas.setdefault(name, set()).add(schema)
        set_(self, "_function_schemas", {k: frozenset(v) for k, v in schemas.items()})
        digest = hashlib.sha256(repr((self.relations, sorted(self.functions or ()))).encode())
        set_(self, "version", digest.hexdigest()[:16])

    def by_oid(self, oid: int) -> Relation | None:
        return self._by_oid.get(oid)

    def relation(self, schema: str, name: str) -> Relation | None:
        return self._by_name.get((schema, name))

    def resolve(self, name: str, schema: str | None, path: Sequence[str]) -> Relation | None:
        """The relation an (optionally qualified) name means under the effective `path`."""
        if schema is not None:
            return self._by_name.get((schema, name))
        for candidate in path:
            found = self._by_name.get((candidate, name))
            if found is not None:
                return found
        return None

    def function_schemas(self, name: str) -> frozenset[str] | None:
        """Schemas holding a function of this name; None when functions were not loaded."""
        if self.functions is None:
            return None
        return self._function_schemas.get(name, frozenset())

    def effective_path(self, search_path: str, user: str | None = None) -> tuple[str, ...]:
        """The schemas PostgreSQL searches, in order: pg_catalog first unless placed explicitly."""
        schemas = [
            (user or self.user) if entry == "$user" else entry
            for entry in parse_search_path(search_path)
        ]
        if "pg_catalog" not in schemas:
            schemas.insert(0, "pg_catalog")
        return tuple(schemas)


def parse_search_path(text: str) -> tuple[str, ...]:
    """Split a search_path setting: `"$user", public` -> ("$user", "public")."""
    entries: list[str] = []
    for raw in _split_commas(text):
        item = raw.strip()
        if not item:
            continue
        if item.startswith('"') and item.endswith('"') and len(item) >= 2:
            entries.append(item[1:-1].replace('""', '"'))
        else:
            entries.append(item.lower())
    return tuple(entries)


def _split_commas(text: str) -> Iterable[str]:
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield "".join(current)
            current = []
        else:
            current.append(char)
    yield "".join(current)


RELATIONS_QUERY = """
SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END,
       ARRAY(SELECT i.inhparent::bigint FROM pg_catalog.pg_inherits i
             WHERE i.inhrelid = c.oid ORDER BY i.inhseqno),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT a.atttypid::bigint FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT a.attnum::int FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
  AND n.nspname <> 'pg_toast' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
"""

FUNCTIONS_QUERY = """
SELECT DISTINCT n.nspname::text, p.proname::text
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
"""


def load_catalog(conn: Any) -> Catalog:
    """Read the catalog through a psycopg connection (two queries, one transaction).

    View definitions are printed with an empty search_path, so every name in them is qualified
    and means the same thing whatever path the analysed statement runs under.
    """
    with conn.transaction():
        conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        relations = conn.execute(RELATIONS_QUERY).fetchall()
        functions = conn.execute(FUNCTIONS_QUERY).fetchall()
        user_row = conn.execute("SELECT current_user::text").fetchone()
    return catalog_from_rows(relations, functions, user=str(user_row[0]))


def catalog_from_rows(
    relations: Iterable[Sequence[Any]],
    functions: Iterable[Sequence[Any]] | None = None,
    *,
    user: str = "postgres",
) -> Catalog:
    """A catalog from rows shaped like `RELATIONS_QUERY` and `FUNCTIONS_QUERY` return."""
    built = []
    for oid, schema, name, kind, definition, parents, names, types, attnums in relations:
        columns = tuple(
            Column(str(n), int(t), int(a)) for n, t, a in zip(names, types, attnums, strict=True)
        )
        built.append(
            Relation(
                int(oid),
                str(schema),
                str(name),
                str(kind),
                columns,
                None if definition is None else str(definition),
                tuple(int(p) for p in parents),
            )
        )
    built.sort(key=lambda r: r.oid)
    names = None if functions is None else frozenset((str(s), str(n)) for s, n in functions)
    return Catalog(tuple(built), names, user)


def tables(spec: Mapping[str, Sequence[str]], *, views: Mapping[str, str] | None = None) -> Catalog:
    """A small catalog from plain data, for tests: {"public.patients": ["id", "ssn"]}, views
    {"public.v": "SELECT ..."}; OIDs are invented, types are text (25)."""
    relations = []
    for oid, (qualified, cols) in enumerate(spec.items(), start=100_000):
        schema, _, name = qualified.rpartition(".")
        columns = tuple(Column(c, 25, i) for i, c in enumerate(cols, start=1))
        relations.append(Relation(oid, schema or "public", name, TABLE, columns))
    return Catalog(tuple(relations), None) if not views else _with_views(relations, views)


def _with_views(relations: list[Relation], views: Mapping[str, str]) -> Catalog:
    # view columns are named by analysing the definition, so they are filled in by lineage
    from wardgate.sql.lineage import view_columns

    base = Catalog(tuple(relations), None)
    out = list(relations)
    for oid, (qualified, definition) in enumerate(views.items(), start=200_000):
        schema, _, name = qualified.rpartition(".")
        names = view_columns(definition, base)
        columns = tuple(Column(c, 25, i) for i, c in enumerate(names, start=1))
        out.append(Relation(oid, schema or "public", name, VIEW, columns, definition))
        base = Catalog(tuple(out), None)
    return base
