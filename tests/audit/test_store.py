"""The SQLite store: chained appends in one transaction, SQL-level append-only, search, failure."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.audit.chain_helpers import event
from wardgate.audit.canonical import canonical
from wardgate.audit.sqlite import SQLiteStore
from wardgate.audit.store import GENESIS, AuditUnavailable, Head, Query, Tampered


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "audit.db")


def test_append_many_chains_entries_with_the_documented_hash(store: SQLiteStore) -> None:
    assert store.append_many([event(1), event(2)]) == [1, 2]
    assert store.append_many([]) == []
    assert store.append_many([event(3)]) == [3]
    prev = GENESIS
    for entry in store.entries():
        assert entry.event == canonical(event(entry.seq)).decode()
        assert entry.prev_hash == prev
        whole = {"event": json.loads(entry.event), "prev_hash": prev, "seq": entry.seq}
        assert entry.hash == hashlib.sha256(canonical(whole)).hexdigest()
        prev = entry.hash
    assert store.last() == (3, prev)
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert (mode, store._db.execute("PRAGMA synchronous").fetchone()[0]) == ("wal", 2)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET event = '{}' WHERE seq = 1",
        "DELETE FROM audit_entry WHERE seq = 2",
        "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables)"
        " VALUES (5, 't', 'x', '{}', 'p', 'h', '', '')",
        "DELETE FROM audit_head",
        "UPDATE audit_key SET public_pem = ''",
    ],
)
def test_changes_other_than_appends_fail_in_sql(store: SQLiteStore, statement: str) -> None:
    store.append_many([event(1), event(2)])
    store.record_key("k", "pem", "now")
    store.add_head(Head(2, "00" * 32, "now", "k", "sig"))
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match=r"append|signed cut|sequence|chained"):
        con.execute(statement)
    con.close()


def test_search_by_each_field(store: SQLiteStore) -> None:
    events = [event(i, subject="agent-7" if i % 2 else "alice") for i in range(1, 11)]
    events[2]["tables"] = ["public.patients", "public.visits"]
    events[3]["who"] = {"verified": False, "claimed_user": "eve"}
    events[4]["session"]["target"] = "billing"
    store.append_many(events)

    def seqs(**kw: object) -> list[int]:
        return [e.seq for e in store.search(Query(**kw))]  # type: ignore[arg-type]

    assert seqs(user="alice") == [2, 6, 8, 10]
    assert seqs(user="bob") == [1, 3, 5, 7, 9]  # agents acting on bob's behalf
    assert seqs(agent="agent-7") == [1, 3, 5, 7, 9]
    assert seqs(agent="alice") == []
    assert seqs(user="eve") == [4]
    assert seqs(table="public.patients") == [3]
    assert seqs(table="public.patient") == []
    assert seqs(target="billing") == [5]
    assert seqs(decision="deny") == [5, 10]
    assert seqs(type="statement", limit=2) == [1, 2]
    assert seqs(since="2026-11-29T07:00:03", until="2026-11-29T07:00:05") == [3, 4]


def test_a_read_only_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SQLiteStore(path).close()
    os.chmod(path, 0o444)
    if os.access(path, os.W_OK):  # root ignores file modes: use a read-only connection
        store = SQLiteStore(path)
        store._db.close()
        store._db = sqlite3.connect(
            f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:  # pragma: no cover - as a normal user
        store = SQLiteStore(path)
    with pytest.raises(AuditUnavailable, match="readonly"):
        store.append_many([event(1)])


def test_a_full_disk_is_unavailable_and_the_chain_resumes(store: SQLiteStore) -> None:
    store.append_many([event(1)])
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    big = [dict(event(i), statement="x" * 20_000) for i in range(2, 40)]
    with pytest.raises(AuditUnavailable, match="full"):
        store.append_many(big)
    assert store.last()[0] == 1  # nothing of the failed batch
    store._db.execute("PRAGMA max_page_count = 1000000")
    assert store.append_many([event(2)]) == [2]


def test_a_batch_larger_than_one_insert_is_one_transaction(store: SQLiteStore) -> None:
    events = [event(i) for i in range(1, 601)]
    assert store.append_many(events) == list(range(1, 601))
    prev = GENESIS
    for entry in store.entries():
        assert entry.prev_hash == prev
        prev = entry.hash
    assert store.last() == (600, prev)


def test_an_append_by_another_writer_is_a_tamper_alarm(store: SQLiteStore) -> None:
    """The gateway is the store's only writer: it never chains after entries it did not write
    (issue 18, attack 1); the store keeps its entries, and the alarm names both tails."""
    (mine,) = store.append_entries([event(1)])
    other = SQLiteStore(store.path)
    theirs = other.append_entries([event(2), event(3)])
    other.close()
    with pytest.raises(Tampered) as raised:
        store.append_many([event(4)])
    assert str(raised.value) == (
        f"audit store tampered with: it ends at entry 3 (hash {theirs[-1].hash[:16]}),"
        f" but this gateway last wrote entry 1 (hash {mine.hash[:16]})"
    )
    assert store.last() == (3, theirs[-1].hash)


def test_the_database_refuses_an_entry_not_chained_to_the_last(store: SQLiteStore) -> None:
    (first,) = store.append_entries([event(1)])
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="audit entries are chained to the last entry"):
        con.execute(
            "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables)"
            f" VALUES (2, 't', 'x', '{{}}', '{'1' * 64}', 'h', '', '')"
        )
    con.execute(  # chained to the last entry, it is accepted (and the gateway alarms on it)
        "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables)"
        f" VALUES (2, 't', 'x', '{{}}', '{first.hash}', 'h', '', '')"
    )
    con.commit()
    con.close()
