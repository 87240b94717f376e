"""The gateway's own login to targets that demand a password (SCRAM-SHA-256, md5) or TLS.

The client always logs in to the gateway as alice; what varies is the target behind the
database name it asks for.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.raw import connect_tls, fields, scram_login, wait_for_event
from wardgate import pki
from wardgate.config import Target, User
from wardgate.demo import postgres as demo_postgres
from wardgate.demo.postgres import LocalPostgres, find_running, start_embedded
from wardgate.identity.scram import Verifier

pytestmark = pytest.mark.slow

MD5_USER, MD5_PASSWORD = "md5user", "md5-secret"
CAROL_PASSWORD = "carol-at-the-target"


def target(name: str, pg: LocalPostgres, **fields: Any) -> Target:
    entry: dict[str, Any] = {
        "name": name,
        "host": pg.host,
        "port": pg.port,
        "database": "postgres",
        "user": pg.user,
        "password": pg.password,
        "tls": "disable",
        "allow_superuser": True,  # the scratch server's logins here are about authentication
    }
    entry.update(fields)
    return Target.model_validate({k: v for k, v in entry.items() if v is not None})


def gateway_for(
    tmp: Path, pki_dir: Path, targets: list[Target], users: tuple[User, ...] = ()
) -> Generator[RunningGateway, None, None]:
    first = targets[0].model_dump(mode="json", exclude_none=True)
    first["password"] = targets[0].password.get_secret_value() if targets[0].password else None
    config = build_config(tmp, pki_dir, {k: v for k, v in first.items() if v is not None})
    config = config.model_copy(update={"targets": tuple(targets), "users": (*config.users, *users)})
    yield from running(config, pki_dir / "ca.pem")


def start_session(gw: RunningGateway, database: str, **extra: str) -> dict[str, Any]:
    """Log in through the gateway to ``database``; the target's view of the session."""
    name = f"upstream-auth-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(
        gw.dsn(dbname=database, application_name=name, **extra), autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert row is not None
        # system_user (PostgreSQL 16 and later) says how the session authenticated.
        method = None
        if conn.info.server_version >= 160000:
            method = conn.execute("SELECT system_user").fetchone()
    event = wait_for_event(gw, type="session.start", session__application=name)
    return {"user": row[0], "ssl": row[1], "system_user": method and method[0], "event": event}


def refusal(gw: RunningGateway, database: str) -> tuple[dict[str, str], dict[str, Any]]:
    """What a client asking for ``database`` is told, and what the audit log says."""
    with connect_tls(gw) as conn:
        got = scram_login(conn, "alice", gw.password["alice"], database=database)
    assert [kind for kind, _ in got][-1:] == ["E"], got
    error = fields(got[-1][1])
    event = wait_for_event(gw, type="session.refused", session__client_addr=conn.addr)
    assert event["sqlstate"] == error["C"] and event["session"]["target"] == database
    return error, event


# ---- a target with password authentication and no TLS (the embedded wheel) ----------------------


