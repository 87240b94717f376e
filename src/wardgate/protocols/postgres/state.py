"""The server's session state as the gateway knows it. Sans-io.

Theory of operation
-------------------
PostgreSQL keeps, per session, named prepared statements, portals (protocol portals and SQL
cursors share one namespace), the transaction status with its savepoints, and settings such as
``search_path``. A client can make its own idea of them differ from the server's -- a Parse of a
name that exists fails, a message after an error is skipped until Sync -- so the gateway never
takes the client's word for them. Two things are kept here:

``confirmed``
    A ``World``: the state after every message the server has answered, changed only by those
    answers (ParseComplete, BindComplete, CloseComplete, the end of a Describe, CommandComplete,
    an ErrorResponse, ReadyForQuery's status) with PostgreSQL's own rules: a failed Parse or
    Bind creates nothing; an error in a transaction block aborts it, outside one rolls back the
    implicit transaction and makes the server skip messages up to Sync; portals die at the end
    of their transaction unless declared WITH HOLD and committed, and at a rollback to a
    savepoint older than they are; PREPARE and protocol-level statements are not transactional;
    SET is undone by a rollback, SET LOCAL at the end of the transaction.

``pending``
    The messages sent to the server and not yet answered, in order. The statement a client's
    Execute (or a Query's EXECUTE/FETCH) will run depends on how those turn out, so they are
    replayed on ``confirmed`` for every outcome they may still have (``_outcomes``: a named
    Parse of an existing name certainly fails, one of a new name may fail or not, ...). Each
    way of turning out is a world; worlds that end up equal are merged. A decision is made only
    when every world still alive (not skipping to Sync) gives the same answer: the same text at
    the same ``search_path``. Otherwise -- or when there are more than ``MAX_WORLDS`` worlds --
    the caller holds the client's message, asks the server to answer what it has (Flush), and
    asks again once nothing is pending: then there is one world, the confirmed one.

Statement effects come from ``wardgate.sql.effects`` (the parse tree). A statement the gateway
cannot parse gets no effects (it should fail at the server too, which decides); an effect whose
value cannot be known (``set_config`` with a computed argument) makes ``search_path`` unknown
(``None``), which the masking addon treats as a reason to refuse.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import islice
from typing import Any

from wardgate.core.model import SessionContext
from wardgate.sql import effects as fx

MAX_WORLDS = 32
_ERROR, _READY, _COMMAND_COMPLETE, _EMPTY_QUERY = b"E"[0], b"Z"[0], b"C"[0], b"I"[0]
_EXIT = (fx.Tx.COMMIT, fx.Tx.ROLLBACK, fx.Tx.ROLLBACK_TO, fx.Tx.PREPARE)
Parsed = tuple[tuple[fx.Effect, ...], ...] | None  # None: the text does not parse


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
    """A statement's text and what running it does. Compared by identity, which keeps comparing
    worlds cheap: one object per Parse message or PREPARE statement, shared by every world."""

    text: str
    runs: tuple[fx.Effect, ...]
    exits: bool = False  # COMMIT, ROLLBACK...: may run in an aborted transaction


@dataclass(frozen=True, slots=True)
class Portal:
    statement: Prepared
    search_path: str | None  # when it was planned (Bind, DECLARE): names resolve with this one
    level: int  # transaction nesting when made (1: the transaction, 2+: under savepoints)
    hold: bool = False
    kept: bool = False  # WITH HOLD and committed: lives until closed


@lru_cache(maxsize=1024)
def _prepared(effect: fx.Prepare | fx.Declare) -> Prepared:
    return Prepared(effect.text, effect.runs)


@dataclass(frozen=True, slots=True)
class _Frame:
    savepoint: str  # "" for the transaction itself
    path: str | None  # search_path when it began
    session_path: str | None  # the value a commit would keep, when it began


@dataclass(slots=True)
class World:
    """One complete guess at the server's session state."""

    path: str | None  # search_path in effect
    reset_path: str | None  # what RESET and DISCARD ALL go back to
    session_path: str | None = None  # what the setting becomes if the transaction commits
    statements: dict[str, Prepared] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    frames: tuple[_Frame, ...] = ()  # the open transaction and its savepoints
    block: str = ""  # "T" in a transaction block, "E" in a failed one
    skipping: bool = False  # an extended-protocol error: messages are skipped up to Sync

    def copy(self) -> World:
        return World(
            self.path, self.reset_path, self.session_path, dict(self.statements),
            dict(self.portals), self.frames, self.block, self.skipping,
        )  # fmt: skip

    def key(self) -> tuple[object, ...]:
        return (
            self.path, self.session_path, frozenset(self.statements.items()),
            frozenset(self.portals.items()), self.frames, self.block, self.skipping,
        )  # fmt: skip

    @property
    def status(self) -> str:
        return self.block or "I"

    # ---- transactions -----------------------------------------------------------------------

    def touch(self) -> None:
        """Any message but Sync runs in a transaction: an implicit one if no block is open."""
        if not self.frames:
            self.frames = _transaction_frames(self.path, self.session_path)

    def commit(self) -> None:
        self.path = self.session_path
        self.frames = ()
        self.block = ""
        if self.portals:
            self.portals = {
                n: replace(p, kept=True, level=0)
                for n, p in self.portals.items()
                if p.hold or p.kept
            }

    def rollback(self) -> None:
        if self.frames:
            self.path = self.session_path = self.frames[0].path
        self.frames = ()
        self.block = ""
        self.portals = {n: p for n, p in self.portals.items() if p.kept}

    def fail(self, extended: bool) -> None:
        """An error: a block is aborted; an implicit transaction rolls back."""
        if self.block:
            self.block = "E"
        else:
            self.rollback()
        self.skipping = extended

    def set_path(self, value: str | None, local: bool) -> None:
        self.path = value
        if not local:
            self.session_path = value

    # ---- statements -------------------------------------------------------------------------

    def run(
        self,
        runs: Iterable[fx.Effect],
        executing: str | None = None,
        chain: frozenset[str] = frozenset(),
    ) -> None:
        """The effects of a statement that completed. ``chain``: the prepared statements whose
        EXECUTE is running it (one that executes itself, through a Parse of ``EXECUTE a`` named
        ``a``, fails on the server with 54001 and has no effect)."""
        for effect in runs:
            self._effect(effect, executing, chain)

    def _effect(self, e: fx.Effect, executing: str | None, chain: frozenset[str]) -> None:
        if isinstance(e, fx.Prepare):
            self.statements[e.name] = _prepared(e)
        elif isinstance(e, fx.Deallocate):
            if e.name is None:
                self.statements.clear()
            else:
                self.statements.pop(e.name, None)
        elif isinstance(e, fx.Declare):
            self.portals[e.name] = Portal(_prepared(e), self.path, len(self.frames), e.hold)
        elif isinstance(e, fx.CloseCursor):
            if e.name is None:  # CLOSE ALL spares only the portal running it
                self.portals = {n: p for n, p in self.portals.items() if n == executing}
            else:
                self.portals.pop(e.name, None)
        elif isinstance(e, fx.Executes):
            prepared = self.statements.get(e.name)
            if prepared is not None and e.name not in chain:
                self.run(prepared.runs, chain=chain | {e.name})
        elif isinstance(e, fx.Fetches):
            portal = self.portals.get(e.name)
            if portal is not None:
                self.run(portal.statement.runs, chain=chain)
        elif isinstance(e, fx.Set):
            if e.name == "search_path" or (e.name == "" and e.default):
                self.set_path(self.reset_path if e.default else e.value, e.local)
        elif isinstance(e, fx.DiscardEffect) and e.what is fx.Discard.ALL:
            self.statements.clear()
            self.portals = {n: p for n, p in self.portals.items() if n == executing}
            self.set_path(self.reset_path, False)
        elif isinstance(e, fx.Transaction):
            self._transaction(e)

    def _transaction(self, e: fx.Transaction) -> None:
        op = e.op
        if op is fx.Tx.BEGIN:
            self.touch()  # an implicit transaction becomes the block
            self.block = self.block or "T"
        elif op in (fx.Tx.COMMIT, fx.Tx.PREPARE):
            if self.block == "E":
                self.rollback()
            else:
                self.commit()
        elif op is fx.Tx.ROLLBACK:
            self.rollback()
        elif op is fx.Tx.SAVEPOINT:
            self.touch()
            self.frames += (_Frame(e.savepoint, self.path, self.session_path),)
        elif op in (fx.Tx.RELEASE, fx.Tx.ROLLBACK_TO):
            index = _savepoint(self.frames, e.savepoint)
            if index is None:
                return
            frame = self.frames[index]
            if op is fx.Tx.RELEASE:
                self.frames = self.frames[:index]
                depth = len(self.frames)
                self.portals = {
                    n: replace(p, level=min(p.level, depth)) for n, p in self.portals.items()
                }
                return
            self.frames = self.frames[: index + 1]
            self.path, self.session_path = frame.path, frame.session_path
            self.portals = {n: p for n, p in self.portals.items() if p.kept or p.level <= index}
            self.block = "T"
        if e.chain and op in (fx.Tx.COMMIT, fx.Tx.ROLLBACK):
            self.touch()
            self.block = "T"


