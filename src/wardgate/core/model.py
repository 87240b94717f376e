"""The protocol-neutral model: sessions, decisions and the exchanges the pipeline carries.

An exchange is one unit of work a client asks of a target and its result. ``Exchange`` holds
what every kind has (session, sequence, decision, outcome, timing, bytes); ``Statement`` (a SQL
statement, from PostgreSQL today and MySQL later) and ``ApiCall`` (an HTTP/FHIR request, and MCP
through it) add only their own fields. Hooks are per exchange type (``core.pipeline``), so no
addon asks an exchange what kind it is.

Who writes what: the protocol glue fills the result fields (rows, bytes, outcome, status); the
pipeline alone writes ``decision`` (from the typed decisions the addons return); a
``Statement``'s ``analysis`` is computed once, on first use, by the analyser the pipeline was
given, and read by every addon after that. ``masked`` (counts by label, and the plan) is written
by the masking addons and read by the recorders.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wardgate.sql.analysis import Analysis, analyse


@dataclass(frozen=True)
class Identity:
    """A verified principal. ``on_behalf_of`` names the humans an agent acts for, owner last."""

    subject: str
    roles: tuple[str, ...] = ()
    on_behalf_of: tuple[str, ...] = ()
    method: str = ""
    expires: float | None = None  # a gateway credential's expiry: its sessions end then

    @property
    def agent(self) -> bool:
        return bool(self.on_behalf_of)


@dataclass
class SessionInfo:
    id: str
    protocol: str
    client_addr: str
    listener: str
    claimed_user: str = ""
    target: str = ""
    application: str = ""
    identity: Identity | None = None
    client_tls: str = ""
    upstream_tls: str = ""
    started: float = field(default_factory=time.time)
    # Set by the recording addon when the session ends: the recording's id, path and SHA-256,
    # carried by the session-end audit event.
    recording: dict[str, Any] | None = None


# ---- decisions ----------------------------------------------------------------------------------


class Verdict(enum.Enum):
    ALLOW = "allow"
    CAP = "cap_rows"  # allowed, at most ``Decision.cap`` rows reach the client
    APPROVE = "require_approval"  # a rule wants a human's approval; the approvals addon resolves
    HOLD = "hold"  # waits for a human; ``Decision.hold`` says when it is decided
    DENY = "deny"


# How strict each verdict is when addons (or the statements of one string) disagree.
_RANK = {Verdict.ALLOW: 0, Verdict.CAP: 1, Verdict.APPROVE: 2, Verdict.HOLD: 3, Verdict.DENY: 4}


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """Who must approve an exchange a rule holds: the rule's name, the approver roles, how many
    approvals, and how long a grant lasts (None: the configured default; 0: single use)."""

    rule: str
    approvers: tuple[str, ...] = ()
    min_approvals: int | None = None
    window: float | None = None


class Hold:
    """A decision that is not made yet: the protocol pauses the client's exchange, shows it
    ``notice``, and goes on when ``resolve`` gives the final decision (on the event loop)."""

    def __init__(self, notice: str) -> None:
        self.notice = notice
        self.result: Decision | None = None
        self._waiting: list[Callable[[Decision], None]] = []

    def when_resolved(self, callback: Callable[[Decision], None]) -> None:
        if self.result is not None:
            callback(self.result)
        else:
            self._waiting.append(callback)

    def resolve(self, decision: Decision) -> None:
        if self.result is not None:
            return
        self.result = decision
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback(decision)


@dataclass(frozen=True)
class Decision:
    """What happens to an exchange. ``cap`` goes with CAP, ``approval`` with APPROVE, ``hold``
    with HOLD; ``approval_id`` names the approval request a HOLD waits on or the grant an ALLOW
    ran under."""

    verdict: Verdict
    reason: str = ""
    by: str = ""
    cap: int | None = None
    approval: ApprovalRule | None = None
    approval_id: str = ""
    hold: Hold | None = field(default=None, compare=False)

    @property
    def allowed(self) -> bool:
        """It may run now (a cap still lets it run)."""
        return self.verdict is Verdict.ALLOW or self.verdict is Verdict.CAP

    @property
    def row_cap(self) -> int | None:
        return self.cap if self.verdict is Verdict.CAP else None

    def stricter(self, other: Decision) -> Decision:
        """The stricter of two decisions: deny over hold over approval over cap over allow, the
        smaller of two caps."""
        mine, theirs = _RANK[self.verdict], _RANK[other.verdict]
        if mine != theirs:
            return other if theirs > mine else self
        if self.verdict is Verdict.CAP and (other.cap or 0) < (self.cap or 0):
            return other
        if self.verdict is Verdict.ALLOW and other.reason and not self.reason:
            return other  # an allow that says why (an administrator's override) is audited
        return self

    @staticmethod
    def deny(reason: str, by: str) -> Decision:
        return Decision(Verdict.DENY, reason, by)


ALLOW = Decision(Verdict.ALLOW)


class Outcome(enum.Enum):
    PENDING = "pending"
    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    SKIPPED = "skipped"  # not run because an earlier message of its batch failed
    ABORTED = "aborted"  # the session ended before the result did


# ---- exchanges ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Exchange:
    """What every exchange has. ``text`` is what the client asked, as the audit shows it."""

    session: SessionInfo
    seq: int
    text: str
    started: float = field(default_factory=time.time, kw_only=True)
    started_mono: float = field(default_factory=time.monotonic, kw_only=True)
    decision: Decision = field(default=ALLOW, kw_only=True)
    outcome: Outcome = field(default=Outcome.PENDING, kw_only=True)
    bytes_out: int = field(default=0, kw_only=True)
    error_code: str = field(default="", kw_only=True)
    error: str = field(default="", kw_only=True)
    ended_mono: float = field(default=0.0, kw_only=True)
    # Masked values by label and the plans used (the masking addons), for the audit record.
    masked: dict[str, Any] | None = field(default=None, kw_only=True)

    @property
    def duration_ms(self) -> float:
        end = self.ended_mono or time.monotonic()
        return (end - self.started_mono) * 1000.0

    @property
    def kind(self) -> str:
        """What the records call this kind of exchange (to report, not to branch on)."""
        return "exchange"

    @property
    def digest(self) -> str:
        """What an approval of this exchange is bound to."""
        return hashlib.sha256(self.text.encode()).hexdigest()


class Via(enum.Enum):
    """The protocol message that runs a statement."""

    QUERY = "query"  # a simple Query (one or more statements)
    EXECUTE = "execute"  # an Execute of a prepared statement's portal
    FUNCTION_CALL = "function_call"  # a FunctionCall message: a function by OID, no SQL


@dataclass(frozen=True, slots=True)
class ResultColumn:
    """A column of a result as the server described it (a RowDescription field)."""

    name: str
    table_oid: int = 0
    column_number: int = 0
    type_oid: int = 0
    binary: bool = False


class RowBatch(Protocol):
    """Consecutive rows of one result that arrived together (PostgreSQL: the DataRows of one read
    from the server), for the ``rows`` hook: an addon works on them a column at a time. Values
    are bytes as the client receives them, None for SQL NULL. ``bodies`` are the rows in the
    row encoding (count u16, then per value: length i32, -1 for NULL, and its bytes), which
    PostgreSQL's DataRow and a recording's row record share."""

    def __len__(self) -> int: ...

    def columns(self, indices: tuple[int, ...]) -> list[list[bytes | None]]:
        """Per index, that column's value in each row (None too where a row has no such
        column)."""
        ...

    def replace(self, indices: tuple[int, ...], values: tuple[list[bytes | None], ...]) -> None:
        """Those columns' values, one per row; a row without such a column is kept as it is."""
        ...

    def rows(self) -> list[list[bytes | None]]: ...

    def set_rows(self, rows: list[list[bytes | None]]) -> None: ...

    def bodies(self) -> list[bytes]: ...


