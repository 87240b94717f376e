"""A suspended human comes back by signing in again at the provider.

Suspension (see ``revalidate``) means the provider stopped vouching for a grant without proving
the person gone. The proof that it vouches again is a token it issued *after* the suspension:
a token from before (still unexpired) says nothing new and is refused with the way to recover.
An administrator may also restore a suspended human (``wardgate users restore``); nobody
restores a revoked one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from wardgate.audit.events import identity_event
from wardgate.identity.state import Human, StateStore


def fresh_sign_in(human: Human, claims: Mapping[str, object]) -> bool:
    """Whether the token was issued at or after the human's suspension (``iat``, whole
    seconds as JWTs carry it)."""
    issued = claims.get("iat")
    if human.suspended_at is None or not isinstance(issued, int | float):
        return False
    return issued >= int(human.suspended_at)


def restore_on_sign_in(store: StateStore, human: Human, claims: Mapping[str, object]) -> Human:
    """``human`` as it stands after this sign-in: restored (and ``user.restored`` queued) if it
    was suspended and the token is fresh, unchanged otherwise."""
    if not human.suspended or not fresh_sign_in(human, claims):
        return human
    event = identity_event(
        "user.restored", human.subject, time.time(), subject=human.subject, email=human.email,
        reason="signed in again at the identity provider", suspended_for=human.reason,
        source="oidc",
    )  # fmt: skip
    store.restore_human(human.subject, event)
    return store.human(human.subject) or human
