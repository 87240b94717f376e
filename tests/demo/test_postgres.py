from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from wardgate.demo.postgres import (
    CLUSTER_DIR,
    PASSWORD_FILE,
    SERVICE_ACCOUNT,
    LocalPostgres,
    find_running,
    pg_bin,
    start_embedded,
)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_pg_server_answers_over_tcp(pg_server: LocalPostgres) -> None:
    for conninfo in (pg_server.dsn("postgres"), pg_server.uri("postgres")):
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT inet_server_addr()::text, current_user").fetchone()
        assert row is not None
        assert row[0].startswith("127.0.0.1")
        assert row[1] == pg_server.user


def test_find_running_is_none_when_nothing_listens() -> None:
    assert find_running(port=_unused_port()) is None


def test_stopping_a_found_server_leaves_it_running(pg_server: LocalPostgres) -> None:
    found = LocalPostgres(
        pg_server.host, pg_server.port, pg_server.user, pg_server.password, embedded=False
    )
    found.stop()
    with psycopg.connect(pg_server.dsn("postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_dsn_and_uri_survive_awkward_characters(host: str) -> None:
    server = LocalPostgres(host, 6543, "o'brien user", "p@ss:/ w'rd\\%", embedded=False)
    expected = {
        "host": host,
        "port": "6543",
        "user": "o'brien user",
        "password": "p@ss:/ w'rd\\%",
        "dbname": "my db/1",
    }
    assert conninfo_to_dict(server.dsn("my db/1")) == expected
    assert conninfo_to_dict(server.uri("my db/1")) == expected


def test_dsn_without_password_has_no_password_key() -> None:
    server = LocalPostgres("127.0.0.1", 5432, "postgres", None, embedded=False)
    assert "password" not in conninfo_to_dict(server.dsn("postgres"))
    assert server.uri("postgres") == "postgresql://postgres@127.0.0.1:5432/postgres"


def test_pg_bin_prefers_path_and_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("psql", "pgbench"):
        assert os.access(pg_bin(tool), os.X_OK)
    monkeypatch.setenv("PATH", "")
    wheel_psql = Path(pg_bin("psql"))
    assert wheel_psql.parts[-3:] == ("pginstall", "bin", "psql")
    with pytest.raises(FileNotFoundError):
        pg_bin("no-such-postgres-tool")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether pid runs; a zombie waiting for its (possibly negligent) parent does not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _server_pids(data_dir: Path) -> set[int]:
    postmaster = int((data_dir / CLUSTER_DIR / "postmaster.pid").read_text().splitlines()[0])
    return {postmaster, *_children(postmaster)}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process checks need /proc")
def test_start_embedded_lifecycle(server_dirs: Callable[[str], Path]) -> None:
    data_dir = server_dirs("lifecycle") / "pg"
    server = start_embedded(data_dir)
    try:
        assert server.embedded
        assert (server.host, server.user) == ("127.0.0.1", "postgres")
        assert stat.S_IMODE((data_dir / PASSWORD_FILE).stat().st_mode) == 0o600
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE TABLE survives_restart (id int)")
            methods = conn.execute(
                "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
            ).fetchall()
        assert methods == [("scram-sha-256",)]
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(server.dsn("postgres").replace(server.password or "", "wrong"))
        assert find_running(port=server.port) is None  # it asks for a password

        pids = _server_pids(data_dir)
        assert len(pids) > 1 and all(_alive(pid) for pid in pids)
        if os.geteuid() == 0:
            import pwd

            status = Path(f"/proc/{min(pids)}/status").read_text()
            uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
            assert pwd.getpwuid(int(uid)).pw_name == SERVICE_ACCOUNT

        adopted = start_embedded(data_dir)  # already running: the same server comes back
        assert adopted.port == server.port
    finally:
        server.stop()
    assert not any(_alive(pid) for pid in pids)
    server.stop()  # a second stop is harmless

    again = start_embedded(data_dir)
    try:
        with psycopg.connect(again.dsn("postgres")) as conn:
            assert conn.execute("SELECT to_regclass('survives_restart')::text").fetchone() == (
                "survives_restart",
            )
        pids = _server_pids(data_dir)
    finally:
        again.stop()
    assert not any(_alive(pid) for pid in pids)
