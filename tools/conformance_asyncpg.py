"""Run asyncpg's own test suite directly against PostgreSQL and through a `wardgate serve` it
starts, and print the pass counts side by side, with every test that passes directly but not
through the gateway.

Outside CI: it takes minutes. The tests come from asyncpg's source distribution, of the version
installed here: ``--source`` names a downloaded sdist (``.tar.gz``) or an unpacked one; without it
the sdist is fetched with ``pip download --no-binary :all: --no-deps asyncpg==<version>``. They run
against the installed asyncpg (its ``_testbase`` is part of the wheel), with asyncpg's "running
cluster" mode (``PGHOST`` set), so the tests that manage a cluster of their own (HBA changes,
replicas, server restarts) skip themselves the same way in both runs. ``test_connect.py`` (which
needs a cluster it may reconfigure) and ``test__sourcecode.py`` (a linter run) are left out.

The gateway is configured as the issue describes a conformance run: TLS verified against a
development CA, one administrator user, no masking, the signed audit store on. Each run gets a
fresh database; the target user must be able to create databases (the default is ``postgres``).

    .venv/bin/python tools/conformance_asyncpg.py [--source asyncpg-0.32.0.tar.gz] [-k EXPR]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import yaml

from wardgate.pki import ensure_dev_pki

LEFT_OUT = ("test_connect.py", "test__sourcecode.py")
_LISTENING = re.compile(r"postgres listener on 127\.0\.0\.1:(\d+)")
USER, PASSWORD = "conformance", "conformance-secret"
# Databases the suite names itself (a gateway target each, of the same name on the server).
SUITE_DATABASES = ("postgres", "testdb", "asyncpg_intro_test")


def _sdist(source: str | None, work: Path) -> Path:
    """The unpacked sdist's folder."""
    if source is None:
        version = importlib.metadata.version("asyncpg")
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"]
        subprocess.run([*pip, "--no-deps", f"asyncpg=={version}", "-d", str(work)], check=True)
        source = str(next(work.glob("asyncpg-*.tar.gz")))
    path = Path(source)
    if path.is_dir():
        return path
    with tarfile.open(path) as archive:
        archive.extractall(work, filter="data")
    return next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("asyncpg-"))


def _suite(sdist: Path, work: Path) -> Path:
    """The tests alone in a folder of their own, so that ``import asyncpg`` finds the installed
    (compiled) package, not the sdist's sources."""
    suite = work / "suite"
    shutil.copytree(sdist / "tests", suite / "tests")
    (suite / "pytest.ini").write_text("[pytest]\n")
    return suite


def _drop_suite_databases(admin: str) -> None:
    """What an earlier run's failing test left behind would fail the next run's."""
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in SUITE_DATABASES[1:]:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


Started = tuple[subprocess.Popen[bytes], int, Path]


def _start_gateway(args: argparse.Namespace, work: Path, database: str) -> Started:
    pki = ensure_dev_pki(work / "pki")
    targets = []
    for name in (database, *SUITE_DATABASES):
        target: dict[str, object] = {
            "name": name,
            "host": args.host,
            "port": args.port,
            "database": name,
            "user": args.user,
            "tls": "disable",
            # asyncpg's suite needs a superuser (it makes roles, extensions, event triggers):
            # acceptable for a conformance run on a scratch server, never for a real target.
            "allow_superuser": True,
        }
        if args.password:
            target["password"] = args.password
        targets.append(target)
    audit = {"path": str(work / "audit.jsonl")}
    if not args.no_store:
        audit["store"] = str(work / "audit.db")
    config = {
        "listeners": {
            "postgres": {
                "host": "127.0.0.1",
                "port": 0,
                "tls": {"cert": str(pki.server_cert), "key": str(pki.server_key)},
            }
        },
        "users": [{"name": USER, "password": PASSWORD, "roles": ["administrator"]}],
        "targets": targets,
        "policy": {"admin_roles": ["administrator"]},
        "audit": audit,
    }
    path = work / "wardgate.yaml"
    path.write_text(yaml.safe_dump(config))
    log = work / "wardgate.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wardgate", "serve", "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return proc, int(found.group(1)), pki.ca_cert
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"wardgate serve did not start; see {log}")


def _run(suite: Path, env: dict[str, str], name: str, keyword: str | None) -> dict[str, str]:
    """Each test's outcome: passed, failed, error or skipped."""
    report = suite / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "-p", "no:cacheprovider", "-q"]
    command += ["--timeout", "120", "--tb=short", f"--junitxml={report}", "tests"]
    command += [f"--ignore=tests/{left}" for left in LEFT_OUT]
    if keyword:
        command += ["-k", keyword]
    print(f"running asyncpg's tests {name} ...", flush=True)
    with (suite / f"{name}.log").open("wb") as out:
        subprocess.run(command, cwd=suite, env={**os.environ, **env}, stdout=out, stderr=out)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
        outcomes[test] = outcome
    return outcomes


def _counts(outcomes: dict[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(("passed", "failed", "error", "skipped"), 0)
    for outcome in outcomes.values():
        counts[outcome] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="asyncpg sdist (.tar.gz) or its unpacked folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--password", default="")
    parser.add_argument("-k", dest="keyword", help="only the tests pytest -k selects")
    parser.add_argument(
        "--no-store", action="store_true", help="JSON-lines audit only, no signed store"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, XML)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wardgate-conformance-"))
    suite = _suite(_sdist(args.source, work), work)
    admin = f"host={args.host} port={args.port} user={args.user} dbname=postgres"
    if args.password:
        admin += f" password={args.password}"
    direct_db, gateway_db = "wardgate_conformance_direct", "wardgate_conformance_gateway"
    _fresh_database(admin, direct_db)
    _fresh_database(admin, gateway_db)
    server_env = {"PGHOST": args.host, "PGPORT": str(args.port), "PGUSER": args.user}
    if args.password:
        server_env["PGPASSWORD"] = args.password
    _drop_suite_databases(admin)
    direct = _run(suite, {**server_env, "PGDATABASE": direct_db}, "direct", args.keyword)
    _drop_suite_databases(admin)

    proc, port, ca = _start_gateway(args, work, gateway_db)
    try:
        gateway_env = {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGUSER": USER,
            "PGPASSWORD": PASSWORD,
            "PGDATABASE": gateway_db,
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": str(ca),
        }
        through = _run(suite, gateway_env, "gateway", args.keyword)
    finally:
        proc.terminate()
        proc.wait(30)

    print(f"{'':10}{'passed':>8}{'failed':>8}{'error':>8}{'skipped':>8}")
    for name, outcomes in (("direct", direct), ("gateway", through)):
        counts = _counts(outcomes)
        print(f"{name:10}" + "".join(f"{counts[k]:>8}" for k in counts))
    lost = sorted(t for t, o in direct.items() if o == "passed" and through.get(t) != "passed")
    gained = sorted(t for t, o in through.items() if o == "passed" and direct.get(t) != "passed")
    print(f"\npass directly, not through the gateway ({len(lost)}):")
    for test in lost:
        print(f"  {test}: {through.get(test, 'not run')}")
    if gained:
        print(f"\npass through the gateway, not directly ({len(gained)}):")
        for test in gained:
            print(f"  {test}: {direct.get(test, 'not run')}")
    if args.keep:
        print(f"\nlogs and reports: {suite}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
