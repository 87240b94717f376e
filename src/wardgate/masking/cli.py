"""``wardgate classify TARGET``: read a target's catalog and sample its text columns with the
gateway's own credentials, and print the labels ``classify.py`` proposes: a ``phi:`` mapping
with the evidence in comments, or JSON.

Read-only, with a statement timeout; a table is sampled with ``TABLESAMPLE SYSTEM`` once it is
larger than a few hundred pages, so a big table is never read whole. Exit status: 0 done, 2 a
usage, configuration or connection problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from wardgate.config import ConfigError, Target, config_path, load

if TYPE_CHECKING:  # the command's modules load when it runs, not with the parser
    import psycopg

    from wardgate.masking.proposals import ColumnInfo, Proposal, Report, Signal
    from wardgate.sql.model import SourceColumn

SMALL_PAGES = 256  # tables up to this many 8 kB pages are sampled whole (ORDER BY random())
MAX_VALUE = 4000  # characters read of each sampled value
STATEMENT_TIMEOUT = "30s"

COLUMNS_QUERY = """
SELECT n.nspname::text, c.relname::text, a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typcategory::text,
       pg_catalog.col_description(c.oid, a.attnum),
       pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT'),
       (SELECT COALESCE(sum(pg_catalog.pg_relation_size(p.relid)), 0)::bigint
          FROM pg_catalog.pg_partition_tree(c.oid) p)
         / pg_catalog.current_setting('block_size')::bigint
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type dt ON dt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
JOIN pg_catalog.pg_type bt
  ON bt.oid = CASE WHEN dt.typcategory = 'A' AND dt.typelem <> 0 THEN dt.typelem ELSE dt.oid END
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2, a.attnum
"""


class _Usage(Exception):
    """Exit status 2."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("between 1 and 10000")
    return value


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "classify", help="propose PHI labels for a target's columns (catalog and samples)"
    )
    p.add_argument("target", metavar="TARGET", help="a target's name in the configuration")
    p.add_argument("-c", "--config", default=None, help="configuration file")
    p.add_argument(
        "--sample", type=_positive, default=100, metavar="N",
        help="non-null values sampled per text column (default 100)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable proposals")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load(config_path(args.config))
        target = cfg.target(args.target)
        if target is None:
            known = ", ".join(t.name for t in cfg.targets) or "none"
            raise _Usage(f"no target named {args.target!r} in the configuration (targets: {known})")
        report = _classify(target, args.sample, cfg.masking.mrn_patterns)
    except (_Usage, ConfigError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    print(render_json(report) if args.json else render_yaml(report), end="")
    return 0


def _classify(target: Target, sample: int, mrn_patterns: tuple[str, ...]) -> Report:
    import psycopg

    from wardgate.masking.catalogs import conninfo

    where = f"{target.host}:{target.port}/{target.database} as {target.user}"
    params = {**conninfo(target), "application_name": "wardgate-classify"}
    try:
        conn = psycopg.connect(**params, autocommit=True)
    except psycopg.Error as exc:
        reason = _first_line(exc)
        raise _Usage(f"cannot connect to target {target.name!r} ({where}): {reason}") from None
    try:
        with conn:
            return _read_and_classify(conn, target, sample, mrn_patterns)
    except psycopg.Error as exc:
        raise _Usage(f"cannot read target {target.name!r} ({where}): {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_and_classify(
    conn: psycopg.Connection[Any], target: Target, sample: int, mrn_patterns: tuple[str, ...]
) -> Report:
    import psycopg
    from psycopg import sql

    from wardgate.masking.detectors import MrnFormat, Scanner, ScannerConfig
    from wardgate.masking.proposals import ColumnInfo, classify
    from wardgate.masking.views import Labels

    conn.execute("SET default_transaction_read_only = on")
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
    columns: list[ColumnInfo] = []
    samples: dict[SourceColumn, list[str] | str] = {}
    for row in conn.execute(COLUMNS_QUERY).fetchall():
        schema, table, name, type_name, base, category, comment, allowed, pages = row
        column = ColumnInfo(schema, table, name, type_name, base, category, comment)
        columns.append(column)
        if not column.text_like:
            continue
        if not allowed:
            samples[column.source] = "no SELECT privilege"
            continue
        try:
            samples[column.source] = _sample(conn, column, int(pages or 0), sample)
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise
            samples[column.source] = _first_line(exc)  # a timeout, a permission: note it
    formats = tuple(MrnFormat(p) for p in mrn_patterns) or ScannerConfig().mrn_formats
    labels = Labels.from_config(target.phi).columns
    return classify(columns, samples, Scanner(ScannerConfig(formats)), labels, target.name)


def _sample(conn: psycopg.Connection[Any], column: ColumnInfo, pages: int, limit: int) -> list[str]:
    from psycopg import sql

    ident = sql.Identifier(column.column)
    table = sql.SQL("{}.{}").format(sql.Identifier(column.schema), sql.Identifier(column.table))
    if pages > SMALL_PAGES:  # about SMALL_PAGES random pages, not the whole table
        percent = round(100.0 * SMALL_PAGES / pages, 6)
        table = sql.SQL("{} TABLESAMPLE SYSTEM ({})").format(table, sql.Literal(percent))
    query = sql.SQL(
        "SELECT left({}::text, {}) FROM {} WHERE {} IS NOT NULL ORDER BY random() LIMIT {}"
    ).format(ident, sql.Literal(MAX_VALUE), table, ident, sql.Literal(limit))
    return [str(row[0]) for row in conn.execute(query).fetchall()]


# ---- output -------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*){1,2}")


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)


