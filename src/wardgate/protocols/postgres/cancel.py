"""Cancel requests: the gateway hands out its own BackendKeyData and maps it to the target's."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from wardgate.config import Target


@dataclass
class CancelTarget:
    target: Target
    pid: int
    key: int


class CancelRegistry:
    """Maps the BackendKeyData the gateway handed out to the target's own."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[int, CancelTarget]] = {}

    def issue(self, target: CancelTarget) -> tuple[int, int]:
        while True:
            pid = secrets.randbelow((1 << 31) - 2) + 1
            if pid not in self._keys:
                break
        key = struct.unpack("!i", secrets.token_bytes(4))[0]
        self._keys[pid] = (key, target)
        return pid, key

    def lookup(self, pid: int, key: int) -> CancelTarget | None:
        entry = self._keys.get(pid)
        if entry is None or not secrets.compare_digest(
            struct.pack("!i", entry[0]), struct.pack("!i", key)
        ):
            return None
        return entry[1]

    def forget(self, pid: int) -> None:
        self._keys.pop(pid, None)
