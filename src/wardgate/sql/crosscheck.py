"""Compare lineage with what PostgreSQL itself says in RowDescription.

For a result column that is a plain reference to a table (or view) column, RowDescription
carries that relation's OID and the column's number; for anything else both are zero. Where
PostgreSQL names a column, the lineage must include everything that column derives from; if
it does not, the analysis and the server disagree about the statement and the caller fails
closed (masks the whole result, or refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wardgate.sql.catalog import Catalog
from wardgate.sql.model import Options, StatementLineage
from wardgate.sql.resolve import Analyser, Shape


@dataclass(frozen=True, slots=True)
class Disagreement:
    index: int  # result column, or -1 for the whole result
    reason: str


def crosscheck(
    lineage: StatementLineage,
    described: Sequence[tuple[int, int]],
    catalog: Catalog,
    *,
    options: Options | None = None,
) -> tuple[Disagreement, ...]:
    """`described`: (table_oid, attnum) per result column, in order, as RowDescription gives."""
    if not lineage.returns_rows or not lineage.shape_known:
        return ()  # the caller already treats every column as unknown
    if len(described) != len(lineage.columns):
        reason = f"{len(described)} columns described, {len(lineage.columns)} expected"
        return (Disagreement(-1, reason),)
    analyser = Analyser(catalog, ("pg_catalog",), options or Options())
    shapes: dict[int, Shape] = {}  # by relation: `SELECT *` names one relation many times
    found = []
    for index, ((oid, attnum), column) in enumerate(zip(described, lineage.columns, strict=True)):
        if oid == 0 or attnum < 0 or column.unknown:  # < 0: a system column such as ctid
            continue
        relation = catalog.by_oid(oid)
        if relation is None:
            found.append(Disagreement(index, f"relation {oid} is not in the catalog"))
            continue
        shape = shapes.get(oid)
        if shape is None:
            shape = shapes[oid] = analyser.relation_shape(relation)
        if attnum == 0:  # a whole-row reference: `SELECT p FROM patients p`
            expected = shape.whole()
        else:
            position = next((i for i, c in enumerate(relation.columns) if c.attnum == attnum), None)
            if position is None:
                found.append(Disagreement(index, f"column {oid}/{attnum} is not in the catalog"))
                continue
            expected = shape.columns[position][1] if position < len(shape.columns) else shape.rest
        missing = expected.sources - column.sources
        if missing or expected.unknown:
            names = ", ".join(sorted(str(m) for m in missing)) or "unknown sources"
            found.append(Disagreement(index, f"server says it derives from {names}"))
    return tuple(found)
