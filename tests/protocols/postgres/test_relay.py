"""``Relay`` without sockets: byte strings made with ``wire`` in, lists of byte strings out."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

import pytest

from wardgate.core.model import Decision, Outcome, SessionInfo, Statement, Verdict
from wardgate.core.pipeline import Addon, Pipeline
from wardgate.protocols.postgres import wire
from wardgate.protocols.postgres.relay import Relay
from wardgate.protocols.postgres.rows import join as data_row
from wardgate.protocols.postgres.wire import ProtocolViolation

TEXT_OID = 25
INT4_OID = 23


# ---- messages ---------------------------------------------------------------------------------


def query(text: str) -> bytes:
    return wire.message(wire.F_QUERY, wire.cstr(text))


def extended(text: str, statement: str = "", portal: str = "", describe: bool = True) -> bytes:
    no_formats = struct.pack("!hhh", 0, 0, 0)  # parameter formats, parameters, result formats
    parts = [
        wire.message(wire.F_PARSE, wire.cstr(statement) + wire.cstr(text) + struct.pack("!h", 0)),
        wire.message(wire.F_BIND, wire.cstr(portal) + wire.cstr(statement) + no_formats),
    ]
    if describe:
        parts.append(wire.message(wire.F_DESCRIBE, b"P" + wire.cstr(portal)))
    parts.append(wire.message(wire.F_EXECUTE, wire.cstr(portal) + struct.pack("!i", 0)))
    return b"".join(parts)


SYNC = wire.message(wire.F_SYNC)
PARSE_COMPLETE = wire.message(wire.B_PARSE_COMPLETE)
BIND_COMPLETE = wire.message(wire.B_BIND_COMPLETE)
READY = wire.ready_for_query(b"I")


def row_description(*columns: tuple[str, int, int]) -> bytes:
    body = struct.pack("!h", len(columns))
    for name, type_oid, fmt in columns:
        body += wire.cstr(name) + struct.pack("!ihihih", 0, 0, type_oid, -1, -1, fmt)
    return wire.message(wire.B_ROW_DESCRIPTION, body)


def rows(values: Iterable[bytes]) -> bytes:
    return b"".join(data_row([v]) for v in values)


def complete(tag: str) -> bytes:
    return wire.message(wire.B_COMMAND_COMPLETE, wire.cstr(tag))


def error(sqlstate: str, text: str) -> bytes:
    return wire.error_response("ERROR", sqlstate, text)


def select_result(values: list[bytes], head: bytes = b"") -> bytes:
    described = row_description(("v", TEXT_OID, 0))
    return head + described + rows(values) + complete(f"SELECT {len(values)}")


def error_fields(data: bytes) -> list[dict[str, str]]:
    """The fields of every ErrorResponse in ``data``."""
    found = []
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from("!ci", data, pos)
        body = data[pos + 5 : pos + 1 + length]
        if kind == b"E":
            fields = {}
            for part in body.rstrip(b"\x00").split(b"\x00"):
                fields[chr(part[0])] = part[1:].decode()
            found.append(fields)
        pos += 1 + length
    return found


# ---- addons and a relay to drive ----------------------------------------------------------------


class Recorder(Addon):
    name = "recorder"

    def __init__(self) -> None:
        self.ended: list[Statement] = []

    def statement_end(self, request: Statement) -> None:
        self.ended.append(request)


class RowCopier(Recorder):
    """Wants rows, so every DataRow is decoded and encoded again, unchanged."""

    name = "row-copier"

    def row(self, request: Statement, values: list[bytes | None]) -> list[bytes | None]:
        return list(values)


class DenyForbidden(Recorder):
    name = "deny-forbidden"

    def statement(self, request: Statement) -> Decision | None:
        if "forbidden" in request.text:
            return Decision(Verdict.DENY, "no forbidden things", self.name)
        return None


class Harness:
    def __init__(self, addon: Recorder) -> None:
        self.addon = addon
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        session = SessionInfo(id="s1", protocol="postgresql", client_addr="test", listener="pg")
        self.relay = Relay(session, Pipeline([addon]), self.to_server.append, self.to_client.append)

    def client(self, data: bytes, chunk: int = 0) -> None:
        for piece in split(data, chunk):
            self.relay.from_client(piece)

    def server(self, data: bytes, chunk: int = 0) -> None:
        for piece in split(data, chunk):
            self.relay.from_server(piece)

    @property
    def server_bytes(self) -> bytes:
        return b"".join(self.to_server)

    @property
    def client_bytes(self) -> bytes:
        return b"".join(self.to_client)

    def ended(self) -> list[tuple[str, Outcome, int]]:
        return [(r.text, r.outcome, r.rows) for r in self.addon.ended]


def split(data: bytes, chunk: int) -> list[bytes]:
    if chunk <= 0:
        return [data]
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


ADDONS = [Recorder, RowCopier]


# ---- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("addon", ADDONS)
def test_server_stream_one_byte_at_a_time_is_relayed_unchanged(addon: type[Recorder]) -> None:
    h = Harness(addon())
    h.client(query("SELECT v FROM t"), chunk=1)
    assert h.server_bytes == query("SELECT v FROM t")
    answer = select_result([b"row %d" % i for i in range(50)]) + READY
    h.server(answer, chunk=1)
    assert h.client_bytes == answer
    assert h.ended() == [("SELECT v FROM t", Outcome.OK, 50)]
    assert h.relay.transaction_status == b"I"


@pytest.mark.parametrize("addon", ADDONS)
def test_client_stream_one_byte_at_a_time_is_relayed_unchanged(addon: type[Recorder]) -> None:
    h = Harness(addon())
    stream = extended("SELECT 1") + extended("SELECT 2", "s2", "p2") + SYNC + query("SELECT 3")
    h.client(stream, chunk=1)
    assert h.server_bytes == stream


@pytest.mark.parametrize("addon", ADDONS)
@pytest.mark.parametrize("chunk", [1000, 65536])
def test_data_row_larger_than_a_chunk(addon: type[Recorder], chunk: int) -> None:
    h = Harness(addon())
    h.client(query("SELECT big"))
    big = bytes(range(256)) * 4096  # 1 MiB
    answer = select_result([b"small", big, b"after"]) + READY
    h.server(answer, chunk=chunk)
    assert h.client_bytes == answer
    assert h.ended() == [("SELECT big", Outcome.OK, 3)]


def test_bytes_counted_the_same_with_and_without_a_row_hook() -> None:
    counts = []
    for addon in ADDONS:
        h = Harness(addon())
        h.client(query("SELECT v"))
        h.server(select_result([b"a" * 10, b"b" * 20]) + READY)
        counts.append(h.addon.ended[0].bytes_out)
    assert counts[0] == counts[1]


class ColumnsSeen(Recorder):
    name = "columns-seen"

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[list[str]] = []

    def row(self, request: Statement, values: list[bytes | None]) -> list[bytes | None]:
        self.columns.append([c.name for c in request.columns])
        return values


def prepare(statement: str, text: str) -> bytes:
    """Parse and Describe of a named statement, as asyncpg prepares one."""
    return wire.message(
        wire.F_PARSE, wire.cstr(statement) + wire.cstr(text) + struct.pack("!h", 0)
    ) + wire.message(wire.F_DESCRIBE, b"S" + wire.cstr(statement))


def execute_prepared(statement: str) -> bytes:
    """Bind and Execute with no Describe: the client kept the RowDescription from prepare."""
    no_formats = struct.pack("!hhh", 0, 0, 0)
    return wire.message(
        wire.F_BIND, wire.cstr("") + wire.cstr(statement) + no_formats
    ) + wire.message(wire.F_EXECUTE, wire.cstr("") + struct.pack("!i", 0))


PREPARED = PARSE_COMPLETE + wire.message(wire.B_PARAMETER_DESCRIPTION, struct.pack("!h", 0))


def test_row_hook_gets_the_columns_of_the_statement_it_executes() -> None:
    h = Harness(ColumnsSeen())
    h.client(prepare("s_b", "SELECT b") + SYNC)
    h.server(PREPARED + row_description(("b", TEXT_OID, 0)) + READY)
    h.client(prepare("s_a", "SELECT a") + SYNC + execute_prepared("s_b") + SYNC)
    h.server(PREPARED + row_description(("a", TEXT_OID, 0)) + READY)
    h.server(BIND_COMPLETE + rows([b"b1"]) + complete("SELECT 1") + READY)
    assert h.ended() == [("SELECT b", Outcome.OK, 1)]
    assert isinstance(h.addon, ColumnsSeen)
    assert h.addon.columns == [["b"]]


@pytest.mark.parametrize("addon", ADDONS)
@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_requests_match_results_across_pipelined_batches(addon: type[Recorder], chunk: int) -> None:
    h = Harness(addon())
    h.client(
        extended("SELECT a")
        + extended("SELECT b", "sb", "pb")
        + SYNC
        + extended("INSERT x", describe=False)
        + SYNC
        + query("SELECT c; SELECT d")
        + extended("SELECT e")
        + SYNC,
        chunk=chunk,
    )
    assert h.ended() == []  # nothing has been answered yet
    # An addon that looks at columns makes the relay Describe the portal the client did not:
    # the server's NoData answers the relay, not the client.
    asked = wire.message(wire.B_NO_DATA) if h.relay.pipeline.wants_columns else b""
    answer = (
        select_result([b"a1"], head=PARSE_COMPLETE + BIND_COMPLETE)
        + select_result([b"b1", b"b2"], head=PARSE_COMPLETE + BIND_COMPLETE)
        + READY
        + PARSE_COMPLETE
        + BIND_COMPLETE
        + asked
        + complete("INSERT 0 3")
        + READY
        + select_result([b"c1"])
        + select_result([b"d1", b"d2", b"d3"])
        + READY
        + select_result([b"e1", b"e2", b"e3", b"e4"], head=PARSE_COMPLETE + BIND_COMPLETE)
        + wire.ready_for_query(b"T")
    )
    h.server(answer, chunk=chunk)
    assert h.client_bytes == answer.replace(BIND_COMPLETE + asked, BIND_COMPLETE)
    assert h.ended() == [
        ("SELECT a", Outcome.OK, 1),
        ("SELECT b", Outcome.OK, 2),
        ("INSERT x", Outcome.OK, 3),
        ("SELECT c; SELECT d", Outcome.OK, 4),
        ("SELECT e", Outcome.OK, 4),
    ]
    assert [r.kind for r in h.addon.ended] == ["execute", "execute", "execute", "query", "execute"]
    assert h.relay.transaction_status == b"T"


def test_results_end_as_they_arrive_not_at_the_batch_end() -> None:
    h = Harness(Recorder())
    h.client(extended("SELECT a") + extended("SELECT b") + SYNC)
    h.server(select_result([b"a1"], head=PARSE_COMPLETE + BIND_COMPLETE))
    assert h.ended() == [("SELECT a", Outcome.OK, 1)]
    h.server(select_result([b"b1"], head=PARSE_COMPLETE + BIND_COMPLETE) + READY)
    assert h.ended() == [("SELECT a", Outcome.OK, 1), ("SELECT b", Outcome.OK, 1)]


def test_error_in_a_batch_marks_later_executes_skipped() -> None:
    h = Harness(Recorder())
    h.client(
        extended("SELECT 1")
        + extended("SELECT 1/0")
        + extended("SELECT 3")
        + SYNC
        + extended("SELECT 4")
        + SYNC
    )
    h.server(
        select_result([b"1"], head=PARSE_COMPLETE + BIND_COMPLETE)
        + PARSE_COMPLETE
        + BIND_COMPLETE
        + row_description(("v", INT4_OID, 0))
        + error("22012", "division by zero")
        + READY
    )
    assert h.ended() == [
        ("SELECT 1", Outcome.OK, 1),
        ("SELECT 1/0", Outcome.ERROR, 0),
        ("SELECT 3", Outcome.SKIPPED, 0),
    ]
    failed = h.addon.ended[1]
    assert (failed.error_code, failed.error) == ("22012", "division by zero")
    h.server(select_result([b"4"], head=PARSE_COMPLETE + BIND_COMPLETE) + READY)
    assert h.ended()[-1] == ("SELECT 4", Outcome.OK, 1)


def test_error_in_a_simple_query_ends_it_at_ready_for_query() -> None:
    h = Harness(Recorder())
    h.client(query("SELECT 1; SELECT 1/0; SELECT 3") + query("SELECT 4"))
    h.server(select_result([b"1"]) + error("22012", "division by zero"))
    assert h.ended() == []  # a Query is one request, answered up to its ReadyForQuery
    h.server(READY + select_result([b"4"]) + READY)
    assert h.ended() == [
        ("SELECT 1; SELECT 1/0; SELECT 3", Outcome.ERROR, 1),
        ("SELECT 4", Outcome.OK, 1),
    ]


@pytest.mark.parametrize("chunk", [0, 1])
def test_denied_query_is_replaced_and_its_error_rewritten(chunk: int) -> None:
    h = Harness(DenyForbidden())
    h.client(query("DELETE FROM forbidden") + query("SELECT 1"), chunk=chunk)
    sent = h.server_bytes
    assert b"forbidden" not in sent
    assert sent.endswith(query("SELECT 1"))
    # The server answers the stand-in with a syntax error, in the place of the denied statement.
    h.server(error("42601", 'syntax error at or near "wardgate"') + READY, chunk=chunk)
    h.server(select_result([b"1"]) + READY, chunk=chunk)
    [denial] = error_fields(h.client_bytes)
    assert denial["C"] == "42501" and denial["S"] == "ERROR"
    assert denial["M"] == "wardgate: no forbidden things"
    assert "syntax" not in h.client_bytes.decode(errors="replace")
    assert h.ended() == [
        ("DELETE FROM forbidden", Outcome.DENIED, 0),
        ("SELECT 1", Outcome.OK, 1),
    ]
    assert h.addon.ended[0].decision.verdict is Verdict.DENY


def test_denied_execute_is_never_sent_and_aborts_its_batch() -> None:
    h = Harness(DenyForbidden())
    h.client(
        extended("INSERT INTO t VALUES (1)")
        + extended("INSERT INTO forbidden VALUES (2)")
        + extended("INSERT INTO t VALUES (3)")
        + SYNC
    )
    sent = h.server_bytes
    executes = sent.count(b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00")
    assert executes == 2  # the denied Execute is not among them
    h.server(
        PARSE_COMPLETE
        + BIND_COMPLETE
        + wire.message(wire.B_NO_DATA)
        + complete("INSERT 0 1")
        + PARSE_COMPLETE
        + BIND_COMPLETE
        + wire.message(wire.B_NO_DATA)
        + error("42601", "syntax error")
        + READY
    )
    [denial] = error_fields(h.client_bytes)
    assert denial["C"] == "42501"
    assert h.ended() == [
        ("INSERT INTO t VALUES (1)", Outcome.OK, 1),
        ("INSERT INTO forbidden VALUES (2)", Outcome.DENIED, 0),
        ("INSERT INTO t VALUES (3)", Outcome.SKIPPED, 0),
    ]


def test_close_ends_what_is_in_flight_as_aborted() -> None:
    h = Harness(Recorder())
    h.client(extended("SELECT pg_sleep(60)") + SYNC + query("SELECT 2"))
    h.relay.close()
    assert h.ended() == [
        ("SELECT pg_sleep(60)", Outcome.ABORTED, 0),
        ("SELECT 2", Outcome.ABORTED, 0),
    ]


@pytest.mark.parametrize(
    ("data", "sqlstate"),
    [
        (wire.message(ord("!"), b""), "08P01"),  # not a frontend message type
        (wire.message(wire.B_READY, b"I"), "08P01"),  # a backend type from the client
        (wire.header(wire.F_QUERY, 0x7FFFFFFF), "54000"),
        (wire.header(wire.F_COPY_DATA, 0x7FFFFFFF), "54000"),
        (wire.header(wire.F_QUERY, 3), "08P01"),
        (wire.message(wire.F_QUERY, b"no terminator"), "08P01"),
        (wire.message(wire.F_QUERY, b"\xff\xfe\x00"), "22021"),
        (wire.message(wire.F_EXECUTE, b"\x00"), "08P01"),
    ],
)
def test_malformed_client_messages_are_protocol_violations(data: bytes, sqlstate: str) -> None:
    h = Harness(Recorder())
    with pytest.raises(ProtocolViolation) as excinfo:
        h.client(data)
    assert excinfo.value.sqlstate == sqlstate
    assert h.server_bytes == b""


class FormatsSeen(Recorder):
    name = "formats-seen"

    def __init__(self) -> None:
        super().__init__()
        self.formats: list[list[bool]] = []

    def row(self, request: Statement, values: list[bytes | None]) -> list[bytes | None]:
        self.formats.append([c.binary for c in request.columns])
        return values


@pytest.mark.parametrize(
    ("result_formats", "expected"),
    [((), [False, False]), ((1,), [True, True]), ((0, 1), [False, True])],
)
def test_bind_result_formats_reach_the_columns(
    result_formats: tuple[int, ...], expected: list[bool]
) -> None:
    h = Harness(FormatsSeen())
    h.client(prepare("s2", "SELECT a, b") + SYNC)
    h.server(PREPARED + row_description(("a", TEXT_OID, 0), ("b", TEXT_OID, 0)) + READY)
    formats = struct.pack(f"!hhh{len(result_formats)}h", 0, 0, len(result_formats), *result_formats)
    h.client(
        wire.message(wire.F_BIND, wire.cstr("p") + wire.cstr("s2") + formats)
        + wire.message(wire.F_EXECUTE, wire.cstr("p") + struct.pack("!i", 0))
        + SYNC
    )
    h.server(BIND_COMPLETE + data_row([b"1", b"2"]) + complete("SELECT 1") + READY, chunk=3)
    assert isinstance(h.addon, FormatsSeen)
    assert h.addon.formats == [expected]


def test_pipelined_describes_keep_their_own_columns() -> None:
    """Two statements prepared, described and executed in one batch: each sees its own columns."""
    h = Harness(ColumnsSeen())
    h.client(
        prepare("s_x", "SELECT x")
        + prepare("s_y", "SELECT y")
        + execute_prepared("s_y")
        + execute_prepared("s_x")
        + SYNC
    )
    h.server(
        PREPARED
        + row_description(("x", TEXT_OID, 0))
        + PREPARED
        + row_description(("y", TEXT_OID, 0))
        + BIND_COMPLETE
        + rows([b"y1"])
        + complete("SELECT 1")
        + BIND_COMPLETE
        + rows([b"x1"])
        + complete("SELECT 1")
        + READY
    )
    assert isinstance(h.addon, ColumnsSeen)
    assert h.addon.columns == [["y"], ["x"]]


def test_execute_of_a_stale_portal_in_a_failed_transaction_is_not_sent() -> None:
    """PostgreSQL 15.20 crashed (SIGSEGV) on an Execute of the unnamed portal a failed Query
    left in an aborted transaction block, a session the property test found; the relay's model
    knows that portal is gone and answers such an Execute itself."""
    h = Harness(Recorder())
    h.client(query("BEGIN"))
    h.server(complete("BEGIN") + wire.ready_for_query(b"T"))
    h.client(query("ROLLBACK TO SAVEPOINT nosuch"))
    h.server(error("3B001", 'savepoint "nosuch" does not exist') + wire.ready_for_query(b"E"))
    before = len(h.server_bytes)
    execute = wire.message(wire.F_EXECUTE, wire.cstr("") + struct.pack("!i", 0))
    h.client(execute + SYNC)
    sent = h.server_bytes[before:]
    assert execute not in sent and sent.startswith(b"P")  # the unrunnable Parse instead
    h.server(error("42601", "syntax error") + wire.ready_for_query(b"E"))
    [_, refusal] = error_fields(h.client_bytes)
    assert refusal["C"] == "42501" and "does not exist" in refusal["M"]


# ---- the write-ahead record ---------------------------------------------------------------------


class Records:
    """The release's side, held by the test: marks counted, actions run when it says so."""

    def __init__(self) -> None:
        self.marks = 0
        self.actions: list[Callable[[], None]] = []

    def mark(self) -> None:
        self.marks += 1

    def then(self, action: Callable[[], None]) -> None:
        self.actions.append(action)

    def durable(self) -> None:
        actions, self.actions = self.actions, []
        for action in actions:
            action()


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_a_read_goes_out_at_once_and_a_write_only_once_its_record_is_durable(
    protocol: str,
) -> None:
    h = Harness(Recorder())
    records = Records()
    h.relay.records = records

    def send(text: str) -> bytes:
        return query(text) if protocol == "simple" else extended(text) + SYNC

    read, write = send("SELECT a FROM t WHERE id = 1"), send("UPDATE t SET a = 2 WHERE id = 1")
    h.client(read)
    assert h.server_bytes == read and records.marks == 1 and not records.actions
    h.to_server.clear()
    h.client(write + read)  # the read behind the write waits with it
    assert records.marks == 2 and len(records.actions) == 1
    if protocol == "simple":
        assert h.server_bytes == b""
    else:  # Parse and Bind (and the Describe) go first; the Execute and all after it wait
        assert write.startswith(h.server_bytes) and h.server_bytes
    h.client(read)  # more from the client while it waits: kept, in order
    records.durable()
    assert h.server_bytes == write + read + read
    assert records.marks == 4  # the reads were marked once they went out
