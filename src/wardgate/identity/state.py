"""The identity state store: humans, the credentials bound to them, and an outbox of audit events.

SQLite in WAL mode with a busy timeout, because two processes share the file: the gateway reads
it at every sign-in and watches it for revocations, and the command line (``wardgate credential``,
``wardgate users revoke``) writes it. The schema uses only portable types (TEXT, BIGINT, DOUBLE
PRECISION) so that it can move to PostgreSQL for replicas.

The command line does not write the audit store itself: the gateway is its only writer (one hash
chain, one signer, one SIEM spool). It puts its events in ``outbox``; the running gateway drains
the outbox into every audit recorder within a second and deletes what it has made durable.

Secrets are never stored: a credential row holds the SHA-256 of its secret (see ``credentials``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["human", "agent", "service"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS human (
        subject TEXT PRIMARY KEY,
        email TEXT,
        roles TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS credential (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('human', 'agent', 'service')),
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        roles TEXT,
        created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION,
        secret_sha256 TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS credential_owner ON credential (owner)",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,
        event TEXT NOT NULL
    )""",
)


class StateError(Exception):
    """The state store cannot be read or written."""


@dataclass(frozen=True)
class Human:
    subject: str
    email: str | None
    roles: tuple[str, ...]
    status: str
    created: float
    revoked_at: float | None
    reason: str
    source: str

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class CredentialRecord:
    """``roles`` None means "the owner's roles"; otherwise they are intersected with them."""

    id: str
    kind: Kind
    name: str
    owner: str
    roles: tuple[str, ...] | None
    created: float
    expires: float
    revoked_at: float | None
    secret_sha256: str

    @property
    def subject(self) -> str:
        return self.owner if self.kind == "human" else f"{self.kind}:{self.name}"


def _human(row: sqlite3.Row) -> Human:
    return Human(
        row["subject"],
        row["email"],
        tuple(json.loads(row["roles"])),
        row["status"],
        row["created"],
        row["revoked_at"],
        row["reason"],
        row["source"],
    )


def _credential(row: sqlite3.Row) -> CredentialRecord:
    roles = row["roles"]
    return CredentialRecord(
        row["id"],
        row["kind"],
        row["name"],
        row["owner"],
        None if roles is None else tuple(json.loads(roles)),
        row["created"],
        row["expires"],
        row["revoked_at"],
        row["secret_sha256"],
    )


class StateStore:
    """One connection, shared by the threads of one process (guarded by a lock)."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.local_writes = 0  # data_version does not count this connection's own commits
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._write():
                for statement in SCHEMA:
                    self._db.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"identity state {path}: {exc}") from exc
        path.chmod(0o600)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
                self.local_writes += 1
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                cursor = self._db.execute(sql, params)
                try:
                    return cursor.fetchall()
                finally:
                    cursor.close()  # ends the statement's read snapshot now, not at collection
        except sqlite3.Error as exc:
            raise StateError(f"identity state {self.path}: {exc}") from exc

    def data_version(self) -> tuple[int, int]:
        """Changes whenever anyone (this process included) has committed since the last call."""
        row = self._read("PRAGMA data_version")[0]
        return int(row[0]), self.local_writes

    # ---- humans ---------------------------------------------------------------------------------

    def add_human(
        self, subject: str, email: str | None = None, roles: tuple[str, ...] = (), source: str = ""
    ) -> Human:
        """Register a human, or return the one already registered under ``subject``."""
        found = self.human(subject)
        if found is not None:
            return found
        with self._write() as db:
            db.execute(
                "INSERT INTO human (subject, email, roles, status, created, source)"
                " VALUES (?, ?, ?, 'active', ?, ?) ON CONFLICT (subject) DO NOTHING",
                (subject, email, json.dumps(list(roles)), time.time(), source),
            )
        human = self.human(subject)
        assert human is not None
        return human

    def human(self, name: str) -> Human | None:
        """By subject, or by e-mail address without regard to case."""
        rows = self._read(
            "SELECT * FROM human WHERE subject = ? OR lower(email) = lower(?)"
            " ORDER BY subject = ? DESC LIMIT 1",
            (name, name, name),
        )
        return _human(rows[0]) if rows else None

    def humans(self) -> list[Human]:
        return [_human(r) for r in self._read("SELECT * FROM human ORDER BY subject")]

    def revoke_human(self, subject: str, reason: str, event: dict[str, Any]) -> None:
        """Revoke, and queue ``event`` for the audit in the same transaction."""
        with self._write() as db:
            db.execute(
                "UPDATE human SET status = 'revoked', revoked_at = ?, reason = ?"
                " WHERE subject = ? AND status = 'active'",
                (time.time(), reason, subject),
            )
            db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def revoked_names(self) -> frozenset[str]:
        """Subjects and e-mail addresses of every revoked human."""
        rows = self._read("SELECT subject, email FROM human WHERE status = 'revoked'")
        return frozenset(n for r in rows for n in (r["subject"], r["email"]) if n)

    # ---- credentials ----------------------------------------------------------------------------

    def add_credential(self, record: CredentialRecord, event: dict[str, Any]) -> None:
        roles = None if record.roles is None else json.dumps(list(record.roles))
        with self._write() as db:
            db.execute(
                "INSERT INTO credential (id, kind, name, owner, roles, created, expires,"
                " revoked_at, secret_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.kind,
                    record.name,
                    record.owner,
                    roles,
                    record.created,
                    record.expires,
                    record.revoked_at,
                    record.secret_sha256,
                ),
            )
            db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def credential(self, credential_id: str) -> CredentialRecord | None:
        rows = self._read("SELECT * FROM credential WHERE id = ?", (credential_id,))
        return _credential(rows[0]) if rows else None

    def credentials(self) -> list[CredentialRecord]:
        rows = self._read("SELECT * FROM credential ORDER BY created, id")
        return [_credential(r) for r in rows]

    # ---- outbox ---------------------------------------------------------------------------------

    def outbox(self, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        rows = self._read("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [(int(r["seq"]), json.loads(r["event"])) for r in rows]

    def drop_outbox(self, upto: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
