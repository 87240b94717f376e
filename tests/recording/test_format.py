"""The recording format without a gateway: records, the upgrade chain, the encrypted container
(tampering of every kind), the size cap and retention."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.protocols.postgres import rows
from wardgate.recording import format as fmt
from wardgate.recording.container import RecordingCorrupt
from wardgate.recording.keys import FileKeyProvider, KeyUnavailable
from wardgate.recording.reader import records, summary, verify
from wardgate.recording.retention import expired
from wardgate.recording.writer import SUFFIX, SessionWriter

HEADER = {"recording": "s1", "started": 1000.0, "who": {"verified": False}, "session": {}}


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyProvider:
    return FileKeyProvider(tmp_path / "keys" / "recording.key", create=True)


def write(
    directory: Path,
    keys: FileKeyProvider,
    name: str,
    rows: int,
    max_bytes: int = 1 << 30,
    now: float | None = None,
) -> Path:
    path = directory / f"{name}{SUFFIX}"
    writer = SessionWriter(path, keys, HEADER, max_bytes=max_bytes)
    request = {"type": "request", "seq": 1, "kind": "query", "text": "SELECT", "time": 1.0}
    writer.add(fmt.encode(request))
    for i in range(rows):
        writer.add(fmt.row_record(1, [str(i).encode() * 50, None, b"\x00\x01"]))
    end = {"type": "result_end", "seq": 1, "time": 2.0, "outcome": "ok", "rows": rows}
    writer.add(fmt.encode(end))
    writer.end("client disconnected", now=now)
    return path


def test_key_file_is_private_and_stable(tmp_path: Path, keys: FileKeyProvider) -> None:
    assert (keys.path.stat().st_mode & 0o777) == 0o600
    again = FileKeyProvider(keys.path)
    assert again.current() == keys.current()
    with pytest.raises(KeyUnavailable):
        again.get("0" * 16)


def test_records_round_trip(tmp_path: Path, keys: FileKeyProvider) -> None:
    path = write(tmp_path, keys, "s1", 3000)
    states = list(records(path, keys))
    assert states[0] == {"type": "header", "version": fmt.VERSION, **HEADER}
    rows = [s for s in states if s["type"] == "row"]
    assert len(rows) == 3000
    assert rows[7]["values"] == [b"7" * 50, None, b"\x00\x01"]
    assert states[-1]["type"] == "session_end"
    assert states[-1]["reason"] == "client disconnected"
    result = verify(path, keys)
    assert result.ok and result.chunks > 2  # header chunk, row chunks, final chunk
    item = summary(path, keys)
    assert item.header["recording"] == "s1" and item.end is not None and not item.problem


def test_upgrade_chain_runs_each_step_in_order() -> None:
    def one_to_two(state: fmt.State) -> fmt.State:
        return {**state, "steps": [*state.get("steps", []), 2]}

    def two_to_three(state: fmt.State) -> fmt.State:
        renamed = {k: v for k, v in state.items() if k != "text"}
        return {**renamed, "statement": state.get("text"), "steps": [*state["steps"], 3]}

    chain = {1: one_to_two, 2: two_to_three}
    state = {"type": "request", "text": "SELECT 1"}
    assert fmt.upgrade(state, 1, chain=chain, current=3) == {
        "type": "request",
        "statement": "SELECT 1",
        "steps": [2, 3],
    }
    assert fmt.upgrade(state, 3, chain=chain, current=3) == state
    with pytest.raises(fmt.FormatError, match="no upgrade from recording format 0"):
        fmt.upgrade(state, 0, chain=chain, current=3)
    with pytest.raises(fmt.FormatError, match="newer"):
        fmt.upgrade(state, 4, chain=chain, current=3)
    # the real chain: version 1 is current and reads as is
    assert fmt.upgrade(state, fmt.VERSION) == state


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every chunk frame after the preamble."""
    pos = 6 + 2 + 16
    pos += 1 + data[pos]
    out = []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((pos, 4 + length))
        pos += 4 + length
    return out


