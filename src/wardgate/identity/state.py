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

from wardgate.identity.state_schema import SCHEMA, migrate

Kind = Literal["human", "agent", "service"]


class StateError(Exception):
    """The state store cannot be read or written."""


@dataclass(frozen=True)
class Human:
    """``status``: ``active``; ``suspended`` (the provider stopped vouching for them for a
    reason that does not prove the account gone; a fresh sign-in restores them); ``revoked``
    (permanent). ``reason`` says why for the last two."""

    subject: str
    email: str | None
    roles: tuple[str, ...]
    status: str
    created: float
    revoked_at: float | None
    reason: str
    source: str
    suspended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def suspended(self) -> bool:
        return self.status == "suspended"

    @property
    def revoked(self) -> bool:
        return self.status == "revoked"


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


@dataclass(frozen=True)
class Grant:
    """A human's refresh token, held for re-validation; ``userinfo`` says whether the provider's
    userinfo endpoint accepts the access tokens it yields (decided when the grant is adopted)."""

    subject: str
    refresh_token: str
    userinfo: bool


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
        row["suspended_at"],
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


@contextmanager
def write_transaction(db: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One write transaction on a connection shared by threads: BEGIN IMMEDIATE (so it waits for
    other writers up front, not at commit), COMMIT, or ROLLBACK on any exception."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


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
                migrate(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"identity state {path}: {exc}") from exc
        path.chmod(0o600)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with write_transaction(self._db, self._lock) as db:
            yield db
        self.local_writes += 1

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
        """Revoke (an active or a suspended human), and queue ``event`` for the audit in the
        same transaction."""
        with self._write() as db:
            _revoke(db, subject, reason, time.time())
            db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def suspend_human(self, subject: str, reason: str, event: dict[str, Any]) -> bool:
        """Suspend an active human, and queue ``event``; False (nothing queued) if they were
        not active. Their credentials stay as they are: a restored owner gets them back."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE human SET status = 'suspended', suspended_at = ?, reason = ?"
                " WHERE subject = ? AND status = 'active'",
                (time.time(), reason, subject),
            )
            done = cursor.rowcount > 0
            if done:
                db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))
        return done

    def restore_human(self, subject: str, event: dict[str, Any]) -> bool:
        """A suspended human active again (with every credential they and their agents hold),
        and queue ``event``; False (nothing queued) if they were not suspended."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE human SET status = 'active', suspended_at = NULL, reason = ''"
                " WHERE subject = ? AND status = 'suspended'",
                (subject,),
            )
            done = cursor.rowcount > 0
            if done:
                db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))
        return done

    def revoked_names(self) -> frozenset[str]:
        """Subjects and e-mail addresses of every revoked human."""
        return self.standing()[0]

    def standing(self) -> tuple[frozenset[str], frozenset[str]]:
        """Subjects and e-mail addresses of every revoked, and of every suspended, human."""
        rows = self._read(
            "SELECT subject, email, status FROM human WHERE status IN ('revoked', 'suspended')"
        )
        names: dict[str, set[str]] = {"revoked": set(), "suspended": set()}
        for r in rows:
            names[r["status"]].update(n for n in (r["subject"], r["email"]) if n)
        return frozenset(names["revoked"]), frozenset(names["suspended"])

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

    def sync_human(
        self, subject: str, email: str | None, roles: tuple[str, ...], event: dict[str, Any]
    ) -> Human:
        """At an OIDC sign-in: register the human (queueing ``event``) or bring their e-mail and
        roles up to date with the provider's. A revoked human stays revoked."""
        with self._write() as db:
            found = db.execute("SELECT status FROM human WHERE subject = ?", (subject,)).fetchone()
            if found is None:
                db.execute(
                    "INSERT INTO human (subject, email, roles, status, created, source)"
                    " VALUES (?, ?, ?, 'active', ?, 'oidc')",
                    (subject, email, json.dumps(list(roles)), time.time()),
                )
                db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))
            elif found["status"] == "active":
                db.execute(
                    "UPDATE human SET email = coalesce(?, email), roles = ? WHERE subject = ?",
                    (email, json.dumps(list(roles)), subject),
                )
        human = self.human(subject)
        assert human is not None
        return human

    # ---- IdP grants (refresh tokens held for re-validation) --------------------------------------

    def put_grant(self, grant: Grant) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO idp_grant (subject, refresh_token, userinfo, updated)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET"
                " refresh_token = excluded.refresh_token, userinfo = excluded.userinfo,"
                " updated = excluded.updated",
                (grant.subject, grant.refresh_token, int(grant.userinfo), time.time()),
            )

    def grants(self) -> list[Grant]:
        """The grant of every active or suspended human the gateway holds one for (a human
        suspended while the provider could not be reached keeps theirs, to be restored)."""
        rows = self._read(
            "SELECT g.subject, g.refresh_token, g.userinfo FROM idp_grant g JOIN human h"
            " ON h.subject = g.subject WHERE h.status IN ('active', 'suspended')"
            " ORDER BY g.subject"
        )
        return [Grant(r["subject"], r["refresh_token"], bool(r["userinfo"])) for r in rows]

    def drop_grant(self, subject: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM idp_grant WHERE subject = ?", (subject,))

    # ---- SCIM -----------------------------------------------------------------------------------

    @contextmanager
    def scim_write(self) -> Iterator[ScimWrite]:
        """One write transaction of the SCIM endpoint: its user, the human, the audit outbox."""
        try:
            with self._write() as db:
                yield ScimWrite(db)
        except sqlite3.Error as exc:
            raise StateError(f"identity state {self.path}: {exc}") from exc

    def scim_user(self, scim_id: str) -> ScimUser | None:
        rows = self._read(f"{_SCIM_SELECT} WHERE s.id = ? AND s.deleted IS NULL", (scim_id,))
        return _scim_user(rows[0]) if rows else None

    def scim_users(
        self, *, user_name: str | None = None, external_id: str | None = None
    ) -> list[ScimUser]:
        """Live users in creation order; all of them, or those with a user name (any case) or
        an external id."""
        sql = f"{_SCIM_SELECT} WHERE s.deleted IS NULL"
        params: tuple[str, ...] = ()
        if user_name is not None:
            sql, params = f"{sql} AND s.user_name_key = ?", (user_name.lower(),)
        elif external_id is not None:
            sql, params = f"{sql} AND s.external_id = ?", (external_id,)
        return [_scim_user(r) for r in self._read(f"{sql} ORDER BY s.created, s.id", params)]

    # ---- session kills (``wardgate sessions kill``) ---------------------------------------------

    def request_kill(self, session: str, actor: str, reason: str, event: dict[str, Any]) -> None:
        """Ask the gateway to end a live session, and queue ``event`` in the same transaction."""
        with self._write() as db:
            db.execute(
                "INSERT INTO session_kill (session, actor, reason, requested) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (session) DO UPDATE SET actor = excluded.actor,"
                " reason = excluded.reason, requested = excluded.requested, ended = NULL",
                (session, actor, reason, time.time()),
            )
            db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def pending_kills(self, since: float) -> dict[str, tuple[str, str]]:
        """Sessions to end, requested since ``since``: actor and reason by session id."""
        rows = self._read(
            "SELECT session, actor, reason FROM session_kill WHERE ended IS NULL"
            " AND requested >= ?",
            (since,),
        )
        return {r["session"]: (r["actor"], r["reason"]) for r in rows}

    def kill_ended(self, session: str) -> float | None:
        """When the gateway ended a session it was asked to (None: not yet)."""
        rows = self._read("SELECT ended FROM session_kill WHERE session = ?", (session,))
        return rows[0]["ended"] if rows else None

    def mark_killed(self, sessions: list[str]) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE session_kill SET ended = ? WHERE session = ?",
                [(time.time(), s) for s in sessions],
            )

    def queue(self, event: dict[str, Any]) -> None:
        """An administrator's act for the audit (the gateway drains the outbox)."""
        with self._write() as db:
            db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

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


