"""Approval requests and the grants they become, in the identity state file.

A request is made when a statement is held (``request``). Approvers vote (``approve``) until
``needed`` approvals are in; one denial ends it (``deny``). A grant is bound to the requester,
the target and the statement's digest (``sql.fingerprint.statement_digest``), and is single-use
(``window`` 0) or opens a time window of just-in-time access. Requests expire; a client that
disconnects withdraws its request. Every step queues an audit event in the state store's outbox
in the same transaction, with the approver's identity.

Rules that hold for every vote: the approver has one of the request's approver roles; nobody
approves a request they made or that was made on their behalf (their agent's); a reason is
required; one vote per approver.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wardgate.audit.events import identity_event
from wardgate.identity.state import write_transaction
from wardgate.identity.state_schema import OUTBOX

SCHEMA = """CREATE TABLE IF NOT EXISTS approval (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    on_behalf TEXT NOT NULL DEFAULT '[]',
    target TEXT NOT NULL,
    statement TEXT NOT NULL,
    digest TEXT NOT NULL,
    why TEXT NOT NULL DEFAULT '',
    approvers TEXT NOT NULL,
    needed BIGINT NOT NULL DEFAULT 1,
    grant_window DOUBLE PRECISION NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'approved', 'denied', 'expired', 'withdrawn', 'used')),
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    decided DOUBLE PRECISION,
    used DOUBLE PRECISION,
    reason TEXT NOT NULL DEFAULT '',
    votes TEXT NOT NULL DEFAULT '[]'
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS approval_grant ON approval (requester, target, digest)"


class ApprovalError(Exception):
    """A vote or a change that the rules refuse; the message says which rule."""


