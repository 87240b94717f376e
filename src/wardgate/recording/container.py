"""The encrypted container of a recording: a preamble, then AES-256-GCM chunks.

::

    preamble  "WGREC\\n" | version u16 | file id (16 random bytes) | key id length u8 | key id
    chunk     length u32 (of what follows) | flags u8 | nonce (12 bytes) | ciphertext and tag

Each chunk has its own random nonce. The associated data of chunk ``i`` is the preamble, ``i``
(u64) and the flags (bit 0: the final chunk), so a chunk that is changed, dropped, moved, taken
from another recording (another file id) or cut off (no final chunk) fails to decrypt or is
reported missing. Chunk 0 holds the header record alone, so a listing decrypts little.

The writer writes through: at most one chunk of plaintext is held in memory. The SHA-256 of the
bytes as written (preamble and chunks) is what the session-end audit event carries.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"WGREC\n"
CHUNK_BYTES = 64 * 1024
FINAL = 0x01
NONCE_BYTES = 12
TAG_BYTES = 16
_FRAME = struct.Struct(">IB")
_AAD = struct.Struct(">QB")
# A chunk is sealed once the buffer passes CHUNK_BYTES, so it can exceed it by one record;
# anything far larger is damage, not data.
MAX_FRAME = 1 << 30


class RecordingCorrupt(Exception):
    """The file is not an intact recording: what is wrong, and where."""


@dataclass(frozen=True)
class Preamble:
    version: int
    file_id: bytes
    key_id: str
    raw: bytes

    @classmethod
    def build(cls, version: int, file_id: bytes, key_id: str) -> Preamble:
        kid = key_id.encode()
        raw = MAGIC + struct.pack(">H", version) + file_id + struct.pack(">B", len(kid)) + kid
        return cls(version, file_id, key_id, raw)


class ChunkWriter:
    """Seals what it is given into chunks and writes them through to a new file (mode 0600)."""

    def __init__(
        self, path: Path, version: int, key_id: str, key: bytes, *, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self.path = path
        self.preamble = Preamble.build(version, os.urandom(16), key_id)
        self._aead = AESGCM(key)
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._out(self.preamble.raw)

    @property
    def pending(self) -> int:
        """Plaintext bytes not yet sealed."""
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._chunk_bytes:
            self._seal(0)

    def flush(self) -> None:
        """Seal what is buffered as a chunk of its own (never the final one)."""
        if self._buffer:
            self._seal(0)

    def close(self) -> str:
        """Seal the final chunk, make the file durable; the file's SHA-256 (hex)."""
        if not self.closed:
            self._seal(FINAL)
            self.closed = True
            try:
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
        return self._hash.hexdigest()

    def abandon(self) -> None:
        """Close without a final chunk (the file then reads as cut off)."""
        if not self.closed:
            self.closed = True
            self._file.close()

    def _seal(self, flags: int) -> None:
        nonce = os.urandom(NONCE_BYTES)
        aad = self.preamble.raw + _AAD.pack(self._index, flags)
        sealed = self._aead.encrypt(nonce, bytes(self._buffer), aad)
        self._buffer.clear()
        self._index += 1
        self._out(_FRAME.pack(1 + NONCE_BYTES + len(sealed), flags) + nonce + sealed)

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
        self._hash.update(data)
        self.size += len(data)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def read_preamble(f: Readable) -> Preamble:
    head = f.read(len(MAGIC) + 2 + 16 + 1)
    if len(head) < len(MAGIC) + 19 or not head.startswith(MAGIC):
        raise RecordingCorrupt("not a wardgate recording (no preamble)")
    (version,) = struct.unpack_from(">H", head, len(MAGIC))
    file_id = head[len(MAGIC) + 2 : len(MAGIC) + 18]
    kid = f.read(head[-1])
    if len(kid) != head[-1]:
        raise RecordingCorrupt("the preamble is cut off")
    return Preamble(version, file_id, kid.decode("ascii", "replace"), head + kid)


@dataclass(frozen=True)
class Chunk:
    index: int
    final: bool
    offset: int
    plaintext: bytes


def read_chunks(
    f: Readable, key_for: Callable[[str], bytes], *, only: Callable[[int], bool] | None = None
) -> Iterator[tuple[Preamble, Chunk]]:
    """Every chunk in order, decrypted and checked; raises ``RecordingCorrupt`` at the first
    problem, including a missing final chunk. ``only`` skips decrypting the chunks it refuses
    (their frames are still walked)."""
    preamble = read_preamble(f)
    aead = AESGCM(key_for(preamble.key_id))
    index = 0
    offset = len(preamble.raw)
    while True:
        frame = f.read(_FRAME.size)
        if not frame:
            raise RecordingCorrupt(
                f"cut off: no final chunk after {index} chunk(s) (the session may still be live,"
                " or the gateway stopped before it ended)"
            )
        if len(frame) < _FRAME.size:
            raise RecordingCorrupt(f"chunk {index} at byte {offset}: frame cut off")
        length, flags = _FRAME.unpack(frame)
        if not NONCE_BYTES + TAG_BYTES < length <= MAX_FRAME or flags & ~FINAL:
            raise RecordingCorrupt(f"chunk {index} at byte {offset}: damaged frame")
        body = f.read(length - 1)
        if len(body) != length - 1:
            raise RecordingCorrupt(f"chunk {index} at byte {offset}: cut off")
        final = bool(flags & FINAL)
        plaintext = b""
        if only is None or only(index) or final:
            aad = preamble.raw + _AAD.pack(index, flags)
            try:
                plaintext = aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
            except InvalidTag:
                raise RecordingCorrupt(
                    f"chunk {index} at byte {offset}: fails authentication (changed, moved,"
                    " dropped before it, or from another recording)"
                ) from None
        yield preamble, Chunk(index, final, offset, plaintext)
        offset += _FRAME.size + length - 1
        index += 1
        if final:
            if f.read(1):
                raise RecordingCorrupt(f"data after the final chunk (at byte {offset})")
            return


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
