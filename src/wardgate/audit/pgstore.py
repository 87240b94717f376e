"""``PostgresStore``: the audit store in a PostgreSQL database, shared by gateway replicas.

Tables and triggers live in the schema ``wardgate_audit`` (``pgschema``), created if missing.
Appends are serialized across replicas by a transaction-level advisory lock: each one is
``BEGIN; pg_advisory_xact_lock; INSERT ... SELECT FROM unnest(...); COMMIT`` sent as one
pipeline, chained after the tail this store remembers. If another replica appended meanwhile,
the in-sequence trigger refuses the insert; the store then takes the lock, re-reads the tail under
it and chains after it. A commit returns once PostgreSQL reports it committed, which is durable
as the server's ``synchronous_commit`` makes it: the store refuses to open when the session has
``synchronous_commit`` or ``fsync`` off.

Any error of the server or the connection is ``AuditUnavailable``; a broken connection is dropped
and the next call connects again. A connection idle for ``idle_check`` seconds is probed first,
so one dropped while idle costs nothing. A commit whose outcome was lost with the connection is
looked up on the next append, and not appended twice if it did commit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from wardgate.audit import pgschema
from wardgate.audit.location import redacted
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
    chain,
    entry_mac,
    entry_of,
)

_ENTRY = "seq, time, type, event, prev_hash, hash, subject, on_behalf, target, tables, decision"
_CHUNK = 5000  # rows per read: entries and search results are paged by seq
_DEFAULTS = {  # unless the URL says otherwise: a dead server fails a commit within seconds
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "application_name": "wardgate-audit",
}


class _OutOfSequence(Exception):
    """The insert does not follow the last entry: someone appended since the tail was read."""


Connection = psycopg.Connection[tuple[Any, ...]]


class PostgresStore(AuditStore):
    shared = True  # replicas append to one chain, each entry with its replica's MAC
    idle_check = 30.0  # seconds idle after which a connection is probed before an append

    def __init__(
        self, url: str, *, readonly: bool = False, schema: str = pgschema.DEFAULT_SCHEMA
    ) -> None:
        self.url = url
        self.name = redacted(url)
        self.readonly = readonly
        self.schema = s = pgschema.check_name(schema)
        self._lock = threading.Lock()
        self._key = pgschema.lock_key(s)
        self._tail: tuple[int, str] | None = None
        self._in_doubt: list[Row] | None = None  # rows whose COMMIT went unanswered
        self._conn: Connection | None = None
        self._used = time.monotonic()
        self._insert = (
            f"INSERT INTO {s}.audit_entry (seq, time, type, event, prev_hash, hash, subject,"
            " on_behalf, target, tables, decision) SELECT * FROM unnest(%b::bigint[],"
            + ", ".join(["%b::text[]"] * 10)
            + ")"
        )
        self._vouch = (
            f"INSERT INTO {s}.{pgschema.VOUCH} (seq, mac)"
            " SELECT * FROM unnest(%b::bigint[], %b::text[])"
        )
        with self._lock:
            conn = self._connection()
            try:
                if readonly:
                    conn.execute(f"SELECT 1 FROM {s}.audit_entry LIMIT 1")
                else:
                    self._set_up(conn)
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc

    # -- connections --------------------------------------------------------------------------

    def _connection(self) -> Connection:
        conn = self._conn
        now = time.monotonic()
        if conn is not None and not conn.closed:
            idle, self._used = now - self._used, now
            if self.readonly or idle < self.idle_check:
                return conn
            try:  # idle a while: a connection dropped meanwhile is replaced, not failed on
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                self._drop()
        if conn is not None and self.readonly:
            raise AuditUnavailable(f"audit store {self.name}: the connection was lost")
        try:
            given = conninfo_to_dict(self.url)
            extra = {k: v for k, v in _DEFAULTS.items() if k not in given}
            conn = psycopg.connect(make_conninfo(self.url, **extra), autocommit=not self.readonly)
        except psycopg.Error as exc:
            raise AuditUnavailable(f"audit store {self.name}: {_first_line(exc)}") from exc
        # No server-side prepared statements: one made in a pipeline that an error aborts would
        # be remembered by psycopg but not exist on the server.
        conn.prepare_threshold = None
        try:
            if self.readonly:  # one snapshot for everything read: heads agree with entries
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
            else:
                self._check_durability(conn)
                conn.execute("SET lock_timeout = '10s'")  # a stuck replica fails us, not hangs
        except psycopg.Error as exc:
            conn.close()
            raise AuditUnavailable(f"audit store {self.name}: {_first_line(exc)}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn, self._tail, self._used = conn, None, now
        return conn

    def _check_durability(self, conn: Connection) -> None:
        for setting in ("synchronous_commit", "fsync"):
            row = conn.execute(f"SHOW {setting}").fetchone()
            if row is not None and str(row[0]).lower() == "off":
                raise AuditUnavailable(
                    f"audit store {self.name}: {setting} is off for this session, so a commit"
                    " could be lost after it returned; wardgate needs it on (see docs/audit.md)"
                )

    def _drop(self) -> None:
        conn, self._conn, self._tail = self._conn, None, None
        if conn is not None:
            conn.close()

    def _unavailable(self, exc: psycopg.Error) -> AuditUnavailable:
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            self._drop()
        elif conn is not None and not self.readonly:
            try:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
            except psycopg.Error:
                self._drop()
        return AuditUnavailable(f"audit store {self.name}: {_first_line(exc)}")

    def _set_up(self, conn: Connection) -> None:
        s = self.schema
        wanted = pgschema.triggers(s)
        if self._missing(conn, wanted) == (set(), set()):
            return  # nothing to create: a role without CREATE privilege can use the store
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            conn.execute(f"SET LOCAL search_path = {s}")
            for statement in pgschema.tables(s) + pgschema.functions(s):
                conn.execute(statement)
            for key in sorted(self._missing(conn, wanted)[1]):
                conn.execute(wanted[key])
            owned = conn.execute(
                "SELECT count(*) FROM pg_tables"
                " WHERE schemaname = %s AND tableowner = current_user",
                (s,),
            ).fetchone()
            if owned is not None and owned[0] >= len(pgschema.TABLES):
                for statement in pgschema.revokes(s):
                    conn.execute(statement)

    def _missing(
        self, conn: Connection, wanted: dict[tuple[str, str], str]
    ) -> tuple[set[str], set[tuple[str, str]]]:
        rows = conn.execute(
            "SELECT c.relname, t.tgname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (self.schema,),
        ).fetchall()
        present = {(r[0], r[1]) for r in rows}
        have = {r[0] for r in rows}
        return {*pgschema.TABLES, pgschema.VOUCH} - have, set(wanted) - present

    # -- appends ------------------------------------------------------------------------------

    def append_prepared(self, records: Sequence[Prepared]) -> tuple[list[Row], list[bytes]]:
        if not records:
            return [], []
        with self._lock:
            try:
                return self._append(records)
            except psycopg.Error as exc:
                conn = self._conn
                if conn is not None and not (conn.broken or conn.closed):
                    self._in_doubt = None  # the server answered: nothing of it committed
                raise self._unavailable(exc) from exc

    def _append(self, records: Sequence[Prepared]) -> tuple[list[Row], list[bytes]]:
        conn = self._connection()
        if self._tail is not None:
            rows, digests = chain(records, *self._tail)
            try:
                self._pipelined(conn, rows)
            except _OutOfSequence:
                pass  # another replica appended: chain after its entries, under the lock
            else:
                self._tail = rows[-1][0], rows[-1][5]
                return rows, digests
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            tail = self._read_tail(conn)
            done, records = self._settle_in_doubt(conn, records)
            if not records:
                assert done is not None
                return done, [bytes.fromhex(r[5]) for r in done]
            rows, digests = chain(records, *tail)
            self._in_doubt = rows
            try:
                conn.execute(self._insert, _columns(rows))
                self._vouch_for(conn, rows)
            except psycopg.Error as exc:
                if exc.sqlstate == pgschema.IN_SEQUENCE:  # a writer that ignores the lock
                    self._in_doubt = None
                    raise AuditUnavailable(
                        f"audit store {self.name}: entries are being appended without the lock"
                    ) from None
                raise
        self._in_doubt = None
        self._tail = rows[-1][0], rows[-1][5]
        return rows, digests

    def _pipelined(self, conn: Connection, rows: list[Row]) -> None:
        """BEGIN, lock, INSERT, COMMIT in one round trip."""
        self._in_doubt = rows
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                conn.execute(self._insert, _columns(rows))
                self._vouch_for(conn, rows)
                conn.execute("COMMIT")
        except psycopg.Error as exc:
            if exc.sqlstate != pgschema.IN_SEQUENCE:
                raise
            self._in_doubt = None
            conn.execute("ROLLBACK")
            raise _OutOfSequence from exc
        self._in_doubt = None

    def _vouch_for(self, conn: Connection, rows: list[Row]) -> None:
        key = self.mac_key
        if key is not None:
            conn.execute(self._vouch, [[r[0] for r in rows], [entry_mac(key, r[5]) for r in rows]])

    def vouches(self, first: int, last: int) -> dict[int, str]:
        rows = self._fetch(
            f"SELECT seq, mac FROM {self.schema}.{pgschema.VOUCH} WHERE seq BETWEEN %s AND %s",
            (first, last),
        )
        return {int(r[0]): str(r[1]) for r in rows}

    def _read_tail(self, conn: Connection) -> tuple[int, str]:
        s = self.schema
        row = conn.execute(
            f"SELECT seq, hash FROM {s}.audit_entry ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            row = conn.execute(
                f"SELECT tree_size, last_hash FROM {s}.audit_cut ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)

    def _settle_in_doubt(
        self, conn: Connection, records: Sequence[Prepared]
    ) -> tuple[list[Row] | None, Sequence[Prepared]]:
        """If the rows of a commit that went unanswered are in the store, and ``records`` starts
        with their events (the caller retrying), those are not appended again."""
        doubt, self._in_doubt = self._in_doubt, None
        if doubt is None or len(records) < len(doubt):
            return None, records
        if any(r[2] != row[3] for r, row in zip(records, doubt, strict=False)):
            return None, records
        seq, digest = doubt[-1][0], doubt[-1][5]
        found = conn.execute(
            f"SELECT hash FROM {self.schema}.audit_entry WHERE seq = %s", (seq,)
        ).fetchone()
        if found is None or found[0] != digest:
            return None, records
        return doubt, records[len(doubt) :]

    # -- reads --------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc

    def resync(self) -> None:
        with self._lock:
            self._tail = None

    def last(self) -> tuple[int, str]:
        with self._lock:
            try:
                return self._read_tail(self._connection())
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc

    def entries(self, first: int = 1, last: int | None = None) -> Iterator[Entry]:
        where = "seq <= %s" if last is not None else "TRUE"
        yield from self._paged(where, [last] if last is not None else [], first - 1, None)

    def _paged(
        self, where: str, params: list[Any], after: int, limit: int | None
    ) -> Iterator[Entry]:
        """Entries matching ``where`` with seq above ``after``, in seq order, read in chunks."""
        sql = (
            f"SELECT {_ENTRY} FROM {self.schema}.audit_entry WHERE {where} AND seq > %s"
            " ORDER BY seq LIMIT %s"
        )
        left = limit
        while left is None or left > 0:
            chunk = _CHUNK if left is None else min(left, _CHUNK)
            rows = self._fetch(sql, [*params, after, chunk])
            for row in rows:
                yield entry_of(row)
            if len(rows) < chunk:
                return
            after = int(rows[-1][0])
            if left is not None:
                left -= len(rows)

    def heads(self) -> list[Head]:
        rows = self._fetch(
            "SELECT tree_size, root_hash, time, key_id, signature, frontier"
            f" FROM {self.schema}.audit_head ORDER BY tree_size"
        )
        return [Head(int(r[0]), r[1], r[2], r[3], r[4], tuple(json.loads(r[5]))) for r in rows]

    def cut(self) -> Cut | None:
        rows = self._fetch(
            "SELECT tree_size, last_hash, last_proof"
            f" FROM {self.schema}.audit_cut ORDER BY tree_size DESC LIMIT 1"
        )
        return Cut(int(rows[0][0]), rows[0][1], tuple(json.loads(rows[0][2]))) if rows else None

    def older_than(self, time: str) -> int:
        rows = self._fetch(
            f"SELECT min(seq) FROM {self.schema}.audit_entry WHERE time >= %s", (time,)
        )
        young = rows[0][0]
        return int(young) - 1 if young is not None else self.last()[0]

    def search(self, query: Query) -> Iterator[Entry]:
        conditions, params = query.conditions("%s")
        where = ["TRUE", *conditions]
        yield from self._paged(" AND ".join(where), params, 0, query.limit or None)

    # -- heads, cuts, keys --------------------------------------------------------------------

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        with self._lock:
            try:
                self._connection().execute(sql, params)
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc

    def add_head(self, head: Head) -> None:
        self._write(
            f"INSERT INTO {self.schema}.audit_head"
            " (tree_size, root_hash, time, key_id, signature, frontier)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tree_size) DO NOTHING",
            (  # another replica may have signed this size already: keep the first
                head.tree_size,
                head.root_hash,
                head.time,
                head.key_id,
                head.signature,
                json.dumps(list(head.frontier)),
            ),
        )

    def record_key(self, key_id: str, public_pem: str, now: str) -> None:
        self._write(
            f"INSERT INTO {self.schema}.audit_key (key_id, public_pem, first_used)"
            " VALUES (%s, %s, %s) ON CONFLICT (key_id) DO NOTHING",
            (key_id, public_pem, now),
        )

    def purge(self, cut: Cut) -> int:
        s = self.schema
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                    conn.execute(
                        f"INSERT INTO {s}.audit_cut (tree_size, last_hash, last_proof)"
                        " VALUES (%s, %s, %s)",
                        (cut.tree_size, cut.last_hash, json.dumps(list(cut.last_proof))),
                    )
                    gone = conn.execute(
                        f"DELETE FROM {s}.audit_entry WHERE seq <= %s", (cut.tree_size,)
                    ).rowcount
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc
        return int(gone)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _columns(rows: list[Row]) -> list[list[Any]]:
    """The rows as eleven arrays (for ``unnest``); text PostgreSQL cannot hold is made safe."""
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)]
    for i in (1, 2, 6, 7, 8, 9, 10):  # copied from the event: a NUL or a lone surrogate
        columns[i] = [_text(v) for v in columns[i]]  # would fail every commit from then on
    return columns


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _text(value: str | None) -> str | None:
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
