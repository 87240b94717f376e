"""The protocol-neutral model that policies, masking, recording and audit are written against."""

from __future__ import annotations

import enum
import time
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


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    by: str = ""

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
