"""An append-only, segmented, size-bounded on-disk queue with one cursor per sink.

Layout of the directory: ``<first seq, 20 digits>.seg`` segment files, each a run of records
(4-byte big-endian length, 4-byte CRC-32, payload); ``cursors.json``, the next sequence number
each sink has not acknowledged, replaced atomically; ``lock``, held while a spool is open so two
processes never write one directory.

A batch is durable when ``append`` returns (one fsync per batch). A torn record at the end of
the newest segment, left by a crash during a write, is cut off on open: it was never acknowledged
to the caller. A segment is deleted once every registered sink's cursor has passed it.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

_HEADER = struct.Struct(">II")
RECORD_OVERHEAD = _HEADER.size


class SpoolFull(Exception):
    """The spool has no room for more records; nothing was written."""


class DiskSpool:
    def __init__(
        self, directory: Path, *, max_bytes: int = 1 << 30, segment_bytes: int = 16 << 20
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.directory / "lock", "a")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise RuntimeError(f"{self.directory}: spool is in use by another process") from None
        self._bases: list[int] = []  # first sequence number of each segment, ascending
        self._sizes: dict[int, int] = {}
        self._bytes = 0
        self._next = 0
        self._writer: BinaryIO | None = None
        self._positions: dict[int, tuple[int, int]] = {}  # seq -> (segment base, offset)
        self._registered: set[str] = set()
        self._cursors: dict[str, int] = self._load_cursors()
        self._recover()

    # -- state -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes the segments take on disk (kept as one number, so any thread may read it)."""
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._lockfile.closed

    @property
    def first_seq(self) -> int:
        return self._bases[0] if self._bases else self._next

    @property
    def next_seq(self) -> int:
        return self._next

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "directory": str(self.directory),
                "bytes": self.size,
                "max_bytes": self.max_bytes,
                "segments": len(self._bases),
                "first_seq": self.first_seq,
                "next_seq": self._next,
                "cursors": dict(self._cursors),
            }

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Sequence[bytes]) -> int:
        """Write ``records`` durably and return the sequence number of the first."""
        with self._lock:
            need = sum(len(r) + RECORD_OVERHEAD for r in records)
            if self.size + need > self.max_bytes:
                raise SpoolFull(
                    f"{self.directory}: spool full ({self.size} of {self.max_bytes} bytes used, "
                    f"{need} more needed); a sink is not acknowledging"
                )
            first = self._next
            if not records:
                return first
            for i, record in enumerate(records):  # a batch may span segments
                writer = self._writer_for_append(first + i)
                writer.write(_HEADER.pack(len(record), zlib.crc32(record)) + record)
                base, end = self._bases[-1], writer.tell()
                self._bytes += end - self._sizes[base]
                self._sizes[base] = end
            writer.flush()
            os.fsync(writer.fileno())
            self._next += len(records)
            return first

    def _writer_for_append(self, seq: int) -> BinaryIO:
        if self._writer is not None and self._sizes[self._bases[-1]] < self.segment_bytes:
            return self._writer
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
        self._writer = open(self._segment(seq), "ab")  # noqa: SIM115 - kept open across appends
        self._bases.append(seq)
        self._sizes[seq] = 0
        _fsync_dir(self.directory)
        return self._writer

    # -- reading and acknowledging ---------------------------------------------------------

    def register(self, sink: str) -> int:
        """Make ``sink``'s cursor hold segments; a new sink starts at the oldest record kept."""
        with self._lock:
            self._registered.add(sink)
            return max(self._cursors.get(sink, self.first_seq), self.first_seq)

    def read(self, start: int, limit: int, max_bytes: int = 1 << 20) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records from sequence number ``start`` on (at least one if any)."""
        with self._lock:
            start = max(start, self.first_seq)
            if start >= self._next:
                return []
            base, offset = self._positions.pop(start, (None, 0))
            if base is None:
                base = self._bases[bisect.bisect_right(self._bases, start) - 1]
            out: list[tuple[int, bytes]] = []
            seq, taken = base if offset == 0 else start, 0
            while base is not None and len(out) < limit and taken < max_bytes:
                with open(self._segment(base), "rb") as f:
                    f.seek(offset)
                    for record in _records(f, self._sizes[base] - offset):
                        offset += RECORD_OVERHEAD + len(record)
                        if seq >= start:
                            out.append((seq, record))
                            taken += len(record)
                        seq += 1
                        if len(out) >= limit or taken >= max_bytes:
                            break
                if offset >= self._sizes[base]:
                    i = self._bases.index(base) + 1
                    base, offset = (self._bases[i], 0) if i < len(self._bases) else (None, 0)
            if base is not None and seq < self._next:
                self._positions[seq] = (base, offset)
                if len(self._positions) > 64:
                    self._positions.pop(next(iter(self._positions)))
            return out

    def ack(self, sink: str, next_seq: int) -> None:
        """Persist that ``sink`` has every record before ``next_seq``; drop what all sinks have."""
        with self._lock:
            self._cursors[sink] = next_seq
            _write_atomically(self.directory / "cursors.json", json.dumps(self._cursors).encode())
            held = [self._cursors.get(s, self.first_seq) for s in self._registered]
            low = min(held, default=self.first_seq)
            while self._bases and (self._bases[1] if len(self._bases) > 1 else self._next) <= low:
                gone = self._bases.pop(0)
                if not self._bases and self._writer is not None:  # the active one: start anew
                    self._writer.close()
                    self._writer = None
                self._bytes -= self._sizes.pop(gone)
                self._segment(gone).unlink()
            self._positions = {s: p for s, p in self._positions.items() if p[0] in self._sizes}

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._lockfile.close()

    def __enter__(self) -> DiskSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening ---------------------------------------------------------------------------

    def _segment(self, base: int) -> Path:
        return self.directory / f"{base:020d}.seg"

    def _load_cursors(self) -> dict[str, int]:
        try:
            data = json.loads((self.directory / "cursors.json").read_bytes())
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def _recover(self) -> None:
        bases = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        for base in bases:
            self._bases.append(base)
            self._sizes[base] = self._segment(base).stat().st_size
        if not bases:
            self._next = max(self._cursors.values(), default=0)
            return
        last = bases[-1]
        count, good = 0, 0
        with open(self._segment(last), "rb") as f:
            for record in _records(f, self._sizes[last]):
                count += 1
                good += RECORD_OVERHEAD + len(record)
        if good != self._sizes[last]:  # a torn write: never acknowledged, cut it off
            os.truncate(self._segment(last), good)
            self._sizes[last] = good
        self._bytes = sum(self._sizes.values())
        self._next = last + count


def _records(f: BinaryIO, limit: int) -> Iterable[bytes]:
    """The intact records in the next ``limit`` bytes of ``f``; stops at the first torn one."""
    used = 0
    while used + RECORD_OVERHEAD <= limit:
        header = f.read(RECORD_OVERHEAD)
        if len(header) < RECORD_OVERHEAD:
            return
        length, crc = _HEADER.unpack(header)
        if used + RECORD_OVERHEAD + length > limit:
            return
        record = f.read(length)
        if len(record) < length or zlib.crc32(record) != crc:
            return
        used += RECORD_OVERHEAD + length
        yield record


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
