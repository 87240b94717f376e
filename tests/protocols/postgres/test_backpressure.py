"""A client that stops reading a large result must not make the gateway buffer it."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.gateway_harness import RunningGateway
from tests.protocols.postgres.raw import login, query

ROWS = 150_000
ROW_BYTES = 1_000  # about 150 MB in all


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_stalled_reader_keeps_gateway_memory_bounded(gateway: RunningGateway) -> None:
    conn = login(gateway)
    try:
        before = rss_bytes()
        conn.send(query(f"SELECT repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS})"))
        time.sleep(3)  # the client reads nothing; the target keeps producing
        stalled = rss_bytes()
        # Other sessions are served meanwhile.
        with psycopg.connect(gateway.dsn()) as other:
            assert other.execute("SELECT 'served'").fetchone() == ("served",)
        rows = 0
        while True:
            msg = conn.message()
            assert msg is not None, "connection closed before the result ended"
            if msg[0] == "D":
                rows += 1
            elif msg[0] == "Z":
                break
            else:
                assert msg[0] in "TC", msg
    finally:
        conn.close()
    assert rows == ROWS
    # The gateway (in this process) held at most a few write buffers' worth, not the result.
    assert stalled - before < 32 << 20, f"RSS grew by {(stalled - before) >> 20} MiB"