@lru_cache(maxsize=64)
def _transaction_frames(path: str | None, session_path: str | None) -> tuple[_Frame, ...]:
    return (_Frame("", path, session_path),)


def _savepoint(frames: tuple[_Frame, ...], name: str) -> int | None:
    for index in range(len(frames) - 1, 0, -1):
        if frames[index].savepoint == name:
            return index
    return None


# ---- the messages the server receives ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    text: str
    parsed: Parsed
    statement: Prepared = field(init=False, compare=False)

    def __post_init__(self) -> None:
        runs = self.parsed[0] if self.parsed else ()
        object.__setattr__(self, "statement", Prepared(self.text, runs, _exits(self.parsed)))


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str


@dataclass(frozen=True, slots=True)
class Describe:
    portal: bool
    name: str


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str


@dataclass(frozen=True, slots=True)
class Close:
    portal: bool
    name: str


@dataclass(frozen=True, slots=True)
class Sync:
    pass


@dataclass(frozen=True, slots=True)
class Query:
    parsed: Parsed
    call: bool = False  # a FunctionCall: may call set_config, so search_path becomes unknown


Op = Parse | Bind | Describe | Execute | Close | Sync | Query
OK, FAIL, SKIP = "ok", "fail", "skip"
# The server's messages that complete each kind of message, when it succeeds.
_ANSWERS: dict[type, tuple[int, ...]] = {
    Parse: (b"1"[0],),
    Bind: (b"2"[0],),
    Close: (b"3"[0],),
    Describe: (b"T"[0], b"n"[0]),
    Execute: (_COMMAND_COMPLETE, _EMPTY_QUERY, b"s"[0]),
}


