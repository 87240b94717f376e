"""Credentials the gateway issues: for a human, for an agent acting for a human, for a service.

A credential is ``wgc_<id>_<secret>``: ``id`` is 16 hex digits (64 random bits) naming the row,
``secret`` 32 random bytes in base64url (256 bits). The store keeps SHA-256 of the secret, not a
slow or keyed hash: a slow hash protects guessable passwords and a 256-bit random secret cannot be
guessed, and a key (HMAC) would be one more secret for the command line and every replica to
share without making the stolen table any more useful. Comparison is constant-time.

A credential is valid while it is unexpired, not revoked, and its owner is a registered, active
human. Its roles are the owner's roles at the time of use, intersected with the roles it was
given, so it never has more access than its owner, even after the owner loses a role.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import pytimeparse2

from wardgate.core.model import Identity
from wardgate.identity.state import CredentialRecord, Human, Kind, StateStore

PREFIX = "wgc_"
# How a refusal for a suspended owner reads: it tells the holder how to recover.
SUSPENDED = "suspended; sign in again with `wardgate login`"
RECOVER_HINT = (
    "the identity provider no longer vouches for this sign-in: its owner must sign in again"
    " with `wardgate login`"
)


def recovery_hint(reason: str) -> str:
    """The hint a client is shown with a refusal that a fresh sign-in would lift ("" if none)."""
    return RECOVER_HINT if SUSPENDED in reason else ""


METHOD = "credential"
_SHAPE = re.compile(r"^wgc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# An agent's or service's name is the user name its client connects as.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def parse_duration(value: str | float) -> float:
    """Seconds from ``90``, ``45s``, ``30m``, ``8h``, ``30d`` or ``1h30m`` (pytimeparse2)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = pytimeparse2.parse(value.strip())
        if found is None:
            raise ValueError(f"{value!r} is not a duration such as 30m, 8h or 30d")
        seconds = float(found.total_seconds() if hasattr(found, "total_seconds") else found)
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def check_request(
    kind: Kind, name: str | None, ttl: float, *, max_ttl: float, service_max_ttl: float
) -> None:
    """Refuse (ValueError) a name or lifetime that no credential of ``kind`` may have."""
    limit = service_max_ttl if kind == "service" else max_ttl
    if ttl > limit:
        raise ValueError(f"ttl exceeds the maximum of {limit:g} s for {kind} credentials")
    if kind != "human" and (name is None or not _NAME.match(name)):
        raise ValueError(
            f"{kind} name {name!r}: 1 to 63 letters, digits, '.', '_' or '-', starting with a"
            " letter or digit"
        )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like(password: str) -> bool:
    return password.startswith(PREFIX)


def effective_roles(owner: Human, given: tuple[str, ...] | None) -> tuple[str, ...]:
    if given is None:
        return owner.roles
    return tuple(r for r in owner.roles if r in given)


@dataclass(frozen=True)
class Issued:
    record: CredentialRecord
    secret: str  # the whole ``wgc_...`` text; shown once, never stored


def issue(
    store: StateStore,
    kind: Kind,
    name: str,
    owner: Human,
    ttl: float,
    event: dict[str, object],
    *,
    roles: tuple[str, ...] | None = None,
    now: float | None = None,
) -> Issued:
    """Create a credential; ``event`` (completed here with the credential's facts) is queued
    for the audit in the same transaction."""
    if not owner.active:
        raise ValueError(f"{owner.subject} is {owner.status}; no credential can be issued for them")
    created = time.time() if now is None else now
    credential_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = CredentialRecord(
        credential_id,
        kind,
        name,
        owner.subject,
        roles,
        created,
        created + ttl,
        None,
        digest(secret),
    )
    event["credential"] = describe(record, owner)
    store.add_credential(record, dict(event))
    return Issued(record, f"{PREFIX}{credential_id}_{secret}")


def describe(record: CredentialRecord, owner: Human | None) -> dict[str, object]:
    """A credential as the audit and ``credentials list --json`` show it (never the secret)."""
    return {
        "id": record.id,
        "kind": record.kind,
        "name": record.name,
        "subject": record.subject,
        "owner": record.owner,
        "owner_status": owner.status if owner is not None else "unknown",
        "roles": list(effective_roles(owner, record.roles)) if owner else [],
        "created": record.created,
        "expires": record.expires,
        "revoked": record.revoked_at is not None,
    }


class CredentialRefused(Exception):
    def __init__(self, reason: str, claimed: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.claimed = claimed


def verify(
    store: StateStore, password: str, user: str | None, now: float | None = None
) -> Identity:
    """The identity a credential stands for, or ``CredentialRefused`` saying why not.
    ``user`` is the name the client signed in as; None where there is none (``bearer``)."""
    match = _SHAPE.match(password)
    if match is None:
        raise CredentialRefused("malformed gateway credential")
    credential_id, secret = match.groups()
    record = store.credential(credential_id)
    expected = record.secret_sha256 if record is not None else digest(secrets.token_hex(16))
    if record is None or not hmac.compare_digest(digest(secret), expected):
        raise CredentialRefused("unknown gateway credential")
    claimed = record.subject if record.kind == "human" else f"{record.subject} for {record.owner}"
    now = time.time() if now is None else now
    if record.revoked_at is not None:
        raise CredentialRefused("credential revoked", claimed)
    if now >= record.expires:
        raise CredentialRefused("credential expired", claimed)
    owner = store.human(record.owner)
    if owner is None:
        raise CredentialRefused(f"owner {record.owner!r} is unknown", claimed)
    if owner.suspended:
        raise CredentialRefused(f"owner {record.owner!r} is {SUSPENDED} ({owner.reason})", claimed)
    if not owner.active:
        raise CredentialRefused(f"owner {record.owner!r} is revoked", claimed)
    if user is not None and user not in _logins(record, owner):
        raise CredentialRefused(f"credential is for {record.subject!r}", claimed)
    roles = effective_roles(owner, record.roles)
    if record.kind == "human":
        return Identity(owner.subject, roles, method=METHOD, expires=record.expires)
    return Identity(
        record.subject, roles, on_behalf_of=(owner.subject,), method=METHOD,
        expires=record.expires,
    )  # fmt: skip


def bearer(store: StateStore, secret: str, now: float | None = None) -> Identity:
    """The identity of a credential sent as an HTTP bearer token: no user name to match."""
    return verify(store, secret, None, now)


def _logins(record: CredentialRecord, owner: Human) -> set[str]:
    """The user names a client may connect as with this credential."""
    if record.kind == "human":
        return {owner.subject, *([owner.email] if owner.email else [])}
    return {record.name, record.subject}
