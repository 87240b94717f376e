"""Reading recordings back: every record as an up-to-date state, a summary, a verification."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from wardgate.recording.container import Chunk, Preamble, RecordingCorrupt, read_chunks
from wardgate.recording.format import FormatError, Records, State, decode, upgrade
from wardgate.recording.keys import KeyProvider
from wardgate.recording.writer import SUFFIX


class _Hashing:
    """A file that hashes what is read from it (the whole file is read by a full pass)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def records(path: Path, keys: KeyProvider) -> Iterator[State]:
    """Every record of a recording in order, upgraded to the current format; raises
    ``RecordingCorrupt`` (after yielding what came before it) if the file is not intact."""
    with path.open("rb") as f:
        yield from _states(read_chunks(f, keys.get))


def _states(chunks: Iterator[tuple[Preamble, Chunk]]) -> Iterator[State]:
    splitter = Records()
    for preamble, chunk in chunks:
        for code, payload in splitter.feed(chunk.plaintext):
            try:
                state = decode(code, payload)
            except (FormatError, ValueError) as exc:
                raise RecordingCorrupt(f"chunk {chunk.index}: {exc}") from None
            yield upgrade(state, preamble.version)
    try:
        splitter.done()
    except FormatError as exc:
        raise RecordingCorrupt(str(exc)) from None


@dataclass
class Summary:
    """What ``wardgate sessions list`` shows of one recording."""

    id: str
    path: Path
    size: int
    header: State = field(default_factory=dict)
    end: State | None = None
    problem: str = ""

    @property
    def live_or_cut(self) -> bool:
        return self.end is None


def summary(path: Path, keys: KeyProvider) -> Summary:
    """The header (chunk 0) and the session's end (in the final chunk); others are not
    decrypted."""
    out = Summary(path.name.removesuffix(SUFFIX), path, path.stat().st_size)
    try:
        with path.open("rb") as f:
            for preamble, chunk in read_chunks(f, keys.get, only=lambda i: i == 0):
                if chunk.index == 0 or chunk.final:
                    # the writer seals whole records only: a chunk's records are its own
                    for state in _states(iter([(preamble, chunk)])):
                        if state["type"] == "header":
                            out.header = state
                        elif state["type"] == "session_end":
                            out.end = state
    except (RecordingCorrupt, FormatError) as exc:
        out.problem = str(exc)
    except OSError as exc:
        out.problem = exc.strerror or str(exc)
    except Exception as exc:  # a key that cannot be had, say
        out.problem = str(exc)
    return out


@dataclass
class Verified:
    ok: bool
    sha256: str
    size: int
    chunks: int
    records: int
    problem: str = ""


def verify(path: Path, keys: KeyProvider) -> Verified:
    """Decrypt and check every chunk and every record; the file's SHA-256 as read."""
    chunks = 0
    count = 0
    with path.open("rb") as raw:
        f = _Hashing(raw)
        try:

            def counted() -> Iterator[tuple[Preamble, Chunk]]:
                nonlocal chunks
                for item in read_chunks(f, keys.get):
                    chunks += 1
                    yield item

            for _ in _states(counted()):
                count += 1
        except RecordingCorrupt as exc:
            f.read()  # hash the rest of the file as well
            return Verified(False, f.digest.hexdigest(), f.size, chunks, count, str(exc))
    return Verified(True, f.digest.hexdigest(), f.size, chunks, count)