def _exits(parsed: Parsed) -> bool:
    if not parsed:
        return False
    return any(isinstance(e, fx.Transaction) and e.op in _EXIT for e in parsed[0])


def _outcomes(w: World, op: Op) -> tuple[str, ...]:
    """How the server may answer ``op`` in world ``w``; one outcome where it is certain."""
    if isinstance(op, Sync):
        return (OK,)
    if w.skipping:
        return (SKIP,)
    if isinstance(op, Close):
        return (OK,)
    if isinstance(op, Query):
        return (OK, FAIL) if op.parsed != () else (OK,)
    if isinstance(op, Parse):
        if op.parsed is not None and len(op.parsed) > 1:
            return (FAIL,)  # 42601: one statement at most
        if op.name and op.name in w.statements:
            return (FAIL,)  # 42P05: a prepared statement of that name exists
        if w.block == "E" and not _exits(op.parsed):
            return (FAIL,)
        return (OK, FAIL)
    if isinstance(op, Bind):
        prepared = w.statements.get(op.statement)
        if prepared is None or (op.portal and op.portal in w.portals):
            return (FAIL,)
        if w.block == "E" and not prepared.exits:
            return (FAIL,)
        return (OK, FAIL)
    if isinstance(op, Describe):
        table = w.portals if op.portal else w.statements
        if op.name not in table:
            return (FAIL,)
        return (OK, FAIL) if w.block == "E" else (OK,)
    portal = w.portals.get(op.portal)
    if portal is None or (w.block == "E" and not portal.statement.exits):
        return (FAIL,)
    return (OK, FAIL)


