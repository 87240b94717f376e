"""Retention: only entries past the period go, at a signed head, and the log still verifies."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from tests.audit.chain_helpers import event, make_log, verify_cli, wardgate
from wardgate.audit.retention import DEFAULT_RETENTION_DAYS, purge

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC).timestamp()


def test_purge_cuts_at_a_signed_head_and_the_log_still_verifies(tmp_path: Path) -> None:
    log = make_log(tmp_path, 0)
    audit = log.open(every_entries=4)
    days = ["2019-01-01"] * 7 + ["2024-06-01", "2019-02-01"] + ["2026-11-01"] * 6
    for i, day in enumerate(days, 1):
        audit.record(event(i, day=day))
        audit.commit()
    assert audit.checkpointer is not None
    done = purge(audit.checkpointer, DEFAULT_RETENTION_DAYS, now=NOW)
    assert done is not None and (done.cut, done.deleted) == (7, 7)  # entry 8 is young: stop
    assert done.head.tree_size == 7
    assert purge(audit.checkpointer, DEFAULT_RETENTION_DAYS, now=NOW) is None
    audit.record(event(16))
    audit.commit()
    done = purge(audit.checkpointer, 365, now=NOW)
    assert done is not None and done.cut == 9
    audit.close()
    remaining = sqlite3.connect(log.db).execute("SELECT min(seq), max(seq) FROM audit_entry")
    assert remaining.fetchone() == (10, 18)  # 16 and 18: the signed audit.cut entries
    result = verify_cli(log)
    assert result.returncode == 0, result.stdout
    assert "entries 1..9 were purged at a signed cut" in result.stdout
    assert "OK: entries 10..18 chained" in result.stdout
    proof = wardgate("audit", "prove", "10", "--db", log.db)
    assert proof.returncode == 0, proof.stderr
    gone = wardgate("audit", "prove", "3", "--db", log.db)
    assert gone.returncode == 2 and "purged" in gone.stderr


def test_the_first_entry_after_a_cut_must_chain_to_it(tmp_path: Path) -> None:
    log = make_log(tmp_path, 0)
    audit = log.open()
    for i in range(1, 9):
        audit.record(event(i, day="2019-01-01" if i < 5 else "2026-11-01"))
    audit.commit()
    assert audit.checkpointer is not None
    assert purge(audit.checkpointer, now=NOW) is not None
    audit.close()
    con = sqlite3.connect(log.db)
    con.execute("DROP TRIGGER audit_cut_no_update")
    con.execute("UPDATE audit_cut SET last_hash = ?", ("ab" * 32,))
    con.commit()
    con.close()
    result = verify_cli(log)
    assert result.returncode == 1
    assert "purged entry 4 is not under its head" in result.stdout


@pytest.mark.parametrize("days", [1, 2191])
def test_nothing_younger_than_the_period_is_deleted(tmp_path: Path, days: int) -> None:
    log = make_log(tmp_path, 10)  # all on 2026-11-29
    audit = log.open()
    assert audit.checkpointer is not None
    assert purge(audit.checkpointer, days, now=NOW) is None
    audit.close()
    assert verify_cli(log).returncode == 0


def test_a_signed_cut_of_young_entries_fails_verification(tmp_path: Path) -> None:
    """Even with the key, a cut whose last entry was younger than the retention period it names
    (a gateway whose clock was set forward, a purge run by hand) is refused."""
    from wardgate.audit.checkpoints import tree_upto, utc
    from wardgate.audit.cuts import cut_event
    from wardgate.audit.store import Cut

    log = make_log(tmp_path, 0)
    audit = log.open(every_entries=4)
    for i in range(1, 9):
        audit.record(event(i, day="2026-11-29"))
    audit.commit()
    cp = audit.checkpointer
    assert cp is not None
    head = cp.head_at(8)
    tree, entries = tree_upto(audit.store, 8, 0)
    signed = cut_event(
        cp.key,
        time=utc(NOW),
        tree_size=8,
        root_hash=head.root_hash,
        last_hash=entries[-1].hash,
        last_time=entries[-1].time,
        retention_days=30,
        consistency={},
    )
    audit.record(signed)
    audit.commit()
    proof = tuple(p.hex() for p in tree.inclusion_proof(7, 8))
    audit.store.purge(Cut(8, entries[-1].hash, proof))
    audit.close()
    result = verify_cli(log)
    assert result.returncode == 1
    assert (
        "FAILED (first bad entry: 9): the retention cut at 8 deleted entries younger than its"
        " retention period: entry 8 was 0.21 days old when cut, the period is 30 days"
    ) in result.stdout
