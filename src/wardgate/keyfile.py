"""Secret files the gateway makes for itself (signing, recording and pseudonym keys).

One way to make one: written with mode 0600 (its folder 0700) and fsynced under a temporary
name, then linked into place, so nobody reads it half-written; when two processes race, the loser
reads the winner's file, so both use the same key. An existing file is refused when others may
read it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


class KeyFileError(OSError):
    """The key file exists but may not be used (others can read it)."""


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes at ``path``, or ``make()``'s, written there first."""
    if path.exists():
        return read_private(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = make()
    # Written whole under a name of its own, then linked into place: whoever reads the key
    # file reads all of it, and of two makers the second finds the first's key.
    partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return read_private(path)
    finally:
        partial.unlink(missing_ok=True)
    return data


def read_private(path: Path) -> bytes:
    """The bytes of a key file only its owner may read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path}: a key file readable by others (mode {mode:04o}); chmod 600 it")
    return path.read_bytes()
