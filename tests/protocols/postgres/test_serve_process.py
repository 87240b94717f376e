"""``wardgate serve`` as a process: it starts from a config file and stops cleanly on SIGTERM
and SIGINT, ending live sessions with a clear message, even while they are busy."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import build_config
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import start_serve
from wardgate.demo.postgres import LocalPostgres


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_busy_gateway_cleanly(
    tmp_path: Path, pg_server: LocalPostgres, target_db: str, signum: int
) -> None:
    config = build_config(tmp_path, tmp_path / "pki", target_entry(pg_server, target_db))
    config_file = tmp_path / "wardgate.yaml"
    proc, port = start_serve(config_file)
    dsn = (
        f"host=127.0.0.1 port={port} user=alice password=alice-secret dbname=test "
        f"sslmode=verify-full sslrootcert={tmp_path / 'pki' / 'ca.pem'}"
    )
    errors_seen: list[BaseException] = []
    queries = [0]

    def busy() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while True:
                    conn.execute("SELECT 1")
                    queries[0] += 1
        except BaseException as exc:
            errors_seen.append(exc)

    workers = [threading.Thread(target=busy) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(1.5)
    os.kill(proc.pid, signum)
    try:
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        proc.stderr.close()
    for w in workers:
        w.join(10)
    assert queries[0] > 0
    assert len(errors_seen) == 4
    assert all(isinstance(e, errors.AdminShutdown | psycopg.OperationalError) for e in errors_seen)
    assert any(isinstance(e, errors.AdminShutdown) for e in errors_seen)
    events = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    ends = [e for e in events if e["type"] == "session.end"]
    assert len(ends) == 4
    assert all("shutting down" in e["reason"] for e in ends)
    assert config.audit.path == tmp_path / "audit.jsonl"
