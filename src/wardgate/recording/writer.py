"""One session's recording as it is written: records in, chunks out, a hash at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from wardgate.recording.container import CHUNK_BYTES, ChunkWriter
from wardgate.recording.format import VERSION, State, encode
from wardgate.recording.keys import KeyProvider

SUFFIX = ".wgrec"
# Room kept under the cap for the truncation marker, the session's end and the last chunk.
RESERVE = 4096


class SessionWriter:
    """Writes records through to an encrypted file, at most ``max_bytes`` long. Past the cap one
    ``truncated`` record says so, later records are counted and dropped, and the session's end
    is still written."""

    def __init__(
        self,
        path: Path,
        keys: KeyProvider,
        header: State,
        *,
        max_bytes: int,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        key_id, key = keys.current()
        self.path = path
        self.max_bytes = max_bytes
        self.truncated = False
        self.dropped = 0
        self._chunks = ChunkWriter(path, VERSION, key_id, key, chunk_bytes=chunk_bytes)
        self._chunks.write(encode({"type": "header", "version": VERSION, **header}))
        self._chunks.flush()  # chunk 0 is the header alone: a listing decrypts only that

    def add(self, record: bytes) -> None:
        if self.truncated:
            self.dropped += 1
            return
        chunks = self._chunks
        if chunks.size + chunks.pending + len(record) > self.max_bytes - RESERVE:
            self.truncated = True
            self.dropped += 1
            marker = {
                "type": "truncated", "time": time.time(), "reason": "size cap reached",
                "max_bytes": self.max_bytes,
            }  # fmt: skip
            chunks.write(encode(marker))
            return
        chunks.write(record)

    def add_many(self, records: list[bytes]) -> None:
        """``add`` of each record, in one write where all of them fit under the cap."""
        chunks = self._chunks
        size = sum(map(len, records))
        if self.truncated or chunks.size + chunks.pending + size > self.max_bytes - RESERVE:
            for record in records:
                self.add(record)
            return
        chunks.write(b"".join(records))

    def end(self, reason: str, now: float | None = None) -> dict[str, Any]:
        """Write the session's end and the final chunk; what the session-end audit event says
        of the recording."""
        self._chunks.write(
            encode({
                "type": "session_end", "time": now or time.time(), "reason": reason[:2000],
                "truncated": self.truncated, "dropped_records": self.dropped,
            })
        )  # fmt: skip
        digest = self._chunks.close()
        return {
            "id": self.path.name.removesuffix(SUFFIX),
            "path": str(self.path),
            "sha256": digest,
            "bytes": self._chunks.size,
            "truncated": self.truncated,
        }

    def abandon(self) -> None:
        self._chunks.abandon()
