"""The tamper table: each way of altering the log is caught by ``wardgate audit verify``."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.audit.chain_helpers import Log, event, make_log, verify_cli
from wardgate.audit.canonical import canonical
from wardgate.audit.store import entry_hash


def tamper(db: Path, *statements: str) -> None:
    """What someone with write access to the file can do: drop the triggers, then edit."""
    con = sqlite3.connect(db)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


def change_one_byte(log: Log) -> None:
    tamper(
        log.db,
        "UPDATE audit_entry SET event = replace(event, 'patients', 'patientz') WHERE seq = 7",
    )


def delete_one(log: Log) -> None:
    tamper(log.db, "DELETE FROM audit_entry WHERE seq = 7")


def insert_one(log: Log) -> None:
    con = sqlite3.connect(log.db)
    prev = con.execute("SELECT hash FROM audit_entry WHERE seq = 6").fetchone()[0]
    con.close()
    forged = canonical(event(99, subject="mallory"))
    shifts = [f"UPDATE audit_entry SET seq = seq + 1 WHERE seq = {s}" for s in range(20, 6, -1)]
    insert = (
        "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables,"
        " subject, target, decision)"
        f" VALUES (7, '{event(99)['time']}', 'statement', '{forged.decode()}', '{prev}',"
        f" '{entry_hash(7, prev, forged)}', '', '',"
        " 'mallory', 'clinic', 'allow')"
    )
    tamper(log.db, *shifts, insert)


def swap_two(log: Log) -> None:
    columns = "time, type, event, prev_hash, hash"
    tamper(
        log.db,
        f"CREATE TABLE t AS SELECT seq, {columns} FROM audit_entry WHERE seq IN (5, 9)",
        "UPDATE audit_entry SET (time, type, event, prev_hash, hash) ="
        f" (SELECT {columns} FROM t WHERE t.seq = 14 - audit_entry.seq) WHERE seq IN (5, 9)",
        "DROP TABLE t",
    )


def truncate_tail(log: Log) -> None:
    tamper(log.db, "DELETE FROM audit_entry WHERE seq > 14")


def truncate_tail_and_heads(log: Log) -> None:
    tamper(
        log.db,
        "DELETE FROM audit_entry WHERE seq > 14",
        "DELETE FROM audit_head WHERE tree_size > 14",
    )


def forge(log: Log, tmp: Path, *, keep_heads: bool) -> None:
    """A log of the same length, every hash recomputed, heads signed by another key."""
    forged = make_log(tmp / "forger", 20, subject="mallory")
    shutil.copy(forged.db, log.db)
    if not keep_heads:
        tamper(log.db, "DELETE FROM audit_head")


CASES: dict[str, tuple[Callable[[Log], None], str, int | None]] = {
    "one byte changed": (change_one_byte, "entry 7: the hash does not match", 7),
    "an entry deleted": (delete_one, "entry 7 is missing", 7),
    "an entry inserted": (insert_one, "entry 8: prev_hash is not the hash of entry 7", 8),
    "two entries swapped": (swap_two, "entry 5: prev_hash is not the hash of entry 4", 5),
    "the tail truncated": (truncate_tail, "head 15 is beyond the end of the log (14", 15),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_tampering_is_detected_with_the_first_bad_entry(tmp_path: Path, case: str) -> None:
    log = make_log(tmp_path, 20)
    alter, problem, seq = CASES[case]
    alter(log)
    for head in (False, True):
        result = verify_cli(log, head=head)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"FAILED (first bad entry: {seq}): " in result.stdout
        assert problem in result.stdout


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    for head in (False, True):
        result = verify_cli(log, head=head)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK: entries 1..20 chained" in result.stdout


def test_truncation_with_its_heads_is_caught_by_the_anchored_heads(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    truncate_tail_and_heads(log)
    assert verify_cli(log, head=False).returncode == 0  # consistent in itself
    result = verify_cli(log)
    assert result.returncode == 1
    assert "anchored head 15 is beyond the end of the log (14 entries)" in result.stdout


def test_a_rehashed_forgery_without_the_key_is_detected(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    forge(log, tmp_path, keep_heads=True)
    result = verify_cli(log)
    assert result.returncode == 1
    assert "is signed by key" in result.stdout


def test_a_forgery_without_heads_fails_against_the_anchored_heads(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    forge(log, tmp_path, keep_heads=False)
    result = verify_cli(log)
    assert result.returncode == 1
    assert "anchored head 3: its root does not match entries 1..3" in result.stdout
    assert "no signed head" in verify_cli(log, head=False).stdout


def test_a_rollback_to_an_older_copy_is_detected_against_the_anchored_heads(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path, 12)
    old = tmp_path / "old.db"
    shutil.copy(log.db, old)
    audit = log.open()
    for i in range(13, 21):
        audit.record(event(i))
        audit.commit()
    audit.close()
    shutil.copy(old, log.db)
    assert verify_cli(log, head=False).returncode == 0  # an old log is a valid log
    result = verify_cli(log)
    assert result.returncode == 1
    assert "is beyond the end of the log (12 entries)" in result.stdout
    assert "rolled back" in result.stdout


def test_an_altered_anchored_head_is_detected(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    lines = log.heads.read_text().splitlines()
    lines[1] = lines[1].replace('"tree_size":', '"tree_size":1')
    log.heads.write_text("\n".join(lines) + "\n")
    result = verify_cli(log)
    assert result.returncode == 1
    assert "the signature does not verify" in result.stdout
