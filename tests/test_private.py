"""Attack 9 of issue 14: the gateway's state is private. A gateway started through the harness
from a process whose umask is the usual 022, with a SQLite audit store, identity state,
recordings and a masking key, leaves nothing under its state folder that another account may
read (files 0600, folders 0700); ``wardgate check`` reports state made looser by hand."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import wardgate
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import seed
from wardgate.private import loose


@pytest.fixture
def usual_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_every_state_file_is_private(
    tmp_path: Path, pg_server: LocalPostgres, usual_umask: None
) -> None:
    state = tmp_path / "state"

    def stateful(raw: dict[str, Any]) -> None:
        raw["audit"] = {
            "path": str(state / "audit.jsonl"),
            "store": str(state / "audit" / "audit.db"),
            "head_file": str(state / "anchors" / "heads.jsonl"),
        }
        raw["identity"] = {"state": str(state / "identity.db")}
        raw["recording"] = {"enabled": True}
        raw["targets"][0]["phi"] = {"patients.ssn": "SSN"}

    with temporary_database(pg_server, "wardgate_private") as database:
        seed(pg_server.dsn(database), patients=5)
        config = build_config(
            tmp_path, tmp_path / "pki", target_entry(pg_server, database), edit=stateful
        )
        for gw in running(config, tmp_path / "pki" / "ca.pem"):
            with psycopg.connect(gw.dsn("alice"), autocommit=True) as conn:
                conn.execute("SELECT ssn FROM patients WHERE id = 1").fetchall()
                conn.execute("SELECT 1").fetchall()
            gw.events()
            seen = _modes(state)
            # SQLite's WAL and shared memory files exist while the store is open.
            assert {"audit/audit.db-wal", "audit/audit.db-shm", "identity.db-wal"} <= set(seen)
            assert {"audit.jsonl", "masking.key", "recording.key", "recordings"} <= set(seen)
            assert any(name.startswith("recordings/") for name in seen), seen
            _assert_private(seen)
        _assert_private(_modes(state))  # after the stores closed, too
    assert loose(config) == []

    (state / "audit" / "audit.db").chmod(0o644)
    (state / "anchors").chmod(0o755)
    (state / "audit").chmod(0o711)  # passage only: shows nothing, not reported
    checked = wardgate("check", "-c", str(tmp_path / "wardgate.yaml"))
    assert checked.returncode == 1
    assert f"{state / 'audit' / 'audit.db'} is 0644" in checked.stderr
    assert f"{state / 'anchors'} is 0755" in checked.stderr
    assert "chmod 600" in checked.stderr and "chmod 700" in checked.stderr
    assert f"{state / 'audit'} is" not in checked.stderr


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _assert_private(modes: dict[str, int]) -> None:
    assert modes
    loose_ones = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose_ones, loose_ones
