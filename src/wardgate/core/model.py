"""The protocol-neutral model that policies, masking, recording and audit are written against."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    """A verified principal. ``on_behalf_of`` names the humans an agent acts for, owner last."""

    subject: str
    roles: tuple[str, ...] = ()
    on_behalf_of: tuple[str, ...] = ()
    method: str = ""


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


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"  # waits for a human (an approval); ``Decision.hold`` says when it is decided


class Hold:
    """A decision that is not made yet: the protocol pauses the client's statement, shows it
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
    verdict: Verdict
    reason: str = ""
    by: str = ""
    hold: Hold | None = field(default=None, compare=False)

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOW = Decision(Verdict.ALLOW)


class Outcome(enum.Enum):
    PENDING = "pending"
    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    SKIPPED = "skipped"  # not run because an earlier message of its batch failed
    ABORTED = "aborted"  # the session ended before the result did


@dataclass(frozen=True)
class Column:
    name: str
    table_oid: int = 0
    column_number: int = 0
    type_oid: int = 0
    binary: bool = False


@dataclass(frozen=True)
class SessionContext:
    """The server's session state one statement runs in, as the protocol followed it from the
    server's answers (protocols/postgres/state.py): its ``search_path`` (None: not known), and
    for EXECUTE or FETCH the text of the prepared statement or cursor it names, with the
    search_path that text's names resolve with."""

    search_path: str | None
    refers_to: str | None = None
    refers_path: str | None = None


@dataclass
class Request:
    """One statement (or API call) and, once it ends, what came back."""

    session: SessionInfo
    seq: int
    kind: str
    text: str
    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    decision: Decision = ALLOW
    columns: tuple[Column, ...] = ()
    rows: int = 0
    bytes_out: int = 0
    outcome: Outcome = Outcome.PENDING
    error_code: str = ""
    error: str = ""
    ended_mono: float = 0.0
    # Set by an addon that wants the rows of this request's COPY TO STDOUT: it knows (from the
    # statement) that the data is in the default text format or binary, never CSV.
    copy_rows: bool = False
    # Set by the masking addon: masked values by label and the plan used, for the audit record.
    masking: dict[str, Any] | None = None
    # Set by the policy addon when a rule requires approval (the rule's settings); the approvals
    # addon turns it into a hold, or lets it run on a grant (``approval_id`` then names it).
    approval: Any = None
    approval_id: str = ""
    # Set by the policy addon: at most this many rows reach the client (see docs/policy.md);
    # the relay counts those it withholds past the cap.
    row_cap: int | None = None
    rows_withheld: int = 0
    # Set by the PostgreSQL relay: the context of each statement of ``text``, in order.
    contexts: tuple[SessionContext, ...] = ()
    # HTTP requests (kind "http", protocols/http/): the method, the path as the client sent it
    # (``/<api>/<rest>``, no query), the FHIR resource type (the first segment of ``<rest>``),
    # and the status code the client got.
    method: str = ""
    path: str = ""
    resource_type: str = ""
    status: int = 0
    # Set by an addon that rewrites where an HTTP request goes (masking: pseudonymous patient
    # ids back to the real ones): the request target ("/api/path?query") to forward instead.
    forward_target: str = ""

    @property
    def duration_ms(self) -> float:
        end = self.ended_mono or time.monotonic()
        return (end - self.started_mono) * 1000.0


@dataclass(frozen=True)
class ConnectAttempt:
    """A session start, successful or not; ``reason`` says why one failed."""

    session: SessionInfo
    ok: bool
    reason: str = ""
    sqlstate: str = ""