def _revoke(db: sqlite3.Connection, subject: str, reason: str, now: float) -> bool:
    cursor = db.execute(
        "UPDATE human SET status = 'revoked', revoked_at = ?, suspended_at = NULL, reason = ?"
        " WHERE subject = ? AND status IN ('active', 'suspended')",
        (now, reason, subject),
    )
    return cursor.rowcount > 0


def _reactivate(db: sqlite3.Connection, subject: str, now: float) -> bool:
    db.execute(
        "UPDATE credential SET revoked_at = coalesce((SELECT revoked_at FROM human"
        " WHERE subject = ? AND status = 'revoked'), ?) WHERE owner = ? AND revoked_at IS NULL",
        (subject, now, subject),
    )
    cursor = db.execute(
        "UPDATE human SET status = 'active', revoked_at = NULL, reason = ''"
        " WHERE subject = ? AND status = 'revoked'",
        (subject,),
    )
    return cursor.rowcount > 0


# ---- SCIM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScimUser:
    """A live SCIM user; ``human_active``: its human is not revoked (None: no such human). A
    suspended human is active for SCIM: the provider has not deprovisioned them."""

    id: str
    subject: str
    user_name: str
    external_id: str | None
    resource: dict[str, Any]
    created: float
    modified: float
    human_active: bool | None = None