def _comment(text: str, limit: int = 400) -> str:
    flat = "".join(c if c.isprintable() else " " for c in text)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _why(proposal: Proposal) -> str:
    parts = [f"{proposal.level} {proposal.confidence:.2f}"]
    details = [s.detail for s in proposal.evidence if s.kind != "note" or s.label]
    details += [s.detail for s in proposal.evidence if s.kind == "note" and not s.label]
    why = f"{parts[0]}: {'; '.join(dict.fromkeys(details))}"
    if proposal.alternatives:
        why += "; also like " + ", ".join(f"{a} {s:.2f}" for a, s in proposal.alternatives)
    return why


def render_yaml(report: Report) -> str:
    """A ``phi:`` mapping to paste under the target, with the evidence in comments."""
    lines = [
        f"# wardgate classify {report.target}: labels proposed for this target's phi mapping.",
        "# Review every line: labels in the configuration are authoritative. Columns without a",
        "# line get no label (a labelled table's unlabelled columns are content-scanned).",
    ]
    body: list[str] = []
    active = 0
    for p in report.proposals:
        key = _yaml_key(p.column.key)
        if p.configured is not None:
            active += 1
            if p.agrees:
                note = f"in config; classify agrees ({_why(p)})"
            elif p.proposed is None:
                note = "in config; DISAGREES: classify proposes no label" + (
                    f" ({_why(p)})" if p.label else ""
                )
            else:
                note = f"in config; DISAGREES: classify proposes {p.proposed} ({_why(p)})"
            body.append(f"  {key}: {p.configured}  # {_comment(note)}")
        elif p.confident:
            active += 1
            body.append(f"  {key}: {p.label}  # {_comment(_why(p))}")
        elif p.label is not None:
            body.append(f"  # {key}: {p.label}  # {_comment(_why(p))}")
    for key, label in report.missing:
        body.append(f"  # {_yaml_key(key)}: {label}  # in config; the target has no such column")
    lines.append("phi:" if active else "phi: {}")
    return "\n".join(lines + body) + "\n"


def render_json(report: Report) -> str:
    def signal(s: Signal) -> dict[str, object]:
        return {"kind": s.kind, "label": s.label or None, "weight": s.weight, "detail": s.detail}

    proposals = [
        {
            "key": p.column.key,
            "schema": p.column.schema,
            "table": p.column.table,
            "column": p.column.column,
            "type": p.column.type_name,
            "comment": p.column.comment,
            "label": p.label,
            "confidence": p.confidence,
            "level": p.level,
            "proposed": p.proposed,
            "evidence": [signal(s) for s in p.evidence],
            "alternatives": [{"label": a, "confidence": s} for a, s in p.alternatives],
            "configured": p.configured,
            "agrees": p.agrees,
        }
        for p in report.proposals
    ]
    missing = [{"key": key, "configured": label} for key, label in report.missing]
    document = {"target": report.target, "proposals": proposals, "configured_missing": missing}
    return json.dumps(document, indent=2)
