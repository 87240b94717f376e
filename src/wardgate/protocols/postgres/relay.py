"""The proxied session after start-up, as a sans-io state machine.

Theory of operation
-------------------
Both directions are scanned message by message, but only the messages that matter are copied out
of the stream: Query/Parse/Bind/Execute/Close/Sync from the client; RowDescription, CommandComplete,
ErrorResponse, ReadyForQuery and friends from the server. DataRow and CopyData are skipped by their
length word and forwarded as the very bytes they arrived in, unless an addon wants rows, in which
case the DataRows of each read from the server go to the pipeline as one batch
(``rows.DataRows``: checked, columns taken out and put back in compiled code where it is built).

With a ``diagnostic`` hook, every ErrorResponse and NoticeResponse is decoded too, because
their message, detail and context may echo stored values (a unique violation's detail echoes the
key). A COPY TO STDOUT's data is decoded into rows only when an addon asked for them
(the statement's analysis says a COPY in the text or binary format, see ``copy``).

Requests are a Query or an Execute (and the rare FunctionCall). The server answers the client's
messages strictly in order, so every message that will be answered is queued as an ``_Expect`` when
it goes to the server and taken off the queue by its answer: ParseComplete, BindComplete, a
RowDescription or NoData for a Describe, rows and a CommandComplete for an Execute, a ReadyForQuery
for a Sync or a Query. An ErrorResponse makes the server skip everything up to the next Sync, and
the queue is cleared up to it the same way. State that must match the server's -- which columns a
prepared statement or a portal returns, and in which format -- is updated from those answers, in
the server's order, so a pipelined client never sees one statement's columns lent to another. No
timing is assumed anywhere.

What a request runs is the server's business, not the client's: ``state`` keeps the session's
prepared statements, portals, transaction and search_path as the server's answers confirm them,
and says what an Execute (or a Query naming a prepared statement or cursor) will run, given the
messages still unanswered. When that depends on how those turn out (a Parse of a name that may
exist...), the message waits, a Flush goes to the server, and it is decided once everything
before it is answered. An Execute of a portal nobody described is preceded by the relay's own
Describe when an addon looks at columns; its answer is not passed on.

A denied request is never sent on. In its place the server gets a statement that cannot run: text
that is not SQL, as a Query or as a Parse of a statement named ``wardgate_denied`` (if the client
made one of that name the Parse fails all the same). The server's error arrives exactly where the
client expects the answer to its request, aborts the batch or transaction the way a real error
would, and is replaced by the denial on its way back.

An allowed Query whose statement an addon rewrote (``Statement.forward_text``: the masking
addon decodes the pseudonyms a client looks rows up by) goes to the server as that text; the
audit and the session state's judgement stay with the client's.

A row cap (``Decision.cap``, set by the policy addon) lets that many rows through and
swallows the rest, counting them (``rows_withheld``); the result's CommandComplete (or
PortalSuspended) becomes an ErrorResponse 54000 and ReadyForQuery passes with the status the
server sends. In a simple Query, anything else the server sends before its ReadyForQuery is
swallowed too (a COPY FROM STDIN there is answered with CopyFail). In the extended protocol the
client then expects nothing but the ReadyForQuery of its Sync, so what it sent after a capped
Execute is held back (a Flush makes the server send the Execute's result at once) until the
result is complete: released as it is when the cap was not reached, dropped up to the Sync
(audited as skipped) when it was, so the server never runs what the client believes skipped. No
rows are decoded for a cap: DataRows are counted, forwarded or dropped whole. See
docs/policy.md.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from wardgate.core.model import (
    Analyser,
    Decision,
    Outcome,
    ResultColumn,
    SessionContext,
    SessionInfo,
    Statement,
    Verdict,
    Via,
)
from wardgate.core.pipeline import Pipeline, PipelineFailure, ServerText
from wardgate.protocols.postgres import client_encoding, rows, server_text, wire
from wardgate.protocols.postgres import state as st
from wardgate.protocols.postgres.copy import BinaryCopy, TextCopy, parse_copy_out
from wardgate.protocols.postgres.copy_csv import CsvCopy, csv_options
from wardgate.protocols.postgres.framing import check_length
from wardgate.protocols.postgres.wire import ProtocolViolation
from wardgate.sql.analysis import analyse

_NOT_SQL = "wardgate denied this statement"
_POISON_QUERY = wire.message(wire.F_QUERY, wire.cstr(_NOT_SQL))
_POISON_PARSE = wire.message(
    wire.F_PARSE, wire.cstr("wardgate_denied") + wire.cstr(_NOT_SQL) + struct.pack("!h", 0)
)
DENIAL_HINT = "Ask an administrator if you need this."
_FLUSH = wire.message(wire.F_FLUSH)
_CAP_HINT = "Filter on a key (id, mrn, ...) or add a LIMIT to see all the rows you need."
_HEADER = struct.Struct("!Bi")
# What the relay holds of the client's messages before it stops reading the client's socket.
HELD_HIGH_WATER = 64 << 10
_CLIENT_TYPES = frozenset(b"QPBDESHCXdcfF")
Send = Callable[[bytes], None]


class Records(Protocol):
    """The release's side of the session's audit records, where commits block (an fsync):
    ``mark`` when a statement's record is made (the result's first byte waits for it), ``then``
    to run an action once that record is durable (``release.SessionRecords``)."""

    def mark(self) -> None: ...

    def then(self, action: Callable[[], None]) -> None: ...


# What an expected answer answers.
PARSE, BIND, DESCRIBE_STATEMENT, DESCRIBE_PORTAL, EXECUTE, CLOSE, SYNC, QUERY, CALL = range(9)
_ENDS_BATCH = (SYNC, QUERY, CALL)  # answered by ReadyForQuery
# Passed on while a capped Query's other answers are swallowed: they are not answers.
_ASYNC = (wire.B_PARAMETER_STATUS, wire.B_NOTIFICATION, wire.B_NOTICE, wire.B_READY)
_ASYNC_TEXT = {
    wire.B_PARAMETER_STATUS: (ServerText.PARAMETER, server_text.parameter_status),
    wire.B_NOTIFICATION: (ServerText.NOTIFICATION, server_text.notification),
}


@dataclass(slots=True)
class _Expect:
    what: int
    name: str = ""  # statement or portal
    statement: str = ""  # Bind: the statement bound
    formats: tuple[int, ...] = ()  # Bind: result format codes
    request: Statement | None = None
    denied: bool = False
    described: bool = False  # the request's columns are known and announced
    texts: int = 0  # a batch's end: statement texts the client had sent by then
    internal: bool = False  # a Describe the relay sent itself: its answer is not the client's
    sent: bool = False  # its request went to the server, after its write-ahead record


@dataclass(slots=True)
class _Result:
    """The rows of the result in progress (a Query may return several results)."""

    rows: int = 0
    columns: tuple[ResultColumn, ...] = field(default=())

    def start(self, columns: tuple[ResultColumn, ...]) -> None:
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
        search_path: str | None = None,
    ) -> None:
        self.session = session
        self.pipeline = pipeline
        # The one analysis of a statement text (its effects on the session are read from it).
        self._analyse = pipeline.analyser or analyse
        self.send_server = send_server
        self.send_client = send_client
        self.max_message = max_message
        self.transaction_status = b"I"
        self.terminated = False
        # The codec of the session's client_encoding, as the server last reported it.
        self.encoding = wire.UTF8
        # The pid the gateway told the client of a backend on the same server, if it did.
        self.client_pid: Callable[[int], int | None] = _unknown_pid
        # Stops (True) or resumes reading the client's socket: what the client sends while its
        # earlier messages wait is held here, and past HELD_HIGH_WATER it must wait in its own
        # socket (memory stays bounded, and the client sees a server error while it writes).
        self.pause_client: Callable[[bool], None] = _no_pause
        # Statement texts (Query, Parse) read from the client, and those the server had read by
        # the last ReadyForQuery: a change of client_encoding is safe only when no text after
        # the one that made it was already read in the previous encoding.
        self._texts_sent = 0
        self._texts_done = 0
        self._seq = 0
        self._expected: deque[_Expect] = deque()
        self._result = _Result()
        # The server's prepared statements, portals, transaction and search_path, as its
        # answers confirm them; what an Execute or a Query will run is asked of it. While that
        # depends on answers still to come, the client's message waits (``_settling``).
        self.state = st.SessionState(search_path)
        self._settling = False
        self._op: st.Op | None = None  # the client message just read, as the session state sees it
        self._prefix = b""  # a Describe the relay adds before the Execute being decided
        # Server order: the columns each statement and portal returns, as the server described them.
        self._statement_columns: dict[str, tuple[ResultColumn, ...]] = {}
        self._portal_columns: dict[str, tuple[ResultColumn, ...]] = {}
        self._client = _Stream()
        self._server = _Stream()
        # The COPY TO STDOUT in progress whose rows an addon looks at, if any.
        self._copy: TextCopy | BinaryCopy | CsvCopy | None = None
        # Row caps: capped requests in flight; client bytes held after a capped Execute until
        # its result is complete; dropping client messages up to a Sync, or server messages up
        # to a ReadyForQuery, once a cap was reached.
        self._caps = 0
        self._held: bytearray | None = None
        self._release = False
        self._skip_to_sync = False
        self._dropped: dict[str, str] = {}
        self._swallow = False
        # A statement held for approval: (request, what, name, poison); the message itself is
        # ``_held_message`` and what the client sends after it waits in ``_held``.
        self._approval: tuple[Statement, int, str, bytes] | None = None
        self._held_message = b""
        self._held_prefix = b""
        # With a blocking commit, a statement's record is made durable while the server runs it;
        # one that may change what the server keeps (anything but a plain read) goes to the
        # server only once its record is durable: the message, what the client sent after it,
        # and whether a row cap holds that back further.
        self.records: Records | None = None
        self._wait_for_record = False
        self._record_wait: tuple[bytes, bytearray, bool] | None = None
        # Client order: the statements ("S" + name) and portals ("P" + name) whose columns the
        # client asks the server for; before an Execute of any other portal the relay asks itself,
        # since rows whose columns are not known cannot be masked.
        self._described: set[str] = set()

    # ---- client to server ----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self._record_wait is not None:
            rest = self._record_wait[1]
            rest.extend(data)  # behind a statement waiting for its record
            if len(rest) >= HELD_HIGH_WATER:
                self.pause_client(True)
            return
        if self._held is not None:
            self._held += data  # waiting for the server's answers, a capped result, an approval
            if len(self._held) >= HELD_HIGH_WATER:
                self.pause_client(True)
            return
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
            body = data[pos + 5 : end]
            replacement = self._client_message(kind, body)
            if self._settling:  # the message waits until the server has answered what it has
                out.append(data[mark:pos])
                out.append(_FLUSH)
                mark = pos
                self._held = bytearray(data[pos:n])
                n = pos
                break
            if self._approval is None or self._held_message:
                self._track(kind, body, replacement)
            if self._wait_for_record:
                self._wait_for_record = False
                message = data[pos:end] if replacement is None else replacement
                out.append(data[mark:pos])
                self._hold_for_record(message, data[end:n])
                mark = n = pos
                break
            if replacement is not None:
                out.append(data[mark:pos])
                out.append(replacement)
                mark = end
            if self._approval is not None and not self._held_message:  # held for approval
                self._held_message = data[pos:end]
                self._held_prefix, self._prefix = self._prefix, b""
                self._held = bytearray(data[end:n])
                n = pos
                break
            pos = end
            if self._held is not None:  # a capped Execute went out: the rest waits
                self._held += data[pos:n]
                n = pos
                break
        _emit(self.send_server, data, out, mark, n)
        if self._held is not None and len(self._held) >= HELD_HIGH_WATER:
            self.pause_client(True)

    def _client_message(self, kind: int, body: bytes) -> bytes | None:
        """Note what the message means; return bytes to send instead of it, or None."""
        self._op = None
        if self._skip_to_sync and kind not in (wire.F_SYNC, wire.F_TERMINATE):
            return self._skipped(kind, body)
        expect = self._expected.append
        encoding = self.encoding
        if kind == wire.F_QUERY:
            text = wire.parse_query(body, encoding)
            parsed = _parsed(self._analyse, text)
            contexts = self.state.query(parsed)
            if contexts is None:
                self._settling = True
                return None
            self._texts_sent += 1
            self._op = st.Query(parsed)
            return self._decide(QUERY, "", Via.QUERY, text, _POISON_QUERY, contexts)
        described = self._described
        if kind == wire.F_PARSE:
            self._texts_sent += 1
            name, text = wire.parse_parse(body, encoding)
            described.discard("S" + name)
            expect(_Expect(PARSE, name))
            self._op = st.Parse(name, text, _parsed(self._analyse, text))
        elif kind == wire.F_BIND:
            if self.pipeline.wants_columns:
                portal, statement, formats = wire.parse_bind(body, encoding)
            else:  # formats matter only to addons that look at columns
                portal, statement, formats = *wire.parse_bind_names(body, encoding), ()
            if "S" + statement in described:
                described.add("P" + portal)
            else:
                described.discard("P" + portal)
            expect(_Expect(BIND, portal, statement, formats))
            self._op = _bind_op(portal, statement)
        elif kind == wire.F_DESCRIBE:
            which, name = wire.parse_close(body, encoding)
            described.add(which + name)
            expect(_Expect(DESCRIBE_STATEMENT if which == "S" else DESCRIBE_PORTAL, name))
            self._op = _describe_op(which == "P", name)
        elif kind == wire.F_EXECUTE:
            return self._execute(body)
        elif kind == wire.F_SYNC:
            self._skip_to_sync = False
            self._dropped.clear()
            expect(_Expect(SYNC, texts=self._texts_sent))
            self._op = _SYNC
        elif kind == wire.F_CLOSE:
            which, name = wire.parse_close(body, encoding)
            expect(_Expect(CLOSE, name, which))
            self._op = _close_op(which == "P", name)
        elif kind == wire.F_FUNCTION_CALL:
            oid = struct.unpack_from("!i", body)[0] if len(body) >= 4 else 0
            text = f"<function call oid {oid}>"
            self._op = _CALL
            return self._decide(CALL, "", Via.FUNCTION_CALL, text, _POISON_QUERY)
        elif kind == wire.F_TERMINATE:
            self.terminated = True
        return None

    def _execute(self, body: bytes) -> bytes | None:
        portal, _ = wire.parse_execute(body, self.encoding)
        resolved = self.state.portal(portal)
        if resolved is None:
            self._settling = True
            return None
        self._op = _execute_op(portal)
        prefix = b""
        # Not before an Execute that cannot run (no such portal, an aborted transaction): no
        # rows come, and PostgreSQL 15 can crash describing a failed portal in an aborted one.
        if (
            self.pipeline.wants_columns
            and "P" + portal not in self._described
            and self.state.may_run(portal)
        ):
            self._described.add("P" + portal)
            self._expected.append(_Expect(DESCRIBE_PORTAL, portal, internal=True))
            prefix = wire.message(wire.F_DESCRIBE, b"P" + wire.cstr(portal))
        text, context = resolved
        if self.state.stale_portal(portal):
            self._seq += 1
            request = Statement(self.session, self._seq, text, Via.EXECUTE, contexts=(context,))
            request.decision = Decision(
                Verdict.DENY,
                f'portal "{portal}" does not exist in this failed transaction',
                "relay",
            )
            self._expected.append(_Expect(EXECUTE, portal, request=request, denied=True))
            return prefix + _POISON_PARSE
        self._prefix = prefix
        poison = self._decide(EXECUTE, portal, Via.EXECUTE, text, _POISON_PARSE, (context,))
        if self._approval is not None:
            return None  # the prefix goes with the held message
        self._prefix = b""
        capped = self._expected[-1].request
        if poison is None and capped is not None and capped.row_cap is not None:
            self._held = bytearray()  # what the client sends next waits for the result
            return prefix + wire.message(wire.F_EXECUTE, body) + _FLUSH
        if poison is not None or prefix:
            return prefix + (poison or wire.message(wire.F_EXECUTE, body))
        return None

    def _decide(
        self,
        what: int,
        name: str,
        via: Via,
        text: str,
        poison: bytes,
        contexts: tuple[SessionContext, ...] = (),
    ) -> bytes | None:
        self._seq += 1
        request = Statement(self.session, self._seq, text, via, contexts=contexts)
        decision = self.pipeline.statement(request)
        hold = decision.hold
        if decision.verdict is Verdict.HOLD and hold is not None:
            self._approval = (request, what, name, poison)
            self.send_client(wire.notice_response(hold.notice, encoding=self.encoding))
            hold.when_resolved(self._resolved)
            return None
        denied = not decision.allowed
        if not denied and request.row_cap is not None:
            self._caps += 1
        self._expected.append(
            _Expect(
                what, name, request=request, denied=denied, texts=self._texts_sent, sent=not denied
            )
        )
        if not denied:
            # the audit's record precedes any row of the result
            self.pipeline.statement_sent(request)
            self._sent(request)
        return poison if denied else self._forward(request)

    def _forward(self, request: Statement) -> bytes | None:
        """The Query the server runs in place of the client's, when an addon set one (its
        look-ups' pseudonyms decoded); None: the client's message goes as it came."""
        if not request.forward_text:
            return None
        if request.via is not Via.QUERY:  # a prepared statement's text is on the server already
            raise PipelineFailure("a rewritten statement can only be sent as a Query")
        return wire.message(wire.F_QUERY, wire.cstr(request.forward_text, self.encoding))

    def _sent(self, request: Statement) -> None:
        """The statement's record is made: its result waits for it; a statement that may
        change what the server keeps waits for it too, before it reaches the server."""
        records = self.records
        if records is not None:
            records.mark()
            self._wait_for_record = not _reads_only(request)

    def _hold_for_record(self, message: bytes, rest: bytes | bytearray) -> None:
        """Keep the statement's message, and what came after it, until its record is durable."""
        records = self.records
        assert records is not None
        capped = self._held is not None  # a capped Execute: what follows waits for its result
        self._held = None
        self._record_wait = (message, bytearray(rest), capped)
        records.then(self._recorded)

    def _recorded(self) -> None:
        """The record of the statement waiting for it is durable: send it, then the rest."""
        wait, self._record_wait = self._record_wait, None
        if wait is None or self.terminated:
            return
        message, rest, capped = wait
        self.send_server(message)
        self.pause_client(False)
        if capped:
            self._held = rest
        elif rest:
            self.from_client(bytes(rest))

    def _resolved(self, decision: Decision) -> None:
        """A held statement is decided: it goes to the server (or its poison does, whose error
        becomes the denial), then whatever the client sent while it waited."""
        if self._approval is None or self.terminated:
            return
        request, what, name, poison = self._approval
        message, self._held_message = self._held_message, b""
        prefix, self._held_prefix = self._held_prefix, b""
        self._approval = None
        denied = not decision.allowed
        self._expected.append(
            _Expect(
                what, name, request=request, denied=denied, texts=self._texts_sent, sent=not denied
            )
        )
        if not denied:
            self.pipeline.statement_sent(request)
            self._sent(request)
        sent = prefix + (poison if denied else (self._forward(request) or message))
        self._track(0, b"", sent)
        held, self._held = self._held, None
        self.pause_client(False)
        if self._wait_for_record:
            self._wait_for_record = False
            self._hold_for_record(sent, held or b"")
            return
        self.send_server(sent)
        if held:
            self.from_client(bytes(held))

    def _skipped(self, kind: int, body: bytes) -> bytes:
        """A message after a capped Execute whose cap was reached, before the Sync: dropped, as
        the server would have skipped it after an error; an Execute is audited as skipped."""
        dropped = self._dropped  # the texts of statements and portals the server never saw
        if kind == wire.F_PARSE:
            self._texts_sent += 1
            name, text = wire.parse_parse(body, self.encoding)
            dropped["S" + name] = text
        elif kind == wire.F_BIND:
            portal, statement = wire.parse_bind_names(body, self.encoding)
            dropped["P" + portal] = dropped.get("S" + statement, "")
        elif kind == wire.F_EXECUTE:
            portal, _ = wire.parse_execute(body, self.encoding)
            self._seq += 1
            known = self.state.portal(portal)
            text = dropped.get("P" + portal, known[0] if known is not None else "")
            request = Statement(self.session, self._seq, text, Via.EXECUTE)
            self._finish(_Expect(EXECUTE, portal, request=request), Outcome.SKIPPED)
        return b""

    def _track(self, kind: int, body: bytes, replacement: bytes | None) -> None:
        """Tell the session state what the server receives: the message (as ``_client_message``
        read it), or what replaced it."""
        if replacement is None:
            op = self._op if self._op is not None else _op(kind, body, self._analyse, self.encoding)
            if op is not None:
                self.state.sent(op)
            return
        pos = 0
        while pos + 5 <= len(replacement):
            sub, length = _HEADER.unpack_from(replacement, pos)
            op = _op(sub, replacement[pos + 5 : pos + 1 + length], self._analyse, self.encoding)
            if op is not None:
                self.state.sent(op)
            pos += 1 + length

    # ---- server to client ----------------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        stream = self._server
        whole = stream.take(data)
        if whole is None:
            return
        data = whole
        out: list[bytes] = []
        pos, n, mark = stream.skip_into(len(data)), len(data), 0
        wants_rows = self.pipeline.wants_rows
        rows_hooked = wants_rows or self._caps > 0 or self._swallow
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
            if kind == wire.B_DATA_ROW and wants_rows and end <= n and not self._swallow:
                # The rows of this read, to the pipeline in one batch (a capped result's are
                # counted one by one below).
                head = expected[0] if expected else None
                request = head.request if head is not None else None
                if head is not None and request is not None and request.row_cap is None:
                    stop, count = rows.scan(data, pos, n)
                    result.rows += count
                    request.rows += count
                    request.bytes_out += stop - pos - 5 * count
                    self._announce(head)
                    batch = rows.DataRows(data[pos:stop], count)
                    self.pipeline.rows(request, batch)
                    out.append(data[mark:pos])
                    out.append(batch.data)
                    pos = mark = stop
                    continue
            if kind == wire.B_DATA_ROW and not rows_hooked:
                result.rows += 1
                if expected and (request := expected[0].request) is not None:
                    request.rows += 1
                    request.bytes_out += length - 4
                pos = stream.pass_through(end, n)
                continue
            if kind == wire.B_COPY_DATA and self._copy is None and not self._swallow:
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
        if self._settling:  # held for the server's answers, not for a capped result
            self._release = False
            if not self.state.pending:  # the server's state is known: go on
                self._settling = False
                self._release = True
        if self._release:  # a capped Execute's result is complete: what the client sent next
            self._release = False
            held, self._held = self._held, None
            self.pause_client(False)
            if held:
                self.from_client(bytes(held))

    def _server_message(self, kind: int, body: bytes) -> bytes | None:
        expected = self._expected
        head = expected[0] if expected else None
        if kind != wire.B_DATA_ROW and kind != wire.B_COPY_DATA:
            self.state.received(kind, body)
        if kind == wire.B_DATA_ROW:
            self._result.rows += 1
            if self._swallow:
                return b""
            if head is None or head.request is None:
                return None
            request = head.request
            if request.row_cap is not None and request.rows >= request.row_cap:
                request.rows_withheld += 1
                return b""
            request.rows += 1
            request.bytes_out += len(body)
            if not self.pipeline.wants_rows:
                return None
            self._announce(head)
            return rows.join(self.pipeline.row(request, rows.split(body)))
        if kind == wire.B_PARAMETER_STATUS:
            self.parameter_status(body)
        if self._swallow and kind not in _ASYNC:
            return self._swallowed(kind)
        if kind == wire.B_NOTICE and self.pipeline.wants_diagnostics:
            return self._diagnostic(kind, body)
        if kind == wire.B_NOTIFICATION:  # its payload scanned, its pid the one the client knows
            scanned = self._server_text(kind, body) if self.pipeline.wants_server_text else None
            return self._notification(body if scanned is None else scanned, scanned is not None)
        if kind in _ASYNC_TEXT and self.pipeline.wants_server_text:
            rewritten = self._server_text(kind, body)
            return None if rewritten is None else wire.message(kind, rewritten)
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
            # Column names as the client gets them: the recording keeps what the client saw.
            renamed = self._server_text(kind, body) if self.pipeline.wants_server_text else None
            body = body if renamed is None else renamed
            columns = _columns(body, self.encoding) if self.pipeline.wants_columns else ()
            if what == DESCRIBE_STATEMENT:
                expected.popleft()
                self._statement_columns[head.name] = columns
            elif what == DESCRIBE_PORTAL:
                expected.popleft()
                self._portal_columns[head.name] = columns
                if head.internal:
                    return b""
            else:  # a simple Query's result
                self._result.start(columns)
                head.described = False
            return None if renamed is None else wire.message(kind, renamed)
        elif kind == wire.B_NO_DATA and what in (DESCRIBE_STATEMENT, DESCRIBE_PORTAL):
            expected.popleft()
            (self._statement_columns if what == DESCRIBE_STATEMENT else self._portal_columns)[
                head.name
            ] = ()
            if head.internal:
                return b""
        elif kind == wire.B_CLOSE_COMPLETE and what == CLOSE:
            expected.popleft()
            target = self._statement_columns if head.statement == "S" else self._portal_columns
            target.pop(head.name, None)
        elif kind in (wire.B_COMMAND_COMPLETE, wire.B_PORTAL_SUSPENDED, wire.B_EMPTY_QUERY):
            ended = head.request
            if ended is not None and ended.row_cap is not None:
                if ended.rows_withheld:
                    return self._cap_reached(head, ended)
                self._release = self._held is not None and what == EXECUTE
            if ended is not None:
                if kind == wire.B_COMMAND_COMPLETE and not self._result.rows:
                    ended.rows += wire.parse_command_tag_rows(body) or 0
                self._announce(head)
                if what == EXECUTE:
                    expected.popleft()
                    self._finish(head, Outcome.OK)
            self._result.start(())
        elif kind in (wire.B_COPY_OUT, wire.B_COPY_IN) and self._held is not None:
            # The policy addon never caps a COPY; were one capped, its rows could not be counted
            # here, and the held bytes may be the COPY's own data.
            raise PipelineFailure("a row-capped statement started a COPY")
        elif kind == wire.B_COPY_OUT:
            copying = head.request
            if copying is not None and copying.row_cap is not None:
                raise PipelineFailure("a row-capped statement started a COPY")
            if copying is not None and self.pipeline.wants_rows and _rows_readable(copying):
                self._start_copy(copying, head, body)
        elif kind == wire.B_ERROR:
            self._copy = None
            self._release = self._held is not None
            return self._server_error(body, head)
        elif kind == wire.B_READY:
            self._swallow = False
            self.transaction_status = body[:1]
            # Everything up to the batch's end is answered now; anything left was skipped.
            while expected:
                entry = expected.popleft()
                if entry.what in _ENDS_BATCH:
                    self._texts_done = entry.texts
                    self._finish(entry, Outcome.OK)
                    break
                self._finish(entry, Outcome.SKIPPED)
        return None

    def _cap_reached(self, head: _Expect, request: Statement) -> bytes:
        """The end of a capped result that had more rows: an error in its place."""
        text = (
            f"wardgate: row cap of {request.row_cap} reached;"
            f" {request.rows_withheld} more rows withheld"
        )
        request.outcome = Outcome.ERROR
        request.error_code = "54000"
        request.error = text
        self._result.start(())
        if head.what == EXECUTE:
            self._expected.popleft()
            self._finish(head, Outcome.ERROR)
            # The client now expects nothing until its Sync: drop what it sent in between.
            self._skip_to_sync = True
            self._release = self._held is not None
        else:
            self._swallow = True  # the rest of the Query's answers, up to ReadyForQuery
        return wire.error_response("ERROR", "54000", text, hint=_CAP_HINT, encoding=self.encoding)

    def _swallowed(self, kind: int) -> bytes:
        """A simple Query's answer after its cap was reached, dropped up to ReadyForQuery."""
        if kind == wire.B_COPY_IN:  # a later COPY FROM STDIN waits for data: fail it
            self.send_server(wire.message(wire.F_COPY_FAIL, wire.cstr("wardgate: row cap reached")))
        return b""

    def _start_copy(self, request: Statement, head: _Expect, body: bytes) -> None:
        binary, formats = parse_copy_out(body)
        columns = tuple(ResultColumn("", 0, i + 1, 0, f) for i, f in enumerate(formats))
        head.described = True
        request.columns = columns
        self.pipeline.result_header(request, columns)
        row = self.pipeline.row

        def hook(values: list[bytes | None]) -> list[bytes | None]:
            return row(request, values)

        copy_out = request.analysis.copy_out
        if copy_out is not None and copy_out.format == "csv" and not binary:
            self._copy = CsvCopy(hook, csv_options(dict(copy_out.csv)))
        else:
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
        fields = dict(wire.parse_error_fields(body, self.encoding).fields)
        fields = self.pipeline.diagnostic(self.session, fields)
        return wire.message(kind, wire.fields_body(fields, self.encoding))

    def parameter_status(self, body: bytes) -> None:
        """Follow the server's client_encoding."""
        encoding = client_encoding.reported(body)
        if encoding is None or encoding == self.encoding:
            return
        if self._texts_sent - self._texts_done > 1:
            raise ProtocolViolation(
                "client_encoding changed while statements sent after the change were in flight;"
                " change it in a statement of its own"
            )
        self.encoding = encoding

    def _notification(self, body: bytes, changed: bool = False) -> bytes | None:
        """A notification carries the pid its sender was told in BackendKeyData (this session's
        own, or another's through this gateway); a sender the gateway does not know keeps the
        backend's pid. ``changed``: the body is not what the server sent (send it anyway)."""
        if len(body) < 4:
            return None
        known = self.client_pid(struct.unpack_from("!i", body)[0])
        if known is None:
            return wire.message(wire.B_NOTIFICATION, body) if changed else None
        return wire.message(wire.B_NOTIFICATION, struct.pack("!i", known) + body[4:])

    def _server_text(self, kind: int, body: bytes) -> bytes | None:
        """The body of a ParameterStatus, NotificationResponse or RowDescription with the text a
        statement can fill from data rewritten by the pipeline (None: unchanged)."""
        what, read = _ASYNC_TEXT.get(kind) or (ServerText.COLUMN_NAME, server_text.row_description)
        session, hook = self.session, self.pipeline.server_text
        new = read(body, lambda name, text: hook(session, what, name, text))
        return None if new is body else new

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
        fields = wire.parse_error_fields(body, self.encoding)
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
                text = f"wardgate: {reason}"
                replacement = wire.error_response(
                    "ERROR", "42501", text, hint=DENIAL_HINT, encoding=self.encoding
                )
            else:
                request.outcome = Outcome.ERROR
                request.error_code = fields.sqlstate
                request.error = fields.text
        if replacement is None and self.pipeline.wants_diagnostics:
            replacement = self._diagnostic(wire.B_ERROR, body)
            request_error = wire.parse_error_fields(replacement[5:], self.encoding).text
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
        if request.row_cap is not None:
            self._caps -= 1
        self.pipeline.statement_end(request)
        if not entry.sent and self.records is not None:
            self.records.mark()  # a denial's or a skip's record precedes what the client gets

    def close(self) -> None:
        """The session is over: whatever is still in flight ends as aborted."""
        self._record_wait = None  # a statement waiting for its record never goes out
        while self._expected:
            self._finish(self._expected.popleft(), Outcome.ABORTED)
        if self._approval is not None:  # held for approval when the client left
            request, what, name, _ = self._approval
            self._approval = None
            self._finish(_Expect(what, name, request=request), Outcome.ABORTED)


