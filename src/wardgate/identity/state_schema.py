"""The identity state store's schema, and the upgrade of files written by older versions.

Portable column types only (TEXT, BIGINT, DOUBLE PRECISION), so that the same tables can move to
PostgreSQL when replicas share state.
"""

from __future__ import annotations

import sqlite3

# Audit events the command line and the API make, waiting for the running gateway to record them;
# the approvals store, in the same file, writes here too.
OUTBOX = "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event TEXT NOT NULL)"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS human (
        subject TEXT PRIMARY KEY,
        email TEXT,
        roles TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
        created DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        suspended_at DOUBLE PRECISION
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
    OUTBOX,
    """CREATE TABLE IF NOT EXISTS idp_grant (
        subject TEXT PRIMARY KEY,
        refresh_token TEXT NOT NULL,
        userinfo BIGINT NOT NULL DEFAULT 0,
        updated DOUBLE PRECISION NOT NULL
    )""",
    # SCIM 2.0 users as the identity provider pushed them (``identity.scim``). ``subject`` is the
    # human they provision; a deleted user keeps its row (and its human, revoked) for the audit.
    """CREATE TABLE IF NOT EXISTS scim_user (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_name_key TEXT NOT NULL,
        external_id TEXT,
        resource TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        modified DOUBLE PRECISION NOT NULL,
        deleted DOUBLE PRECISION
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_user_name ON scim_user (user_name_key)"
    " WHERE deleted IS NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_user_subject ON scim_user (subject)"
    " WHERE deleted IS NULL",
    "CREATE INDEX IF NOT EXISTS scim_user_external ON scim_user (external_id)",
    # ``wardgate sessions kill``: the gateway's watcher ends the live session and sets ``ended``.
    """CREATE TABLE IF NOT EXISTS session_kill (
        session TEXT PRIMARY KEY,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        requested DOUBLE PRECISION NOT NULL,
        ended DOUBLE PRECISION
    )""",
)


def migrate(db: sqlite3.Connection) -> None:
    """A state file from before ``suspended`` existed: SQLite cannot change a CHECK, so the
    ``human`` table is rebuilt. Humans that re-validation revoked only because the provider
    refused a refresh token (issue 19: a restarted provider revoked everyone) are suspended
    instead, so that their next sign-in brings them back."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'human'")
    found = row.fetchone()
    if found is None or "'suspended'" in found[0]:
        return
    columns = "subject, email, roles, status, created, revoked_at, reason, source"
    db.execute("ALTER TABLE human RENAME TO human_v1")
    db.execute(SCHEMA[0])
    db.execute(f"INSERT INTO human ({columns}) SELECT {columns} FROM human_v1")
    db.execute("DROP TABLE human_v1")
    db.execute(
        "UPDATE human SET status = 'suspended', suspended_at = revoked_at, revoked_at = NULL"
        " WHERE status = 'revoked' AND reason LIKE 'the identity provider refused re-validation:"
        " refresh: invalid_grant%' AND reason NOT LIKE '%disabled%'"
    )
