"""Differential: the session state's fast path answers what folding every world answers.

``SessionState`` answers the commonest questions from one world (``_line``: everything pending
succeeds) instead of folding every way the pending messages may turn out. Hypothesis drives two
models, one with the fast path and one without (``fast=False``), with the same messages to the
server and the same answers from it -- realistic ones and arbitrary ones, in any order, with
the names and statements the live property test uses (test_session_state_property.py) -- and
after every step asks both every question the relay asks: the answers and the confirmed state
must be the same. Sans-io: no server is needed to compare two models of one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as hs

from wardgate.protocols.postgres import state as st
from wardgate.sql.analysis import analyse

NAMES = ("", "a", "b")
PORTALS = ("", "c")
TEXTS = (
    "SELECT 1",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "SELECT 1/0",
    "SELEC 1",
    "SELECT 1; SELECT 2",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s",
    "RELEASE SAVEPOINT s",
    "SET search_path = public",
    "SET LOCAL search_path = pg_catalog",
    "RESET search_path",
    "PREPARE a AS SELECT 1",
    "PREPARE b AS SELECT 2; SELECT 1/0",
    "EXECUTE a",
    "EXECUTE b",
    "DEALLOCATE a",
    "DEALLOCATE ALL",
    "DECLARE c CURSOR FOR SELECT 3",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 4",
    "FETCH ALL FROM c",
    "CLOSE c",
    "CLOSE ALL",
    "DISCARD ALL",
    "BEGIN; SET search_path = pg_catalog; SELECT 1/0",
    "",
)


def parsed(text: str) -> st.Parsed:
    try:
        return analyse(text).effects
    except Exception:
        return None


PARSED = {text: parsed(text) for text in TEXTS}

# A step: ("send", message) or ("answer", server message type, body).
texts = hs.sampled_from(TEXTS)
messages = hs.one_of(
    hs.builds(lambda n, t: ("P", n, t), hs.sampled_from(NAMES), texts),
    hs.builds(lambda p, n: ("B", p, n), hs.sampled_from(PORTALS), hs.sampled_from(NAMES)),
    hs.builds(lambda p, n: ("D", p, n), hs.booleans(), hs.sampled_from(NAMES + PORTALS)),
    hs.builds(lambda p: ("E", p, ""), hs.sampled_from(PORTALS)),
    hs.builds(lambda p, n: ("C", p, n), hs.booleans(), hs.sampled_from(NAMES + PORTALS)),
    hs.just(("S", "", "")),
    hs.builds(lambda t: ("Q", "", t), texts),
    hs.just(("F", "", "")),
)
answers = hs.tuples(hs.sampled_from(b"123TnCIsEZ"), hs.sampled_from((b"I", b"T", b"E")))
steps = hs.lists(
    hs.one_of(
        hs.tuples(hs.just("send"), messages),
        hs.tuples(hs.just("answer"), answers),
        hs.tuples(hs.just("answer-right"), hs.just(None)),
    ),
    max_size=40,
)


def op(message: tuple[str, object, str]) -> st.Op:
    kind, first, second = message
    if kind == "P":
        return st.Parse(str(first), second, PARSED[second])
    if kind == "B":
        return st.Bind(str(first), second)
    if kind == "D":
        return st.Describe(bool(first), second)
    if kind == "E":
        return st.Execute(str(first))
    if kind == "C":
        return st.Close(bool(first), second)
    if kind == "S":
        return st.Sync()
    if kind == "Q":
        return st.Query(PARSED[second])
    return st.Query(None, call=True)


def right_answer(model: st.SessionState) -> tuple[int, bytes]:
    """What the server most often says next: success of the head message (an error for a
    message after an error), ReadyForQuery for a Sync or Query."""
    if not model.pending:
        return b"Z"[0], b"I"
    head = model.pending[0]
    if isinstance(head, st.Sync | st.Query):
        return b"Z"[0], (model.confirmed.block or "I").encode()
    if model.confirmed.skipping or st._outcomes(model.confirmed, head) == (st.FAIL,):
        return b"E"[0], b""
    kind = {st.Parse: b"1", st.Bind: b"2", st.Close: b"3", st.Describe: b"T", st.Execute: b"C"}
    return kind[type(head)][0], b""


def received(model: st.SessionState, kind: int, body: bytes) -> str:
    try:
        model.received(kind, body)
    except KeyError as exc:
        return repr(exc)
    return ""


def questions(model: st.SessionState) -> list[object]:
    """Every question's answer. A Parse of "EXECUTE a" named "a" runs itself when executed: the
    server stops it (stack depth limit exceeded), and both models follow it no further."""
    asked: list[Callable[[], object]] = []
    for name in (*PORTALS, "a"):
        asked += [partial(model.portal, name), partial(model.may_run, name)]
        asked.append(partial(model.stale_portal, name))
    for text in ("SELECT 1", "SELECT 1; SELECT 2", "EXECUTE a", "FETCH ALL FROM c", "SELEC 1"):
        asked.append(partial(model.query, PARSED[text]))
    return [question() for question in asked]


@settings(max_examples=1500, deadline=None)
@given(steps=steps, path=hs.sampled_from(("public", '"$user", public', None)))
def test_the_fast_path_answers_what_the_worlds_answer(
    steps: list[tuple[str, object]], path: str | None
) -> None:
    fast, full = st.SessionState(path), st.SessionState(path, fast=False)
    for what, step in steps:
        if what == "send":
            message = op(step)  # type: ignore[arg-type]  # one object for both (identity)
            fast.sent(message)
            full.sent(message)
        else:
            answer: tuple[int, bytes] = right_answer(full) if step is None else step  # type: ignore[assignment]
            kind, body = answer
            # An arbitrary answer may be one no server gives (BindComplete for a statement
            # that does not exist): the two models must then fail alike.
            assert received(fast, kind, body) == received(full, kind, body)
        assert questions(fast) == questions(full)
        assert fast.confirmed.key() == full.confirmed.key()
        assert list(fast.pending) == list(full.pending)


def test_a_pgbench_batch_takes_the_fast_path() -> None:
    """Parse/Bind/Describe/Execute/Sync of one statement: the Execute is decided from one world,
    and no world is folded for it."""
    model = st.SessionState("public")
    text = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    for _ in range(3):
        for message in (st.Parse("", text, PARSED[text]), st.Bind("", ""), st.Describe(True, "")):
            model.sent(message)
        answer = model.portal("")
        assert answer is not None and answer[0] == text
        assert model.may_run("") and not model.stale_portal("")
        assert model._folded == 0  # the worlds were not folded
        model.sent(st.Execute(""))
        model.sent(st.Sync())
        for kind in b"12TCZ":
            model.received(kind, b"I")
        assert not model.pending


def test_the_fast_path_gives_up_where_the_worlds_overflow() -> None:
    """A batch with more ways of failing than ``MAX_WORLDS`` worlds: folding gives up (the
    Execute waits for the answers), and so does the fast path."""
    fast, full = st.SessionState("public"), st.SessionState("public", fast=False)
    for n in range(st.MAX_WORLDS):
        for message in (st.Parse("", f"SELECT {n}", ((),)), st.Bind("", "")):
            fast.sent(message)
            full.sent(message)
    assert full.portal("") is None
    assert fast.portal("") is None
