"""DEVELOPMENT ONLY: the demo provider's grants on disk, so that restarting ``wardgate demo``
does not forget them.

A provider that forgets its grants answers the gateway's next re-validation with
``invalid_grant: unknown refresh token``, which suspends everyone who signed in (issue 19). A
real provider keeps its grants across restarts; so does this one. Only SHA-256 digests of refresh
tokens are written (as in memory), with the refresh families, their expiry and the disabled
accounts, in one JSON file, mode 0600 in a 0700 folder, replaced atomically at every change.
Codes and device grants are short-lived and stay in memory.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VERSION = 1


@dataclass
class Snapshot:
    """``families``: id -> its fields; ``refresh``: token digest -> (family id, expiry)."""

    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: dict[str, tuple[str, float]] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)


def load(path: Path | None) -> Snapshot:
    """What ``path`` holds; an empty snapshot if there is none or it cannot be read (a
    development provider must start; the gateway then suspends, it does not revoke)."""
    if path is None or not path.exists():
        return Snapshot()
    try:
        data = json.loads(path.read_text())
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}")
        refresh = {k: (str(v[0]), float(v[1])) for k, v in data["refresh"].items()}
        return Snapshot(dict(data["families"]), refresh, set(data["disabled"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("dev-idp: ignoring the grants in %s: %s", path, exc)
        return Snapshot()


def save(path: Path, snapshot: Snapshot) -> None:
    data = {
        "version": VERSION,
        "families": snapshot.families,
        "refresh": {k: list(v) for k, v in snapshot.refresh.items()},
        "disabled": sorted(snapshot.disabled),
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
