"""``wardgate demo``: an embedded PostgreSQL with synthetic patients behind a TLS gateway.

Everything lives in one data directory (per user; ``/var/lib/wardgate/demo`` for root, so that the
embedded server's own account never needs a way into root's home). The second run reuses the
cluster, the seeded data, the certificates and the demo passwords, so it starts in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import platformdirs
import yaml

from wardgate.app import Gateway, run, serve
from wardgate.config import load
from wardgate.demo.postgres import LocalPostgres, start_embedded
from wardgate.demo.seed import create_database_if_missing, seed
from wardgate.pki import ensure_dev_pki

log = logging.getLogger(__name__)

DATABASE = "clinic"
DEMO_USERS = (("alice", "engineer"), ("bob", "clinician"), ("carol", "compliance"))


def default_data_dir() -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/wardgate/demo")
    return Path(platformdirs.user_data_dir("wardgate")) / "demo"


def _passwords(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
        if all(isinstance(stored.get(name), str) for name, _ in DEMO_USERS):
            return {name: stored[name] for name, _ in DEMO_USERS}
    except (OSError, ValueError):
        pass
    passwords = {name: secrets.token_urlsafe(12) for name, _ in DEMO_USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f)
    return passwords


def write_config(data_dir: Path, pg: LocalPostgres, port: int, passwords: dict[str, str]) -> Path:
    pki = ensure_dev_pki(data_dir / "pki")
    config: dict[str, Any] = {
        "listeners": {
            "postgres": {
                "host": "127.0.0.1",
                "port": port,
                "tls": {"cert": str(pki.server_cert), "key": str(pki.server_key)},
            }
        },
        "users": [
            {"name": name, "password": passwords[name], "roles": [role]}
            for name, role in DEMO_USERS
        ],
        "targets": [
            {
                "name": DATABASE,
                "host": pg.host,
                "port": pg.port,
                "database": DATABASE,
                "user": pg.user,
                "password": pg.password,
                # The embedded server is built without TLS and listens on loopback only.
                "tls": "disable",
            }
        ],
        "audit": {
            "path": str(data_dir / "audit.jsonl"),
            "store": str(data_dir / "audit" / "audit.db"),
            # Signed heads are anchored outside the store's folder.
            "head_file": str(data_dir / "anchors" / "heads.jsonl"),
        },
    }
    path = data_dir / "wardgate.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by `wardgate demo`; development only (dev CA, demo passwords).\n")
        yaml.safe_dump(config, f, sort_keys=False)
    return path


def connection_lines(port: int, user: str, password: str, ca: Path) -> tuple[str, str]:
    conninfo = (
        f"host=127.0.0.1 port={port} dbname={DATABASE} user={user} password={password} "
        f"sslmode=verify-full sslrootcert={ca}"
    )
    query = urlencode({"sslmode": "verify-full", "sslrootcert": str(ca)})
    uri = f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{port}/{DATABASE}?{query}"
    return f"psql {shlex.quote(conninfo)}", uri


def run_demo(data_dir: str | None, port: int, patients: int) -> int:
    base = Path(data_dir) if data_dir else default_data_dir()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"wardgate demo: data in {base}", flush=True)
    pg = start_embedded(base / "postgres")
    try:
        create_database_if_missing(pg.dsn("postgres"), DATABASE)
        summary = seed(pg.dsn(DATABASE), patients=patients)
        print(
            f"wardgate demo: {summary.patients} synthetic patients, {summary.encounters} "
            f"encounters, {summary.notes} clinical notes in database {DATABASE!r}",
            flush=True,
        )
        passwords = _passwords(base / "demo-users.json")
        config_file = write_config(base, pg, port, passwords)
        config = load(config_file)

        def ready(gateway: Gateway) -> None:
            _host, bound = gateway.addresses["postgres"]
            ca = base / "pki" / "ca.pem"
            print(f"\nconfig: {config_file}", flush=True)
            print(f"audit log: {config.audit.path} (and the signed store {config.audit.store})")
            print(f"export WARDGATE_CONFIG={shlex.quote(str(config_file))}\n")
            for name, role in DEMO_USERS:
                psql_line, uri = connection_lines(bound, name, passwords[name], ca)
                print(f"# {name} ({role})")
                print(psql_line)
                print(uri)
            print("\nTry: SELECT first_name, last_name, ssn FROM patients LIMIT 5;")
            print("Then: wardgate audit search --user alice   and   wardgate audit verify")
            print("Ctrl-C stops the gateway and the embedded PostgreSQL.", flush=True)

        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            run(lambda: serve(config, ready))
    finally:
        pg.stop()
        print("wardgate demo: stopped", file=sys.stderr, flush=True)
    return 0