@pytest.fixture(scope="module")
def secure_pg(server_dirs: Callable[[str], Path]) -> Iterator[LocalPostgres]:
    """An embedded server: SCRAM for everyone on TCP, md5 for one role, no TLS."""
    data = server_dirs("secure-pg")
    server = start_embedded(data)
    try:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            conn.execute("SET password_encryption = 'md5'")
            conn.execute(f"CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}'")
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(f"CREATE ROLE carol LOGIN PASSWORD '{CAROL_PASSWORD}'")
            hba = data / demo_postgres.CLUSTER_DIR / "pg_hba.conf"
            # Before the catch-all scram-sha-256 lines, or it would never be reached.
            hba.write_text(f"host all {MD5_USER} 127.0.0.1/32 md5\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
            wait_until(conn, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'md5'")
        yield server
    finally:
        server.stop()


def wait_until(conn: psycopg.Connection[Any], sql: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute(sql).fetchone() in (None, (0,), (False,), ("off",)):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {sql}"
        time.sleep(0.1)


def carol_from_pg_authid(pg: LocalPostgres) -> User:
    """A gateway user whose verifier is copied from the target's own catalog."""
    with psycopg.connect(pg.dsn("postgres")) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'carol'").fetchone()
    assert row is not None
    return User(name="carol", scram=row[0])


@pytest.fixture(scope="module")
def secure_gw(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path, secure_pg: LocalPostgres
) -> Iterator[RunningGateway]:
    pg = secure_pg
    targets = [
        target("scram", pg),
        target("wrongpw", pg, password="not-the-password"),
        target("nopw", pg, password=None),
        target("md5", pg, user=MD5_USER, password=MD5_PASSWORD),
        target("md5wrong", pg, user=MD5_USER, password="not-the-password"),
        target("tlsreq", pg, tls="require"),
        target("tlsverify", pg, tls="verify-full", ca=str(pki_dir / "ca.pem")),
    ]
    users = (carol_from_pg_authid(pg),)
    yield from gateway_for(tmp_path_factory.mktemp("gw-secure"), pki_dir, targets, users)


def test_scram_upstream(secure_gw: RunningGateway) -> None:
    seen = start_session(secure_gw, "scram")
    assert (seen["user"], seen["system_user"]) == ("postgres", "scram-sha-256:postgres")
    event = seen["event"]
    assert event["session"]["target"] == "scram" and event["who"]["subject"] == "alice"
    assert event["session"]["upstream_tls"] == ""  # this target is configured without TLS
    assert event["session"]["client_tls"].startswith("TLSv1.")


def test_md5_upstream(secure_gw: RunningGateway) -> None:
    seen = start_session(secure_gw, "md5")
    assert (seen["user"], seen["system_user"]) == (MD5_USER, f"md5:{MD5_USER}")


@pytest.mark.parametrize(("database", "role"), [("wrongpw", "postgres"), ("md5wrong", MD5_USER)])
def test_wrong_upstream_password(secure_gw: RunningGateway, database: str, role: str) -> None:
    error, event = refusal(secure_gw, database)
    assert (error["S"], error["C"]) == ("FATAL", "08001")
    assert error["M"] == f'target "{database}" refused the connection'
    assert event["reason"] == (
        f'target {database}: 28P01 password authentication failed for user "{role}"'
    )
    assert event["who"]["subject"] == "alice"  # alice was fine; the gateway's login was not
    with pytest.raises(psycopg.OperationalError, match=f'target "{database}" refused'):
        psycopg.connect(secure_gw.dsn(dbname=database))


def test_no_upstream_password_configured(secure_gw: RunningGateway) -> None:
    error, event = refusal(secure_gw, "nopw")
    assert error["C"] == "08001"
    assert error["M"] == 'wardgate could not log in to target "nopw"'
    assert event["reason"] == (
        "target nopw: target asks for SCRAM-SHA-256 but no password is configured"
    )


@pytest.mark.parametrize("database", ["tlsreq", "tlsverify"])
def test_upstream_tls_against_a_server_without_it(secure_gw: RunningGateway, database: str) -> None:
    error, event = refusal(secure_gw, database)
    assert error["C"] == "08001"
    assert error["M"] == "the target does not accept encrypted connections"
    assert event["reason"] == f"target {database}: TLS refused by server"


def test_verifier_copied_from_pg_authid(
    secure_gw: RunningGateway, secure_pg: LocalPostgres
) -> None:
    copied = carol_from_pg_authid(secure_pg).verifier()
    assert copied == Verifier.from_password(CAROL_PASSWORD, copied.salt, copied.iterations)
    secure_gw.password["carol"] = CAROL_PASSWORD
    seen = start_session(secure_gw, "scram", user="carol")
    assert seen["event"]["who"]["subject"] == "carol"
    secure_gw.password["carol"] = "not-carols-password"
    with pytest.raises(psycopg.OperationalError, match='failed for user "carol"'):
        psycopg.connect(secure_gw.dsn(user="carol", dbname="scram"))


# ---- a target with TLS --------------------------------------------------------------------------


def system_bindir() -> Path | None:
    """Server binaries of the system's PostgreSQL (built with OpenSSL, unlike the wheel's)."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    bindir = Path(out.stdout.strip())
    return bindir if (bindir / "postgres").is_file() and (bindir / "initdb").is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def tls_pg(server_dirs: Callable[[str], Path], pki_dir: Path) -> Iterator[LocalPostgres]:
    """A cluster of our own from the system's server binaries, with ssl = on and the
    development PKI's server certificate (valid for 127.0.0.1)."""
    bindir = system_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries built with OpenSSL (pg_config --bindir)")
    base = server_dirs("tls-pg")
    account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None  # initdb refuses root

    def own(path: Path, mode: int) -> None:
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)
        path.chmod(mode)

    def run(tool: str, *args: str) -> None:
        result = subprocess.run(
            [str(bindir / tool), *args],
            capture_output=True,
            text=True,
            cwd="/",
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
            timeout=120,
            check=False,
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )
        assert result.returncode == 0, f"{tool} failed: {result.stderr}"

    if account is not None:
        for directory in (base, *base.parents):  # let the server's account pass through
            directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IXOTH)
    pgdata, pwfile = base / "pgdata", base / "pw"
    pgdata.mkdir()
    own(pgdata, 0o700)
    password = secrets.token_urlsafe(18)
    pwfile.write_text(password + "\n")
    own(pwfile, 0o600)
    run(
        "initdb",
        "-D",
        str(pgdata),
        "-U",
        "postgres",
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--no-locale",
    )
    devpki = pki.ensure_dev_pki(pki_dir)
    for source, name in ((devpki.server_cert, "server.crt"), (devpki.server_key, "server.key")):
        shutil.copyfile(source, pgdata / name)
        own(pgdata / name, 0o600)
    port = free_port()
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        )
    run("pg_ctl", "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log"), "start")
    try:
        yield LocalPostgres("127.0.0.1", port, "postgres", password, embedded=True)
    finally:
        run("pg_ctl", "-D", str(pgdata), "-w", "-m", "fast", "stop")


