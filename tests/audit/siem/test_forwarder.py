"""The forwarder delivers in order, retries through failures, and survives its own restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit.siem.helpers import http_receiver, numbered, wait_until
from wardgate.audit.siem import DiskSpool, Forwarder, SpoolFull, to_cef, to_ocsf
from wardgate.audit.siem.sinks import FileSink, HttpSink
from wardgate.config import Siem, SiemSink


def statement_numbers(events: list[dict[str, object]]) -> list[int]:
    return [int(str(e["query_info"]["uid"]).rsplit(":", 1)[1]) for e in events]  # type: ignore[index]


def test_file_sink_gets_every_event_in_order(tmp_path: Path) -> None:
    out = tmp_path / "ocsf.jsonl"
    forwarder = Forwarder(DiskSpool(tmp_path / "spool"), [FileSink("file", out)])
    forwarder.start()
    events = numbered(0, 500)
    for event in events:
        forwarder.submit(event)
    assert forwarder.stop(timeout=20)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [to_ocsf(e) for e in events]


def test_http_sink_retries_through_503(tmp_path: Path) -> None:
    with http_receiver(fail_first=3) as (receiver, url):
        sink = HttpSink("http", url, timeout=5)
        forwarder = Forwarder(DiskSpool(tmp_path), [sink], batch_size=50, backoff=(0.05, 0.2))
        forwarder.start()
        try:
            for event in numbered(0, 120):
                forwarder.submit(event)
            wait_until(lambda: forwarder.status()["sinks"]["http"]["queued"] == 0, what="delivery")
            status = forwarder.status()["sinks"]["http"]
            assert "HTTP 503" in status["last_error"] and status["queued"] == 0
            assert status["delivered"] == 120 and status["last_success_at"] is not None
        finally:
            assert forwarder.stop(timeout=10)
    assert receiver.requests >= 3 + 3  # three refused, then at least three batches of 50
    assert statement_numbers(receiver.events) == list(range(120))
    assert all(e["class_uid"] == 6005 for e in receiver.events)


def test_spool_survives_a_forwarder_restart(tmp_path: Path) -> None:
    with http_receiver() as (receiver, url):
        receiver.down = True
        first = Forwarder(DiskSpool(tmp_path), [HttpSink("siem", url)], backoff=(0.05, 0.1))
        first.start()
        for event in numbered(0, 40):
            first.submit(event)
        wait_until(lambda: receiver.requests >= 2, what="failed attempts")
        assert not first.stop(timeout=0.2)  # nothing could be delivered
        assert receiver.events == []
        receiver.down = False
        second = Forwarder(DiskSpool(tmp_path), [HttpSink("siem", url)], backoff=(0.05, 0.1))
        assert second.status()["sinks"]["siem"]["queued"] == 40
        second.start()
        for event in numbered(40, 10):
            second.submit(event)
        assert second.stop(timeout=10)
    assert statement_numbers(receiver.events) == list(range(50))


def test_a_full_spool_refuses_loudly_and_loses_nothing(tmp_path: Path) -> None:
    with http_receiver() as (receiver, url):
        receiver.down = True
        record = len(json.dumps(numbered(0, 1)[0]).encode()) + 8
        spool = DiskSpool(tmp_path, max_bytes=20 * record + 200, segment_bytes=4 * record)
        forwarder = Forwarder(spool, [HttpSink("siem", url)], backoff=(0.05, 0.1))
        forwarder.start()
        accepted = []
        for event in numbered(0, 100):
            try:
                forwarder.submit(event)
            except SpoolFull:
                break
            accepted.append(event)
        assert 15 <= len(accepted) < 100
        status = forwarder.status()["spool"]
        assert status["full"] and status["refused"] == 1
        receiver.down = False
        wait_until(lambda: forwarder.status()["sinks"]["siem"]["queued"] == 0, what="the backlog")
        assert forwarder.status()["spool"]["bytes"] == 0  # every segment acknowledged and gone
        forwarder.submit(numbered(500, 1)[0])  # room again
        assert not forwarder.status()["spool"]["full"]
        assert forwarder.stop(timeout=10)
    assert statement_numbers(receiver.events) == [*range(len(accepted)), 500]


def test_submit_after_stop_is_an_error(tmp_path: Path) -> None:
    forwarder = Forwarder(DiskSpool(tmp_path), [])
    forwarder.start()
    assert forwarder.stop(timeout=1)
    with pytest.raises(RuntimeError, match="stopped"):
        forwarder.submit(numbered(0, 1)[0])


def test_from_config(tmp_path: Path) -> None:
    siem = Siem(
        spool=tmp_path / "spool",
        sinks=(SiemSink(kind="file", path=tmp_path / "cef.log", format="cef"),),
    )
    forwarder = Forwarder.from_config(siem)
    forwarder.start()
    events = numbered(0, 5)
    for event in events:
        forwarder.submit(event)
    assert forwarder.stop(timeout=10)
    assert (tmp_path / "cef.log").read_text().splitlines() == [to_cef(e) for e in events]
