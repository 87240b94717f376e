"""Cancel requests: the gateway hands out its own BackendKeyData and maps it to the target's.

The same map read backwards tells which pid a backend's client was told, so that a notification
carries the pid its sender knows as its own (see docs/postgres.md, "Backend process ids")."""

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
        self._clients: dict[tuple[str, int, int], int] = {}  # (host, port, backend pid) -> pid

    def issue(self, target: CancelTarget) -> tuple[int, int]:
        while True:
            pid = secrets.randbelow((1 << 31) - 2) + 1
            if pid not in self._keys:
                break
        key = struct.unpack("!i", secrets.token_bytes(4))[0]
        self._keys[pid] = (key, target)
        self._clients[_backend(target)] = pid
        return pid, key

    def client_pid(self, target: Target, backend_pid: int) -> int | None:
        """The pid the gateway gave the client of that backend on that target's server."""
        return self._clients.get((target.host, target.port, backend_pid))

    def lookup(self, pid: int, key: int) -> CancelTarget | None:
        entry = self._keys.get(pid)
        if entry is None or not secrets.compare_digest(
            struct.pack("!i", entry[0]), struct.pack("!i", key)
        ):
            return None
        return entry[1]

    def forget(self, pid: int) -> None:
        entry = self._keys.pop(pid, None)
        if entry is not None and self._clients.get(_backend(entry[1])) == pid:
            del self._clients[_backend(entry[1])]


def _backend(target: CancelTarget) -> tuple[str, int, int]:
    return (target.target.host, target.target.port, target.pid)
