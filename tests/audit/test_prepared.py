"""The fast statement path writes what the generic path and the ``rfc8785`` package write."""

from __future__ import annotations

import json
import random
import struct

import pytest
import rfc8785

from wardgate.audit.events import statement_event
from wardgate.audit.prepared import StatementEntries, js_number
from wardgate.audit.store import prepare
from wardgate.core.model import Decision, Identity, Outcome, SessionInfo, Statement, Verdict, Via

IDENTITIES = [
    None,
    Identity("alice", ("engineer",), (), "scram-sha-256"),
    Identity("cursor-bot", ("agent", "reader"), ("bob@example.org", "carol"), "credential"),
    Identity("", (), (), "trust"),
]

CASES: list[dict[str, object]] = [
    dict(text="SELECT 1", started=1764400000.25, duration=0.000321),
    dict(
        text="SELECT \"naïve\" || E'\\n\\t\\x01' -- “quotes” \U0001f600", started=1764400001.9999996
    ),
    dict(text="DELETE FROM t", started=1764400002.0, denied=True, duration=12.0),
    dict(text="SELECT 1/0", started=1764400003.123456, error=("22012", 'division by "zero"')),
    dict(text="SELECT e-1, e+2, 1.0, 2.0}", started=1764400004.5, duration=1e-9),
    dict(text="COPY t FROM STDIN", started=1764400005.0, duration=123456789012345.0),
    dict(text="x\ud800y", started=1764400006.0),  # a lone surrogate: kept as ascii() text
]


def _request(case: dict[str, object], identity: Identity | None) -> Statement:
    session = SessionInfo(
        "3f1c",
        "postgresql",
        "127.0.0.1:5555",
        "postgres",
        claimed_user="eve\u2028",
        target="clinic" if identity is None or identity.subject else "",
        identity=identity,
    )
    request = Statement(session, 7, str(case["text"]), Via.EXECUTE)
    request.started = float(case["started"])  # type: ignore[arg-type]
    request.rows, request.bytes_out = 3, 120
    request.ended_mono = request.started_mono + float(case.get("duration", 0.0123456)) / 1000.0  # type: ignore[arg-type]
    request.outcome = Outcome.OK
    if case.get("denied"):
        request.decision = Decision(Verdict.DENY, "writes need approval\x00", "policy")
        request.outcome = Outcome.DENIED
    if case.get("error"):
        request.error_code, request.error = case["error"]  # type: ignore[misc]
        request.outcome = Outcome.ERROR
    return request


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("identity", IDENTITIES)
def test_a_prepared_statement_equals_the_generic_path(
    case: dict[str, object], identity: Identity | None
) -> None:
    request = _request(case, identity)
    entries = StatementEntries()
    fast = entries.prepare(request)
    assert fast == prepare(statement_event(request, 0.0))
    assert entries.prepare(request) == fast  # from the session cache, too
    if "\ud800" not in str(case["text"]):
        assert fast[3] == rfc8785.dumps(statement_event(request, 0.0))
        assert json.loads(fast[2])["statement"] == case["text"]


def test_the_session_cache_follows_a_changed_identity() -> None:
    request = _request(CASES[0], None)
    entries = StatementEntries()
    before = entries.prepare(request)
    request.session.identity = IDENTITIES[2]
    after = entries.prepare(request)
    assert after == prepare(statement_event(request, 0.0)) and after != before
    entries.forget(request.session.id)
    assert entries.prepare(request) == after


def test_js_number_is_ecmascript_or_refuses() -> None:
    rng = random.Random(8785)
    values = [0.0, -0.0, 1.0, -12.0, 0.5, 1e-4, 1e-5, 1e15, 1e16, 1e21, 123.456, 0.1 + 0.2]
    values += [struct.unpack(">d", rng.randbytes(8))[0] for _ in range(3000)]
    values += [round(rng.random() * 10 ** rng.randrange(-8, 18), 3) for _ in range(3000)]
    for value in values:
        text = js_number(value)
        if text is not None:
            assert text.encode() == rfc8785.dumps(value), value
        elif value == value and abs(value) != float("inf"):
            assert b"e" in rfc8785.dumps(value) or "e" in repr(value)