def _reads_only(stmt: Statement) -> bool:
    """Whether the statement, as far as its text says, can change nothing the server keeps (its
    record may then be made durable while it runs); False when unsure."""
    try:
        return stmt.analysis.reads_only
    except Exception:
        return False


def _rows_readable(stmt: Statement) -> bool:
    """A COPY TO STDOUT whose data the codec can read as rows: the text or binary format with no
    other options (the analysis says which; a statement that does not parse is never read)."""
    if not stmt.analysis.parsed:
        return False
    copy = stmt.analysis.copy_out
    return copy is not None and copy.readable


def _no_pause(paused: bool) -> None:
    return None


def _unknown_pid(backend_pid: int) -> int | None:
    return None


def _columns(body: bytes, encoding: str) -> tuple[ResultColumn, ...]:
    return tuple(
        ResultColumn(name, table, col, typ, fmt == 1)
        for name, table, col, typ, fmt in wire.parse_row_description(body, encoding)
    )


def _with_formats(
    columns: tuple[ResultColumn, ...], formats: tuple[int, ...]
) -> tuple[ResultColumn, ...]:
    """A statement's columns as a Bind's result format codes deliver them."""
    if not formats:
        binary = [False] * len(columns)
    elif len(formats) == 1:
        binary = [formats[0] == 1] * len(columns)
    else:
        binary = [f == 1 for f in formats]
    return tuple(
        ResultColumn(c.name, c.table_oid, c.column_number, c.type_oid, b)
        for c, b in zip(columns, binary, strict=False)
    )