@dataclass(frozen=True)
class Approval:
    id: str
    requester: str
    on_behalf: tuple[str, ...]
    target: str
    statement: str
    digest: str
    why: str
    approvers: tuple[str, ...]
    needed: int
    window: float
    status: str
    created: float
    expires: float
    decided: float | None
    used: float | None
    reason: str
    votes: tuple[dict[str, Any], ...]

    def describe(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["on_behalf"] = list(self.on_behalf)
        out["approvers"] = list(self.approvers)
        out["votes"] = list(self.votes)
        return out


def _approval(row: sqlite3.Row) -> Approval:
    return Approval(
        row["id"], row["requester"], tuple(json.loads(row["on_behalf"])), row["target"],
        row["statement"], row["digest"], row["why"], tuple(json.loads(row["approvers"])),
        int(row["needed"]), float(row["grant_window"]), row["status"], row["created"],
        row["expires"], row["decided"], row["used"], row["reason"],
        tuple(json.loads(row["votes"])),
    )  # fmt: skip


class ApprovalStore:
    """One connection to the state file, shared by the threads of one process."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in (SCHEMA, _INDEX, OUTBOX):
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise ApprovalError(f"approvals in {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with write_transaction(self._db, self._lock) as db:
            yield db

    def _audit(self, db: sqlite3.Connection, kind: str, actor: str, approval: Approval,
               **details: Any) -> None:  # fmt: skip
        event = identity_event(
            kind, actor, time.time(), approval=approval.id, requester=approval.requester,
            on_behalf_of=list(approval.on_behalf), target=approval.target,
            statement=approval.statement, **details,
        )  # fmt: skip
        db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def _get(self, db: sqlite3.Connection, approval_id: str) -> Approval:
        row = db.execute("SELECT * FROM approval WHERE id = ?", (approval_id,)).fetchone()
        if row is None:
            raise ApprovalError(f"no approval request {approval_id!r}")
        return _approval(row)

    # ---- requests -------------------------------------------------------------------------------

    def request(
        self,
        requester: str,
        on_behalf: Sequence[str],
        target: str,
        statement: str,
        digest: str,
        *,
        why: str,
        approvers: Sequence[str],
        needed: int = 1,
        window: float = 0.0,
        ttl: float = 3600.0,
    ) -> Approval:
        now = time.time()
        approval_id = "apr_" + secrets.token_hex(5)
        with self._write() as db:
            db.execute(
                "INSERT INTO approval (id, requester, on_behalf, target, statement, digest, why,"
                " approvers, needed, grant_window, status, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (approval_id, requester, json.dumps(list(on_behalf)), target, statement, digest,
                 why, json.dumps(list(approvers)), needed, window, now, now + ttl),
            )  # fmt: skip
            approval = self._get(db, approval_id)
            self._audit(db, "approval.requested", requester, approval, why=why,
                        approvers=list(approvers), needed=needed)  # fmt: skip
        return approval

    def get(self, approval_id: str) -> Approval:
        with self._lock:
            return self._get(self._db, approval_id)

    def listing(self, *, pending_only: bool = True, now: float | None = None) -> list[Approval]:
        now = time.time() if now is None else now
        with self._lock:
            if pending_only:
                rows = self._db.execute(
                    "SELECT * FROM approval WHERE status = 'pending' AND expires > ?"
                    " ORDER BY created", (now,),
                ).fetchall()  # fmt: skip
            else:
                rows = self._db.execute("SELECT * FROM approval ORDER BY created").fetchall()
        return [_approval(r) for r in rows]

    # ---- votes ----------------------------------------------------------------------------------

    def approve(
        self, approval_id: str, approver: str, roles: Sequence[str], reason: str
    ) -> Approval:
        return self._vote(approval_id, approver, roles, reason, approve=True)

    def deny(self, approval_id: str, approver: str, roles: Sequence[str], reason: str) -> Approval:
        return self._vote(approval_id, approver, roles, reason, approve=False)

    def _vote(
        self, approval_id: str, approver: str, roles: Sequence[str], reason: str, *, approve: bool
    ) -> Approval:
        if not reason.strip():
            raise ApprovalError("a reason is required")
        now = time.time()
        with self._write() as db:
            approval = self._get(db, approval_id)
            if approval.status != "pending" or approval.expires <= now:
                state = "expired" if approval.status == "pending" else approval.status
                raise ApprovalError(f"{approval_id} is {state}, not pending")
            if approver == approval.requester or approver in approval.on_behalf:
                raise ApprovalError("nobody approves their own request or their agent's")
            if not set(roles) & set(approval.approvers):
                raise ApprovalError(
                    f"{approver} is not an approver here (needs one of the roles "
                    f"{', '.join(approval.approvers)})"
                )
            if any(v["by"] == approver for v in approval.votes):
                raise ApprovalError(f"{approver} has voted on {approval_id} already")
            votes = [*approval.votes, {"by": approver, "at": now, "approve": approve,
                                       "reason": reason}]  # fmt: skip
            approvals = sum(1 for v in votes if v["approve"])
            status = "denied" if not approve else (
                "approved" if approvals >= approval.needed else "pending"
            )  # fmt: skip
            decided = now if status != "pending" else None
            db.execute(
                "UPDATE approval SET votes = ?, status = ?, decided = ?, reason = ? WHERE id = ?",
                (json.dumps(votes), status, decided, reason if decided else "", approval_id),
            )
            updated = self._get(db, approval_id)
            kind = {"denied": "approval.denied", "approved": "approval.granted"}.get(
                status, "approval.vote"
            )
            self._audit(db, kind, approver, updated, reason=reason, votes=approvals,
                        needed=approval.needed)  # fmt: skip
        return updated

    # ---- grants ---------------------------------------------------------------------------------

    def use_grant(
        self, requester: str, target: str, digest: str, now: float | None = None
    ) -> Approval | None:
        """An approved grant for exactly this statement, consumed if single-use; or None."""
        now = time.time() if now is None else now
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM approval WHERE requester = ? AND target = ? AND digest = ?"
                " AND status IN ('approved', 'used') ORDER BY decided",
                (requester, target, digest),
            ).fetchall()
            for row in rows:
                approval = _approval(row)
                if approval.window > 0:
                    if approval.decided is not None and now < approval.decided + approval.window:
                        self._audit(db, "approval.used", requester, approval)  # each use
                        return approval
                    continue
                if approval.status == "approved":
                    db.execute(
                        "UPDATE approval SET status = 'used', used = ? WHERE id = ?",
                        (now, approval.id),
                    )
                    used = self._get(db, approval.id)
                    self._audit(db, "approval.used", requester, used)
                    return used
        return None

    def withdraw(self, approval_id: str, why: str) -> None:
        """The requester left (or the wait ended): a pending request ends."""
        with self._write() as db:
            approval = self._get(db, approval_id)
            if approval.status != "pending":
                return
            status = "expired" if why == "expired" else "withdrawn"
            db.execute(
                "UPDATE approval SET status = ?, decided = ?, reason = ? WHERE id = ?",
                (status, time.time(), why, approval_id),
            )
            self._audit(db, f"approval.{status}", approval.requester, approval, reason=why)

    def expire_due(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        expired = [a for a in self.listing(pending_only=False) if a.status == "pending"
                   and a.expires <= now]  # fmt: skip
        for approval in expired:
            self.withdraw(approval.id, "expired")
        return len(expired)
