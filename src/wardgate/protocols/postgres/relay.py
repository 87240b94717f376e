"""The proxied session after start-up, as a sans-io state machine.

Theory of operation
-------------------
Both directions are scanned message by message, but only the messages that matter are copied out
of the stream: Query/Parse/Bind/Execute/Close/Sync from the client; RowDescription, CommandComplete,
ErrorResponse, ReadyForQuery and friends from the server. DataRow and CopyData are skipped by their
length word and forwarded as the very bytes they arrived in, unless an addon wants rows, in which
case each row is decoded, handed to the pipeline and re-encoded.

Requests are a Query or an Execute (and the rare FunctionCall). Each belongs to a *batch*: a Query
is a batch of its own, extended-protocol messages form a batch up to their Sync. The server answers
every batch with exactly one ReadyForQuery, in order, which is how results are matched to requests
without any timing assumption.

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

from wardgate.core.model import Column, Outcome, Request, SessionInfo
from wardgate.core.pipeline import Pipeline
from wardgate.protocols.postgres import wire
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
        self._batch = 0  # batch id the next client message belongs to
        self._ready_seen = 0  # batches the server has finished
        self._inflight: deque[tuple[int, Request]] = deque()  # (batch, request)
        self._result_rows = 0  # DataRows since the last CommandComplete
        self._poisoned: set[int] = set()  # id() of requests replaced by a poison message
        self._statements: dict[str, str] = {}
        self._portals: dict[str, str] = {}
        self._client = _Stream()
        self._server = _Stream()

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
            replacement = self._client_message(kind, data, pos + 5, end)
            if replacement is not None:
                out.append(data[mark:pos])
                out.append(replacement)
                mark = end
            pos = end
        _emit(self.send_server, data, out, mark, n)

    def _client_message(self, kind: int, data: bytes, start: int, end: int) -> bytes | None:
        """Note what the message means; return bytes to send instead of it, or None."""
        if kind == wire.F_QUERY:
            text = wire.parse_query(data[start:end])
            self._batch += 1
            return self._decide(self._new_request("query", text), self._batch - 1, _POISON_QUERY)
        if kind == wire.F_PARSE:
            name, text = wire.parse_parse(data[start:end])
            self._statements[name] = text
        elif kind == wire.F_BIND:
            portal, statement = wire.parse_bind_names(data[start:end])
            self._portals[portal] = self._statements.get(statement, "")
        elif kind == wire.F_EXECUTE:
            portal, _ = wire.parse_execute(data[start:end])
            text = self._portals.get(portal, "")
            return self._decide(self._new_request("execute", text), self._batch, _POISON_PARSE)
        elif kind == wire.F_SYNC:
            self._batch += 1
        elif kind == wire.F_CLOSE:
            which, name = wire.parse_close(data[start:end])
            (self._statements if which == "S" else self._portals).pop(name, None)
        elif kind == wire.F_FUNCTION_CALL:
            oid = struct.unpack_from("!i", data, start)[0] if end - start >= 4 else 0
            request = self._new_request("function_call", f"<function call oid {oid}>")
            self._batch += 1
            return self._decide(request, self._batch - 1, _POISON_QUERY)
        elif kind == wire.F_TERMINATE:
            self.terminated = True
        return None

    def _new_request(self, kind: str, text: str) -> Request:
        self._seq += 1
        return Request(self.session, self._seq, kind, text)

    def _decide(self, request: Request, batch: int, poison: bytes) -> bytes | None:
        request.decision = self.pipeline.request(request)
        self._inflight.append((batch, request))
        if request.decision.allowed:
            return None
        self._poisoned.add(id(request))
        return poison

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
        head = self._inflight[0][1] if self._inflight else None
        while pos < n:
            if n - pos < 5:
                n = stream.hold(data, pos, 5)
                break
            kind, length = _HEADER.unpack_from(data, pos)
            if length < 4:
                raise ProtocolViolation(f"server sent an invalid message length {length}")
            end = pos + 1 + length
            if kind == wire.B_DATA_ROW and not rows_hooked:
                self._result_rows += 1
                if head is not None:
                    head.rows += 1
                    head.bytes_out += length
                pos = stream.pass_through(end, n)
                continue
            if kind == wire.B_COPY_DATA:
                if head is not None:
                    head.bytes_out += length
                pos = stream.pass_through(end, n)
                continue
            if end > n:
                n = stream.hold(data, pos, end - pos)
                break
            replacement = self._server_message(kind, data[pos + 5 : end], head)
            if replacement is not None:
                out.append(data[mark:pos])
                out.append(replacement)
                mark = end
            pos = end
            head = self._inflight[0][1] if self._inflight else None
        _emit(self.send_client, data, out, mark, n)

    def _server_message(self, kind: int, body: bytes, head: Request | None) -> bytes | None:
        if kind == wire.B_DATA_ROW:
            self._result_rows += 1
            if head is None:
                return None
            head.rows += 1
            head.bytes_out += len(body)
            values = self.pipeline.row(head, wire.parse_data_row(body))
            return wire.data_row(values)
        if kind == wire.B_ROW_DESCRIPTION:
            if head is not None and self.pipeline.wants_columns:
                columns = tuple(
                    Column(name, table, col, typ, fmt == 1)
                    for name, table, col, typ, fmt in wire.parse_row_description(body)
                )
                head.columns = columns
                self.pipeline.result_header(head, columns)
        elif kind in (wire.B_COMMAND_COMPLETE, wire.B_PORTAL_SUSPENDED, wire.B_EMPTY_QUERY):
            if head is not None:
                if kind == wire.B_COMMAND_COMPLETE and not self._result_rows:
                    head.rows += wire.parse_command_tag_rows(body) or 0
                if head.kind != "query":
                    self._finish(Outcome.OK)
            self._result_rows = 0
        elif kind == wire.B_ERROR:
            return self._server_error(body, head)
        elif kind == wire.B_READY:
            self.transaction_status = body[:1]
            done = self._ready_seen
            self._ready_seen += 1
            while self._inflight and self._inflight[0][0] <= done:
                self._finish(self._inflight[0][1].outcome)
        return None

    def _server_error(self, body: bytes, head: Request | None) -> bytes | None:
        fields = wire.parse_error_fields(body)
        if head is None:
            return None
        replacement = None
        if id(head) in self._poisoned:
            reason = head.decision.reason or "denied by policy"
            replacement = wire.error_response(
                "ERROR",
                "42501",
                f"wardgate: {reason}",
                hint="Ask an administrator if you need this.",
            )
            head.outcome = Outcome.DENIED
        else:
            head.outcome = Outcome.ERROR
            head.error_code = fields.sqlstate
            head.error = fields.text
        if head.kind != "query":
            batch = self._inflight[0][0]
            self._finish(head.outcome)
            while self._inflight and self._inflight[0][0] == batch:
                self._finish(Outcome.SKIPPED)
        return replacement

    def _finish(self, outcome: Outcome) -> None:
        _, request = self._inflight.popleft()
        if id(request) in self._poisoned:
            self._poisoned.discard(id(request))
            outcome = Outcome.DENIED
        elif outcome is Outcome.PENDING:
            outcome = Outcome.OK
        request.outcome = outcome
        request.ended_mono = time.monotonic()
        self.pipeline.result_end(request)

    def close(self) -> None:
        """The session is over: whatever is still in flight ends as aborted."""
        while self._inflight:
            self._finish(Outcome.ABORTED)