@pytest.fixture(scope="module")
def tls_gw(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path, tls_pg: LocalPostgres
) -> Iterator[RunningGateway]:
    other_ca = pki.ensure_dev_pki(tmp_path_factory.mktemp("other-pki")).ca_cert
    targets = [
        target("tls_require", tls_pg, tls="require"),
        target("tls_verify", tls_pg, tls="verify-full", ca=str(pki_dir / "ca.pem")),
        target("tls_other_ca", tls_pg, tls="verify-full", ca=str(other_ca)),
        target("tls_system_cas", tls_pg, tls="verify-full"),
        target("tls_off", tls_pg),
    ]
    yield from gateway_for(tmp_path_factory.mktemp("gw-tls"), pki_dir, targets)


@pytest.mark.parametrize("database", ["tls_require", "tls_verify"])
def test_upstream_tls(tls_gw: RunningGateway, database: str) -> None:
    seen = start_session(tls_gw, database)
    assert seen["ssl"] is True  # the target itself sees an encrypted connection
    upstream_tls = seen["event"]["session"]["upstream_tls"]
    assert upstream_tls.startswith(("TLSv1.2 ", "TLSv1.3 ")) and len(upstream_tls.split()) == 2


def test_upstream_without_tls_is_recorded_as_such(tls_gw: RunningGateway) -> None:
    seen = start_session(tls_gw, "tls_off")
    assert seen["ssl"] is False and seen["event"]["session"]["upstream_tls"] == ""


@pytest.mark.parametrize("database", ["tls_other_ca", "tls_system_cas"])
def test_upstream_certificate_not_trusted(tls_gw: RunningGateway, database: str) -> None:
    error, event = refusal(tls_gw, database)
    assert error["C"] == "08001"
    assert error["M"] == f'could not verify the TLS certificate of target "{database}"'
    assert "TLS certificate verification failed" in event["reason"]
    assert "unreachable" not in event["reason"]


def test_system_postgres_with_tls_require(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path
) -> None:
    system = find_running()
    if system is None:
        pytest.skip("no PostgreSQL admitting postgres without a password on 127.0.0.1:5432")
    with psycopg.connect(system.dsn("postgres")) as conn:
        row = conn.execute("SHOW ssl").fetchone()
    if row != ("on",):
        pytest.skip("the PostgreSQL on 127.0.0.1:5432 runs with ssl = off")
    gw_iter = gateway_for(
        tmp_path_factory.mktemp("gw-system-tls"), pki_dir, [target("sys", system, tls="require")]
    )
    gw = next(gw_iter)
    try:
        seen = start_session(gw, "sys")
        assert seen["ssl"] is True
        assert seen["event"]["session"]["upstream_tls"].startswith("TLSv1.")
    finally:
        gw_iter.close()
