"""The state store without sockets: a file from before suspension existed is upgraded, the three
states move as documented, and re-validation tells a gone account from a dead grant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wardgate.identity.revalidate import refused
from wardgate.identity.state import StateStore

OLD_HUMAN = """CREATE TABLE human (
    subject TEXT PRIMARY KEY,
    email TEXT,
    roles TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    reason TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL
)"""


def test_an_old_state_file_is_upgraded_and_the_lock_out_of_issue_19_undone(tmp_path: Path) -> None:
    path = tmp_path / "identity.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_HUMAN)
        rows = [
            ("alice", "the identity provider refused re-validation: refresh: invalid_grant"
             " unknown refresh token"),
            ("dave", "the identity provider refused re-validation: refresh: invalid_grant"
             " the account 'dave' is disabled"),
            ("erin", "offboarded"),
        ]  # fmt: skip
        db.executemany(
            "INSERT INTO human (subject, roles, status, created, revoked_at, reason, source)"
            " VALUES (?, '[\"engineer\"]', 'revoked', 1.0, 2.0, ?, 'oidc')",
            rows,
        )
        db.execute(
            "INSERT INTO human (subject, status, created, source)"
            " VALUES ('bob', 'active', 1, 'cli')"
        )
    store = StateStore(path)
    try:
        found = {h.subject: h for h in store.humans()}
        assert found["alice"].status == "suspended" and found["alice"].suspended_at == 2.0
        assert found["alice"].roles == ("engineer",)
        assert found["dave"].status == "revoked" and found["erin"].status == "revoked"
        assert found["bob"].active
        # the new CHECK holds: a suspension can be written, and undone
        assert store.suspend_human("bob", "why not", {"type": "user.suspended"})
        assert not store.suspend_human("bob", "again", {"type": "user.suspended"})
        assert store.standing() == (frozenset({"dave", "erin"}), frozenset({"alice", "bob"}))
        assert store.restore_human("bob", {"type": "user.restored"})
        assert not store.restore_human("erin", {"type": "user.restored"})  # revoked stays
        store.revoke_human("alice", "left", {"type": "user.revoked"})  # suspended -> revoked
        alice = store.human("alice")
        assert alice is not None and alice.status == "revoked"
        assert [e["type"] for _, e in store.outbox()] == [
            "user.suspended", "user.restored", "user.revoked",
        ]  # fmt: skip
    finally:
        store.close()
    StateStore(path).close()  # opening it again changes nothing


@pytest.mark.parametrize(
    ("description", "gone"),
    [
        ("the account 'alice' is disabled", True),
        ("the account is disabled", True),
        ("AADSTS50057: The user account is disabled.", True),
        ("AADSTS50034: The user account does not exist in the directory.", True),
        ("User is deactivated", True),
        ("unknown refresh token", False),
        ("refresh token expired", False),
        ("refresh token reused; all its tokens revoked", False),
        ("grant request is invalid", False),
        ("The refresh token is invalid or expired.", False),
        ("AADSTS700082: The refresh token has expired due to inactivity.", False),
        ("", False),
    ],
)
def test_only_an_answer_that_the_account_is_gone_revokes(description: str, gone: bool) -> None:
    assert refused(f"refresh: invalid_grant {description}", description).gone is gone
