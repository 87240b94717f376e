"""Row caps in the relay without sockets: what the client gets, what the server gets, in chunks
of any size, with and without an addon that decodes rows."""

from __future__ import annotations

import pytest

from tests.protocols.postgres.test_relay import (
    BIND_COMPLETE,
    PARSE_COMPLETE,
    READY,
    SYNC,
    Harness,
    Recorder,
    RowCopier,
    complete,
    error_fields,
    extended,
    query,
    row_description,
    rows,
    select_result,
)
from wardgate.core.model import Decision, Outcome, Statement, Verdict
from wardgate.protocols.postgres import wire

TEXT_OID = 25
VALUES = [str(i).encode() for i in range(10)]


def capper(base: type[Recorder]) -> Recorder:
    class Capper(base):  # type: ignore[valid-type,misc]
        name = "capper"

        def statement(self, stmt: Statement) -> Decision | None:
            if "big" in stmt.text:
                return Decision(Verdict.CAP, by="capper", cap=3)
            return None

    return Capper()


def kinds(data: bytes) -> str:
    out, pos = [], 0
    while pos < len(data):
        out.append(chr(data[pos]))
        pos += 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
    return "".join(out)


@pytest.mark.parametrize("chunk", [0, 1, 7])
@pytest.mark.parametrize("base", [Recorder, RowCopier])
def test_simple_query_cap(chunk: int, base: type[Recorder]) -> None:
    h = Harness(capper(base))
    h.client(query("SELECT * FROM big; SELECT 2"))
    h.server(select_result(VALUES) + select_result([b"2"]) + wire.ready_for_query(b"T"),
             chunk=chunk)  # fmt: skip
    assert kinds(h.client_bytes) == "TDDDEZ"  # the second result is swallowed
    assert h.client_bytes.endswith(wire.ready_for_query(b"T"))  # the server's status
    (err,) = error_fields(h.client_bytes)
    assert err["C"] == "54000" and err["M"].endswith("row cap of 3 reached; 7 more rows withheld")
    (ended,) = h.addon.ended
    assert (ended.outcome, ended.rows, ended.rows_withheld) == (Outcome.ERROR, 3, 7)


def test_simple_query_under_cap_is_untouched() -> None:
    h = Harness(capper(Recorder))
    answer = select_result(VALUES[:3]) + READY
    h.client(query("SELECT * FROM big"))
    h.server(answer)
    assert h.client_bytes == answer
    assert h.addon.ended[0].rows_withheld == 0


def test_copy_in_after_a_reached_cap_is_failed() -> None:
    h = Harness(capper(Recorder))
    h.client(query("SELECT * FROM big; COPY t FROM STDIN"))
    h.server(select_result(VALUES) + wire.message(wire.B_COPY_IN, b"\x00\x00\x00"))
    assert h.server_bytes.endswith(
        wire.message(wire.F_COPY_FAIL, wire.cstr("wardgate: row cap reached"))
    )
    h.server(wire.error_response("ERROR", "57014", "COPY from stdin failed") + READY)
    assert kinds(h.client_bytes) == "TDDDEZ"


@pytest.mark.parametrize("chunk", [0, 3])
def test_extended_cap_holds_the_rest_of_the_batch(chunk: int) -> None:
    h = Harness(capper(Recorder))
    h.client(extended("SELECT * FROM big") + extended("INSERT INTO t VALUES (1)") + SYNC,
             chunk=chunk)  # fmt: skip
    sent = h.server_bytes
    assert kinds(sent) == "PBDEH"  # a Flush after the capped Execute; the rest held
    described = row_description(("v", TEXT_OID, 0))
    h.server(PARSE_COMPLETE + BIND_COMPLETE + described + rows(VALUES) + complete("SELECT 10"),
             chunk=chunk)  # fmt: skip
    assert kinds(h.server_bytes[len(sent) :]) == "S"  # the INSERT dropped, up to the Sync
    h.server(READY)
    assert kinds(h.client_bytes) == "12TDDDEZ"
    outcomes = [(r.text, r.outcome) for r in h.addon.ended]
    assert outcomes == [("SELECT * FROM big", Outcome.ERROR),
                        ("INSERT INTO t VALUES (1)", Outcome.SKIPPED)]  # fmt: skip


def test_extended_cap_not_reached_releases_the_rest() -> None:
    h = Harness(capper(Recorder))
    h.client(extended("SELECT * FROM big") + extended("SELECT 1") + SYNC)
    described = row_description(("v", TEXT_OID, 0))
    h.server(PARSE_COMPLETE + BIND_COMPLETE + described + rows(VALUES[:2]) + complete("SELECT 2"))
    assert kinds(h.server_bytes) == "PBDEHPBDES"
    h.server(select_result([b"1"], PARSE_COMPLETE + BIND_COMPLETE) + READY)
    assert kinds(h.client_bytes) == "12TDDC12TDCZ"
    assert [r.outcome for r in h.addon.ended] == [Outcome.OK, Outcome.OK]
    h.client(query("SELECT 3"))  # nothing held any more
    assert h.server_bytes.endswith(query("SELECT 3"))


def test_a_server_error_releases_the_held_sync() -> None:
    h = Harness(capper(Recorder))
    h.client(extended("SELECT * FROM big") + SYNC)
    h.server(wire.error_response("ERROR", "42P01", "relation does not exist"))
    assert h.server_bytes.endswith(SYNC)
    h.server(READY)
    assert kinds(h.client_bytes) == "EZ"
