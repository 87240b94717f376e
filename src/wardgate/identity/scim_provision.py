"""What a SCIM change does to the human it stands for, inside one state-store transaction.

A SCIM user stands for the human whose subject is its ``externalId`` (else its ``userName``). A
human registered earlier by other means (the command line, the configuration, an OIDC sign-in)
with that subject is adopted, not duplicated. Its e-mail follows the user's primary e-mail; its
roles follow the user's ``roles`` only when a role mapping is configured and the provider sends
them.

``active: false`` and DELETE revoke the human as ``wardgate users revoke`` does: the gateway's
revocation watcher ends their sessions and their agents'. ``active: true`` reactivates only what
the identity provider itself turned off (this user was inactive, or the human's last revocation
was a SCIM DELETE): a revocation made on the gateway host is not undone by the provider's routine
updates, which carry ``active: true``. Reactivation marks every older credential of the human and
of their agents revoked, so none comes back to life.

Every change queues its audit event (``user.provisioned``, ``user.updated``, ``user.revoked``,
``user.reactivated``, ``user.deleted``; actor "scim", source "scim") in the same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from wardgate.audit.events import identity_event
from wardgate.identity.scim_model import ScimError, email_of, roles_of, subject_of
from wardgate.identity.state import Human, ScimUser, ScimWrite

ACTOR = "scim"


def _event(kind: str, now: float, user: ScimUser, **details: Any) -> dict[str, Any]:
    return identity_event(
        kind, ACTOR, now, subject=user.subject, email=email_of(user.resource), scim_id=user.id,
        user_name=user.user_name, external_id=user.external_id, source=ACTOR, **details,
    )  # fmt: skip


def _revoke(tx: ScimWrite, user: ScimUser, subject: str, reason: str, now: float) -> list[Any]:
    """``subject`` is the user's, or (when the user now stands for another) its former one."""
    human = tx.human(subject)
    if human is None or not tx.revoke(subject, reason, now):
        return []
    event = _event("user.revoked", now, user, reason=reason)
    return [event | {"subject": subject, "email": human.email}]


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _idp_revoked(tx: ScimWrite, old: ScimUser | None, human: Human) -> bool:
    """Whether the provider itself turned this human off (so it may turn them on again)."""
    if old is not None and old.subject == human.subject:
        return old.resource.get("active") is False
    return human.revoked_at is not None and tx.deleted_since(human.subject, human.revoked_at)


def save(
    tx: ScimWrite,
    scim_id: str,
    old: ScimUser | None,
    resource: dict[str, Any],
    mapping: Mapping[str, tuple[str, ...]],
    now: float,
) -> ScimUser:
    """Create (``old`` None) or replace a user, and bring its human in line."""
    subject = subject_of(resource)
    user_name = str(resource["userName"])
    clash = tx.taken(user_name, subject, scim_id)
    if clash:
        what = "userName" if clash == "userName" else "externalId (or userName)"
        raise ScimError(409, f"another user has this {what}", "uniqueness")
    external = resource.get("externalId")
    user = ScimUser(
        scim_id, subject, user_name, external if isinstance(external, str) else None, resource,
        old.created if old is not None else now, now,
    )  # fmt: skip
    email, roles = email_of(resource), roles_of(resource, mapping)
    active = resource.get("active") is not False
    events: list[dict[str, Any]] = []
    if old is not None and old.subject != subject:
        reason = f"SCIM user {scim_id} now stands for {subject!r}"
        events += _revoke(tx, user, old.subject, reason, now)
    bound = old is not None and old.subject == subject
    human = tx.human(subject)
    status: list[dict[str, Any]] = []  # revoked or reactivated: they say what "active" did
    if human is None:
        tx.add_human(subject, email, roles or (), now)
        events.append(_event("user.provisioned", now, user, roles=list(roles or ()), adopted=False))
        human_active = True
    else:
        tx.update_human(subject, email, roles)
        human_active = not human.revoked  # suspended: still provisioned, SCIM can revoke
        if not bound:
            shown = list(roles if roles is not None else human.roles)
            events.append(_event("user.provisioned", now, user, roles=shown, adopted=True))
        if active and human.revoked and _idp_revoked(tx, old, human):
            tx.reactivate(subject, now)
            status.append(_event("user.reactivated", now, user))
            human_active = True
    if not active and human_active:
        status += _revoke(tx, user, subject, "deactivated by SCIM", now)
        human_active = False
    if bound and old is not None:
        changes = [c for c in _changed(old.resource, resource) if not (status and c == "active")]
        if changes:
            events.append(_event("user.updated", now, user, changed=changes))
    events += status
    unchanged = old is not None and not events and old.resource == resource
    modified = old.modified if unchanged and old is not None else now
    user = dataclasses.replace(user, modified=modified, human_active=human_active)
    tx.put_user(user)
    for event in events:
        tx.queue(event)
    return user


def delete(tx: ScimWrite, scim_id: str, now: float) -> None:
    """The user is gone (404 from now on); its human stays, revoked, for the audit."""
    user = tx.user(scim_id)
    if user is None:
        raise ScimError(404, f"no user {scim_id}")
    events = _revoke(tx, user, user.subject, "deleted by SCIM", now)
    tx.delete_user(scim_id, now)
    events.append(_event("user.deleted", now, user))
    for event in events:
        tx.queue(event)
