"""A statement's size in the audit and on the wire (red-team run of 2026-12-07: a 20 MB
statement was stored whole in the signed audit store, and would be in every SIEM copy).

The audit keeps ``audit.max_statement_bytes`` (64 KiB) of a statement's text, with the length
and SHA-256 of all of it, so the record still binds the exact statement; the gateway refuses a
statement over ``policy.max_statement_bytes`` (16 MiB) with 42501, and the session goes on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.protocols.postgres.test_audit_store import _configure
from tests.wardgate_cli import wardgate
from wardgate.demo.postgres import LocalPostgres

LIMIT = 64 << 10


def _stored(tmp: Path) -> list[dict[str, Any]]:
    found = wardgate(
        "audit", "search", "--db", str(tmp / "store" / "audit.db"), "--user", "alice", "--json",
        "--limit", "1000",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    return [json.loads(line) for line in found.stdout.splitlines() if line.strip()]


def _logged(tmp: Path) -> list[dict[str, Any]]:
    lines = (tmp / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def test_a_long_statement_is_kept_cut_with_the_digest_of_all_of_it(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    from tests.gateway_harness import running
    from wardgate.config import load

    config = load(_configure(tmp_path, pki_dir, pg_server, target_db))
    # 200 KB of text, with a character of three bytes across the cut
    text = "SELECT 1 AS n /* " + "é" * 3 + "€" * 70_000 + " */"
    whole = text.encode()
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            assert conn.execute(text.encode(), prepare=False).fetchone() == (1,)
    stored = [e for e in _stored(tmp_path) if e["type"] in ("statement", "statement.start")]
    logged = [e for e in _logged(tmp_path) if e.get("type") == "statement"]
    assert {e["type"] for e in stored} == {"statement", "statement.start"} and logged
    for event in [*stored, *logged]:
        kept = event["statement"].encode()
        assert LIMIT - 3 < len(kept) <= LIMIT and whole.startswith(kept)
        assert event["statement_truncated"] == {
            "bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
        }  # fmt: skip
    assert config.audit.max_statement_bytes == LIMIT  # the default


def test_a_statement_over_the_gateways_limit_is_refused_and_the_session_goes_on(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    from tests.gateway_harness import running
    from wardgate.config import load

    config = load(_configure(tmp_path, pki_dir, pg_server, target_db))
    huge = "SELECT 1 /* " + "x" * (20 << 20) + " */"  # the red-team run's 20 MB
    for gw in running(config, pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(huge.encode(), prepare=False)
            assert "over the gateway's limit of 16777216" in str(refused.value)
            assert "policy.max_statement_bytes" in str(refused.value)
            assert conn.execute("SELECT 2", prepare=False).fetchone() == (2,)
    entries = [e for e in _stored(tmp_path) if e["type"] == "statement"]
    denied = [e for e in entries if e["decision"] == "deny"]
    assert len(denied) == 1 and len(json.dumps(denied[0])) < LIMIT + 4096
    assert denied[0]["statement_truncated"]["bytes"] == len(huge)
    assert (tmp_path / "store" / "audit.db").stat().st_size < 4 << 20
    assert config.policy.max_statement_bytes == 16 << 20  # the default
