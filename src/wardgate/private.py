"""The gateway's state is private to the account it runs as.

Audit stores hold statements (and so PHI in literals), recordings hold what clients saw, keys
sign and pseudonymise. So the process runs with umask 077: every file it creates (SQLite
databases and the -wal and -shm files SQLite gives the database's own mode, spools, recordings,
keys, the health file) is 0600, every folder 0700. Files made before (by an older version, or
by hand) keep their modes: `loose` lists those that another account could read or write (or,
for a folder, list or write), for `wardgate check` and the start-up log.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from wardgate.config import Config

UMASK = 0o077
# A folder that others may only pass through (the search bit, as the demo's folder gets for the
# embedded PostgreSQL's own account) shows them nothing: they can neither list it nor read its
# 0600 files. Reading or writing it is what gives state away.
_FOLDER_LOOSE = 0o066


def make_private() -> None:
    """From now on, what this process creates is its own account's alone."""
    os.umask(UMASK)


def state_paths(config: Config) -> list[tuple[Path, bool]]:
    """(path, whether everything under it is state too) for each place the gateway writes."""
    from wardgate.recording.addon import locations

    audit = config.audit
    files: list[Path] = []
    for path in (audit.path, audit.head_file, config.identity.state, config.health_path()):
        if path is not None:
            files.append(path)
    if isinstance(audit.store, Path):
        files.append(audit.store)
    for database in (config.identity.state, audit.store):
        if isinstance(database, Path):
            files += [database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal")]
    key = audit.key_path()
    if key is not None:
        files.append(key)
    files.append(config.masking.key or config.health_path().parent / "masking.key")
    out = [(p, False) for p in files] + [(p.parent, False) for p in files]
    recordings, recording_key = locations(config)
    out += [(recordings, True), (recording_key, False), (config.siem.spool, True)]
    return list(dict.fromkeys(out))


def loose(config: Config) -> list[str]:
    """Existing state files and folders that other accounts may read, write or enter."""
    found: list[str] = []
    for path, tree in state_paths(config):
        for each in _walk(path) if tree else [path]:
            try:
                mode = stat.S_IMODE(each.lstat().st_mode)
            except OSError:
                continue  # not there (yet): it will be made private
            folder = each.is_dir()
            if mode & (_FOLDER_LOOSE if folder else 0o077):
                want = 0o700 if folder else 0o600
                found.append(f"{each} is {mode:04o}; the gateway's state must be {want:04o}"
                             f" (chmod {want:o} {each})")  # fmt: skip
    return list(dict.fromkeys(found))


def _walk(root: Path) -> Iterator[Path]:
    yield root
    if root.is_dir() and not root.is_symlink():
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                yield Path(dirpath) / name
