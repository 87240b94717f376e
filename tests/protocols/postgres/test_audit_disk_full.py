"""A full disk under the audit store: results are withheld, new sessions are refused with a clear
error, the gateway's health says why, and it recovers by itself once there is room again."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.gateway_harness import build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.wardgate_cli import wardgate
from wardgate.config import load
from wardgate.demo.postgres import LocalPostgres


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_full_disk_withholds_results_refuses_sessions_and_recovers(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str, small_disk: Path
) -> None:
    build_config(tmp_path, pki_dir, target_entry(pg_server, target_db))
    config_file = tmp_path / "wardgate.yaml"
    raw = yaml.safe_load(config_file.read_text())
    raw["audit"].update(
        store=str(small_disk / "audit.db"), head_file=str(tmp_path / "anchors" / "heads.jsonl")
    )
    config_file.write_text(yaml.safe_dump(raw))
    for gw in running(load(config_file), pki_dir / "ca.pem"):
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT 'before'").fetchone() == ("before",)
            filler = _fill(small_disk)
            with pytest.raises(psycopg.OperationalError) as excinfo:
                for i in range(5000):  # until the store's next write finds no room
                    conn.execute(f"SELECT 'filling {i}'").fetchone()
        assert "audit log is unavailable" in str(excinfo.value)
        health = gw.gateway.health()["audit"]
        assert isinstance(health, dict) and health["healthy"] is False
        time.sleep(1.5)  # the health file is rewritten every second
        said = wardgate("health", "-c", str(config_file))
        assert said.returncode == 1 and '"healthy": false' in said.stdout
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(gw.dsn())
        assert "audit log is unavailable" in str(refused.value)

        filler.unlink()
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(gw.dsn(), autocommit=True) as conn:
                    assert conn.execute("SELECT 'after'").fetchone() == ("after",)
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the gateway did not recover"
                time.sleep(0.5)
        assert gw.audit_settled() == {"healthy": True, "reason": "", "pending": 0}
        time.sleep(1.5)
        said = wardgate("health", "-c", str(config_file))
        assert said.returncode == 0, said.stdout + said.stderr

    key = wardgate("audit", "key", "-c", str(config_file))
    assert key.returncode == 0, key.stderr
    pem = tmp_path / "public.pem"
    pem.write_text(key.stdout)
    store, heads = small_disk / "audit.db", tmp_path / "anchors" / "heads.jsonl"
    verified = wardgate(
        "audit", "verify", "--db", str(store), "--key", str(pem), "--head", str(heads)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