@pytest.mark.parametrize("damage", ["byte", "drop", "swap", "cut", "cut_final", "splice"])
def test_tampering_fails_verification(tmp_path: Path, keys: FileKeyProvider, damage: str) -> None:
    path = write(tmp_path, keys, "s1", 5000)
    other = write(tmp_path, keys, "s2", 5000)
    data = bytearray(path.read_bytes())
    frames = _frames(bytes(data))
    assert len(frames) >= 4
    (a, la), (b, lb) = frames[1], frames[2]
    if damage == "byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "drop":
        del data[a : a + la]
    elif damage == "swap":
        data[a : b + lb] = data[b : b + lb] + data[a : a + la]
    elif damage == "cut":
        del data[-10:]
    elif damage == "cut_final":
        last, _ = frames[-1]
        del data[last:]
    else:  # chunk 1 of another recording under the same key
        (c, lc) = _frames(other.read_bytes())[1]
        data[a : a + la] = other.read_bytes()[c : c + lc]
    path.write_bytes(bytes(data))
    result = verify(path, keys)
    assert not result.ok, damage
    with pytest.raises(RecordingCorrupt):
        list(records(path, keys))


def test_size_cap_writes_a_truncation_marker(tmp_path: Path, keys: FileKeyProvider) -> None:
    path = write(tmp_path, keys, "big", 20_000, max_bytes=100_000)
    assert path.stat().st_size <= 100_000
    states = list(records(path, keys))
    kinds = [s["type"] for s in states]
    assert kinds.count("truncated") == 1
    assert kinds[-1] == "session_end"
    assert states[-1]["truncated"] and states[-1]["dropped_records"] > 0
    assert verify(path, keys).ok


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.lists(st.lists(st.one_of(st.none(), st.binary(max_size=50)), max_size=8), max_size=10),
)
def test_row_records_of_a_batch_are_each_rows_record(
    seq: int, table: list[list[bytes | None]]
) -> None:
    bodies = [rows.join_python(r)[5:] for r in table]  # the row encoding: a DataRow's body
    assert fmt.row_records(seq, bodies) == [fmt.row_record(seq, r) for r in table]


@pytest.mark.parametrize("cap", [100_000, 1 << 30])
def test_a_batch_is_written_as_its_records_one_by_one(
    tmp_path: Path, keys: FileKeyProvider, cap: int
) -> None:
    """Under the cap and across it: the rows that fit, then the truncation marker."""
    table = [[str(i).encode() * 50, None, b"\x00\x01"] for i in range(3000)]
    one = SessionWriter(tmp_path / f"one{SUFFIX}", keys, HEADER, max_bytes=cap)
    many = SessionWriter(tmp_path / f"many{SUFFIX}", keys, HEADER, max_bytes=cap)
    for start in range(0, len(table), 500):
        batch = [fmt.row_record(1, r) for r in table[start : start + 500]]
        for record in batch:
            one.add(record)
        many.add_many(batch)
    ends = [w.end("done", now=5.0) for w in (one, many)]
    assert ends[0]["truncated"] == ends[1]["truncated"] == (cap < 1 << 30)
    read = [
        [{k: v for k, v in s.items() if k != "time"} for s in records(Path(str(e["path"])), keys)]
        for e in ends
    ]
    assert read[0][1:] == read[1][1:]  # all but the headers (another file id)
    assert read[1][-1]["dropped_records"] == read[0][-1]["dropped_records"]


def test_purge_takes_only_what_is_past_retention(tmp_path: Path, keys: FileKeyProvider) -> None:
    now = time.time()
    day = 86400.0
    old = write(tmp_path, keys, "old", 1, now=now - 40 * day)
    os.utime(old, (now - 40 * day, now - 40 * day))
    young = write(tmp_path, keys, "young", 1, now=now - 20 * day)
    os.utime(young, (now - 20 * day, now - 20 * day))
    touched = write(tmp_path, keys, "touched", 1, now=now - 40 * day)  # mtime is now
    cut = tmp_path / f"cut{SUFFIX}"  # no end (a crash); the file's time decides
    cut.write_bytes(old.read_bytes()[:200])
    os.utime(cut, (now - 35 * day, now - 35 * day))
    gone = {r.id for r in expired(tmp_path, keys, 30, now)}
    assert gone == {"old", "cut"}
    assert touched.exists() and young.exists()
