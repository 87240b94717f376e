"""Property: the gateway's model of the session equals the server's, and what it judged ran.

Hypothesis generates sessions: batches of Parse/Bind/Describe/Execute/Close ending in Sync, and
simple Queries, over a few reused names (so Parses of existing names, Binds of missing
statements and Executes of missing portals happen), with statements that fail (1/0, syntax
errors, multi-statement Parses) and transaction control (BEGIN, COMMIT, ROLLBACK, savepoints,
DECLARE cursors, PREPARE, DEALLOCATE, SET and SET LOCAL of search_path, DISCARD ALL).

What is compared, and why it is sound:

- After every ReadyForQuery (batches sent one at a time), the client runs one more simple Query
  on the same session, through the gateway: the named prepared statements
  (``pg_prepared_statements``), the named portals (``pg_cursors``, which lists protocol portals
  and SQL cursors alike) and ``current_setting('search_path')``. That Query is the server's own
  account of its state; being a Query it destroys only the unnamed statement and portal, which
  the gateway's model destroys too (it goes through the gateway), so the two remain comparable.
  It is compared with ``SessionState.confirmed`` of the live relay, read on the gateway's event
  loop, and the transaction status with ReadyForQuery's. In a failed transaction (status E) the
  server cannot answer a query, so only the status is compared then.
- Every statement that returns rows returns its own tag (``SELECT 't7'``), so the rows say which
  statement the server ran. Each result row is matched to the gateway's audit record of the
  request it answered: the text the gateway judged must carry the tag the server returned. This
  is checked with the batches pipelined too (all sent before any answer), where the gateway has
  to predict, or wait for, the outcome of messages not yet answered.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs

from tests.gateway_harness import RunningGateway
from tests.protocols.postgres.raw import Message, Raw, login, message, query
from tests.protocols.postgres.test_session_state import bind, close, execute, parse
from wardgate.sql.catalog import parse_search_path

SYNC = message("S")
NAMES = ("", "a", "b")
PORTALS = ("", "c")  # "c" is also the SQL cursor's name
PARSE_TEXTS = (
    "SELECT 't{n}'",
    "SELECT 't{n}'",
    "SELECT 1/0",
    "SELEC 1",
    "SELECT 't{n}'; SELECT 2",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SET search_path = public",
    "SET LOCAL search_path = pg_catalog",
    "PREPARE b AS SELECT 't{n}'",
)
QUERIES = (
    "SELECT 't{n}'",
    "SELECT 1/0",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s",
    "RELEASE SAVEPOINT s",
    "PREPARE a AS SELECT 't{n}'",
    "PREPARE b AS SELECT 't{n}'; SELECT 1/0",
    "EXECUTE a",
    "EXECUTE b",
    "DEALLOCATE a",
    "DEALLOCATE ALL",
    "DECLARE c CURSOR FOR SELECT 't{n}'",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 't{n}'",
    "FETCH ALL FROM c",
    "CLOSE c",
    "SET search_path = public",
    "SET LOCAL search_path = pg_catalog",
    "RESET search_path",
    "BEGIN; SET search_path = pg_catalog; SELECT 1/0",
    "DISCARD ALL",
)

message_strategy = hs.one_of(
    hs.tuples(hs.just("R"), hs.sampled_from(NAMES), hs.just("")),  # Bind and Execute unnamed
    hs.tuples(hs.just("P"), hs.sampled_from(NAMES), hs.sampled_from(PARSE_TEXTS)),
    hs.tuples(hs.just("B"), hs.sampled_from(PORTALS), hs.sampled_from(NAMES)),
    # PostgreSQL 15.20 crashed (SIGSEGV: every session of the shared test server restarts) on
    # an Execute of the unnamed portal a failed Query left in an aborted transaction block. The
    # relay no longer sends such an Execute on (test_relay.py), but this test runs against the
    # shared server, so it stays clear of that corner: no Execute of the unnamed portal without
    # a Bind just before it, and, as a precaution, no Describe of portals.
    hs.tuples(hs.just("D"), hs.just("S"), hs.sampled_from(NAMES)),
    hs.tuples(hs.just("E"), hs.just("c"), hs.just("")),
    hs.tuples(hs.just("C"), hs.sampled_from("SP"), hs.sampled_from(NAMES + PORTALS)),
)
batch_strategy = hs.one_of(
    hs.lists(message_strategy, min_size=1, max_size=4),
    hs.sampled_from(QUERIES),
)
session_strategy = hs.lists(batch_strategy, min_size=1, max_size=10)


class Tags:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, text: str) -> str:
        self.n += 1
        return text.replace("{n}", str(self.n))


def encode(batch: list[tuple[str, str, str]] | str, tag: Tags) -> bytes:
    if isinstance(batch, str):
        return query(tag(batch))
    out = b""
    for kind, first, second in batch:
        if kind == "R":
            out += bind("", first) + execute("")
        elif kind == "P":
            out += parse(first, tag(second))
        elif kind == "B":
            out += bind(first, second)
        elif kind == "D":
            out += message("D", first.encode() + second.encode() + b"\x00")
        elif kind == "E":
            out += execute(first)
        else:
            out += close(first, second)
    return out + SYNC


def live(gw: RunningGateway) -> Any:
    """The one live PostgreSQL session of the gateway (read on its event loop)."""
    pg = gw.gateway.postgres
    assert pg is not None
    (session,) = pg.sessions.values()
    return session


def relay_state(gw: RunningGateway) -> Any:
    def read() -> Any:
        relay = live(gw).relay
        assert relay is not None
        return relay.state.confirmed.copy()

    return gw.call(read)


def observe(conn: Raw) -> tuple[set[str], set[str], str]:
    """The server's own account: named statements, named portals, search_path."""
    conn.send(
        query(
            "SELECT 's', name FROM pg_prepared_statements UNION ALL"
            " SELECT 'p', name FROM pg_cursors UNION ALL"
            " SELECT 'x', current_setting('search_path')"
        )
    )
    got = conn.until_ready()
    assert got[-1] == ("Z", b"I") or got[-1][0] == "Z", got
    rows = [_cells(body) for kind, body in got if kind == "D"]
    statements = {r[1] for r in rows if r[0] == "s"}
    portals = {r[1] for r in rows if r[0] == "p"}
    (path,) = [r[1] for r in rows if r[0] == "x"]
    return statements, portals, path


