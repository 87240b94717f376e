"""``wardgate demo``: an embedded PostgreSQL with synthetic patients behind a TLS gateway, and a
development OpenID provider whose tokens the gateway accepts.

Everything lives in one data directory (per user; ``/var/lib/wardgate/demo`` for root, so that the
embedded server's own account never needs a way into root's home). The second run reuses the
cluster, the seeded data, the certificates, the demo passwords and the provider's signing keys,
so it starts in seconds. ``--story`` tells the contractor story instead (``story``).
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
from wardgate.demo.fhir import FhirServer
from wardgate.demo.idp import DevProviderServer, start_dev_provider
from wardgate.demo.idp_keys import demo_users
from wardgate.demo.idp_tokens import CLIENT_ID, GATEWAY_AUDIENCE, DevProvider
from wardgate.demo.postgres import LocalPostgres, start_embedded
from wardgate.demo.seed import (
    DEMO_LABELS,
    GATEWAY_LOGIN,
    create_database_if_missing,
    create_gateway_login,
    seed,
)
from wardgate.pki import ensure_dev_pki

log = logging.getLogger(__name__)

DATABASE = "clinic"
DEMO_USERS = (("alice", "engineer"), ("bob", "clinician"), ("carol", "compliance"))
# The provider's groups and the wardgate roles they map to (identity.oidc.role_mapping).
ROLE_MAPPING = {"engineering": "engineer", "clinicians": "clinician", "compliance": "compliance"}
IDP_PORT = 15490
API_PORT = 15480
HTTP_PORT = 15443
FHIR_API = "ehr"
TOKEN_LIFETIME = 8 * 3600.0  # the ID tokens of the printed psql lines last a working day


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


def write_config(
    data_dir: Path,
    pg: LocalPostgres,
    port: int,
    passwords: dict[str, str],
    *,
    issuer: str,
    api_port: int,
    work_dir: Path | None = None,
    fhir: tuple[str, str] | None = None,
    http_port: int = 0,
) -> Path:
    """``wardgate.yaml`` in ``work_dir`` (default ``data_dir``), which also holds the identity
    state and the audit; the certificates are always those of ``data_dir``."""
    pki = ensure_dev_pki(data_dir / "pki")
    work = work_dir or data_dir
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key)}
    config: dict[str, Any] = {
        "listeners": {
            "postgres": {"host": "127.0.0.1", "port": port, "tls": tls, "auth": "password"},
            "api": {"host": "127.0.0.1", "port": api_port, "tls": tls},
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
                "phi": dict(DEMO_LABELS),
            }
        ],
        # The engineer and every AI agent see no raw PHI; the clinician and the compliance
        # officer see names and dates of birth. Everything else is masked for everyone.
        "masking": {
            "roles": {
                "clinician": {"raw": ["NAME", "DATE"]},
                "compliance": {"raw": ["NAME", "DATE"]},
            }
        },
        "approvals": {"approver_roles": ["compliance"]},
        "audit": {
            "path": str(work / "audit.jsonl"),
            "store": str(work / "audit" / "audit.db"),
            # Signed heads are anchored outside the store's folder.
            "head_file": str(work / "anchors" / "heads.jsonl"),
        },
        "identity": {
            "state": str(work / "identity.db"),
            "oidc": {
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "audiences": [GATEWAY_AUDIENCE],
                "roles_claim": "groups",
                "role_mapping": ROLE_MAPPING,
            },
        },
    }
    if fhir is not None:  # the patient-record API, behind the gateway's HTTP listener
        url, key = fhir
        config["listeners"]["http"] = {"host": "127.0.0.1", "port": http_port, "tls": tls}
        config["apis"] = [
            {"name": FHIR_API, "kind": "fhir", "url": url,
             "auth": {"api_key": {"header": "X-API-Key", "value": key}}}
        ]  # fmt: skip
        # A bulk read of patient records (an export, or a patient's whole record) waits for
        # the compliance officer.
        config["policy"] = {
            "rules": [{"name": "bulk export", "operations": ["$export"],
                       "action": "require_approval",
                       "reason": "a bulk export of patient records"},
                      {"name": "whole record", "operations": ["$everything"],
                       "action": "require_approval",
                       "reason": "a patient's whole record ($everything)"}]
        }  # fmt: skip
    path = work / "wardgate.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# Written by `wardgate demo`; development only (dev CA, demo passwords, and a\n"
            "# development identity provider whose keys are in the demo folder).\n"
        )
        yaml.safe_dump(config, f, sort_keys=False)
    return path


def write_tokens(provider: DevProvider, directory: Path) -> dict[str, Path]:
    """A fresh ID token per demo user, each in a file of its own (mode 0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {}
    for name, _role in DEMO_USERS:
        path = directory / f"{name}.id_token"
        token = provider.mint(name, lifetime=TOKEN_LIFETIME)["id_token"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        files[name] = path
    return files


def connection_lines(port: int, user: str, password: str, ca: Path) -> tuple[str, str]:
    conninfo = (
        f"host=127.0.0.1 port={port} dbname={DATABASE} user={user} password={password} "
        f"sslmode=verify-full sslrootcert={ca}"
    )
    query = urlencode({"sslmode": "verify-full", "sslrootcert": str(ca)})
    uri = f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{port}/{DATABASE}?{query}"
    return f"psql {shlex.quote(conninfo)}", uri


def token_line(port: int, user: str, token_file: Path, ca: Path) -> str:
    """A psql line whose password is the ID token in ``token_file`` (kept off the line)."""
    conninfo = (
        f"host=127.0.0.1 port={port} dbname={DATABASE} user={user} "
        f"sslmode=verify-full sslrootcert={ca}"
    )
    return f'PGPASSWORD="$(cat {shlex.quote(str(token_file))})" psql {shlex.quote(conninfo)}'


def start_provider(base: Path, passwords: dict[str, str], port: int) -> DevProviderServer:
    return start_dev_provider(
        demo_users(passwords), base / "idp" / "keys.json", port=port,
        grants_file=base / "idp" / "grants.json",
    )  # fmt: skip


def run_demo(data_dir: str | None, port: int, patients: int, story: bool = False) -> int:
    base = Path(data_dir) if data_dir else default_data_dir()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"wardgate demo: data in {base}", flush=True)
    pg = start_embedded(base / "postgres")
    idp: DevProviderServer | None = None
    fhir: FhirServer | None = None
    try:
        create_database_if_missing(pg.dsn("postgres"), DATABASE)
        summary = seed(pg.dsn(DATABASE), patients=patients)
        print(
            f"wardgate demo: {summary.patients} synthetic patients, {summary.encounters} "
            f"encounters, {summary.notes} clinical notes in database {DATABASE!r}",
            flush=True,
        )
        # The gateway reaches the target as a least-privileged login, never as the superuser.
        login = secrets.token_urlsafe(24)
        create_gateway_login(pg.dsn(DATABASE), login)
        target = pg.as_login(GATEWAY_LOGIN, login)
        passwords = _passwords(base / "demo-users.json")
        if story:
            from wardgate.demo.story import tell_story

            idp = start_provider(base, passwords, 0)
            return tell_story(base, target, passwords, idp)
        idp_port = 0 if port == 0 else IDP_PORT
        try:
            idp = start_provider(base, passwords, idp_port)
        except OSError as exc:
            print(f"wardgate demo: {exc} (port {idp_port}; --port 0 takes free ports)")
            return 1
        issuer = idp.issuer
        api_port = 0 if port == 0 else API_PORT
        fhir = FhirServer(secrets.token_urlsafe(24))  # its key stays in the gateway's config
        fhir.start()
        config_file = write_config(
            base, target, port, passwords, issuer=issuer, api_port=api_port,
            fhir=(fhir.base_url, fhir.api_key), http_port=0 if port == 0 else HTTP_PORT,
        )  # fmt: skip
        config = load(config_file)
        tokens = write_tokens(idp.provider, base / "tokens")

        def ready(gateway: Gateway) -> None:
            _host, bound = gateway.addresses["postgres"]
            ca = base / "pki" / "ca.pem"
            print(f"\nconfig: {config_file}", flush=True)
            print(f"audit log: {config.audit.path} (and the signed store {config.audit.store})")
            print(f"identity provider (DEVELOPMENT ONLY): {issuer}")
            if "api" in gateway.addresses:
                api_host, api_bound = gateway.addresses["api"]
                print(f"gateway API: https://{api_host}:{api_bound}")
            if "http" in gateway.addresses:
                http_host, http_bound = gateway.addresses["http"]
                api_url = f"https://{http_host}:{http_bound}/{FHIR_API}"
                print(f"patient-record API (FHIR R4, Synthea patients): {api_url}")
                for name in ("alice", "bob"):
                    print(
                        f'curl --cacert {shlex.quote(str(ca))} -H "Authorization: Bearer '
                        f'$(cat {shlex.quote(str(tokens[name]))})" "{api_url}/Patient?_count=2"'
                    )
            print(f"export WARDGATE_CONFIG={shlex.quote(str(config_file))}\n")
            for name, role in DEMO_USERS:
                psql_line, uri = connection_lines(bound, name, passwords[name], ca)
                print(
                    f"# {name} ({role}): with the password, or with an ID token from the provider"
                )
                print(psql_line)
                print(uri)
                print(token_line(bound, name, tokens[name], ca))
            print("\nTry: SELECT first_name, last_name, ssn, date_of_birth FROM patients LIMIT 5;")
            print("  as alice (engineer: all PHI masked) and as bob (clinician: names and dates)")
            print("Then: wardgate audit search --user alice   and   wardgate audit verify")
            print("The story of an offboarded contractor: wardgate demo --story")
            print("Ctrl-C stops the gateway and the embedded PostgreSQL.", flush=True)

        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            run(lambda: serve(config, ready))
    finally:
        if fhir is not None:
            fhir.stop()
        if idp is not None:
            idp.stop()
        pg.stop()
        print("wardgate demo: stopped", file=sys.stderr, flush=True)
    return 0