def apply(w: World, op: Op, outcome: str) -> None:
    """``op`` answered with ``outcome`` (a Query: all its statements succeeded, or the first
    failed -- see ``run_query``)."""
    _APPLY[type(op)](w, op, outcome)


def _apply_sync(w: World, op: Sync, outcome: str) -> None:
    w.skipping = False
    if not w.block:
        w.commit()


def _apply_query(w: World, op: Query, outcome: str) -> None:
    if outcome != SKIP:
        run_query(w, op, None if outcome == OK else 0)


def _answered(w: World, outcome: str) -> bool:
    """What every extended-protocol message but Sync does first; False: nothing more to do."""
    if outcome == SKIP:
        return False
    w.touch()
    if outcome == FAIL:
        w.fail(extended=True)
        return False
    return True


def _apply_parse(w: World, op: Parse, outcome: str) -> None:
    if outcome == SKIP:
        return
    if not op.name:
        w.statements.pop("", None)  # the unnamed statement goes before the new one is parsed
    if _answered(w, outcome):
        w.statements[op.name] = op.statement


def _apply_bind(w: World, op: Bind, outcome: str) -> None:
    if _answered(w, outcome):
        w.portals[op.portal] = Portal(w.statements[op.statement], w.path, len(w.frames))


def _apply_describe(w: World, op: Describe, outcome: str) -> None:
    _answered(w, outcome)


def _apply_execute(w: World, op: Execute, outcome: str) -> None:
    if _answered(w, outcome):
        portal = w.portals.get(op.portal)
        if portal is not None and portal.statement.runs:
            w.run(portal.statement.runs, op.portal)


def _apply_close(w: World, op: Close, outcome: str) -> None:
    if _answered(w, outcome):
        (w.portals if op.portal else w.statements).pop(op.name, None)


_APPLY: dict[type, Callable[[World, Any, str], None]] = {
    Sync: _apply_sync,
    Query: _apply_query,
    Parse: _apply_parse,
    Bind: _apply_bind,
    Describe: _apply_describe,
    Execute: _apply_execute,
    Close: _apply_close,
}


def run_query(w: World, op: Query, failed_at: int | None) -> None:
    """A simple Query (or FunctionCall) whose statements all completed, or whose statement at
    ``failed_at`` failed: the rest were not run."""
    statements = op.parsed if op.parsed is not None else ((),)
    w.statements.pop("", None)  # a simple Query uses the unnamed statement and portal
    for index, runs in enumerate(statements):
        w.portals.pop("", None)
        w.touch()
        if index == failed_at:
            w.fail(extended=False)
            return
        if op.call:
            w.path = w.session_path = None
        w.run(runs)
    if not w.block:
        w.commit()


def query_contexts(w: World, parsed: Parsed) -> tuple[SessionContext, ...]:
    """The context each statement of a Query runs in, were they all to succeed."""
    if parsed is None:
        return ()
    if not any(parsed):  # no statement changes anything: each runs in the path there is now
        return (SessionContext(w.path),) * len(parsed)
    w = w.copy()
    out: list[SessionContext] = []
    for runs in parsed:
        w.touch()
        out.append(context(w, runs, w.path))
        w.run(runs)
    return tuple(out)


def context(w: World, runs: tuple[fx.Effect, ...], path: str | None) -> SessionContext:
    """What a statement with these effects refers to, in world ``w``."""
    for effect in runs:
        if isinstance(effect, fx.Executes):
            prepared = w.statements.get(effect.name)
            if prepared is not None:
                return SessionContext(path, prepared.text, w.path)
            return SessionContext(path, None, None)
        if isinstance(effect, fx.Fetches):
            portal = w.portals.get(effect.name)
            if portal is not None:
                return SessionContext(path, portal.statement.text, portal.search_path)
            return SessionContext(path, None, None)
    return SessionContext(path)


