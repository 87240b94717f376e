"""The PostgreSQL store's schema: the portable tables, and append-only enforced in PL/pgSQL.

The tables are ``store.schema("BIGINT")`` with text compared byte-wise (``COLLATE "C"``, so that
times in RFC 3339 sort and compare as in SQLite whatever the database's locale). Triggers refuse:

- any UPDATE or TRUNCATE of the four tables, and DELETE of heads, cuts and keys;
- DELETE of an entry beyond the latest retention cut (``purge`` records the cut first);
- INSERT of an entry whose seq is not the last seq + 1 or whose ``prev_hash`` is not the last
  hash (the last entry, or else the latest cut, or else seq 0 and 64 zeros).

An owner (or superuser) can still disable or drop them: that is what hashes, signed heads and
anchored heads are for.
"""

from __future__ import annotations

import hashlib
import re

from wardgate.audit.store import schema

DEFAULT_SCHEMA = "wardgate_audit"
TABLES = ("audit_entry", "audit_head", "audit_cut", "audit_key")
APPEND_ONLY = "WGA00"  # SQLSTATEs the triggers raise
IN_SEQUENCE = "WGA01"

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case PostgreSQL schema name")
    return name


def lock_key(name: str) -> int:
    """The advisory lock that serializes appends (and set-up) to the store in schema ``name``."""
    digest = hashlib.sha256(f"wardgate-audit:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


VOUCH = "audit_vouch"  # seq -> the MAC of the replica that appended the entry


def tables(name: str) -> list[str]:
    """CREATE SCHEMA and the portable tables, to run with ``search_path`` set to ``name``."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {name}",
        *schema("BIGINT", 'TEXT COLLATE "C"'),
        f"CREATE TABLE IF NOT EXISTS {VOUCH} (seq BIGINT PRIMARY KEY, mac CHAR(64) NOT NULL)",
    ]


def functions(s: str) -> list[str]:
    safe = "LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp"
    return [
        f"""CREATE OR REPLACE FUNCTION {s}.refuse_change() RETURNS trigger {safe} AS $$
        BEGIN
          RAISE EXCEPTION '%.% is append-only (% refused)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
            USING ERRCODE = '{APPEND_ONLY}';
        END $$""",
        f"""CREATE OR REPLACE FUNCTION {s}.entry_purge_only() RETURNS trigger {safe} AS $$
        BEGIN
          IF OLD.seq > coalesce((SELECT max(tree_size) FROM {s}.audit_cut), 0) THEN
            RAISE EXCEPTION 'audit entries are deleted only up to a signed cut (entry %)', OLD.seq
              USING ERRCODE = '{APPEND_ONLY}';
          END IF;
          RETURN OLD;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION {s}.entry_in_sequence() RETURNS trigger {safe} AS $$
        DECLARE
          last_seq bigint;
          last_hash text;
        BEGIN
          SELECT e.seq, e.hash INTO last_seq, last_hash
            FROM {s}.audit_entry e ORDER BY e.seq DESC LIMIT 1;
          IF NOT FOUND THEN
            SELECT c.tree_size, c.last_hash INTO last_seq, last_hash
              FROM {s}.audit_cut c ORDER BY c.tree_size DESC LIMIT 1;
            IF NOT FOUND THEN
              last_seq := 0;
              last_hash := repeat('0', 64);
            END IF;
          END IF;
          IF NEW.seq IS DISTINCT FROM last_seq + 1 OR NEW.prev_hash IS DISTINCT FROM last_hash THEN
            RAISE EXCEPTION 'audit entries are appended in sequence (entry % after %)',
              NEW.seq, last_seq USING ERRCODE = '{IN_SEQUENCE}';
          END IF;
          RETURN NEW;
        END $$""",
    ]


def triggers(s: str) -> dict[tuple[str, str], str]:
    """(table, trigger name) -> CREATE TRIGGER."""
    found = {
        ("audit_entry", "audit_entry_in_sequence"): f"""CREATE TRIGGER audit_entry_in_sequence
            BEFORE INSERT ON {s}.audit_entry
            FOR EACH ROW EXECUTE FUNCTION {s}.entry_in_sequence()""",
        ("audit_entry", "audit_entry_purge_only"): f"""CREATE TRIGGER audit_entry_purge_only
            BEFORE DELETE ON {s}.audit_entry
            FOR EACH ROW EXECUTE FUNCTION {s}.entry_purge_only()""",
        ("audit_entry", "audit_entry_no_change"): f"""CREATE TRIGGER audit_entry_no_change
            BEFORE UPDATE OR TRUNCATE ON {s}.audit_entry
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change()""",
    }
    for table in TABLES[1:]:
        found[(table, f"{table}_no_change")] = f"""CREATE TRIGGER {table}_no_change
            BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change()"""
    return found


def revokes(s: str) -> list[str]:
    """What the owner gives up on its own tables. DELETE of entries stays, for ``purge``; UPDATE
    of heads too, because the foreign key from cuts locks the head (``FOR KEY SHARE``), which
    takes that privilege; the triggers refuse both beyond what is allowed."""
    every = ", ".join(f"{s}.{t}" for t in TABLES)
    others = ", ".join(f"{s}.{t}" for t in TABLES[1:])
    no_update = ", ".join(f"{s}.{t}" for t in TABLES if t != "audit_head")
    return [
        f"REVOKE TRUNCATE ON {every} FROM PUBLIC, CURRENT_USER",
        f"REVOKE UPDATE ON {no_update} FROM PUBLIC, CURRENT_USER",
        f"REVOKE DELETE ON {others} FROM PUBLIC, CURRENT_USER",
    ]
