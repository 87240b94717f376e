"""What a role that sees PHI masked may not do with a statement, beyond reading its result.

Pure functions of a statement's facts (``sql.model.StatementLineage``: what it reads, compares,
stores and sends to side channels) and the role's view of the target's labels. Each answers
the reason for a refusal, or None. The reasons, with examples, are in docs/masking.md
("Every channel has an owner").
"""

from __future__ import annotations

from collections.abc import Mapping

from wardgate.masking.lookups import label_of
from wardgate.masking.views import Labels, View
from wardgate.sql.model import SourceColumn, StatementLineage


def masked(sources: frozenset[SourceColumn], labels: Labels, view: View) -> list[str]:
    """The sources labelled by name whose label the view masks."""
    return sorted(str(s) for s in sources if (lab := labels.columns.get(s)) and lab not in view.raw)


def refusal(
    statement: StatementLineage,
    labels: Labels,
    view: View,
    decoded: Mapping[tuple[str, str], str] | None = None,
) -> str | None:
    """``decoded``: the pseudonyms of the statement's look-ups this gateway made, by (entity,
    token) (``masking.lookups.decode``); a look-up of a masked column by anything else is
    refused."""
    if statement.side_channels:
        return (
            f"{statement.side_channels[0]} of a computed value is refused for a role that sees"
            " PHI masked: the value would reach the client outside the masked result (a setting,"
            " a notification, a sequence, a lock or a delay; give a constant)"
        )
    if statement.tested_unknown:
        return (
            "a condition, grouping or count tests a value the gateway cannot trace (another"
            " session's statement in pg_stat_activity, current_query(), a function outside"
            " pg_catalog, statistics' copies of values), which could reveal the PHI it holds;"
            " select it instead, masked whole"
        )
    if statement.stores_unknown:
        return (
            "a value the gateway cannot trace (another session's statement in"
            " pg_stat_activity, current_query(), a function outside pg_catalog, statistics'"
            " copies of values) cannot be stored by a role that sees PHI masked: it would come"
            " back unmasked"
        )
    for targets, values in statement.stores:
        found = masked(values, labels, view)
        if found and not _same_labels(targets, values, labels):
            return (
                f"values derived from the masked column {', '.join(found)} cannot be stored in"
                " another column, a new table or a stored expression: they would come back"
                " unmasked"
            )
    for left, left_exact, right, right_exact in statement.joins:
        on_left, on_right = masked(left, labels, view), masked(right, labels, view)
        if (on_left or on_right) and not (
            left and right and left_exact and right_exact and _one_label(left | right, labels)
        ):
            return (
                f"a condition tests the masked column {', '.join(on_left or on_right)} against a"
                " value that is not a masked column of its own (a join must compare the stored"
                " values of two columns with the same label: another column may hold a guess)"
            )
    for lookup in statement.lookups:
        found = masked(lookup.sources, labels, view)
        if not found:
            continue
        if lookup.param:
            return (
                f"a condition tests the masked column {', '.join(found)} against a parameter,"
                " which would reveal its value; to look a row up by a pseudonym this gateway"
                " gave, write the pseudonym as a literal in a simple Query (psycopg: a"
                " ClientCursor)"
            )
        label = label_of(lookup, labels, view)
        if label is None or any((label, v) not in (decoded or {}) for v in lookup.values):
            return (
                f"a condition tests the masked column {', '.join(found)} against a constant"
                " that is not a pseudonym this gateway gave for it, which would reveal its"
                " value; look rows up by the pseudonyms the results show, join on it, or"
                " filter by unmasked columns"
            )
    compared = masked(statement.compared, labels, view)
    if compared:
        return (
            f"a condition tests the masked column {', '.join(compared)} against a constant (or a"
            " row count is made from it), which would reveal its value; join on it or filter by"
            " unmasked columns"
        )
    for what, sources in statement.partial:
        found = masked(sources, labels, view)
        if found:
            return (
                f"{what} is given a value derived from the masked column {', '.join(found)} and"
                " may fail on some values: whether the statement fails would reveal it (only"
                " functions that never fail, such as upper, concat, substr of it, length, casts"
                " to text, take a masked value)"
            )
    for targets, values, as_is in statement.writes:
        found = masked(targets, labels, view)
        if found and not (as_is and values and _one_label(targets | values, labels)):
            return (
                f"a role that sees PHI masked cannot write a value of its own into the masked"
                f" column {', '.join(found)}: a join or a unique index would compare the stored"
                " values with it (only copies of a column with the same label, SET city = city)"
            )
    return None


def _one_label(sources: frozenset[SourceColumn], labels: Labels) -> bool:
    """Every source is labelled, all with the same label: their values are masked the same way
    and none is a column the client fills freely."""
    found = {labels.columns.get(s) for s in sources}
    return len(found) == 1 and None not in found


def reads_phi(statement: StatementLineage, labels: Labels, view: View) -> bool:
    """It reads a masked column anywhere, or something the analysis could not follow: its
    errors, notices and reported settings are withheld (``masking.channels``)."""
    if statement.opaque or (statement.returns_rows and not statement.shape_known):
        return True
    sources = statement.reads.union(*(c.sources for c in statement.columns))
    return any(c.unknown for c in statement.columns) or bool(masked(sources, labels, view))


def _same_labels(
    targets: frozenset[SourceColumn], values: frozenset[SourceColumn], labels: Labels
) -> bool:
    """Written into columns that carry every label of what is written (``SET city = city``):
    masked there as it was where it came from."""
    have = {lab for t in targets if (lab := labels.columns.get(t)) is not None}
    wanted = {lab for v in values if (lab := labels.columns.get(v)) is not None}
    return bool(targets) and wanted <= have
