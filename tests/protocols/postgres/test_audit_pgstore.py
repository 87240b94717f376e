"""A gateway auditing to a PostgreSQL store: psycopg queries through it are in the store, and
``wardgate audit verify --db postgresql://...`` verifies the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.gateway_harness import build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import wardgate
from wardgate.demo.postgres import LocalPostgres


def test_statements_reach_a_postgresql_store_and_the_log_verifies(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str, scratch_db: str
) -> None:
    url = pg_server.uri(scratch_db)

    def store(raw: dict[str, Any]) -> None:
        raw["audit"] = {
            "path": None,
            "store": url,
            "key": "keys/audit-signing.key",
            "head_file": "anchors/heads.jsonl",
            "checkpoint_entries": 50,
        }

    config = build_config(tmp_path, pki_dir, target_entry(pg_server, target_db), edit=store)
    path = tmp_path / "wardgate.yaml"
    assert config.audit.store == url and config.health_path() == tmp_path / "keys" / "health.json"
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            for i in range(120):
                conn.execute("SELECT %s::int AS n", (i,), prepare=False)
        assert gw.audit_settled() == {"healthy": True, "reason": "", "pending": 0}
    key = wardgate("audit", "key", "-c", str(path))
    assert key.returncode == 0, key.stderr
    pem = tmp_path / "audit-public.pem"
    pem.write_text(key.stdout)
    heads = tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate("audit", "verify", "--db", url, "--key", str(pem), "--head", str(heads))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert len(heads.read_text().splitlines()) >= 2
    found = wardgate("audit", "search", "-c", str(path), "--user", "alice", "--json")
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
    assert sum(1 for r in rows if r["type"] == "statement") == 120