def _parsed(analyse: Analyser, text: str) -> st.Parsed:
    """The statements' effects on the session, from the text's one analysis."""
    try:
        return analyse(text).effects
    except Exception:  # the server will not run what PostgreSQL's parser refuses
        return None


_SYNC = st.Sync()
_CALL = st.Query(None, call=True)
# The messages naming statements and portals, one object per name (they are values).
_bind_op = lru_cache(maxsize=256)(st.Bind)
_describe_op = lru_cache(maxsize=256)(st.Describe)
_close_op = lru_cache(maxsize=256)(st.Close)
_execute_op = lru_cache(maxsize=256)(st.Execute)


def _op(kind: int, body: bytes, analyse: Analyser, encoding: str) -> st.Op | None:
    """A client message as the session state sees it; None for those that change nothing."""
    if kind == wire.F_PARSE:
        name, text = wire.parse_parse(body, encoding)
        return st.Parse(name, text, _parsed(analyse, text))
    if kind == wire.F_BIND:
        portal, statement = wire.parse_bind_names(body, encoding)
        return _bind_op(portal, statement)
    if kind == wire.F_EXECUTE:
        return _execute_op(wire.parse_execute(body, encoding)[0])
    if kind in (wire.F_DESCRIBE, wire.F_CLOSE):
        which, name = wire.parse_close(body, encoding)
        on_portal = which == "P"
        if kind == wire.F_DESCRIBE:
            return _describe_op(on_portal, name)
        return _close_op(on_portal, name)
    if kind == wire.F_SYNC:
        return _SYNC
    if kind == wire.F_QUERY:
        return st.Query(_parsed(analyse, wire.parse_query(body, encoding)))
    if kind == wire.F_FUNCTION_CALL:
        return _CALL
    return None
