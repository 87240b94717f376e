"""Retention cuts that prove themselves: the ``audit.cut`` entry.

Before a purge deletes entries 1..N, it appends to the chain an ``audit.cut`` event signed by the
gateway key::

    {"time", "type": "audit.cut", "tree_size": N, "root_hash": <root of the signed head of N>,
     "last_hash": <hash of entry N>, "last_time": <time of entry N>, "retention_days": D,
     "consistency": {"<M>": [hex, ...], ...}, "key_id": ..., "signature": ...}

``signature`` is Ed25519 over ``JCS`` of the event without ``signature``; ``consistency`` holds
the RFC 6962 proof from every stored head of M entries (M < N, down to the previous cut) to the
head of N, so that heads anchored before the cut can still be checked against it. The entry
itself stays (its seq is above N). ``verify`` refuses a cut no such entry vouches for, one whose
last entry was younger than its retention period when the cut was made, and an anchored head
below the cut whose proof does not hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wardgate.audit.canonical import canonical
from wardgate.audit.checkpoints import key_id
from wardgate.audit.events import Event

CUT = "audit.cut"


def cut_event(
    key: Ed25519PrivateKey,
    *,
    time: str,
    tree_size: int,
    root_hash: str,
    last_hash: str,
    last_time: str,
    retention_days: int,
    consistency: dict[str, list[str]],
) -> Event:
    event: Event = {
        "time": time,
        "type": CUT,
        "tree_size": tree_size,
        "root_hash": root_hash,
        "last_hash": last_hash,
        "last_time": last_time,
        "retention_days": retention_days,
        "consistency": consistency,
        "key_id": key_id(key.public_key()),
    }
    event["signature"] = key.sign(canonical(event)).hex()
    return event


def cut_signed(event: dict[str, Any], public: Ed25519PublicKey) -> bool:
    """Is ``event`` an ``audit.cut`` signed by ``public``?"""
    unsigned = {k: v for k, v in event.items() if k != "signature"}
    try:
        if event.get("type") != CUT or event.get("key_id") != key_id(public):
            return False
        public.verify(bytes.fromhex(str(event["signature"])), canonical(unsigned))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True


def age_days(event: dict[str, Any]) -> float:
    """How old entry N was, in days, when the cut was made."""
    made = dt.datetime.fromisoformat(str(event["time"]))
    last = dt.datetime.fromisoformat(str(event["last_time"]))
    return (made - last).total_seconds() / 86400.0
