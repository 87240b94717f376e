"""Processes, endpoints and probes shared by the benchmarks: gateways, PgBouncer, RSS, CPU.

Every process started here leads its own process group so that it and its children can be
stopped together; `Processes.stop_all` is what a benchmark calls on the way out.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.conninfo import make_conninfo

from wardgate.demo.postgres import LocalPostgres
from wardgate.pki import DevPKI

LOOPBACK = "127.0.0.1"
# The scratch database, and the gateway target's name: one per run (or WARDGATE_BENCH_DB), so
# that two runs on one machine do not drop each other's.
BENCH_DB = os.environ.get("WARDGATE_BENCH_DB") or f"wardgate_bench_{os.getpid()}"
GATEWAY_USER = "bench"
START_TIMEOUT = 300.0  # a masking gateway builds its detectors first: slow on a busy machine


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- processes ----------------------------------------------------------------------------------


class Processes:
    """Long-running children, each leading its own process group, stopped newest first."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []
        self._stop_signal: dict[int, signal.Signals] = {}

    def start(
        self,
        argv: list[str],
        output: Path,
        *,
        account: pwd.struct_passwd | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``env``: variables set for the child on top of this process's environment."""
        with output.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=None if env is None else {**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=output.parent,
                start_new_session=True,
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )
        self._running.append(proc)
        self._stop_signal[proc.pid] = stop_signal
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        for sig in (self._stop_signal.pop(proc.pid, signal.SIGTERM), signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} ({proc.args!r:.80}) ignored {sig.name} for {grace:.0f}s")
        if proc in self._running:
            self._running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._running)):
            self.stop(proc)


