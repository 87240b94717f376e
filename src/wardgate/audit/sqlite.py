"""``SQLiteStore``: the default audit store, one SQLite file in WAL mode with ``synchronous=FULL``.

Each ``append_entries`` is one ``BEGIN IMMEDIATE`` transaction, so a batch from group commit is
durable (fsync'd) when the call returns, and the chain continues from what is in the file even
if another process appended. Triggers refuse UPDATE of anything, DELETE of entries beyond the
latest cut, and INSERT of an entry whose seq is not the next one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from wardgate.audit.store import (
    GENESIS,
    AuditStore,
    AuditUnavailable,
    Cut,
    Entry,
    Head,
    Prepared,
    Query,
    Row,
    Tampered,
    chain,
    entry_of,
    schema,
    tamper_message,
)

_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_entry_purge_only BEFORE DELETE ON audit_entry
       WHEN OLD.seq > (SELECT coalesce(max(tree_size), 0) FROM audit_cut)
       BEGIN SELECT RAISE(ABORT, 'audit entries are deleted only up to a signed cut'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_entry_in_sequence BEFORE INSERT ON audit_entry
       WHEN NEW.seq <> 1 + coalesce((SELECT max(seq) FROM audit_entry),
                                    (SELECT max(tree_size) FROM audit_cut), 0)
       BEGIN SELECT RAISE(ABORT, 'audit entries are appended in sequence'); END""",
    # The chain itself: an entry names the last entry's hash (or the cut's, or 64 zeros) as its
    # prev_hash. A store made before this trigger gets it at the next start.
    f"""CREATE TRIGGER IF NOT EXISTS audit_entry_chained BEFORE INSERT ON audit_entry
       WHEN NEW.prev_hash IS NOT coalesce(
           (SELECT hash FROM audit_entry ORDER BY seq DESC LIMIT 1),
           (SELECT last_hash FROM audit_cut ORDER BY tree_size DESC LIMIT 1), '{GENESIS}')
       BEGIN SELECT RAISE(ABORT, 'audit entries are chained to the last entry'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_cut_at_head BEFORE INSERT ON audit_cut
       WHEN NOT EXISTS (SELECT 1 FROM audit_head WHERE tree_size = NEW.tree_size)
       BEGIN SELECT RAISE(ABORT, 'a cut needs a signed head of its size'); END""",
]
for _table in ("audit_head", "audit_cut", "audit_key"):
    for _op in ("UPDATE", "DELETE"):
        _TRIGGERS.append(
            f"""CREATE TRIGGER IF NOT EXISTS {_table}_no_{_op.lower()} BEFORE {_op} ON {_table}
            BEGIN SELECT RAISE(ABORT, '{_table} is append-only'); END"""
        )

_ENTRY = "seq, time, type, event, prev_hash, hash, subject, on_behalf, target, tables, decision"
# What the triggers and the primary key say when an insert does not follow the stored tail.
_OUT_OF_SEQUENCE = (
    "audit entries are appended in sequence",
    "audit entries are chained to the last entry",
    "UNIQUE constraint failed: audit_entry.seq",
)
_COLUMNS = 11
_ROWS_PER_INSERT = 256  # 2816 parameters: well below SQLite's limit (32766 since 3.32)


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    values = "(" + ", ".join("?" * _COLUMNS) + ")"
    return (
        "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash,"
        " subject, on_behalf, target, tables, decision) VALUES " + ", ".join([values] * rows)
    )


class _OutOfSequence(Exception):
    """The insert's seq is not the next one: someone else appended since the tail was read."""


