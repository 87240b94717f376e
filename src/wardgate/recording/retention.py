"""Which recordings are past retention (``audit.retention_days``), and the listing they share.

A recording's age is taken from the latest time known of it: its session's end, its start, and
the file's modification time. So nothing younger than the retention period is deleted, even a
recording cut off by a crash (no end) or copied (a new mtime keeps it longer, never shorter).
"""

from __future__ import annotations

from pathlib import Path

from wardgate.recording.keys import KeyProvider
from wardgate.recording.reader import Summary, summary
from wardgate.recording.writer import SUFFIX


def recordings(directory: Path, keys: KeyProvider) -> list[Summary]:
    """Every recording in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    found = [summary(p, keys) for p in directory.glob(f"*{SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda s: (s.header.get("started", 0.0), s.id), reverse=True)


def last_known(item: Summary) -> float:
    times = [item.path.stat().st_mtime, float(item.header.get("started", 0.0))]
    if item.end is not None:
        times.append(float(item.end["time"]))
    return max(times)


def expired(directory: Path, keys: KeyProvider, days: int, now: float) -> list[Summary]:
    cutoff = now - days * 86400.0
    return [r for r in recordings(directory, keys) if last_known(r) < cutoff]
