"""Ending live sessions when a human is revoked or suspended or a credential expires, and
draining the command line's audit outbox.

``RevocationWatcher.check`` is cheap enough to run every second: it asks SQLite whether anyone
committed since the last call (``PRAGMA data_version``), re-reads the revoked humans only then,
and compares every live session's identity, its subject and its on-behalf-of chain, with that
set in memory. The sweep runs at every check, not only on a change, so a session that was signing
in while its owner was revoked is caught the second after it registers.

Terminated sessions get FATAL 57P01 (``admin_shutdown``, what ``pg_terminate_backend`` sends):
clients and pools treat it as "the connection was ended", not as a configuration error, and
retrying with the same credential then fails with 28P01 at sign-in.

Revocations come from the command line, from SCIM and from re-validation against the identity
provider (``revalidate``); all three write the store, and this watcher acts on it.

A suspended human (the provider stopped vouching for them, see ``revalidate``) loses every session
the provider's word stood behind: their OIDC sessions, their own credentials' and those of every
agent and service they own. A session signed in with a static user's password (the gateway's own
configuration, not the provider) is left alone: only a revocation ends it.

A gateway credential carries its expiry in the session's identity; at every sweep a session whose
credential has expired is ended as a revoked one is (the sign-in would be refused by then).

An administrator's ``wardgate sessions kill`` reaches the gateway the same way: a row in the
store's ``session_kill`` table, which the watcher reads with the revocations, ends the session
with 57P01 ("ended by an administrator (admin:NAME)") and marks done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from wardgate.audit.events import Event, terminated_event
from wardgate.core.model import Identity, SessionInfo
from wardgate.identity.credentials import SUSPENDED
from wardgate.identity.state import StateStore

log = logging.getLogger(__name__)

SQLSTATE = "57P01"
# A kill request not acted on within this many seconds (no such live session) is left alone.
KILL_WINDOW = 60.0
# Sign-ins checked by the gateway's own configuration (static users), not by the provider.
STATIC_METHODS = frozenset({"scram-sha-256", "password"})


class LiveSession(Protocol):
    info: SessionInfo

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None: ...


def revoked_in(session: SessionInfo, revoked: frozenset[str]) -> str:
    """The revoked human in the session's chain (subject first), or ""."""
    identity = session.identity
    if identity is None:
        return ""
    return next((n for n in (identity.subject, *identity.on_behalf_of) if n in revoked), "")


def suspended_in(session: SessionInfo, suspended: frozenset[str]) -> str:
    """The suspended human in the chain of a session the provider vouched for, or ""."""
    identity = session.identity
    if identity is None or identity.method in STATIC_METHODS:
        return ""
    return revoked_in(session, suspended)


def sign_in_check(store: StateStore) -> Callable[[Identity], str]:
    """For ``CompositeAuthenticator``: a revoked human signs in by no method (static password,
    OIDC token, credential), nor does anyone acting for them; a suspended one by no method but a
    static password. Reads the store at each sign-in."""

    def check(identity: Identity) -> str:
        revoked, suspended = store.standing()
        chain = (identity.subject, *identity.on_behalf_of)
        human = next((n for n in chain if n in revoked), "")
        if human:
            return f"{human!r} is revoked"
        if identity.method in STATIC_METHODS:
            return ""
        human = next((n for n in chain if n in suspended), "")
        return f"{human!r} is {SUSPENDED}" if human else ""

    return check


class RevocationWatcher:
    def __init__(
        self,
        store: StateStore,
        sessions: Callable[[], Iterable[LiveSession]],
        audit: Callable[[list[Event]], None],
    ) -> None:
        self.store = store
        self._sessions = sessions
        self._audit = audit
        self._version: tuple[int, int] | None = None
        self.revoked: frozenset[str] = frozenset()
        self.suspended: frozenset[str] = frozenset()
        self._ended: set[str] = set()
        # ``wardgate sessions kill``: requested (actor, reason) by session id; those ended.
        self.kills: dict[str, tuple[str, str]] = {}
        self._killed: list[str] = []

    def refresh(self) -> bool:
        """Re-read the store if it changed; True if it did. Blocking (SQLite): run off the loop."""
        if self._killed:
            killed, self._killed = self._killed, []
            self.store.mark_killed(killed)
        version = self.store.data_version()
        if version == self._version:
            return False
        self._version = version
        self.revoked, self.suspended = self.store.standing()
        self.kills = self.store.pending_kills(time.time() - KILL_WINDOW)
        outbox = self.store.outbox()
        if outbox:
            self._audit([event for _, event in outbox])  # durable before it leaves the outbox
            self.store.drop_outbox(outbox[-1][0])
        return True

    def sweep(self, now: float | None = None) -> list[Event]:
        """Terminate every live session of a revoked or suspended human, or of an expired
        credential; returns the audit events to record. Runs on the event loop that owns the
        sessions."""
        events: list[Event] = []
        now = time.time() if now is None else now
        live = list(self._sessions())
        self._ended &= {s.info.id for s in live}
        for session in live:
            info = session.info
            kill = self.kills.pop(info.id, None) if self.kills else None
            if kill is not None and info.id not in self._ended:
                events.append(self._kill(session, *kill))
                continue
            if info.id in self._ended:
                continue
            reason = self._why_end(info, now)
            if not reason:
                continue
            self._ended.add(info.id)
            log.warning("session %s: terminating: %s", info.id, reason)
            events.append(terminated_event(info, reason, time.time()))
            session.terminate(SQLSTATE, f"terminating connection: {reason}", reason)
        return events

    def _why_end(self, info: SessionInfo, now: float) -> str:
        """Why this session must end now ("" if it may go on)."""
        human = revoked_in(info, self.revoked) if self.revoked else ""
        if human:
            return f"access of {human!r} was revoked"
        human = suspended_in(info, self.suspended) if self.suspended else ""
        if human:
            return f"access of {human!r} was {SUSPENDED}"
        expires = info.identity.expires if info.identity is not None else None
        if expires is not None and now >= expires:
            return "the credential expired"
        return ""

    def _kill(self, session: LiveSession, actor: str, why: str) -> Event:
        """End a session an administrator asked to end (``wardgate sessions kill``)."""
        info = session.info
        self._ended.add(info.id)
        self._killed.append(info.id)
        reason = f"ended by an administrator ({actor})" + (f": {why}" if why else "")
        log.warning("session %s: terminating: %s", info.id, reason)
        event = terminated_event(info, reason, time.time())
        event["by"] = actor
        session.terminate(SQLSTATE, f"terminating connection: {reason}", reason)
        return event
