"""Issue 18: the audit log attacked by someone who holds the gateway host's files, against a
running gateway. Each test reproduces one attack and shows what catches it, with the message."""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import start_serve, wardgate
from wardgate.audit.alarms import read_alarms
from wardgate.audit.anchors import head_line, read_head_file
from wardgate.audit.canonical import canonical
from wardgate.audit.checkpoints import key_id, load_public_key, public_pem
from wardgate.audit.store import Head, entry_hash, search_columns
from wardgate.config import Config, load
from wardgate.demo.postgres import LocalPostgres


def _config(tmp: Path, pki: Path, pg: LocalPostgres, db: str, **audit: Any) -> Config:
    def edit(raw: dict[str, Any]) -> None:
        raw["audit"].update(
            store=str(tmp / "store" / "audit.db"),
            head_file=str(tmp / "anchors" / "heads.jsonl"),
            **audit,
        )
        raw["siem"] = {
            "spool": str(tmp / "siem-spool"),
            "sinks": [{"name": "file", "kind": "file", "path": str(tmp / "siem" / "ocsf.jsonl")}],
        }

    build_config(tmp, pki, target_entry(pg, db), edit=edit)
    return load(tmp / "wardgate.yaml")


def _file(config: Config) -> Path:
    store = config.audit.store
    assert isinstance(store, Path)
    return store.parent.parent / "wardgate.yaml"


def _healthy(gw: RunningGateway) -> Callable[[], bool]:
    return lambda: gw.gateway.health()["healthy"] is True