class SessionState:
    """What the server holds for one session: ``confirmed``, and the worlds ``pending`` leads to.

    The worlds are folded from ``confirmed`` over ``pending`` when a question is asked, and kept
    until an answer changes ``confirmed``. The commonest questions -- what an Execute at the end
    of a batch of Parse/Bind/Describe/Execute runs, what a Query sent when nothing is pending
    runs -- have one world still alive and need no branching: ``_line`` follows the world in
    which everything pending succeeds, which is the only one not skipping to a Sync as long as
    no Sync or Query is pending (a failure in the extended protocol skips to the Sync; a world
    skipping stays as it is). It gives up, and the worlds are folded, where that is not so:
    a Sync or Query pending, a message that surely fails, or more failures that may happen than
    ``MAX_WORLDS`` worlds could hold (the fold would stop there, and so does the line).
    ``fast=False`` always folds (the reference the property test compares the line with)."""

    def __init__(self, search_path: str | None, fast: bool = True) -> None:
        self.confirmed = World(search_path, search_path, search_path)
        self.pending: deque[Op] = deque()
        self.fast = fast
        self._statement = 0  # statements of the Query at the head of ``pending`` completed
        self._failed = False  # and whether one failed
        self._changed()

    def _changed(self) -> None:
        """``confirmed`` changed, or the head of ``pending`` was answered: fold anew."""
        self._worlds: list[World] | None = [self.confirmed]
        self._folded = 0  # messages of ``pending`` folded into ``_worlds``
        self._line: World | None = None  # a copy of ``confirmed`` with the first ``_lined``
        self._lined = 0  # messages of ``pending`` applied as succeeding
        self._line_fails = 0  # messages among them that may fail instead
        self._line_lost = not self.fast

    # ---- what goes to the server, and what comes back -----------------------------------------

    def sent(self, op: Op) -> None:
        if self.confirmed.skipping and not self.pending and not isinstance(op, Sync):
            return  # after an error the server skips it: no answer will come
        self.pending.append(op)

    def received(self, kind: int, body: bytes) -> None:
        """A message from the server: the answer to the head of ``pending``, or part of it."""
        pending = self.pending
        if self.confirmed.skipping:  # sent after an error: skipped, unanswered, up to Sync
            while pending and not isinstance(pending[0], Sync):
                pending.popleft()
                self._changed()
        if kind == _READY:
            while pending and not isinstance(pending[0], Sync | Query):
                pending.popleft()  # left unanswered: the model lost track
            if pending:
                op = self.pending.popleft()
                if isinstance(op, Query):
                    done, self._statement = self._statement, 0
                    failed, self._failed = self._failed, False
                    run_query(self.confirmed, op, done if failed else None)
                else:
                    apply(self.confirmed, op, OK)
            self._ready(body[:1].decode("ascii", "replace"))
            self._changed()
            return
        if not self.pending:
            return
        head = self.pending[0]
        if isinstance(head, Query):
            if kind == _ERROR:
                self._failed = True
            elif kind in (_COMMAND_COMPLETE, _EMPTY_QUERY):
                self._statement += 1
            return
        if kind == _ERROR:
            self._answered(FAIL)
        elif kind in _ANSWERS.get(type(head), ()):
            self._answered(OK)

    def _answered(self, outcome: str) -> None:
        op = self.pending.popleft()
        apply(self.confirmed, op, outcome)
        if outcome == FAIL:  # the server skips everything up to the next Sync, Queries too
            while self.pending and not isinstance(self.pending[0], Sync):
                self.pending.popleft()
        self._changed()

    def _ready(self, status: str) -> None:
        """ReadyForQuery's status: the transaction state is the server's, whatever we thought.
        A disagreement means the model lost track: the search_path is then unknown."""
        w = self.confirmed
        if status == w.status and (status != "I" or not w.frames):
            return
        if status == "I":
            w.rollback()
        else:
            w.touch()
            w.block = status
        w.path = w.session_path = None

    # ---- the worlds -------------------------------------------------------------------------

    def worlds(self) -> list[World] | None:
        """Every way the server's state may be once ``pending`` is answered (None: too many)."""
        pending = self.pending
        if self._folded < len(pending):
            worlds = self._worlds
            for op in islice(pending, self._folded, None):
                if worlds is None:
                    break
                worlds = _branch(worlds, op)
            self._worlds, self._folded = worlds, len(pending)
        return self._worlds

    def _follow_line(self) -> World | None:
        """The one world not skipping to a Sync, when ``_line`` can tell it; None: fold."""
        if self._line_lost:
            return None
        pending = self.pending
        line = self._line
        if line is None:
            if self.confirmed.skipping:
                self._line_lost = True
                return None
            if not pending:
                return self.confirmed  # not to be changed: the questions only read it
            line = self._line = self.confirmed.copy()
        for op in islice(pending, self._lined, None):
            self._lined += 1
            if isinstance(op, Sync | Query):
                self._line_lost = True  # the worlds that failed may go on from here
                return None
            outcomes = _outcomes(line, op)
            if OK not in outcomes:
                self._line_lost = True
                return None
            if FAIL in outcomes:
                self._line_fails += 1
                if 1 + self._line_fails > MAX_WORLDS:  # as many worlds as the fold may have
                    self._line_lost = True
                    return None
            apply(line, op, OK)
        return line

    def _alive(self) -> list[World] | None:
        """The worlds not skipping to a Sync ([] if every one is); None: too many worlds."""
        line = self._follow_line()
        if line is not None:
            return [line]
        worlds = self.worlds()
        if worlds is None:
            return None
        return [w for w in worlds if not w.skipping]

    def _deciding(self) -> list[World] | None:
        """The worlds a decision must agree in: those alive, or every one if none is."""
        alive = self._alive()
        if alive is None:
            return None
        return alive or self.worlds()

    # ---- questions --------------------------------------------------------------------------

    def portal(self, name: str) -> tuple[str, SessionContext] | None:
        """The text an Execute of ``name`` sent now would run and its context; None when that
        depends on answers still to come (hold the Execute)."""
        deciding = self._deciding()
        if deciding is None:
            return None
        if len(deciding) == 1:
            return _portal(deciding[0], name)
        answers = {_portal(w, name) for w in deciding}
        return answers.pop() if len(answers) == 1 else None

    def may_run(self, name: str) -> bool:
        """Whether an Execute of portal ``name`` sent now may run at all (or surely fails)."""
        alive = self._alive()
        if alive is None:
            return True
        execute = Execute(name)
        return any(_outcomes(w, execute) != (FAIL,) for w in alive)

    def stale_portal(self, name: str) -> bool:
        """In a failed transaction block, a portal that no longer exists for us may still exist
        for the server, failed (the unnamed portal of a Query that failed there), and PostgreSQL
        15.20 can crash executing it: the relay does not send such an Execute on."""
        alive = self._alive() or ()
        return bool(alive) and all(w.block == "E" and name not in w.portals for w in alive)

    def query(self, parsed: Parsed) -> tuple[SessionContext, ...] | None:
        """The context of each statement of a Query sent now; None: hold it."""
        deciding = self._deciding()
        if deciding is None:
            return None
        if len(deciding) == 1:
            return query_contexts(deciding[0], parsed)
        answers = {query_contexts(w, parsed) for w in deciding}
        return answers.pop() if len(answers) == 1 else None


def _portal(w: World, name: str) -> tuple[str, SessionContext]:
    """The text an Execute of portal ``name`` runs in ``w`` ("" if none), and its context."""
    portal = w.portals.get(name)
    if portal is None:
        return "", SessionContext(w.path)
    runs = portal.statement.runs
    return portal.statement.text, context(w, runs, portal.search_path)


def _branch(worlds: list[World], op: Op) -> list[World] | None:
    out: dict[tuple[object, ...], World] = {}
    for w in worlds:
        for outcome in _outcomes(w, op):
            if isinstance(op, Query) and outcome == FAIL:
                for index in range(len(op.parsed or ((),))):
                    _add(out, w, _failing(op, index))
                continue
            _add(out, w, _answering(op, outcome))
    if len(out) > MAX_WORLDS:
        return None
    return list(out.values())


def _add(out: dict[tuple[object, ...], World], w: World, step: Callable[[World], None]) -> None:
    n = w.copy()
    step(n)
    out.setdefault(n.key(), n)


def _failing(op: Query, index: int) -> Callable[[World], None]:
    return lambda w: run_query(w, op, index)


def _answering(op: Op, outcome: str) -> Callable[[World], None]:
    return lambda w: apply(w, op, outcome)
