"""Key files: private from the first byte, the same key for every process that races to make it,
and refused once others may read them."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from wardgate.keyfile import KeyFileError, read_or_create


def test_made_private_in_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "a.key"
    key = read_or_create(path, lambda: os.urandom(32))
    assert path.read_bytes() == key and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_or_create(path, lambda: b"another") == key  # made once


def test_racing_makers_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "raced.key"
    found: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        found.append(read_or_create(path, lambda: os.urandom(32)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1 and found[0] == path.read_bytes()


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loose.key"
    path.write_bytes(b"x" * 32)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        read_or_create(path, lambda: b"never")
