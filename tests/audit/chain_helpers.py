"""Shared by the hash-chain tests: a store with signed heads, events, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wardgate.audit.chained import ChainedAudit
from wardgate.audit.checkpoints import load_or_create_key, public_pem
from wardgate.audit.events import Event


def event(i: int, *, subject: str = "alice", day: str = "2026-11-29") -> Event:
    return {
        "time": f"{day}T07:{i // 60 % 60:02d}:{i % 60:02d}.000000+00:00",
        "type": "statement",
        "who": {
            "verified": True,
            "subject": subject,
            "roles": ["engineer"],
            "on_behalf_of": ["bob"] if subject.startswith("agent") else [],
            "method": "scram-sha-256",
        },
        "session": {"id": "s1", "client_addr": "127.0.0.1:5555", "target": "clinic"},
        "seq": i,
        "kind": "query",
        "statement": f"SELECT name FROM patients WHERE id = {i}",
        "decision": "deny" if i % 5 == 0 else "allow",
        "outcome": "ok",
        "rows": i,
        "bytes": 10 * i,
        "duration_ms": 0.25 + i,
    }


@dataclass
class Log:
    db: Path
    key: Path
    public: Path
    heads: Path
    url: str | None = None  # a PostgreSQL store instead of the file ``db``

    @property
    def store(self) -> Path | str:
        return self.url or self.db

    def open(self, every_entries: int = 4) -> ChainedAudit:
        return ChainedAudit.open(
            self.store, self.key, head_file=self.heads, every_entries=every_entries
        )


def make_log(
    tmp: Path,
    n: int = 20,
    *,
    every_entries: int = 4,
    batch: int = 3,
    subject: str = "alice",
    url: str | None = None,
) -> Log:
    log = Log(
        tmp / "store" / "audit.db",
        tmp / "keys" / "audit.key",
        tmp / "audit.pub.pem",
        tmp / "anchors" / "heads.jsonl",
        url,
    )
    audit = log.open(every_entries)
    for i in range(1, n + 1):
        audit.record(event(i, subject=subject))
        if i % batch == 0:
            audit.commit()
    audit.close()
    log.public.write_text(public_pem(load_or_create_key(log.key).public_key()))
    return log


def wardgate(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wardgate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "WARDGATE_CONFIG"},
    )


def verify_cli(log: Log, *, head: bool = True) -> subprocess.CompletedProcess[str]:
    extra: list[str | Path] = ["--head", log.heads] if head else []
    return wardgate("audit", "verify", "--db", log.store, "--key", log.public, *extra)
