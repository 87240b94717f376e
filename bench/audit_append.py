"""Events per second appended to the SQLite audit store through ``ChainedAudit`` (group commit).

    python bench/audit_append.py [--events 20000] [--batches 1,10,100,1000]
                                 [--postgres postgresql://127.0.0.1/scratch]

For each batch size: ``record`` that many statement events (built beforehand, as dictionaries),
then one ``commit`` (one durable transaction: WAL, synchronous=FULL, fsync), repeated until
``--events`` are in; signed heads every 1000 entries, anchored to a head file, as in the default
configuration. The second column does what the gateway does: the ``statement_end`` hook for each
request (the statement's event written straight to its canonical JSON), then ``commit``; its time
includes making the events. Also reported: the cost of the hooks alone, which is what a statement
pays on the event loop. Target: >= 50,000 events/s at the batch sizes group commit produces under
load; with one fsync per commit, small batches are bound by the disk's fsync time.

With ``--postgres URL`` a third column appends the same events to the PostgreSQL store at that
database (its schema ``wardgate_audit`` is created there and grows; use a scratch database):
one pipelined transaction per commit, durable as the server's ``synchronous_commit`` says.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from wardgate.audit.chained import ChainedAudit
from wardgate.audit.events import Event, statement_event
from wardgate.audit.location import Location
from wardgate.core.model import Identity, Outcome, SessionInfo, Statement

_SESSIONS = [
    SessionInfo(
        f"sess-{i}",
        "postgresql",
        "127.0.0.1:50000",
        "postgres",
        target="clinic",
        identity=Identity("alice", ("engineer",), ("bob@example.org",), "scram-sha-256"),
    )
    for i in range(50)
]


def _request(i: int) -> Statement:
    session = _SESSIONS[i % 50]  # fifty sessions, as a gateway serves them
    request = Statement(session, i, f"SELECT * FROM patients WHERE id = {i}")
    request.rows, request.bytes_out, request.outcome = 1, 240, Outcome.OK
    request.ended_mono = request.started_mono + 0.000321
    return request


def _run(
    folder: Path,
    events: list[Event] | list[Statement],
    batch: int,
    name: str,
    store: Location | None = None,
) -> float:
    audit = ChainedAudit.open(
        store or folder / f"store-{name}-{batch}" / "audit.db",
        folder / "keys" / "audit.key",
        head_file=folder / f"heads-{name}-{batch}" / "heads.jsonl",
    )
    add = audit.statement_end if name == "hook" else audit.record
    try:
        started = time.perf_counter()
        for i in range(0, len(events), batch):
            for event in events[i : i + batch]:
                add(event)  # type: ignore[arg-type]
            audit.commit()
        elapsed = time.perf_counter() - started
    finally:
        audit.close()
    return len(events) / elapsed


def _hook_cost(requests: list[Statement]) -> tuple[float, float]:
    audit = ChainedAudit.__new__(ChainedAudit)
    ChainedAudit.__init__(audit, store=None)  # type: ignore[arg-type]  # record() only
    event = statement_event(requests[0], 0.0)
    started = time.perf_counter()
    for _ in requests:
        audit.record(event)
    record = (time.perf_counter() - started) / len(requests)
    started = time.perf_counter()
    for request in requests:
        audit.statement_end(request)
    hook = (time.perf_counter() - started) / len(requests)
    return record * 1e6, hook * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", default="1,10,100,1000")
    parser.add_argument("--postgres", default=None, help="also a PostgreSQL store (a URL)")
    args = parser.parse_args()
    requests = [_request(i) for i in range(args.events)]
    events = [statement_event(r, 0.0) for r in requests]
    record_us, hook_us = _hook_cost(requests)
    print(
        f"record(): {record_us:.2f} us/event; statement_end hook (build + record): {hook_us:.2f} us"
    )
    columns = 3 if args.postgres else 2
    pg_title = f" {'PostgreSQL record':>20}" if args.postgres else ""
    print(f"{'':>15} {'record(event)':>20} {'statement_end(request)':>20}{pg_title}")
    print(f"{'batch':>6} {'events':>8}" + f" {'events/s':>10} {'us/event':>9}" * columns)
    with tempfile.TemporaryDirectory(prefix="wardgate-bench-") as tmp:
        for batch in (int(b) for b in args.batches.split(",")):
            n = min(len(events), max(batch * 200, 2000)) if batch < 10 else len(events)
            rate = _run(Path(tmp), events[:n], batch, "record")
            hook = _run(Path(tmp), requests[:n], batch, "hook")
            pg = ""
            if args.postgres:
                on_pg = _run(Path(tmp), events[:n], batch, "pg", args.postgres)
                pg = f" {on_pg:>10,.0f} {1e6 / on_pg:>9.1f}"
            print(
                f"{batch:>6} {n:>8} {rate:>10,.0f} {1e6 / rate:>9.1f}"
                f" {hook:>10,.0f} {1e6 / hook:>9.1f}{pg}"
            )


if __name__ == "__main__":
    main()