def run_tool(
    argv: list[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read; it may hold a password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {field_name} for pid {pid}")


class RssSampler:
    """Polls a process's VmRSS from a thread; ``peak`` is the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.02, limit: float = 900.0) -> None:
        self.pid = pid
        self.peak = rss_kib(pid)
        self._interval = interval
        self._limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.wait(self._interval) and time.monotonic() < deadline:
            with contextlib.suppress(OSError, BenchError):
                self.peak = max(self.peak, rss_kib(self.pid))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
            hard = wanted
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# ---- endpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    sslmode: str = "disable"

    def conninfo(self) -> str:
        return make_conninfo(
            "",
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            sslmode=self.sslmode,
            connect_timeout=10,
        )

    def libpq_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGDATABASE=self.dbname,
            PGSSLMODE=self.sslmode,
            PGCONNECT_TIMEOUT="10",
        )
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def server_endpoint(pg: LocalPostgres, dbname: str) -> Endpoint:
    return Endpoint(pg.host, pg.port, pg.user, pg.password, dbname)


def wait_until_accepting(endpoint: Endpoint, proc: subprocess.Popen[bytes], logfile: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            psycopg.connect(endpoint.conninfo()).close()
            return
        except psycopg.OperationalError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = logfile.read_text(errors="replace")[-2000:]
                raise BenchError(f"{logfile.parent.name} did not come up: {exc}\n{tail}") from exc
        time.sleep(0.2)


# ---- wardgate and PgBouncer ---------------------------------------------------------------------


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    endpoint: Endpoint
    audit: Path
    logfile: Path

    def audit_events(self) -> int:
        if self.audit.suffix == ".db":
            with contextlib.closing(sqlite3.connect(f"file:{self.audit}?mode=ro", uri=True)) as db:
                return int(db.execute("SELECT count(*) FROM audit_entry").fetchone()[0])
        with self.audit.open("rb") as file:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))

    def state(self) -> str:
        """Whether the gateway still runs, and the end of its log: for error messages."""
        code = self.proc.poll()
        alive = "still running" if code is None else f"exited with code {code}"
        tail = self.logfile.read_text(errors="replace").splitlines()[-15:]
        return f"wardgate (pid {self.proc.pid}) {alive}; its log ends:\n" + "\n".join(tail)


_LISTENING = re.compile(r"postgres listener on [\d.]+:(\d+)")


def start_gateway(
    procs: Processes,
    workdir: Path,
    name: str,
    upstream: Endpoint,
    password: str,
    pki: DevPKI | None = None,
    store: bool = False,
    phi: dict[str, str] | None = None,
    record: bool = False,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Gateway:
    """A gateway auditing to JSON lines, or with ``store`` to the signed store alone; with
    ``phi``, those columns of the target are masked (the bench user has no role: all of them);
    with ``record``, every session is recorded (encrypted, in ``recordings/``). ``env`` is set
    for its process (``WARDGATE_PURE_PYTHON``, say); ``source`` imports the wardgate package
    from another tree's ``src`` (a baseline: ``PYTHONPATH``)."""
    home = workdir / name
    home.mkdir(mode=0o700)
    listener: dict[str, Any] = {"host": LOOPBACK, "port": 0}
    if pki is not None:
        listener["tls"] = {"cert": str(pki.server_cert), "key": str(pki.server_key)}
    target: dict[str, Any] = {
        "name": BENCH_DB,
        "host": upstream.host,
        "port": upstream.port,
        "database": upstream.dbname,
        "user": upstream.user,
        "tls": "disable",
        # the bench measures the relay against the machine's own cluster, whose only login is
        # its superuser; a real deployment gives the gateway a least-privileged one
        "allow_superuser": True,
    }
    if upstream.password is not None:
        target["password"] = upstream.password
    if phi:
        target["phi"] = phi
    config = {
        "listeners": {"postgres": listener},
        "users": [{"name": GATEWAY_USER, "password": password}],
        "targets": [target],
        "audit": {"path": str(home / "audit.jsonl")},
    }
    if record:
        config["recording"] = {"enabled": True, "max_bytes": 1 << 40}
    if store:
        config["audit"] = {
            "path": None,
            "store": str(home / "store" / "audit.db"),
            "head_file": str(home / "anchors" / "heads.jsonl"),
        }
    path = home / "wardgate.yaml"
    write_private(path, yaml.safe_dump(config, sort_keys=False))
    logfile = home / "wardgate.log"
    # SIGINT and SIGTERM both stop `wardgate serve` cleanly (closing sessions, signing a head).
    argv = [sys.executable, "-m", "wardgate", "serve", "-c", str(path)]
    if source is not None:
        env = {**(env or {}), "PYTHONPATH": str(source)}
    proc = procs.start(argv, logfile, stop_signal=signal.SIGINT, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while (found := _LISTENING.search(logfile.read_text(errors="replace"))) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise BenchError(f"wardgate ({name}) did not start:\n{tail}")
        time.sleep(0.1)
    sslmode = "disable" if pki is None else "require"
    endpoint = Endpoint(LOOPBACK, int(found.group(1)), GATEWAY_USER, password, BENCH_DB, sslmode)
    wait_until_accepting(endpoint, proc, logfile)
    audit = home / "store" / "audit.db" if store else home / "audit.jsonl"
    return Gateway(proc, endpoint, audit, logfile)


def find_pgbouncer() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        log("pgbouncer is not installed and cannot be installed here (not root or no apt-get)")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "pgbouncer"]
    for attempt in ([install], [[apt, "update", "-q"], install]):
        log(f"installing pgbouncer: {' ; '.join(' '.join(a) for a in attempt)}")
        try:
            for argv in attempt:
                run_tool(argv, env, timeout=300)
        except BenchError as exc:
            log(f"install failed: {str(exc).splitlines()[0]}")
            continue
        if os.access("/usr/sbin/pgbouncer", os.X_OK):
            return "/usr/sbin/pgbouncer"
    return None


def start_pgbouncer(
    procs: Processes,
    binary: str,
    workdir: Path,
    upstream: Endpoint,
    pki: DevPKI | None = None,
    label: str = "pgbouncer",
) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """PgBouncer in session mode; it will not run as root, so it runs as postgres or nobody.
    With ``pki``, clients must use TLS (client_tls_sslmode = require), like wardgate-tls."""
    account = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                account = pwd.getpwnam(name)
                break
    home = workdir / label
    home.mkdir()
    port = free_port()
    ini = home / "pgbouncer.ini"
    userlist = home / "userlist.txt"
    target = f"host={upstream.host} port={upstream.port} dbname={upstream.dbname}"
    tls_lines = ""
    private = [home, ini, userlist]
    if pki is not None:
        cert, key = home / "server.pem", home / "server-key.pem"
        write_private(cert, pki.server_cert.read_text())
        write_private(key, pki.server_key.read_text())
        private += [cert, key]
        tls_lines = (
            f"client_tls_sslmode = require\nclient_tls_cert_file = {cert}\n"
            f"client_tls_key_file = {key}\n"
        )
    ini.write_text(
        f"[databases]\n{BENCH_DB} = {target} user={upstream.user}\n\n"
        f"[pgbouncer]\nlisten_addr = {LOOPBACK}\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {userlist}\npool_mode = session\n"
        "max_client_conn = 200\ndefault_pool_size = 20\n"
        "ignore_startup_parameters = extra_float_digits\n" + tls_lines
    )
    # PgBouncer logs in to the server with the password from auth_file, if one is needed.
    write_private(userlist, f'"{upstream.user}" "{upstream.password or ""}"\n')
    for path in private:
        path.chmod(0o700 if path.is_dir() else 0o600)
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)
    logfile = home / "pgbouncer.log"
    proc = procs.start([binary, str(ini)], logfile, account=account)
    sslmode = "disable" if pki is None else "require"
    endpoint = Endpoint(LOOPBACK, port, upstream.user, None, BENCH_DB, sslmode)
    wait_until_accepting(endpoint, proc, logfile)
    return proc, endpoint
