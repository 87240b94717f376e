"""The spool keeps order across segments and restarts, deletes only what every sink has, and
refuses, never drops, when full."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.audit.siem import DiskSpool, SpoolFull
from wardgate.audit.siem.spool import RECORD_OVERHEAD


def records(start: int, count: int) -> list[bytes]:
    return [f"record {i:05d}".encode() for i in range(start, start + count)]


def read_all(spool: DiskSpool, start: int, limit: int = 7) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for _ in range(10_000):
        batch = spool.read(start, limit)
        if not batch:
            return out
        out += batch
        start = batch[-1][0] + 1
    raise AssertionError("read did not finish")


def test_order_across_segments_and_reopen(tmp_path: Path) -> None:
    with DiskSpool(tmp_path, segment_bytes=200) as spool:
        assert spool.append(records(0, 10)) == 0
        assert spool.append(records(10, 20)) == 10  # a batch spans segments of 10 records
        for _ in range(5):
            spool.append(records(spool.next_seq, 5))
        segments = sorted(int(p.stem) for p in tmp_path.glob("*.seg"))
        assert segments == [0, 10, 20, 30, 40, 50]
        assert [r for _, r in read_all(spool, 0)] == records(0, 55)
        assert [s for s, _ in read_all(spool, 13, limit=4)] == list(range(13, 55))
    with DiskSpool(tmp_path, segment_bytes=200) as again:
        assert again.next_seq == 55
        assert [r for _, r in read_all(again, 0)] == records(0, 55)


def test_cursors_persist_and_segments_go_when_every_sink_has_them(tmp_path: Path) -> None:
    with DiskSpool(tmp_path, segment_bytes=100) as spool:
        assert spool.register("siem-a") == 0 and spool.register("siem-b") == 0
        for i in range(0, 40, 5):
            spool.append(records(i, 5))
        segments = sorted(int(p.stem) for p in tmp_path.glob("*.seg"))
        assert segments == list(range(0, 40, 5))
        spool.ack("siem-a", 40)
        assert len(list(tmp_path.glob("*.seg"))) == 8  # siem-b still needs them
        spool.ack("siem-b", 22)
        assert sorted(int(p.stem) for p in tmp_path.glob("*.seg")) == [20, 25, 30, 35]
        assert spool.size == sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    with DiskSpool(tmp_path, segment_bytes=100) as again:
        assert again.register("siem-b") == 22 and again.register("siem-a") == 40
        assert [r for _, r in read_all(again, 22)] == records(22, 18)
        assert again.register("siem-new") == 20  # a new sink starts at the oldest record kept


def test_full_spool_refuses_then_recovers(tmp_path: Path) -> None:
    one = len(records(0, 1)[0]) + RECORD_OVERHEAD
    with DiskSpool(tmp_path, max_bytes=10 * one, segment_bytes=3 * one) as spool:
        spool.register("siem")
        for i in range(10):
            spool.append(records(i, 1))
        with pytest.raises(SpoolFull, match="spool full"):
            spool.append(records(10, 1))
        assert spool.next_seq == 10 and spool.size == 10 * one
        spool.ack("siem", 6)  # frees the two oldest segments
        spool.append(records(10, 6))
        assert [r for _, r in read_all(spool, 6)] == records(6, 10)


def test_torn_tail_is_cut_off(tmp_path: Path) -> None:
    with DiskSpool(tmp_path) as spool:
        spool.append(records(0, 3))
    (segment,) = tmp_path.glob("*.seg")
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")  # a header promising 256 bytes, then a crash
    with DiskSpool(tmp_path) as again:
        assert again.next_seq == 3
        again.append(records(3, 2))
        assert [r for _, r in read_all(again, 0)] == records(0, 5)


def test_one_process_at_a_time(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    with pytest.raises(RuntimeError, match="in use"):
        DiskSpool(tmp_path)
    spool.close()
    DiskSpool(tmp_path).close()


def test_fully_acknowledged_spool_is_emptied_and_keeps_counting(tmp_path: Path) -> None:
    with DiskSpool(tmp_path) as spool:
        spool.register("siem")
        spool.append(records(0, 8))
        spool.ack("siem", 8)
        assert list(tmp_path.glob("*.seg")) == [] and spool.size == 0
    with DiskSpool(tmp_path) as again:
        assert again.next_seq == 8 and again.register("siem") == 8
        assert again.append(records(8, 2)) == 8
        assert [r for _, r in read_all(again, 8)] == records(8, 2)
