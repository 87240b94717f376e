"""Tamper alarms: a segment of signed events kept apart from the store, and their acknowledgement.

When the gateway finds that the store's chain is not the one it wrote (``store.Tampered``), the
alarm cannot go into that chain: the gateway no longer knows what it would be chained to. It goes
into the alarm file instead, a segment of its own: one line per event,
``JCS({"event": <event>, "key_id": ..., "signature": ...})``, the signature being the gateway key's
Ed25519 signature over ``JCS(event)``. Two event types:

- ``audit.tamper``: ``reason`` (what the store holds against what the gateway wrote), ``wrote``
  (``seq`` and ``hash`` of the last entry the gateway wrote);
- ``audit.ack``: ``reason`` (the operator's), ``by`` (the operating-system user), ``alarm`` (the
  time of the alarm it acknowledges). Written by ``wardgate audit ack``, which needs the key.

An alarm is open while the latest ``audit.tamper`` has no later ``audit.ack``; lines whose
signature does not verify with the gateway's key are ignored (a forged acknowledgement clears
nothing). The file survives restarts, so restarting the gateway does not clear an alarm.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wardgate.audit.canonical import canonical
from wardgate.audit.checkpoints import key_id, utc
from wardgate.audit.events import Event


class AlarmFile:
    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self.path, self.key = path, key

    def events(self) -> list[Event]:
        """The events of the file whose signatures verify, in order."""
        return read_alarms(self.path, self.key.public_key())

    def open_alarm(self) -> Event | None:
        """The newest ``audit.tamper`` event, unless an ``audit.ack`` follows it."""
        latest: Event | None = None
        for event in self.events():
            if event.get("type") == "audit.tamper":
                latest = event
            elif event.get("type") == "audit.ack":
                latest = None
        return latest

    def acknowledgement(self, alarm: Event) -> Event | None:
        """The ``audit.ack`` written after ``alarm``, if any."""
        seen = False
        for event in self.events():
            if event == alarm:
                seen = True
            elif seen and event.get("type") == "audit.ack":
                return event
        return None

    def raise_alarm(self, reason: str, now: float, wrote: tuple[int, str] | None) -> Event:
        event: Event = {"time": utc(now), "type": "audit.tamper", "reason": reason}
        if wrote is not None:
            event["wrote"] = {"seq": wrote[0], "hash": wrote[1]}
        return self._append(event)

    def acknowledge(self, reason: str, by: str, now: float) -> Event | None:
        """Acknowledge the open alarm; None if there is none."""
        alarm = self.open_alarm()
        if alarm is None:
            return None
        return self._append(
            {
                "time": utc(now),
                "type": "audit.ack",
                "reason": reason,
                "by": by,
                "alarm": alarm["time"],
            }
        )

    def _append(self, event: Event) -> Event:
        line = canonical(
            {
                "event": event,
                "key_id": key_id(self.key.public_key()),
                "signature": self.key.sign(canonical(event)).hex(),
            }
        )
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return event


def read_alarms(path: Path, public: Ed25519PublicKey) -> list[Event]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    kid = key_id(public)
    found: list[Event] = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
            event = obj["event"]
            if obj["key_id"] != kid or not isinstance(event, dict):
                continue
            public.verify(bytes.fromhex(obj["signature"]), canonical(event))
        except Exception:  # a torn, foreign or forged line: not an alarm nor an acknowledgement
            continue
        found.append(event)
    return found
