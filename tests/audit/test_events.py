from __future__ import annotations

import json

import pytest

from wardgate.audit.events import StatementLines, encode, statement_event
from wardgate.core.model import (
    Decision,
    Identity,
    Outcome,
    SessionInfo,
    Statement,
    Verdict,
    Via,
)


def _session(identity: Identity | None) -> SessionInfo:
    return SessionInfo(
        "3f1c",
        "postgresql",
        "127.0.0.1:5555",
        "postgres",
        claimed_user="eve",
        target="clinic",
        identity=identity,
    )


CASES = [
    dict(text="SELECT 1", started=1764400000.25),
    dict(text="SELECT \"naïve\" || E'\\n' -- “quotes”", started=1764400001.9999996),
    dict(text="DELETE FROM t", started=1764400002.0, denied=True),
    dict(text="SELECT 1/0", started=1764400003.123456, error=("22012", 'division by "zero"')),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "identity",
    [None, Identity("alice", ("engineer",), ("bob@example.org",), "scram-sha-256")],
)
def test_fast_statement_line_equals_plain_encoding(
    case: dict[str, object], identity: Identity | None
) -> None:
    request = Statement(_session(identity), 7, str(case["text"]), Via.EXECUTE)
    request.started = float(case["started"])  # type: ignore[arg-type]
    request.rows, request.bytes_out = 3, 120
    request.ended_mono = request.started_mono + 0.0123456
    request.outcome = Outcome.OK
    if case.get("denied"):
        request.decision = Decision(Verdict.DENY, "writes need approval", "policy")
        request.outcome = Outcome.DENIED
    if case.get("error"):
        request.error_code, request.error = case["error"]  # type: ignore[misc]
        request.outcome = Outcome.ERROR
    lines = StatementLines()
    fast = lines.line(request)
    assert fast == encode(statement_event(request, 0.0))
    assert lines.line(request) == fast  # from the cache, too
    assert json.loads(fast)["statement"] == case["text"]


@pytest.mark.parametrize("text", ["x" * 2000, "é" * 700, "€" * 400 + "ab", "a" + "😀" * 300])
def test_a_long_statement_keeps_its_head_and_the_digest_of_all_of_it(text: str) -> None:
    import hashlib

    from wardgate.audit.events import clip_event, start_event
    from wardgate.audit.prepared import StatementEntries
    from wardgate.audit.store import prepare

    request = Statement(_session(None), 1, text, Via.QUERY)
    request.started = 1764400000.5
    request.ended_mono = request.started_mono + 0.0125
    whole = text.encode()
    event = statement_event(request, 0.0, 1024)
    kept = event["statement"].encode()
    assert 1020 < len(kept) <= 1024 and whole.startswith(kept)
    assert event["statement_truncated"] == {
        "bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
    }  # fmt: skip
    assert StatementLines(1024).line(request) == encode(event)  # the fast paths cut alike
    entries = StatementEntries(1024)
    assert entries.prepare(request) == prepare(event)
    assert entries.start(request) == prepare(start_event(request, 1024))
    assert json.loads(prepare(start_event(request, 1024))[2])["statement_truncated"]["bytes"] == (
        len(whole)
    )
    short = statement_event(request, 0.0, len(whole))  # exactly the limit: whole
    assert short["statement"] == text and "statement_truncated" not in short
    approval = clip_event({"type": "approval.requested", "statement": text}, 1024)
    assert approval["statement_truncated"] == event["statement_truncated"]