def _degraded(gw: RunningGateway) -> Callable[[], bool]:
    return lambda: "degraded" in gw.gateway.health()


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _forge(db: Path, subject: str = "mallory") -> tuple[int, str, str]:
    """What the issue did with plain sqlite3: the next entry, hashed with the product's own
    encoding, chained to the tail, search columns filled in, no trigger dropped. Returns (seq,
    hash of the forged entry, hash of the one before)."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    seq, prev = con.execute(
        "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    event = {
        "time": "2026-12-07T10:00:00.000000+00:00",
        "type": "statement",
        "who": {"verified": True, "subject": subject, "roles": ["engineer"],
                "on_behalf_of": [], "method": "scram-sha-256"},
        "session": {"id": "forged", "client_addr": "127.0.0.1:1", "target": "test"},
        "seq": 1, "kind": "query", "statement": "SELECT * FROM patients",
        "decision": "allow", "outcome": "ok", "rows": 1000, "bytes": 1, "duration_ms": 1,
    }  # fmt: skip
    data = canonical(event)
    digest = entry_hash(seq + 1, prev, data)
    con.execute(
        "INSERT INTO audit_entry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq + 1, event["time"], "statement", data.decode(), prev, digest,
         *search_columns(event)),
    )  # fmt: skip
    con.execute("COMMIT")
    con.close()
    return seq + 1, digest, prev


def _verify(config: Config, *extra: str) -> tuple[int, str]:
    result = wardgate("audit", "verify", "-c", str(_file(config)), *extra)
    return result.returncode, result.stdout + result.stderr


def test_a_forged_entry_raises_the_alarm_and_is_never_signed(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    db = tmp_path / "store" / "audit.db"
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
        chained = gw.gateway.chained
        assert chained is not None
        signer = chained.checkpointer
        assert signer is not None
        # Everything it wrote is committed and signed (the statement's summary follows its
        # result, then the timer's head): the forged entry is the only one no head covers.
        _until(lambda: not chained.pending() and signer.head_size == signer.frontier.size)  # noqa: B023
        seq, forged, prev = _forge(db)
        # The gateway notices within a second (its tick compares the tail with its own).
        _until(lambda: not _healthy(gw)())  # noqa: B023
        reason = (
            f"audit store tampered with: it ends at entry {seq} (hash {forged[:16]}),"
            f" but this gateway last wrote entry {seq - 1} (hash {prev[:16]})"
        )
        report = gw.gateway.health()
        assert report["audit"]["reason"] == (  # type: ignore[index]
            f"audit tamper alarm: {reason} (acknowledge with `wardgate audit ack --reason ...`)"
        )
        # New sessions are refused.
        with pytest.raises(psycopg.OperationalError, match="the audit log is unavailable"):
            psycopg.connect(gw.dsn())
        # The alarm is in its own signed segment, in the JSON-lines copy and in the SIEM feed.
        key = config.audit.key_path()
        assert key is not None
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        alarm_file = config.audit.alarm_path()
        assert alarm_file is not None
        (alarm,) = read_alarms(alarm_file, private.public_key())
        assert (alarm["type"], alarm["reason"]) == ("audit.tamper", reason)
        assert any(e["type"] == "audit.tamper" for e in gw.events())
        _until(lambda: "audit.tamper" in (tmp_path / "siem" / "ocsf.jsonl").read_text())
        # Nothing is signed over the forged entry, not even at shutdown.
        time.sleep(1.5)
        assert all(h.tree_size < seq for h in read_head_file(tmp_path / "anchors" / "heads.jsonl"))
    code, out = _verify(config)
    assert code == 0 and f"entries {seq}..{seq} are chained but not yet signed" in out, out

    # Restarting does not clear the alarm; the acknowledgement does, and is itself recorded.
    for gw in running(config, pki_dir / "ca.pem"):
        assert not gw.gateway.health()["healthy"]
        with pytest.raises(psycopg.OperationalError, match="the audit log is unavailable"):
            psycopg.connect(gw.dsn())
        acked = wardgate(
            "audit", "ack", "-c", str(_file(config)), "--reason", "forged row, ticket 7"
        )
        assert acked.returncode == 0, acked.stdout + acked.stderr
        _until(_healthy(gw))
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 2")
    found = wardgate("audit", "search", "-c", str(_file(config)), "--type", "audit.ack", "--json")
    (ack,) = [json.loads(line) for line in found.stdout.splitlines()]
    assert ack["reason"] == "forged row, ticket 7"
    assert ack["foreign"] == {"first": seq, "last": seq}
    assert ack["alarm"]["reason"] == reason
    code, out = _verify(config)
    assert code == 0, out


def test_the_database_refuses_an_entry_that_skips_the_chain(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
    con = sqlite3.connect(tmp_path / "store" / "audit.db")
    (seq,) = con.execute("SELECT max(seq) FROM audit_entry").fetchone()
    with pytest.raises(sqlite3.IntegrityError, match="audit entries are chained to the last entry"):
        con.execute(
            "INSERT INTO audit_entry (seq, time, type, event, prev_hash, hash, on_behalf, tables)"
            f" VALUES ({seq + 1}, 't', 'statement', '{{}}', '{'0' * 64}', '{'1' * 64}', '', '')"
        )
    con.close()


def _stolen_key_rewrite(config: Config) -> str:
    """The intruder's version of attack 5: rewrite an entry, then re-sign every head with a key
    of their own put where the gateway's key was (the chain is recomputed from the change on)."""
    db = config.audit.store
    key = config.audit.key_path()
    assert isinstance(db, Path) and key is not None
    mine = Ed25519PrivateKey.generate()
    key.write_bytes(
        mine.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    from wardgate.audit.checkpoints import sign_head
    from wardgate.audit.merkle import Frontier, leaf_hash

    con = sqlite3.connect(db, isolation_level=None)
    for trigger in [
        r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
    ]:
        con.execute(f"DROP TRIGGER {trigger}")
    rows = con.execute("SELECT seq, event FROM audit_entry ORDER BY seq").fetchall()
    heads = {r[0] for r in con.execute("SELECT tree_size FROM audit_head")}
    con.execute("DELETE FROM audit_head")
    prev, frontier = "0" * 64, Frontier()
    for seq, text in rows:
        event = json.loads(text)
        if event.get("statement") == "SELECT 'evidence'":
            event["statement"] = "SELECT 'nothing to see'"
        data = canonical(event)
        digest = entry_hash(seq, prev, data)
        con.execute(
            "UPDATE audit_entry SET event = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (data.decode(), prev, digest, seq),
        )
        frontier.append(leaf_hash(bytes.fromhex(digest)))
        prev = digest
        if seq in heads:
            head = sign_head(mine, frontier, time.time())
            con.execute(
                "INSERT INTO audit_head VALUES (?, ?, ?, ?, ?, ?)",
                (head.tree_size, head.root_hash, head.time, head.key_id, head.signature,
                 json.dumps(list(head.frontier))),
            )  # fmt: skip
    heads_file = config.audit.head_file
    assert heads_file is not None  # on the same host: the intruder rewrites it too
    signed = con.execute("SELECT tree_size, root_hash, time, key_id, signature FROM audit_head")
    heads_file.write_bytes(b"".join(head_line(Head(*row)) for row in signed))
    con.execute(
        "INSERT INTO audit_key VALUES (?, ?, ?)",
        (key_id(mine.public_key()), public_pem(mine.public_key()), "now"),
    )
    con.close()
    return key_id(mine.public_key())


def test_a_store_re_signed_with_another_key_fails_against_the_pinned_key(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    key = config.audit.key_path()
    store = config.audit.store
    assert key is not None and isinstance(store, Path)
    assert key.parent != store.parent  # the default key is not in the store's folder
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 'evidence'")
    pinned = wardgate("audit", "key", "-c", str(_file(config)), "--id").stdout.strip()
    pem = wardgate("audit", "key", "-c", str(_file(config))).stdout
    public = tmp_path / "auditor.pem"
    public.write_text(pem)
    assert key_id(load_public_key(pem.encode())) == pinned
    theirs = _stolen_key_rewrite(config)
    # A verifier that takes the key from the host is fooled (an external anchor, a webhook
    # whose receiver kept the old heads, would catch it too)...
    fooled = wardgate("audit", "verify", "--db", str(store), "-c", str(_file(config)))
    assert fooled.returncode == 0, fooled.stdout + fooled.stderr
    # ...unless it pins the key id the auditor wrote down.
    code, out = _verify(config, "--pin", pinned)
    assert code == 1
    assert (
        f"the public key given has key id {theirs}, not the pinned {pinned}"
        " (heads signed by any other key are refused)"
    ) in out
    # The auditor's own copy of the public key refuses every head the intruder signed.
    code, out = _verify(config, "--key", str(public), "--pin", pinned)
    assert code == 1 and f"is signed by key {theirs}, not {pinned}" in out, out


def test_an_edited_search_column_fails_verification(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 'hide me'")
    store = config.audit.store
    assert isinstance(store, Path)
    con = sqlite3.connect(store, isolation_level=None)
    con.execute("DROP TRIGGER audit_entry_no_update")
    (seq,) = con.execute(
        "SELECT seq FROM audit_entry WHERE type = 'statement' AND event LIKE '%hide me%'"
    ).fetchone()
    con.execute("UPDATE audit_entry SET subject = 'nobody' WHERE seq = ?", (seq,))
    con.close()
    search = ("audit", "search", "-c", str(_file(config)), "--user", "alice", "--type", "statement")
    assert "hide me" not in wardgate(*search).stdout  # hidden from search...
    code, out = _verify(config)  # ...but not from verify
    assert code == 1
    assert (
        f"FAILED (first bad entry: {seq}): entry {seq}: its subject column 'nobody' differs"
        " from its event ('alice'); search would miss or misfile it"
    ) in out


class _Refuse(http.server.BaseHTTPRequestHandler):
    accept = False
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not type(self).accept:
            self.send_response(503)
            self.end_headers()
            return
        type(self).bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Refuse]]]:
    handler = type("Receiver", (_Refuse,), {"accept": False, "bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/heads", handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_anchor_that_falls_behind_degrades_health_and_catches_up(
    tmp_path: Path,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
    webhook: tuple[str, type[_Refuse]],
) -> None:
    url, receiver = webhook
    config = _config(tmp_path, pki_dir, pg_server, target_db, webhook=url, anchor_lag=2)
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
        _until(_degraded(gw), timeout=15)
        report = gw.gateway.health()
        assert report["healthy"] is True  # sessions go on
        anchor = report["audit"]["anchor"]  # type: ignore[index]
        assert anchor["undelivered"] >= 1 and anchor["lag_s"] > 2
        assert str(report["degraded"]).startswith(
            f"audit anchor behind: {anchor['undelivered']} signed heads not delivered to {url},"
            " the oldest for "
        )
        assert "(limit 2 s): HTTP Error 503" in str(report["degraded"])
    # Stopped while the receiver refuses: the heads wait in the durable queue.
    waiting = read_head_file(tmp_path / "store-keys" / "audit-webhook-queue.jsonl")
    assert waiting
    receiver.accept = True
    for gw in running(config, pki_dir / "ca.pem"):
        _until(lambda: not _degraded(gw)(), timeout=15)  # noqa: B023
    delivered = [json.loads(b)["tree_size"] for b in receiver.bodies]
    assert [h.tree_size for h in waiting] == delivered[: len(waiting)]


def _last_seq(db: Path) -> int:
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT coalesce(max(seq), 0) FROM audit_entry").fetchone()[0])
    finally:
        con.close()


def test_the_unsigned_tail_is_at_most_the_interval_and_a_crash_is_signed_at_start(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    assert config.audit.checkpoint_seconds == 1.0  # the default
    db, heads_file = tmp_path / "store" / "audit.db", tmp_path / "anchors" / "heads.jsonl"

    def signed() -> int:
        return max((h.tree_size for h in read_head_file(heads_file)), default=0)

    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:
                conn.execute("SELECT 1")
            last = _last_seq(db)
            begun = time.monotonic()
            _until(lambda: signed() >= last, timeout=2.0)  # noqa: B023
            assert time.monotonic() - begun <= 1.2
        times = [dt.datetime.fromisoformat(h.time).timestamp() for h in read_head_file(heads_file)]
        gaps = [b - a for a, b in itertools.pairwise(times[:-1])]  # the last: at shutdown
        assert len(gaps) >= 2 and max(gaps) <= 1.25, gaps

    # A crash leaves a tail; the next start signs it before it takes a session.
    proc, port = start_serve(_file(config))
    try:
        dsn = (
            f"host=127.0.0.1 port={port} user=alice password=alice-secret dbname=test "
            f"sslmode=verify-full sslrootcert={pki_dir / 'ca.pem'}"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _i in range(20):
                conn.execute("SELECT 2")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    except psycopg.Error:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    crashed_at = _last_seq(db)
    proc, _ = start_serve(_file(config))
    try:
        assert signed() >= crashed_at  # signed before the listener was up
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        assert proc.stderr is not None
        proc.stderr.close()
    code, out = _verify(config)
    assert code == 0, out


def test_a_forged_retention_cut_fails_verification(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = _config(tmp_path, pki_dir, pg_server, target_db)
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            for i in range(3):
                conn.execute(f"SELECT {i}")
                time.sleep(1.1)  # a head a second
    store = config.audit.store
    assert isinstance(store, Path)
    # The attack: a cut at a signed head (the triggers allow it), entries minutes old deleted.
    from wardgate.audit.checkpoints import tree_upto
    from wardgate.audit.sqlite import SQLiteStore

    opened = SQLiteStore(store)
    cut = opened.heads()[-2].tree_size
    tree, entries = tree_upto(opened, cut, 0)
    proof = [p.hex() for p in tree.inclusion_proof(cut - 1, cut)]
    opened.close()
    con = sqlite3.connect(store, isolation_level=None)
    con.execute(
        "INSERT INTO audit_cut VALUES (?, ?, ?)", (cut, entries[-1].hash, json.dumps(proof))
    )
    con.execute("DELETE FROM audit_entry WHERE seq <= ?", (cut,))
    con.close()
    code, out = _verify(config)
    assert code == 1
    assert (
        f"FAILED (first bad entry: {cut}): the retention cut at {cut} is not vouched for by a"
        f" signed audit.cut entry: entries 1..{cut} were deleted without one"
    ) in out


def test_a_purge_beside_the_running_gateway_is_signed_and_taken_in(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    """The ``audit.cut`` entry that ``wardgate audit purge`` appends is vouched for by the key:
    the running gateway takes it in instead of raising the alarm."""
    from wardgate.audit.chained import ChainedAudit
    from wardgate.audit.retention import purge

    config = _config(tmp_path, pki_dir, pg_server, target_db)
    store, key = config.audit.store, config.audit.key_path()
    assert isinstance(store, Path) and key is not None
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
            beside = ChainedAudit.open(store, key, gateway=False)
            assert beside.checkpointer is not None
            done = purge(beside.checkpointer, 1, now=time.time() + 3 * 86400)  # all are old
            beside.store.close()
            assert done is not None
            cut = done.cut
            time.sleep(1.5)
            conn.execute("SELECT 2")
        assert gw.gateway.health()["healthy"] is True
    code, out = _verify(config)
    assert code == 0, out
    assert f"entries 1..{cut} were purged at a signed cut" in out
