"""The hash-chained audit store on the gateway's data path: every statement a client saw complete
is in the store, even after the gateway is killed, and the log verifies offline."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

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
        assert gw.gateway.health()["audit"] == {"healthy": True, "reason": "", "pending": 0}
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


def test_killed_gateway_loses_no_statement_a_client_saw(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)
    proc, port = start_serve(config_file)
    dsn = (
        f"host=127.0.0.1 port={port} user=alice password=alice-secret dbname=test "
        f"sslmode=verify-full sslrootcert={pki_dir / 'ca.pem'}"
    )
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
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()
    for w in workers:
        w.join(10)
    assert len(seen) > 50, "too little load to make the test mean anything"

    store = tmp_path / "store" / "audit.db"
    found = wardgate(
        "audit",
        "search",
        "--db",
        str(store),
        "--type",
        "statement",
        "--json",
        "--limit",
        "10000000",
    )
    assert found.returncode == 0, found.stderr
    recorded = {json.loads(line)["statement"] for line in found.stdout.splitlines() if line.strip()}
    missing = [m for m in seen if f"SELECT '{m}'" not in recorded]
    assert not missing, f"{len(missing)} of {len(seen)} completed statements have no audit entry"
    pem = _public_key(config_file, tmp_path)
    heads = tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_every_client_that_received_a_row_finds_its_statement_after_a_kill(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    """Issue 18, attack 2: the statement's record is durable before the first row of its result
    leaves the gateway. Ten times: three clients stream a long result, each notes its statement
    once it holds a row, and the gateway is killed mid-stream."""
    config_file = _configure(tmp_path, pki_dir, pg_server, target_db)
    seen: list[str] = []
    lock = threading.Lock()

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
        dsn = (
            f"host=127.0.0.1 port={port} user=alice password=alice-secret dbname=test "
            f"sslmode=verify-full sslrootcert={pki_dir / 'ca.pem'}"
        )
        started = [threading.Event() for _ in range(3)]
        workers = [
            threading.Thread(target=client, args=(dsn, f"stream-{kill}-{n}", started[n]))
            for n in range(3)
        ]
        for w in workers:
            w.start()
        for s in started:
            s.wait(60)  # a loaded machine (CI runs two suites) can be slow to the first row
        time.sleep(0.1 * (kill % 4))  # the kill lands at different points of the streams
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
        for w in workers:
            w.join(20)
    assert len(seen) == 30, f"only {len(seen)} of 30 clients received a row"

    store = tmp_path / "store" / "audit.db"
    found = wardgate("audit", "search", "--db", str(store), "--json", "--limit", "10000000")
    assert found.returncode == 0, found.stderr
    recorded = {json.loads(line).get("statement") for line in found.stdout.splitlines() if line}
    missing = [q for q in seen if q not in recorded]
    assert not missing, f"{len(missing)} of {len(seen)} streamed statements have no audit entry"
    pem = _public_key(config_file, tmp_path)
    heads = tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