def _cells(body: bytes) -> list[str]:
    (count,) = struct.unpack_from("!h", body)
    pos, out = 2, []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", body, pos)
        pos += 4
        out.append(body[pos : pos + size].decode())
        pos += size
    return out


def check_model(gw: RunningGateway, conn: Raw, status: bytes) -> None:
    model = relay_state(gw)
    assert model.status == status.decode(), "transaction status"
    if status == b"E":
        return
    statements, portals, path = observe(conn)
    model = relay_state(gw)  # after the observing Query, which changed the unnamed ones
    assert set(model.statements) - {""} == statements, "prepared statements"
    assert set(model.portals) - {""} == portals, "portals"
    assert model.path is not None and parse_search_path(model.path) == parse_search_path(path)


def events_since(gw: RunningGateway, offset: int) -> list[dict[str, Any]]:
    gw.call(lambda: None)  # let the loop finish writing what it was writing
    with gw.audit_path.open("rb") as audit:
        audit.seek(max(offset - 1, 0))
        data = audit.read()
    if offset > 0:  # an earlier session's line may have been half-written at ``offset``
        data = data[1:] if data[:1] == b"\n" else data.partition(b"\n")[2]
    return [json.loads(line) for line in data.splitlines() if line]


def check_ran_what_was_judged(
    gw: RunningGateway, got: list[Message], session: str, offset: int
) -> None:
    """Each result's rows carry the tag of the statement the server ran; the gateway's audit
    record of the request that result answered must carry the same tag. (SQL EXECUTE and FETCH
    name what they run; their lineage is the masking tests' business: any tag matches.)"""
    tags = [_cells(body)[0] for kind, body in got if kind == "D"]
    tags = [t for t in tags if re.fullmatch(r"t\d+", t)]
    events = [
        e
        for e in events_since(gw, offset)
        if e.get("type") == "statement"
        and e.get("session", {}).get("id") == session
        and e.get("outcome") == "ok"
        and e.get("rows")
    ]
    judged: list[str] = []
    for event in events:
        text = event.get("statement", "")
        found = re.findall(r"'(t\d+)'", text)[:1]
        if text.startswith(("EXECUTE", "FETCH")):
            found = ["*"]
        judged.extend(found * int(event["rows"]))
    assert len(tags) == len(judged), (tags, judged)
    assert all(j in ("*", t) for t, j in zip(tags, judged, strict=True)), (tags, judged)


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(session=session_strategy, pipelined=hs.booleans())
@example(  # attack 3: a Parse of a name that exists fails; the first statement runs
    session=[
        [("P", "a", "SELECT 't{n}'")],
        [("P", "a", "SELECT 't{n}'")],
        [("R", "a", "")],
    ],
    pipelined=True,
)
@example(  # attack 3: the Close and the Parse after an error are skipped
    session=[
        [("P", "a", "SELECT 't{n}'")],
        [("P", "", "SELECT 1/0"), ("R", "", ""), ("C", "S", "a"), ("P", "a", "SELECT 't{n}'")],
        [("R", "a", "")],
    ],
    pipelined=True,
)
def test_the_model_follows_the_server(
    gateway: RunningGateway, session: list[list[tuple[str, str, str]] | str], pipelined: bool
) -> None:
    offset = gateway.audit_path.stat().st_size
    conn = login(gateway, "alice", "test")
    session_id = gateway.call(lambda: live(gateway).info.id)
    tag = Tags()
    got: list[Message] = []
    try:
        if pipelined:
            conn.send(b"".join(encode(batch, tag) for batch in session))
            for _ in session:
                got += conn.until_ready()
            check_model(gateway, conn, got[-1][1])
        else:
            for batch in session:
                conn.send(encode(batch, tag))
                answer = conn.until_ready()
                assert answer and answer[-1][0] == "Z", answer
                got += answer
                check_model(gateway, conn, answer[-1][1])
    finally:
        conn.close()
    check_ran_what_was_judged(gateway, got, session_id, offset)
