"""The gateway's own Python work per pgbench -S transaction, without sockets.

    python bench/relay_cpu.py [--transactions N] [--rounds N]
    PYTHONPATH=/other/checkout/src python bench/relay_cpu.py   # another tree, to compare

A ``Relay`` with the pipeline ``wardgate serve`` builds (the policy addon with no rules, the
JSON-lines audit into a scratch folder) is fed what pgbench -S sends and what PostgreSQL answers,
as bytes, in the simple and the extended protocol; the pipeline commits (writes the audit lines)
once per eight transactions, as the group commit does for eight clients. What it measures is the
process CPU time per transaction of the relay, the session state, the pipeline and the audit:
everything the gateway does for a transaction but the system calls and the event loop. Being
CPU time of one process it is steadier on a busy machine than the throughput benchmark, though
a busy machine still slows every instruction (compare trees in the same run: ``--baseline``).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 8  # transactions per group commit: one per pgbench client
TEXT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def row_description() -> bytes:
    field = cstr("abalance") + struct.pack("!ihihih", 16396, 3, 23, 4, -1, 0)
    return message(b"T", struct.pack("!h", 1) + field)


def data_row(value: int) -> bytes:
    cell = str(value).encode()
    return message(b"D", struct.pack("!hi", 1, len(cell)) + cell)


ANSWER = row_description() + data_row(0) + message(b"C", cstr("SELECT 1")) + message(b"Z", b"I")
EXTENDED_ANSWER = message(b"1") + message(b"2") + ANSWER


def simple(aid: int) -> bytes:
    return message(b"Q", cstr(TEXT.replace("$1", str(aid))))


def extended(aid: int) -> bytes:
    value = str(aid).encode()
    return (
        message(b"P", cstr("") + cstr(TEXT) + struct.pack("!h", 0))
        + message(b"B", cstr("") + cstr("") + struct.pack("!hhih", 0, 1, len(value), 0) + value)
        + message(b"D", b"P" + cstr(""))
        + message(b"E", cstr("") + struct.pack("!i", 0))
        + message(b"S")
    )


def measure(mode: str, transactions: int, folder: Path) -> float:
    """Process CPU µs per transaction through a fresh gateway's relay."""
    from wardgate.app import Gateway
    from wardgate.config import load
    from wardgate.core.model import Identity, SessionInfo
    from wardgate.protocols.postgres.relay import Relay

    config = folder / "wardgate.yaml"
    config.write_text(
        "listeners: {postgres: {host: 127.0.0.1, port: 0}}\n"
        "users: [{name: bench, password: bench-password-long}]\n"
        "targets: [{name: db, host: 127.0.0.1, port: 5432, database: db, user: postgres,"
        " tls: disable, allow_superuser: true}]\n"
        f"audit: {{path: {folder / 'audit.jsonl'}}}\n"
    )
    config.chmod(0o600)
    gateway = Gateway(load(config))
    pipeline = gateway.pipeline
    session = SessionInfo("bench", "postgresql", "127.0.0.1:1", "postgres", "bench", "db")
    session.identity = Identity("bench", method="password")
    relay = Relay(session, pipeline, lambda data: None, lambda data: None, search_path="public")
    request, answer = (simple, ANSWER) if mode == "simple" else (extended, EXTENDED_ANSWER)
    rng = random.Random(1)
    sends = [request(rng.randrange(1, 1_000_000)) for _ in range(transactions)]
    for data in sends[:200]:  # warm the caches
        relay.from_client(data)
        relay.from_server(answer)
    pipeline.commit()
    started = time.process_time()
    for n, data in enumerate(sends):
        relay.from_client(data)
        relay.from_server(answer)
        if n % BATCH == BATCH - 1:
            pipeline.commit()
    pipeline.commit()
    spent = time.process_time() - started
    return spent * 1e6 / transactions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode; the best is kept")
    parser.add_argument("--mode", choices=("simple", "extended"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline", type=Path, metavar="SRC", help="also measure the wardgate in this src folder"
    )
    args = parser.parse_args(argv)
    if args.mode is not None:  # one measurement, in this process
        with tempfile.TemporaryDirectory(prefix="wardgate-relay-cpu-") as folder:
            Path(folder).chmod(0o700)
            print(f"{measure(args.mode, args.transactions, Path(folder)):.2f}")
        return 0
    trees = {"this tree": None} | ({"baseline": args.baseline} if args.baseline else {})
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):  # interleaved: a burst of load hits both trees alike
        for mode in ("simple", "extended"):
            for name, source in trees.items():
                env = dict(os.environ)
                if source is not None:
                    env["PYTHONPATH"] = str(source)
                argv = [sys.executable, __file__, "--mode", mode]
                argv += ["--transactions", str(args.transactions)]
                out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
                value = float(out.stdout.split()[-1])
                key = (mode, name)
                best[key] = min(best.get(key, value), value)
    print(f"{'CPU µs per -S transaction':<28}" + "".join(f"{n:>12}" for n in trees))
    for mode in ("simple", "extended"):
        print(f"{mode:<28}" + "".join(f"{best[(mode, n)]:>12.1f}" for n in trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
