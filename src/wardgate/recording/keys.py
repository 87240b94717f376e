"""Keys for recordings, behind an interface a KMS can implement.

A provider names its current key (``key_id``, written in every recording's preamble) and returns
a key by id, so that recordings written under an older key stay readable after a rotation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from wardgate.keyfile import read_or_create

KEY_BYTES = 32  # AES-256


class KeyUnavailable(Exception):
    """No such key, or the key cannot be read."""


class KeyProvider(Protocol):
    def current(self) -> tuple[str, bytes]:
        """The id and bytes of the key new recordings are written with."""
        ...

    def get(self, key_id: str) -> bytes:
        """The key a recording names; raises ``KeyUnavailable`` if it is not available."""
        ...


def key_id_of(key: bytes) -> str:
    """A key's public name: it identifies the key without revealing it."""
    return hashlib.sha256(b"wardgate-recording-key\x00" + key).hexdigest()[:16]


class FileKeyProvider:
    """One key in a file, 32 random bytes, created 0600 on first use (``create=True``)."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        self._key = _read_or_create(path) if create else _read(path)
        self._id = key_id_of(self._key)

    def current(self) -> tuple[str, bytes]:
        return self._id, self._key

    def get(self, key_id: str) -> bytes:
        if key_id != self._id:
            raise KeyUnavailable(f"recording key {key_id} is not {self.path} (key {self._id})")
        return self._key


def _read(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"{path}: cannot read the recording key: {exc.strerror}") from exc
    if len(key) != KEY_BYTES:
        raise KeyUnavailable(f"{path}: a recording key is {KEY_BYTES} bytes, not {len(key)}")
    return key


def _read_or_create(path: Path) -> bytes:
    try:
        key = read_or_create(path, lambda: os.urandom(KEY_BYTES))
    except OSError as exc:
        raise KeyUnavailable(f"{path}: cannot make or read the recording key: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise KeyUnavailable(f"{path}: a recording key is {KEY_BYTES} bytes, not {len(key)}")
    return key
