"""The latency masking adds to one result, direct and through wardgate side by side in one run.

The demo's schema and seed (``wardgate.demo.seed``: patients, encounters, clinical notes) in a
scratch database, and a ``wardgate serve`` in front of it set up as the demo runs it: a TLS
listener, the signed audit store alone (no result before its durable record) and the demo's PHI
labels. The bench user has no role, so it sees what the demo's alice (engineer) sees: every
labelled column masked, the notes content-scanned. psycopg runs each query over one connection
per path, interleaved in rounds, and the script prints p50, p95 and p99 per path and what the
gateway adds (the gateway's percentile minus the direct one).

    python bench/latency.py [--iterations 200] [--rounds 2] [--compare /work/main]

``--compare TREE`` starts a second gateway from another source tree (its ``src`` first on
PYTHONPATH), measured in the same rounds: before and after a change, on one machine at once.
Targets (issue 16): at most 5 ms added at p99 for the 1000-row and the 100-note results.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from harness import (
    BenchError,
    Endpoint,
    Gateway,
    Processes,
    log,
    server_endpoint,
    start_gateway,
)
from wardgate.demo.postgres import LocalPostgres, find_running
from wardgate.demo.seed import DEMO_LABELS, seed
from wardgate.pki import DevPKI, ensure_dev_pki

DATABASE = "wardgate_latency"
TARGET_MS = 5.0


@dataclass(frozen=True)
class Query:
    name: str
    text: str
    target: bool  # whether issue 16's 5 ms target applies


QUERIES = (
    Query("patients, 1000 rows", "SELECT * FROM patients ORDER BY id LIMIT 1000", True),
    Query(
        "clinical notes, 100",
        "SELECT id, patient_id, written_at, body FROM clinical_notes ORDER BY id LIMIT 100",
        True,
    ),
    Query("patients, 10 rows", "SELECT * FROM patients ORDER BY id LIMIT 10", False),
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def timed(conn: psycopg.Connection[tuple[object, ...]], text: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(text)
            cur.fetchall()
        out.append(time.perf_counter() - started)
    return out


def prepare(main: LocalPostgres, patients: int) -> Endpoint:
    with psycopg.connect(main.dsn("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    summary = seed(main.dsn(DATABASE), patients=patients)
    log(f"seeded {DATABASE}: {summary}")
    return server_endpoint(main, DATABASE)


def gateway_from(
    procs: Processes, work: Path, name: str, direct: Endpoint, pki: DevPKI, tree: str | None
) -> Gateway:
    """A gateway as the demo runs one (TLS, the signed store, the demo's labels); from another
    source tree when ``tree`` is given."""
    saved = os.environ.get("PYTHONPATH")
    if tree is not None:
        os.environ["PYTHONPATH"] = str(Path(tree) / "src")
    try:
        return start_gateway(
            procs, work, name, direct, secrets.token_urlsafe(16), pki=pki, store=True,
            phi=dict(DEMO_LABELS),
        )  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def report(times: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> bool:
    met = True
    print(
        f"\n{args.rounds} x {args.iterations} executions per query and path, one psycopg "
        "connection each, interleaved; milliseconds\n"
    )
    head = (
        f"{'query':<22}{'path':<22}{'p50':>8}{'p95':>8}{'p99':>8}{'+p50':>8}{'+p95':>8}{'+p99':>8}"
    )
    print(head)
    print("-" * len(head))
    for query in QUERIES:
        by_path = times[query.name]
        direct = by_path["direct"]
        for path, values in by_path.items():
            points = (0.5, 0.95, 0.99)
            cells = [pct(values, p) * 1000 for p in points]
            added = [c - pct(direct, p) * 1000 for c, p in zip(cells, points, strict=True)]
            line = f"{query.name:<22}{path:<22}" + "".join(f"{c:>8.2f}" for c in cells)
            if path != "direct":
                line += "".join(f"{a:>8.2f}" for a in added)
                if query.target:
                    ok = added[2] <= TARGET_MS
                    met = met and ok
                    line += f"  +p99 <= {TARGET_MS:g} {'ok' if ok else 'MISSED'}"
            print(line)
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=200, help="per query, path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--patients", type=int, default=2000, help="seeded patients (>= 1000)")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--compare", metavar="TREE", help="also a gateway from TREE/src")
    parser.add_argument("--keep", action="store_true", help="keep the database and work folder")
    args = parser.parse_args()
    main_pg = find_running(args.pg_host, args.pg_port)
    if main_pg is None:
        raise BenchError(f"no PostgreSQL admits postgres at {args.pg_host}:{args.pg_port}")
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="wardgate-latency-"))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        direct = prepare(main_pg, max(args.patients, 1000))
        pki = ensure_dev_pki(work / "pki")
        gateways = {"wardgate": gateway_from(procs, work, "wardgate", direct, pki, None)}
        if args.compare:
            gateways["wardgate, --compare"] = gateway_from(
                procs, work, "compare", direct, pki, args.compare
            )
        conns = {"direct": psycopg.connect(direct.conninfo(), autocommit=True)}
        for name, gateway in gateways.items():
            conninfo = gateway.endpoint.conninfo() + f" sslrootcert={pki.ca_cert}"
            conns[name] = psycopg.connect(conninfo, autocommit=True)
        times: dict[str, dict[str, list[float]]] = {q.name: {p: [] for p in conns} for q in QUERIES}
        for query in QUERIES:  # warm caches, prepared statements and the gateways' plans
            for conn in conns.values():
                timed(conn, query.text, 10)
        for round_no in range(args.rounds):
            for query in QUERIES:
                for path, conn in conns.items():
                    times[query.name][path] += timed(conn, query.text, args.iterations)
            log(f"round {round_no + 1}/{args.rounds} done")
        for conn in conns.values():
            conn.close()
        met = report(times, args)
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(main_pg.dsn("postgres"), autocommit=True) as conn,
            ):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(DATABASE)
                    )
                )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
