"""The PostgreSQL store on a real server: the SQLite store's schema and guarantees, tamper cases
caught by ``wardgate audit verify --db postgresql://...``, replicas appending to one chain, and
failing closed when the server goes away."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.audit.chain_helpers import Log, event, make_log, verify_cli, wardgate
from tests.audit.test_verify import CASES
from wardgate.audit.canonical import canonical
from wardgate.audit.chained import ChainedAudit
from wardgate.audit.pgschema import TABLES
from wardgate.audit.pgstore import PostgresStore
from wardgate.audit.retention import purge
from wardgate.audit.sqlite import SQLiteStore
from wardgate.audit.store import AuditUnavailable, Query, entry_hash, prepare
from wardgate.demo.postgres import LocalPostgres

S = "wardgate_audit"


@pytest.fixture
def url(pg_server: LocalPostgres, scratch_db: str) -> str:
    return pg_server.uri(scratch_db)


def run(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def tamper(url: str, *statements: str) -> None:
    """What a superuser can do: switch the triggers off, edit, switch them on again."""
    off = [f"ALTER TABLE {S}.{t} DISABLE TRIGGER USER" for t in TABLES]
    on = [f"ALTER TABLE {S}.{t} ENABLE TRIGGER USER" for t in TABLES]
    with psycopg.connect(url) as conn, conn.transaction():
        for statement in [*off, *statements, *on]:
            conn.execute(statement)


def change_one_byte(log: Log) -> None:
    tamper(
        _url(log),
        f"UPDATE {S}.audit_entry SET event = replace(event, 'patients', 'patientz') WHERE seq = 7",
    )


def delete_one(log: Log) -> None:
    tamper(_url(log), f"DELETE FROM {S}.audit_entry WHERE seq = 7")


def insert_one(log: Log) -> None:
    with psycopg.connect(_url(log)) as conn:
        row = conn.execute(f"SELECT hash FROM {S}.audit_entry WHERE seq = 6").fetchone()
    assert row is not None
    prev, forged = row[0], canonical(event(99, subject="mallory")).decode()
    shifts = [f"UPDATE {S}.audit_entry SET seq = seq + 1 WHERE seq = {s}" for s in range(20, 6, -1)]
    insert = (
        f"INSERT INTO {S}.audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables,"
        " subject, target, decision)"
        f" VALUES (7, '{event(99)['time']}', 'statement', '{forged}', '{prev}',"
        f" '{entry_hash(7, prev, forged.encode())}', '', '',"
        " 'mallory', 'clinic', 'allow')"
    )
    tamper(_url(log), *shifts, insert)


def swap_two(log: Log) -> None:
    tamper(  # one statement reads the rows as they were before it
        _url(log),
        f"UPDATE {S}.audit_entry a SET (time, type, event, prev_hash, hash) ="
        f" (SELECT b.time, b.type, b.event, b.prev_hash, b.hash FROM {S}.audit_entry b"
        "  WHERE b.seq = 14 - a.seq) WHERE a.seq IN (5, 9)",
    )


def truncate_tail(log: Log) -> None:
    tamper(_url(log), f"DELETE FROM {S}.audit_entry WHERE seq > 14")


PG_TAMPER: dict[str, Callable[[Log], None]] = {
    "one byte changed": change_one_byte,
    "an entry deleted": delete_one,
    "an entry inserted": insert_one,
    "two entries swapped": swap_two,
    "the tail truncated": truncate_tail,
}


def _url(log: Log) -> str:
    assert log.url is not None
    return log.url


def pg_log(tmp: Path, url: str, n: int = 20) -> Log:
    return make_log(tmp, n, url=url)


def test_appends_verify_and_the_schema_is_the_sqlite_one(tmp_path: Path, url: str) -> None:
    log = pg_log(tmp_path, url, 20)
    result = verify_cli(log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: entries 1..20 chained" in result.stdout
    SQLiteStore(tmp_path / "ref.db").close()
    ref = sqlite3.connect(tmp_path / "ref.db")
    with psycopg.connect(url) as conn:
        for table in TABLES:
            pg = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (S, table),
            ).fetchall()
            lite = ref.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()
            assert [c[0] for c in pg] == [c[0] for c in lite]
    ref.close()
    store = PostgresStore(url, readonly=True)
    entries = list(store.entries())
    assert [e.seq for e in entries] == list(range(1, 21))
    assert all(e.event == canonical(event(e.seq)).decode() for e in entries)
    assert [e.seq for e in store.search(Query(decision="deny", limit=3))] == [5, 10, 15]
    store.close()


@pytest.mark.parametrize(
    ("statement", "sqlstate"),
    [
        (f"UPDATE {S}.audit_entry SET event = '{{}}' WHERE seq = 1", "WGA00"),
        (f"DELETE FROM {S}.audit_entry WHERE seq = 2", "WGA00"),
        (f"TRUNCATE {S}.audit_entry", "WGA00"),
        (
            f"INSERT INTO {S}.audit_entry (seq, time, type, event, prev_hash, hash, on_behalf,"
            " tables) VALUES (5, 't', 'x', '{}', 'p', 'h', '', '')",
            "WGA01",
        ),
        (f"DELETE FROM {S}.audit_head", "WGA00"),
        (f"UPDATE {S}.audit_key SET public_pem = ''", "WGA00"),
        (f"TRUNCATE {S}.audit_head CASCADE", "WGA00"),
    ],
)
def test_changes_other_than_appends_fail_in_sql(url: str, statement: str, sqlstate: str) -> None:
    store = PostgresStore(url)
    store.append_many([event(1), event(2)])
    store.record_key("k", "pem", "now")
    store.close()
    with pytest.raises(psycopg.Error) as caught:
        run(url, statement)
    assert caught.value.sqlstate == sqlstate


def test_an_insert_must_chain_to_the_last_hash(url: str) -> None:
    store = PostgresStore(url)
    store.append_many([event(1)])
    store.close()
    data = canonical(event(2))
    wrong = "ab" * 32
    with pytest.raises(psycopg.Error, match="appended in sequence"):
        run(
            url,
            f"INSERT INTO {S}.audit_entry (seq, time, type, event, prev_hash, hash, on_behalf,"
            f" tables) VALUES (2, 't', 'x', '{data.decode()}', '{wrong}',"
            f" '{entry_hash(2, wrong, data)}', '', '')",
        )


@pytest.fixture
def owner(url: str, scratch_db: str) -> Iterator[str]:
    """A role of its own that will own the store, as a deployment's gateway role would."""
    role = f"wardgate_owner_{uuid.uuid4().hex[:8]}"
    run(url, f"CREATE ROLE {role}", f"GRANT CREATE ON DATABASE {scratch_db} TO {role}")
    try:
        yield role
    finally:
        run(url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_the_owner_gives_up_update_and_keeps_only_the_purge(
    tmp_path: Path, url: str, owner: str
) -> None:
    as_owner = f"{url}?options=-crole%3D{owner}"
    log = pg_log(tmp_path, as_owner, 0)
    audit = log.open()
    for i in range(1, 9):
        audit.record(event(i, day="2019-01-01" if i < 5 else "2026-11-01"))
    audit.commit()
    assert audit.checkpointer is not None
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC).timestamp()
    done = purge(audit.checkpointer, now=now)
    assert done is not None and (done.cut, done.deleted) == (4, 4)
    audit.close()
    with psycopg.connect(as_owner, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {S}.audit_entry DISABLE TRIGGER USER")  # owners can
        for statement in (
            f"UPDATE {S}.audit_entry SET event = '{{}}'",
            f"TRUNCATE {S}.audit_entry",
            f"DELETE FROM {S}.audit_head",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute(f"ALTER TABLE {S}.audit_entry ENABLE TRIGGER USER")
    result = verify_cli(log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "entries 1..4 were purged at a signed cut" in result.stdout


@pytest.mark.parametrize("case", list(PG_TAMPER), ids=list(PG_TAMPER))
def test_tampering_is_detected_with_the_first_bad_entry(
    tmp_path: Path, url: str, case: str
) -> None:
    log = pg_log(tmp_path, url, 20)
    PG_TAMPER[case](log)
    _, problem, seq = CASES[case]
    for head in (False, True):
        result = verify_cli(log, head=head)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"FAILED (first bad entry: {seq}): " in result.stdout
        assert problem in result.stdout


def test_truncation_with_its_heads_is_caught_by_the_anchored_heads(
    tmp_path: Path, url: str
) -> None:
    log = pg_log(tmp_path, url, 20)
    tamper(
        url,
        f"DELETE FROM {S}.audit_entry WHERE seq > 14",
        f"DELETE FROM {S}.audit_head WHERE tree_size > 14",
    )
    assert verify_cli(log, head=False).returncode == 0  # consistent in itself
    result = verify_cli(log)
    assert result.returncode == 1
    assert "anchored head 15 is beyond the end of the log (14 entries)" in result.stdout


def test_a_rollback_to_a_backup_is_detected_against_the_anchored_heads(
    tmp_path: Path, url: str
) -> None:
    log = pg_log(tmp_path, url, 12)
    run(url, "CREATE SCHEMA backup", *(f"CREATE TABLE backup.{t} AS TABLE {S}.{t}" for t in TABLES))
    audit = log.open()
    for i in range(13, 21):
        audit.record(event(i))
        audit.commit()
    audit.close()
    restore = [f"DELETE FROM {S}.{t}" for t in reversed(TABLES)]
    restore += [f"INSERT INTO {S}.{t} TABLE backup.{t}" for t in TABLES]
    tamper(url, *restore)
    assert verify_cli(log, head=False).returncode == 0  # an old log is a valid log
    result = verify_cli(log)
    assert result.returncode == 1
    assert "is beyond the end of the log (12 entries)" in result.stdout


def test_two_replicas_appending_at_once_keep_one_chain(tmp_path: Path, url: str) -> None:
    log = pg_log(tmp_path, url, 0)
    second = Log(log.db, log.key, log.public, tmp_path / "anchors-b" / "heads.jsonl", url)
    replicas = [log.open(every_entries=25), second.open(every_entries=25)]
    errors: list[BaseException] = []

    def work(audit: ChainedAudit, name: str) -> None:
        try:
            for i in range(60):
                for j in range(1 + i % 4):
                    audit.record(event(j, subject=f"{name}-{i}"))
                audit.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(audit, name))
        for audit, name in zip(replicas, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for audit in replicas:
        assert audit.healthy, audit.reason
        audit.close()
    assert not errors
    store = PostgresStore(url, readonly=True)
    entries = list(store.entries())
    store.close()
    total = 2 * sum(1 + i % 4 for i in range(60))
    assert [e.seq for e in entries] == list(range(1, total + 1))
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    subjects = {json.loads(e.event)["who"]["subject"].split("-")[0] for e in entries}
    assert subjects == {"a", "b"}
    for replica in (log, second):
        result = verify_cli(replica)
        assert result.returncode == 0, result.stdout + result.stderr


def _terminate(store: PostgresStore, url: str) -> None:
    conn = store._conn
    assert conn is not None
    run(url, f"SELECT pg_terminate_backend({conn.info.backend_pid})")


def test_a_lost_server_fails_closed_and_the_next_commit_recovers(tmp_path: Path, url: str) -> None:
    log = pg_log(tmp_path, url, 6)
    audit = log.open()
    store = audit.store
    assert isinstance(store, PostgresStore)
    _terminate(store, url)
    for i in range(7, 10):
        audit.record(event(i))
    with pytest.raises(AuditUnavailable, match="audit store postgresql://"):
        audit.commit()
    assert not audit.healthy and audit.health()["pending"] == 3
    assert audit.unavailable().startswith("audit store unavailable")
    audit.commit()  # connects again
    assert audit.healthy and not audit.pending()
    store.idle_check = 0.0  # probe before each append: a dropped connection is just replaced
    _terminate(store, url)
    audit.record(event(10))
    audit.commit()
    assert audit.healthy
    audit.close()
    result = verify_cli(log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: entries 1..10 chained" in result.stdout


def test_a_dead_server_is_unavailable_at_open() -> None:
    with pytest.raises(AuditUnavailable, match="audit store postgresql://nobody:\\*\\*\\*@"):
        PostgresStore("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


def test_a_commit_whose_answer_was_lost_is_not_appended_twice(url: str) -> None:
    store = PostgresStore(url)
    records = [prepare(event(i)) for i in (1, 2)]
    rows, _ = store.append_prepared(records)
    store._in_doubt, store._tail = rows, None  # as if COMMIT's reply never arrived
    again, _ = store.append_prepared([*records, prepare(event(3))])
    assert [r[0] for r in again] == [3]
    assert [e.seq for e in store.entries()] == [1, 2, 3]
    store._in_doubt, store._tail = rows, None
    same, digests = store.append_prepared(records)  # only those: their rows, as committed
    assert same == rows and [d.hex() for d in digests] == [r[5] for r in rows]
    store.close()


def test_synchronous_commit_off_is_refused(url: str) -> None:
    with pytest.raises(AuditUnavailable, match="synchronous_commit is off"):
        PostgresStore(f"{url}?options=-csynchronous_commit%3Doff")


def test_text_postgresql_cannot_hold_is_stored_safely(url: str) -> None:
    store = PostgresStore(url)
    odd = dict(event(1), tables=["a\x00b", "\ud800"])
    assert store.append_many([odd]) == [1]
    assert [e.seq for e in store.search(Query(table="a\ufffdb"))] == [1]
    store.close()


def test_the_command_line_reads_the_store_from_the_configuration(tmp_path: Path, url: str) -> None:
    log = pg_log(tmp_path, url, 12)
    config = tmp_path / "wardgate.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            audit:
              path: null
              store: {url}
              key: {log.key.relative_to(tmp_path)}
              head_file: {log.heads.relative_to(tmp_path)}
            """
        )
    )
    verified = wardgate("audit", "verify", "-c", config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    found = wardgate("audit", "search", "-c", config, "--decision", "deny")
    assert [line.split("\t")[0] for line in found.stdout.splitlines()] == ["5", "10"]
    proof = wardgate("audit", "prove", "7", "--db", url)
    assert proof.returncode == 0 and json.loads(proof.stdout)["seq"] == 7
    purged = wardgate("audit", "purge", "-c", config)
    assert purged.returncode == 0 and "nothing to purge" in purged.stdout
    config.write_text(f"audit:\n  store: {url}\n")
    refused = wardgate("audit", "verify", "-c", config)
    assert refused.returncode == 2 and "needs 'key'" in refused.stderr


def test_replicas_refuse_to_sign_an_entry_no_replica_vouches_for(tmp_path: Path, url: str) -> None:
    """Issue 18, attack 1 with replicas: an entry inserted through the shared database (next
    seq, chained, triggers in place) has no replica's MAC, so no replica signs over it."""
    log = pg_log(tmp_path, url, 0)
    second = Log(log.db, log.key, log.public, tmp_path / "anchors-b" / "heads.jsonl", url)
    a, b = log.open(every_entries=1), second.open(every_entries=1)
    a.record(event(1, subject="a"))
    a.commit()
    b.record(event(2, subject="b"))
    b.commit()  # the other replica's entries carry a MAC: taken in, no alarm
    a.record(event(3, subject="a"))
    a.commit()
    assert a.healthy and b.healthy and a.alarm is None
    with psycopg.connect(url, autocommit=True) as conn:
        seq, prev = conn.execute(
            f"SELECT seq, hash FROM {S}.audit_entry ORDER BY seq DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        forged = prepare(event(99, subject="mallory"))
        digest = entry_hash(seq + 1, prev, forged[3])
        conn.execute(
            f"INSERT INTO {S}.audit_entry VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (seq + 1, forged[0], forged[1], forged[2], prev, digest, *forged[4:]),
        )
    b.record(event(4, subject="b"))
    with pytest.raises(AuditUnavailable) as raised:
        b.commit()
    assert str(raised.value) == (
        f"audit store tampered with: entry {seq + 1} was appended by no replica"
        " (it has no valid replica MAC); nothing after it is signed"
    )
    assert b.alarm is not None and not b.health()["healthy"]
    store = PostgresStore(url, readonly=True)
    assert max(h.tree_size for h in store.heads()) < seq + 1
    store.close()
    for replica in (a, b):
        replica.store.close()
