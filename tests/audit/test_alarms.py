"""The alarm file: a segment of signed events; only an acknowledgement signed by the gateway's
key closes an alarm."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wardgate.audit.alarms import AlarmFile, read_alarms
from wardgate.audit.canonical import canonical


def test_an_alarm_stays_open_until_the_key_acknowledges_it(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "keys" / "audit-alarms.jsonl"
    alarms = AlarmFile(path, key)
    assert alarms.open_alarm() is None
    raised = alarms.raise_alarm("the store ends at 4", 1_800_000_000.0, (3, "ab" * 32))
    assert raised["wrote"] == {"seq": 3, "hash": "ab" * 32}
    assert path.stat().st_mode & 0o777 == 0o600
    # An acknowledgement signed by another key, and a torn line, are not acknowledgements.
    intruder = AlarmFile(path, Ed25519PrivateKey.generate())
    assert intruder.acknowledge("nothing to see", "mallory", 1_800_000_001.0) is None
    forged = {"time": "x", "type": "audit.ack", "reason": "r", "by": "m", "alarm": raised["time"]}
    with path.open("ab") as f:
        f.write(canonical({"event": forged, "key_id": "00", "signature": "00"}) + b"\n")
        f.write(b'{"event": {"type": "audit.ack"\n')
    assert alarms.open_alarm() == raised
    assert alarms.acknowledgement(raised) is None
    done = alarms.acknowledge("row inserted by hand, ticket 7", "operator", 1_800_000_002.0)
    assert done is not None and done["alarm"] == raised["time"]
    assert alarms.open_alarm() is None
    assert alarms.acknowledgement(raised) == done
    assert [e["type"] for e in read_alarms(path, key.public_key())] == ["audit.tamper", "audit.ack"]