@dataclass(frozen=True)
class SessionContext:
    """The server's session state one statement runs in, as the protocol followed it from the
    server's answers (protocols/postgres/state.py): its ``search_path`` (None: not known), and
    for EXECUTE or FETCH the text of the prepared statement or cursor it names, with the
    search_path that text's names resolve with."""

    search_path: str | None
    refers_to: str | None = None
    refers_path: str | None = None


Analyser = Callable[[str], Analysis]


@dataclass(eq=False)
class Statement(Exchange):
    """One SQL statement string run by one protocol message, and its result."""

    via: Via = Via.QUERY
    columns: tuple[ResultColumn, ...] = ()
    rows: int = 0
    rows_withheld: int = 0  # past a row cap
    # Set by the protocol (PostgreSQL: from the server's answers): the session context of each
    # statement of ``text``, in order; () where the protocol follows none.
    contexts: tuple[SessionContext, ...] = ()
    # Set by the masking addon when the server must run other text than the client sent: the
    # client's with the pseudonyms of its look-ups decoded, and nothing else changed
    # (masking/lookups.py). ``text`` and ``analysis`` stay the client's: what was judged.
    forward_text: str = ""
    # The analyser the pipeline was built with; ``analysis`` asks it once, on first use.
    analyser: Analyser | None = field(default=None, repr=False)
    _analysis: Analysis | None = field(default=None, repr=False)

    @property
    def analysis(self) -> Analysis:
        """The statement's one analysis (parse tree, kinds, tables, effects, lineage, digest).
        Computed on first use, so that a statement no addon needs to read is never parsed."""
        found = self._analysis
        if found is None:
            analyser = self.analyser or analyse  # uncached, where no pipeline gave one
            found = self._analysis = analyser(self.text)
        return found

    @property
    def kind(self) -> str:
        return self.via.value

    @property
    def digest(self) -> str:
        return self.analysis.digest

    @property
    def row_cap(self) -> int | None:
        return self.decision.row_cap


@dataclass(eq=False)
class ApiCall(Exchange):
    """One HTTP request to an API (``text``: the method and the request target as sent)."""

    method: str = ""
    path: str = ""  # as the client sent it (``/<api>/<rest>``, no query)
    resource_type: str = ""  # FHIR: the first segment under the API
    status: int = 0  # what the client got
    # Set by the documents addon when the call must go elsewhere than the client said
    # (pseudonymous patient ids back to the real ones): the request target to forward.
    forward_target: str = ""

    @property
    def kind(self) -> str:
        return "http"


@dataclass(frozen=True)
class ConnectAttempt:
    """A session start, successful or not; ``reason`` says why one failed."""

    session: SessionInfo
    ok: bool
    reason: str = ""
    sqlstate: str = ""
