"""The hash-chained audit store on the gateway's data path: every statement a client saw complete
is in the store, even after the gateway is killed, and the log verifies offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import start_serve, wardgate
from wardgate.demo.postgres import LocalPostgres


def _configure(tmp: Path, pki: Path, pg: LocalPostgres, db: str, **audit: Any) -> Path:
    def store(raw: dict[str, Any]) -> None:
        raw["audit"].update(
            store=str(tmp / "store" / "audit.db"),
            head_file=str(tmp / "anchors" / "heads.jsonl"),
            checkpoint_entries=50,
            **audit,
        )

    build_config(tmp, pki, target_entry(pg, db), edit=store)
    return tmp / "wardgate.yaml"


def _public_key(config: Path, tmp: Path) -> Path:
    key = wardgate("audit", "key", "-c", str(config))
    assert key.returncode == 0, key.stderr
    pem = tmp / "audit-public.pem"
    pem.write_text(key.stdout)
    return pem


def test_statements_reach_the_store_and_the_log_verifies(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    from wardgate.config import load

    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)
    config = load(config_file)
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            for i in range(120):
                conn.execute("SELECT %s::int AS n", (i,), prepare=False)
        assert gw.audit_settled() == {"healthy": True, "reason": "", "pending": 0}
    pem = _public_key(config_file, tmp_path)
    store, heads = tmp_path / "store" / "audit.db", tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert len(heads.read_text().splitlines()) >= 2  # every 50 entries, and at shutdown
    found = wardgate(
        "audit",
        "search",
        "--db",
        str(store),
        "--user",
        "alice",
        "--type",
        "statement",
        "--json",
        "--limit",
        "1000",
    )
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
    assert len(rows) == 120


def _dsn(port: int, pki: Path) -> str:
    return (
        f"host=127.0.0.1 port={port} user=alice password=alice-secret dbname=test "
        f"sslmode=verify-full sslrootcert={pki / 'ca.pem'}"
    )


def _recorded_statements(store: Path) -> set[str]:
    """The text of every statement the store has a record of: its ``statement.start`` (written
    before its result, or before a write reaches the server) or its summary."""
    found = wardgate("audit", "search", "--db", str(store), "--json", "--limit", "10000000")
    assert found.returncode == 0, found.stderr
    events = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
    return {e["statement"] for e in events if e["type"] in ("statement", "statement.start")}


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()


def test_killed_gateway_loses_no_statement_a_client_saw(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)
    proc, port = start_serve(config_file)
    dsn = _dsn(port, pki_dir)
    seen: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(100_000):
                    marker = f"crash-{n}-{i}"
                    conn.execute(f"SELECT '{marker}'")
                    with lock:
                        seen.append(marker)  # the client saw this one complete
        except psycopg.Error:
            return

    workers = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    time.sleep(2.0)
    _kill(proc)
    for w in workers:
        w.join(10)
    assert len(seen) > 50, "too little load to make the test mean anything"

    store = tmp_path / "store" / "audit.db"
    recorded = _recorded_statements(store)
    missing = [m for m in seen if f"SELECT '{m}'" not in recorded]
    assert not missing, f"{len(missing)} of {len(seen)} completed statements have no audit entry"
    pem = _public_key(config_file, tmp_path)
    heads = tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.timeout(600)  # ten gateways started and killed, then the whole log verified
def test_every_client_that_received_a_row_finds_its_statement_after_a_kill(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    """Issue 18, attack 2: the statement's record is durable before the first row of its result
    leaves the gateway. Ten times: three clients stream a long result, each notes its statement
    once it holds a row, two more run short statements as fast as they can (the load that group
    commit spreads over its commits), and the gateway is killed mid-stream."""
    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)
    seen: list[str] = []
    lock = threading.Lock()

    def load(dsn: str, marker: str) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(3000):  # a bound, so that the log stays quick to verify
                    query = f"SELECT '{marker}-{i}' AS m"
                    conn.execute(query)
                    with lock:
                        seen.append(query)  # this client holds the whole result
        except psycopg.Error:
            return

    def client(dsn: str, marker: str, started: threading.Event) -> None:
        query = f"SELECT '{marker}' AS m, generate_series(1, 100000000) AS g"
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for _ in conn.cursor().stream(query):
                    if not started.is_set():
                        with lock:
                            seen.append(query)  # this client holds a row of the statement
                        started.set()
        except psycopg.Error:
            started.set()

    for kill in range(10):
        proc, port = start_serve(config_file)
        dsn = _dsn(port, pki_dir)
        started = [threading.Event() for _ in range(3)]
        workers = [
            threading.Thread(target=client, args=(dsn, f"stream-{kill}-{n}", started[n]))
            for n in range(3)
        ]
        workers += [threading.Thread(target=load, args=(dsn, f"load-{kill}-{n}")) for n in range(2)]
        for w in workers:
            w.start()
        for s in started:
            s.wait(60)  # a loaded machine (CI runs two suites) can be slow to the first row
        time.sleep(0.1 * (kill % 4))  # the kill lands at different points of the streams
        _kill(proc)
        for w in workers:
            w.join(20)
    streamed = [q for q in seen if "generate_series" in q]
    assert len(streamed) == 30, f"only {len(streamed)} of 30 clients received a row"
    assert len(seen) > 100, "too little load to make the test mean anything"

    store = tmp_path / "store" / "audit.db"
    recorded = _recorded_statements(store)
    missing = [q for q in seen if q not in recorded]
    assert not missing, f"{len(missing)} of {len(seen)} statements a client saw have no record"
    pem = _public_key(config_file, tmp_path)
    heads = tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_write_reaches_the_server_only_after_its_record_is_durable(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    """A write's effect outlives a crash of the gateway whatever the client saw, so its record
    must be durable before the server gets it (a read's may be written while it runs: no result
    leaves before it). Four clients insert rows as fast as they can, in the simple and the
    extended protocol, and the gateway is killed; every row in the table has its statement's
    record in the store. Without the wait, the rows of the statements in flight at the kill
    (committed by the server, their records not yet fsync'd) have none."""
    with psycopg.connect(pg_server.dsn(target_db), autocommit=True) as conn:
        conn.execute("CREATE TABLE written (marker text)")
    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)

    def writer(dsn: str, marker: str) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                # "s": the simple protocol; "x": the extended one, each statement prepared
                simple = psycopg.ClientCursor(conn) if marker.endswith("s") else None
                for i in range(1_000_000):
                    text = f"INSERT INTO written VALUES ('{marker}-{i}')"
                    if simple is not None:
                        simple.execute(text)
                    else:
                        conn.execute(text, prepare=True)
        except psycopg.Error:
            return

    for kill in range(3):
        proc, port = start_serve(config_file)
        dsn = _dsn(port, pki_dir)
        workers = [
            threading.Thread(target=writer, args=(dsn, f"w{kill}{n}{'sx'[n % 2]}"))
            for n in range(4)
        ]
        for w in workers:
            w.start()
        time.sleep(1.5)
        _kill(proc)
        for w in workers:
            w.join(20)

    with psycopg.connect(pg_server.dsn(target_db)) as conn:
        rows = [r[0] for r in conn.execute("SELECT marker FROM written")]
    assert len(rows) > 30, "too little load to make the test mean anything"
    recorded = _recorded_statements(tmp_path / "store" / "audit.db")
    missing = [m for m in rows if f"INSERT INTO written VALUES ('{m}')" not in recorded]
    assert not missing, f"{len(missing)} of {len(rows)} rows written have no record of their write"