class SQLiteStore(AuditStore):
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tail: tuple[int, str] | None = None  # (seq, hash) of the last entry, once read
        try:
            if readonly:
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._db.execute("SELECT count(*) FROM audit_entry").fetchone()
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=_ROWS_PER_INSERT + 32,  # one INSERT per batch size, reused
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
            for statement in schema() + _TRIGGERS:
                self._db.execute(statement)
            self._db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"audit store {path}: {exc}") from exc

    def append_prepared(self, records: Sequence[Prepared]) -> tuple[list[Row], list[bytes]]:
        """The tail is read once, when the store opens; after that this gateway is the only
        writer, so an insert that does not follow its own last entry is a tamper alarm."""
        if not records:
            return [], []
        with self._lock:
            if self._tail is None:
                self._tail = self._last_or_unavailable()
            rows, digests = chain(records, *self._tail)
            try:
                self._insert(rows)
            except _OutOfSequence:
                raise Tampered(self._foreign(self._tail), self._tail) from None
            self._tail = rows[-1][0], rows[-1][5]
            return rows, digests

    def _foreign(self, tail: tuple[int, str]) -> str:
        found = self._last_or_unavailable()
        return tamper_message(found, tail)

    def resync(self) -> None:
        with self._lock:
            self._tail = None

    def _insert(self, rows: list[Row]) -> None:
        """One INSERT in autocommit mode when the batch fits one statement: SQLite then runs the
        insert and its commit (with the fsync) in one call, outside the GIL; larger batches are
        several INSERTs in one ``BEGIN IMMEDIATE`` transaction."""
        db = self._db
        try:
            if len(rows) <= _ROWS_PER_INSERT:
                db.execute(_insert_sql(len(rows)), [v for row in rows for v in row])
                return
            db.execute("BEGIN IMMEDIATE")
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[i : i + _ROWS_PER_INSERT]
                db.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and any(
                message in str(exc) for message in _OUT_OF_SEQUENCE
            ):
                raise _OutOfSequence from exc
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc

    def _last_or_unavailable(self) -> tuple[int, str]:
        try:
            return self._last()
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc

    def _last(self) -> tuple[int, str]:
        row = self._db.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
        found = row.fetchone()
        if found is not None:
            return int(found[0]), str(found[1])
        cut = self.cut()
        return (cut.tree_size, cut.last_hash) if cut else (0, GENESIS)

    def last(self) -> tuple[int, str]:
        with self._lock:
            return self._last()

    def entries(self, first: int = 1, last: int | None = None) -> Iterator[Entry]:
        sql = f"SELECT {_ENTRY} FROM audit_entry WHERE seq >= ?"
        params: list[Any] = [first]
        if last is not None:
            sql += " AND seq <= ?"
            params.append(last)
        for row in self._db.execute(sql + " ORDER BY seq", params):
            yield entry_of(row)

    def add_head(self, head: Head) -> None:
        with self._lock:
            self._write(
                "INSERT INTO audit_head (tree_size, root_hash, time, key_id, signature, frontier)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (  # another process (a purge) may have signed this size already: keep both
                    head.tree_size,
                    head.root_hash,
                    head.time,
                    head.key_id,
                    head.signature,
                    json.dumps(list(head.frontier)),
                ),
            )

    def _write(self, sql: str, params: Any) -> None:
        with self._transaction():
            self._db.execute(sql, params)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error; SQLite's errors
        come out as ``AuditUnavailable``."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc

    def heads(self) -> list[Head]:
        rows = self._db.execute(
            "SELECT tree_size, root_hash, time, key_id, signature, frontier FROM audit_head"
            " ORDER BY tree_size"
        )
        return [
            Head(row[0], row[1], row[2], row[3], row[4], tuple(json.loads(row[5]))) for row in rows
        ]

    def cut(self) -> Cut | None:
        row = self._db.execute(
            "SELECT tree_size, last_hash, last_proof FROM audit_cut ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        return Cut(row[0], row[1], tuple(json.loads(row[2]))) if row else None

    def purge(self, cut: Cut) -> int:
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO audit_cut (tree_size, last_hash, last_proof) VALUES (?, ?, ?)",
                (cut.tree_size, cut.last_hash, json.dumps(list(cut.last_proof))),
            )
            gone = self._db.execute(
                "DELETE FROM audit_entry WHERE seq <= ?", (cut.tree_size,)
            ).rowcount
        return int(gone)

    def older_than(self, time: str) -> int:
        row = self._db.execute("SELECT min(seq) FROM audit_entry WHERE time >= ?", (time,))
        young = row.fetchone()[0]
        if young is not None:
            return int(young) - 1
        return self.last()[0]

    def search(self, query: Query) -> Iterator[Entry]:
        where, params = query.conditions("?")
        sql = f"SELECT {_ENTRY} FROM audit_entry"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if query.limit:
            sql += f" LIMIT {int(query.limit)}"
        for row in self._db.execute(sql, params):
            yield entry_of(row)

    def record_key(self, key_id: str, public_pem: str, now: str) -> None:
        with self._lock:
            self._write(
                "INSERT INTO audit_key (key_id, public_pem, first_used) VALUES (?, ?, ?)"
                " ON CONFLICT (key_id) DO NOTHING",
                (key_id, public_pem, now),
            )

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
