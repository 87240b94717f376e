"""The proxied session after start-up, as a sans-io state machine.

Theory of operation
-------------------
Both directions are scanned message by message, but only the messages that matter are copied out
of the stream: Query/Parse/Bind/Execute/Close/Sync from the client; RowDescription, CommandComplete,
ErrorResponse, ReadyForQuery and friends from the server. DataRow and CopyData are skipped by their
length word and forwarded as the very bytes they arrived in, unless an addon wants rows, in which
case each row is decoded, handed to the pipeline and re-encoded.

With a ``diagnostic`` hook, every ErrorResponse and NoticeResponse is decoded too, because
their message, detail and context may echo stored values (a unique violation's detail echoes the
key). A COPY TO STDOUT's data is decoded into rows only when an addon asked for them
(``Request.copy_rows``, see ``copy``).

Requests are a Query or an Execute (and the rare FunctionCall). The server answers the client's
messages strictly in order, so every message that will be answered is queued as an ``_Expect`` when
it goes to the server and taken off the queue by its answer: ParseComplete, BindComplete, a
RowDescription or NoData for a Describe, rows and a CommandComplete for an Execute, a ReadyForQuery
for a Sync or a Query. An ErrorResponse makes the server skip everything up to the next Sync, and
the queue is cleared up to it the same way. State that must match the server's -- which columns a
prepared statement or a portal returns, and in which format -- is updated from those answers, in
the server's order, so a pipelined client never sees one statement's columns lent to another. No
timing is assumed anywhere.

A denied request is never sent on. In its place the server gets a statement that cannot run: text
that is not SQL, as a Query or as a Parse of a statement named ``wardgate_denied`` (if the client
made one of that name the Parse fails all the same). The server's error arrives exactly where the
client expects the answer to its request, aborts the batch or transaction the way a real error
would, and is replaced by the denial on its way back.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from wardgate.core.model import Column, Outcome, Request, SessionInfo
from wardgate.core.pipeline import Pipeline
from wardgate.protocols.postgres import wire
from wardgate.protocols.postgres.copy import BinaryCopy, TextCopy, parse_copy_out
from wardgate.protocols.postgres.framing import check_length
from wardgate.protocols.postgres.wire import ProtocolViolation

_NOT_SQL = "wardgate denied this statement"
_POISON_QUERY = wire.message(wire.F_QUERY, wire.cstr(_NOT_SQL))
_POISON_PARSE = wire.message(
    wire.F_PARSE, wire.cstr("wardgate_denied") + wire.cstr(_NOT_SQL) + struct.pack("!h", 0)
)
DENIAL_HINT = "Ask an administrator if you need this."
_HEADER = struct.Struct("!Bi")
_CLIENT_TYPES = frozenset(b"QPBDESHCXdcfF")
Send = Callable[[bytes], None]

# What an expected answer answers.
PARSE, BIND, DESCRIBE_STATEMENT, DESCRIBE_PORTAL, EXECUTE, CLOSE, SYNC, QUERY, CALL = range(9)
_ENDS_BATCH = (SYNC, QUERY, CALL)  # answered by ReadyForQuery


@dataclass(slots=True)
class _Expect:
    what: int
    name: str = ""  # statement or portal
    statement: str = ""  # Bind: the statement bound
    formats: tuple[int, ...] = ()  # Bind: result format codes
    request: Request | None = None
    denied: bool = False
    described: bool = False  # the request's columns are known and announced


@dataclass(slots=True)
class _Result:
    """The rows of the result in progress (a Query may return several results)."""

    rows: int = 0
    columns: tuple[Column, ...] = field(default=())

    def start(self, columns: tuple[Column, ...]) -> None:
        self.rows = 0
        self.columns = columns


class _Stream:
    """What one direction leaves between chunks: a message held back until it is whole, or the
    rest of a pass-through message that is forwarded as it arrives."""

    __slots__ = ("carry", "need", "skip")

    def __init__(self) -> None:
        self.carry = bytearray()
        self.need = 0
        self.skip = 0

    def take(self, data: bytes) -> bytes | None:
        """The bytes to scan now (held-back ones first), or None while a message is incomplete."""
        if not self.carry:
            return data
        self.carry += data
        if len(self.carry) < self.need:
            return None
        whole = bytes(self.carry)
        self.carry.clear()
        return whole

    def skip_into(self, n: int) -> int:
        """Where scanning starts: past the rest of a pass-through message begun earlier."""
        taken = min(self.skip, n)
        self.skip -= taken
        return taken

    def pass_through(self, end: int, n: int) -> int:
        if end > n:
            self.skip = end - n
            return n
        return end

    def hold(self, data: bytes, pos: int, need: int) -> int:
        """Keep data[pos:] back until ``need`` bytes of it are there; scanning stops at pos."""
        self.carry += data[pos:]
        self.need = need
        return pos


def _emit(send: Send, data: bytes, out: list[bytes], mark: int, n: int) -> None:
    """Send data[:n] with the replacements in ``out``; the chunk itself when nothing changed."""
    if mark == 0 and n == len(data):
        if n:
            send(data)
        return
    out.append(data[mark:n])
    joined = b"".join(out)
    if joined:
        send(joined)


class Relay:
    """One client session relayed to one upstream connection."""

    def __init__(
        self,
        session: SessionInfo,
        pipeline: Pipeline,
        send_server: Send,
        send_client: Send,
        max_message: int = 64 << 20,
    ) -> None:
        self.session = session
        self.pipeline = pipeline
        self.send_server = send_server
        self.send_client = send_client
        self.max_message = max_message
        self.transaction_status = b"I"
        self.terminated = False
        self._seq = 0
        self._expected: deque[_Expect] = deque()
        self._result = _Result()
        # Client order: the text each statement and portal will run, for policy decisions.
        self._statements: dict[str, str] = {}
        self._portals: dict[str, str] = {}
        # Server order: the columns each statement and portal returns, as the server described them.
        self._statement_columns: dict[str, tuple[Column, ...]] = {}
        self._portal_columns: dict[str, tuple[Column, ...]] = {}
        self._client = _Stream()
        self._server = _Stream()
        # The COPY TO STDOUT in progress whose rows an addon looks at, if any.
        self._copy: TextCopy | BinaryCopy | None = None

    # ---- client to server ----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        stream = self._client
        whole = stream.take(data)
        if whole is None:
            return
        data = whole
        out: list[bytes] = []
        pos, n, mark = stream.skip_into(len(data)), len(data), 0
        while pos < n:
            if n - pos < 5:
                n = stream.hold(data, pos, 5)
                break
            kind, length = _HEADER.unpack_from(data, pos)
            end = pos + 1 + length
            if kind == wire.F_COPY_DATA:
                check_length(kind, length, 1 << 30)
                pos = stream.pass_through(end, n)
                continue
            if kind not in _CLIENT_TYPES:
                raise ProtocolViolation(f"invalid frontend message type {kind}")
            check_length(kind, length, self.max_message)
            if end > n:
                n = stream.hold(data, pos, end - pos)
                break
            replacement = self._client_message(kind, data[pos + 5 : end])
            if replacement is not None:
                out.append(data[mark:pos])
                out.append(replacement)
                mark = end
            pos = end
        _emit(self.send_server, data, out, mark, n)

    def _client_message(self, kind: int, body: bytes) -> bytes | None:
        """Note what the message means; return bytes to send instead of it, or None."""
        expect = self._expected.append
        if kind == wire.F_QUERY:
            return self._decide(QUERY, "", "query", wire.parse_query(body), _POISON_QUERY)
        if kind == wire.F_PARSE:
            name, text = wire.parse_parse(body)
            self._statements[name] = text
            expect(_Expect(PARSE, name))
        elif kind == wire.F_BIND:
            if self.pipeline.wants_columns:
                portal, statement, formats = wire.parse_bind(body)
            else:  # formats matter only to addons that look at columns
                portal, statement, formats = *wire.parse_bind_names(body), ()
            self._portals[portal] = self._statements.get(statement, "")
            expect(_Expect(BIND, portal, statement, formats))
        elif kind == wire.F_DESCRIBE:
            which, name = wire.parse_close(body)
            expect(_Expect(DESCRIBE_STATEMENT if which == "S" else DESCRIBE_PORTAL, name))
        elif kind == wire.F_EXECUTE:
            portal, _ = wire.parse_execute(body)
            text = self._portals.get(portal, "")
            return self._decide(EXECUTE, portal, "execute", text, _POISON_PARSE)
        elif kind == wire.F_SYNC:
            expect(_Expect(SYNC))
        elif kind == wire.F_CLOSE:
            which, name = wire.parse_close(body)
            (self._statements if which == "S" else self._portals).pop(name, None)
            expect(_Expect(CLOSE, name, which))
        elif kind == wire.F_FUNCTION_CALL:
            oid = struct.unpack_from("!i", body)[0] if len(body) >= 4 else 0
            text = f"<function call oid {oid}>"
            return self._decide(CALL, "", "function_call", text, _POISON_QUERY)
        elif kind == wire.F_TERMINATE:
            self.terminated = True
        return None

    def _decide(self, what: int, name: str, kind: str, text: str, poison: bytes) -> bytes | None:
        self._seq += 1
        request = Request(self.session, self._seq, kind, text)
        request.decision = self.pipeline.request(request)
        denied = not request.decision.allowed
        self._expected.append(_Expect(what, name, request=request, denied=denied))
        return poison if denied else None

    # ---- server to client ----------------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        stream = self._server
        whole = stream.take(data)
        if whole is None:
            return
        data = whole
        out: list[bytes] = []
        pos, n, mark = stream.skip_into(len(data)), len(data), 0
        rows_hooked = self.pipeline.wants_rows
        expected = self._expected
        result = self._result
        while pos < n:
            if n - pos < 5:
                n = stream.hold(data, pos, 5)
                break
            kind, length = _HEADER.unpack_from(data, pos)
            if length < 4:
                raise ProtocolViolation(f"server sent an invalid message length {length}")
            end = pos + 1 + length
            if kind == wire.B_DATA_ROW and not rows_hooked:
                result.rows += 1
                if expected and (request := expected[0].request) is not None:
                    request.rows += 1
                    request.bytes_out += length - 4
                pos = stream.pass_through(end, n)
                continue
            if kind == wire.B_COPY_DATA and self._copy is None:
                if expected and (request := expected[0].request) is not None:
                    request.bytes_out += length - 4
                pos = stream.pass_through(end, n)
                continue
            if end > n:
                n = stream.hold(data, pos, end - pos)
                break
            replacement = self._server_message(kind, data[pos + 5 : end])
            if replacement is not None:
                out.append(data[mark:pos])
                out.append(replacement)
                mark = end
            pos = end
        _emit(self.send_client, data, out, mark, n)

    def _server_message(self, kind: int, body: bytes) -> bytes | None:
        expected = self._expected
        head = expected[0] if expected else None
        if kind == wire.B_DATA_ROW:
            self._result.rows += 1
            if head is None or head.request is None:
                return None
            request = head.request
            request.rows += 1
            request.bytes_out += len(body)
            self._announce(head)
            return wire.data_row(self.pipeline.row(request, wire.parse_data_row(body)))
        if kind == wire.B_NOTICE and self.pipeline.wants_diagnostics:
            return self._diagnostic(kind, body)
        if head is None:
            if kind == wire.B_ERROR and self.pipeline.wants_diagnostics:
                return self._diagnostic(kind, body)
            return None  # asynchronous messages, or a FATAL error before the session ends
        what = head.what
        if self._copy is not None and kind in (wire.B_COPY_DATA, wire.B_COPY_DONE):
            return self._copy_message(kind, body, head)
        if kind == wire.B_PARSE_COMPLETE and what == PARSE:
            expected.popleft()
            self._statement_columns.pop(head.name, None)
        elif kind == wire.B_BIND_COMPLETE and what == BIND:
            expected.popleft()
            columns = self._statement_columns.get(head.statement)
            if columns is None:
                self._portal_columns.pop(head.name, None)
            else:
                self._portal_columns[head.name] = _with_formats(columns, head.formats)
        elif kind == wire.B_ROW_DESCRIPTION:
            columns = _columns(body) if self.pipeline.wants_columns else ()
            if what == DESCRIBE_STATEMENT:
                expected.popleft()
                self._statement_columns[head.name] = columns
            elif what == DESCRIBE_PORTAL:
                expected.popleft()
                self._portal_columns[head.name] = columns
            else:  # a simple Query's result
                self._result.start(columns)
                head.described = False
        elif kind == wire.B_NO_DATA and what in (DESCRIBE_STATEMENT, DESCRIBE_PORTAL):
            expected.popleft()
            (self._statement_columns if what == DESCRIBE_STATEMENT else self._portal_columns)[
                head.name
            ] = ()
        elif kind == wire.B_CLOSE_COMPLETE and what == CLOSE:
            expected.popleft()
            target = self._statement_columns if head.statement == "S" else self._portal_columns
            target.pop(head.name, None)
        elif kind in (wire.B_COMMAND_COMPLETE, wire.B_PORTAL_SUSPENDED, wire.B_EMPTY_QUERY):
            ended = head.request
            if ended is not None:
                if kind == wire.B_COMMAND_COMPLETE and not self._result.rows:
                    ended.rows += wire.parse_command_tag_rows(body) or 0
                self._announce(head)
                if what == EXECUTE:
                    expected.popleft()
                    self._finish(head, Outcome.OK)
            self._result.start(())
        elif kind == wire.B_COPY_OUT:
            copying = head.request
            if copying is not None and copying.copy_rows and self.pipeline.wants_rows:
                self._start_copy(copying, head, body)
        elif kind == wire.B_ERROR:
            self._copy = None
            return self._server_error(body, head)
        elif kind == wire.B_READY:
            self.transaction_status = body[:1]
            # Everything up to the batch's end is answered now; anything left was skipped.
            while expected:
                entry = expected.popleft()
                if entry.what in _ENDS_BATCH:
                    self._finish(entry, Outcome.OK)
                    break
                self._finish(entry, Outcome.SKIPPED)
        return None

    def _start_copy(self, request: Request, head: _Expect, body: bytes) -> None:
        binary, formats = parse_copy_out(body)
        columns = tuple(Column("", 0, i + 1, 0, f) for i, f in enumerate(formats))
        head.described = True
        request.columns = columns
        self.pipeline.result_header(request, columns)
        row = self.pipeline.row

        def hook(values: list[bytes | None]) -> list[bytes | None]:
            return row(request, values)

        self._copy = BinaryCopy(hook) if binary else TextCopy(hook)

    def _copy_message(self, kind: int, body: bytes, head: _Expect) -> bytes:
        copy = self._copy
        assert copy is not None
        if kind == wire.B_COPY_DONE:
            copy.finish()
            self._copy = None
            return wire.message(kind, body)
        if head.request is not None:
            head.request.bytes_out += len(body)
        data = copy.feed(body)
        return wire.message(wire.B_COPY_DATA, data) if data else b""

    def _diagnostic(self, kind: int, body: bytes) -> bytes:
        fields = dict(wire.parse_error_fields(body).fields)
        return wire.message(kind, wire.fields_body(self.pipeline.diagnostic(self.session, fields)))

    def _announce(self, entry: _Expect) -> None:
        """Tell the pipeline the columns of the entry's result, once, before its first row."""
        if entry.described or entry.request is None or not self.pipeline.wants_columns:
            return
        entry.described = True
        if entry.what == EXECUTE:
            columns = self._portal_columns.get(entry.name, ())
        else:
            columns = self._result.columns
        entry.request.columns = columns
        self.pipeline.result_header(entry.request, columns)

    def _server_error(self, body: bytes, head: _Expect) -> bytes | None:
        fields = wire.parse_error_fields(body)
        expected = self._expected
        # The error answers the head message; when that is a Parse or Bind, it is the failure of
        # the statement the batch goes on to execute.
        owner = head
        if head.request is None:
            owner = next((e for e in expected if e.what in (EXECUTE, SYNC)), head)
        request = owner.request
        replacement = None
        if request is not None:
            if owner.denied:
                reason = request.decision.reason or "denied by policy"
                replacement = wire.error_response(
                    "ERROR", "42501", f"wardgate: {reason}", hint=DENIAL_HINT
                )
            else:
                request.outcome = Outcome.ERROR
                request.error_code = fields.sqlstate
                request.error = fields.text
        if replacement is None and self.pipeline.wants_diagnostics:
            replacement = self._diagnostic(wire.B_ERROR, body)
            request_error = wire.parse_error_fields(replacement[5:]).text
            if request is not None and not owner.denied:
                request.error = request_error  # the audit keeps what the client saw
        if head.what in _ENDS_BATCH:
            return replacement  # a Query or call ends at its ReadyForQuery
        # Extended protocol: the server now skips everything up to the next Sync.
        while expected and expected[0].what != SYNC:
            self._finish(expected.popleft(), Outcome.SKIPPED)
        return replacement

    def _finish(self, entry: _Expect, outcome: Outcome) -> None:
        request = entry.request
        if request is None:
            return
        if entry.denied:
            outcome = Outcome.DENIED
        elif request.outcome is not Outcome.PENDING:
            outcome = request.outcome  # an error noted earlier
        request.outcome = outcome
        request.ended_mono = time.monotonic()
        self.pipeline.result_end(request)

    def close(self) -> None:
        """The session is over: whatever is still in flight ends as aborted."""
        while self._expected:
            self._finish(self._expected.popleft(), Outcome.ABORTED)


def _columns(body: bytes) -> tuple[Column, ...]:
    return tuple(
        Column(name, table, col, typ, fmt == 1)
        for name, table, col, typ, fmt in wire.parse_row_description(body)
    )


def _with_formats(columns: tuple[Column, ...], formats: tuple[int, ...]) -> tuple[Column, ...]:
    """A statement's columns as a Bind's result format codes deliver them."""
    if not formats:
        binary = [False] * len(columns)
    elif len(formats) == 1:
        binary = [formats[0] == 1] * len(columns)
    else:
        binary = [f == 1 for f in formats]
    return tuple(
        Column(c.name, c.table_oid, c.column_number, c.type_oid, b)
        for c, b in zip(columns, binary, strict=False)
    )