_SCIM_SELECT = (
    "SELECT s.*, h.status AS human_status FROM scim_user s"
    " LEFT JOIN human h ON h.subject = s.subject"
)


def _scim_user(row: sqlite3.Row) -> ScimUser:
    status = row["human_status"]
    return ScimUser(
        row["id"],
        row["subject"],
        row["user_name"],
        row["external_id"],
        json.loads(row["resource"]),
        row["created"],
        row["modified"],
        None if status is None else status != "revoked",
    )


class ScimWrite:
    """What the SCIM endpoint reads and changes inside one transaction (``scim_write``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        cursor = self._db.execute(sql, params)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def user(self, scim_id: str) -> ScimUser | None:
        rows = self._rows(f"{_SCIM_SELECT} WHERE s.id = ? AND s.deleted IS NULL", (scim_id,))
        return _scim_user(rows[0]) if rows else None

    def taken(self, user_name: str, subject: str, other_than: str | None) -> str:
        """Which of ``userName`` and ``subject`` another live user holds ("" if neither)."""
        rows = self._rows(
            "SELECT user_name_key, subject FROM scim_user WHERE deleted IS NULL AND id != ?"
            " AND (user_name_key = ? OR subject = ?)",
            (other_than or "", user_name.lower(), subject),
        )
        if any(r["user_name_key"] == user_name.lower() for r in rows):
            return "userName"
        return "subject" if rows else ""

    def human(self, subject: str) -> Human | None:
        rows = self._rows("SELECT * FROM human WHERE subject = ?", (subject,))
        return _human(rows[0]) if rows else None

    def deleted_since(self, subject: str, since: float) -> bool:
        """Whether a SCIM user of ``subject`` was deleted at or after ``since``."""
        rows = self._rows(
            "SELECT 1 FROM scim_user WHERE subject = ? AND deleted >= ? LIMIT 1", (subject, since)
        )
        return bool(rows)

    def put_user(self, user: ScimUser) -> None:
        self._db.execute(
            "INSERT INTO scim_user (id, subject, user_name, user_name_key, external_id, resource,"
            " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " subject = excluded.subject, user_name = excluded.user_name,"
            " user_name_key = excluded.user_name_key, external_id = excluded.external_id,"
            " resource = excluded.resource, modified = excluded.modified",
            (
                user.id,
                user.subject,
                user.user_name,
                user.user_name.lower(),
                user.external_id,
                json.dumps(user.resource),
                user.created,
                user.modified,
            ),
        )

    def delete_user(self, scim_id: str, now: float) -> None:
        self._db.execute(
            "UPDATE scim_user SET deleted = ?, modified = ? WHERE id = ? AND deleted IS NULL",
            (now, now, scim_id),
        )

    def add_human(
        self, subject: str, email: str | None, roles: tuple[str, ...], now: float
    ) -> None:
        self._db.execute(
            "INSERT INTO human (subject, email, roles, status, created, source)"
            " VALUES (?, ?, ?, 'active', ?, 'scim')",
            (subject, email, json.dumps(list(roles)), now),
        )

    def update_human(self, subject: str, email: str | None, roles: tuple[str, ...] | None) -> None:
        """A None leaves that attribute as it is."""
        self._db.execute(
            "UPDATE human SET email = coalesce(?, email), roles = coalesce(?, roles)"
            " WHERE subject = ?",
            (email, None if roles is None else json.dumps(list(roles)), subject),
        )

    def revoke(self, subject: str, reason: str, now: float) -> bool:
        """What ``StateStore.revoke_human`` does; False if the human was already revoked."""
        return _revoke(self._db, subject, reason, now)

    def reactivate(self, subject: str, now: float) -> bool:
        return _reactivate(self._db, subject, now)

    def queue(self, event: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))
