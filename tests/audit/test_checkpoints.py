"""Signed heads: the key file, the cadence, the head file and the webhook."""

from __future__ import annotations

import http.server
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization

from tests.audit.chain_helpers import event
from wardgate.audit.anchors import Anchors, read_head_file
from wardgate.audit.canonical import canonical
from wardgate.audit.checkpoints import (
    Checkpointer,
    key_id,
    load_or_create_key,
    load_public_key,
    public_pem,
    signature_ok,
)
from wardgate.audit.sqlite import SQLiteStore
from wardgate.audit.store import AuditUnavailable, Head


def test_the_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key(path)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert again.public_key().public_bytes(*raw) == key.public_key().public_bytes(*raw)
    assert len(key_id(key.public_key())) == 32
    pem = public_pem(key.public_key())
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(load_public_key(pem.encode())) == key_id(key.public_key())


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    load_or_create_key(path)
    path.chmod(0o640)
    with pytest.raises(AuditUnavailable, match="chmod 600"):
        load_or_create_key(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_head_every_n_entries_or_t_seconds_whichever_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "audit.db")
    clock = Clock()
    heads_file = tmp_path / "anchors" / "heads.jsonl"
    key = load_or_create_key(tmp_path / "audit.key")
    cp = Checkpointer(
        store,
        key,
        every_entries=5,
        every_seconds=30,
        anchors=Anchors(heads_file),
        clock=clock,
    )

    def append(n: int) -> int | None:
        start = store.last()[0]
        head = cp.appended(store.append_entries([event(start + i) for i in range(1, n + 1)]))
        return head.tree_size if head else None

    assert append(1) == 1  # the first entries get a head at once
    assert append(3) is None
    assert append(1) is None  # 4 since the last head
    assert append(1) == 6
    clock.now += 29
    assert append(1) is None and cp.tick() is None
    clock.now += 29
    assert cp.tick() is None  # the unsigned entry is 29 s old
    clock.now += 1
    assert cp.tick() is not None  # 30 s after the first entry no head covered
    clock.now += 100
    assert cp.tick() is None  # nothing new to sign
    assert [h.tree_size for h in store.heads()] == [1, 6, 7]
    anchored = read_head_file(heads_file)
    assert anchored == store.heads()
    public = key.public_key()
    assert all(signature_ok(h, public) for h in anchored)
    first = heads_file.read_text().splitlines()[0]
    assert first.encode() == canonical(json.loads(first))
    h = anchored[0]
    forged = Head(2, h.root_hash, h.time, h.key_id, h.signature)
    assert not signature_ok(forged, public)
    # A restart resumes the tree from the newest head's frontier.
    again = Checkpointer(store, key, every_entries=5, every_seconds=30, clock=clock)
    assert again.frontier.root() == cp.frontier.root()


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/heads", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_heads_are_posted_to_the_webhook(tmp_path: Path, receiver: tuple[str, list[bytes]]) -> None:
    url, bodies = receiver
    store = SQLiteStore(tmp_path / "audit.db")
    anchors = Anchors(webhook=url)
    cp = Checkpointer(store, load_or_create_key(tmp_path / "k"), every_entries=2, anchors=anchors)
    for i in range(1, 6):
        cp.appended(store.append_entries([event(i)]))
    assert anchors.flush(10)
    anchors.close()
    posted = [json.loads(b) for b in bodies]
    assert [p["tree_size"] for p in posted] == [h.tree_size for h in store.heads()] == [1, 3, 5]
    assert posted[0] == store.heads()[0].public()


def test_an_unreachable_webhook_does_not_hold_up_appends(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "audit.db")
    queue = tmp_path / "anchors" / "queue.jsonl"
    queue.parent.mkdir()
    anchors = Anchors(webhook="http://127.0.0.1:9/", timeout=0.5, queue_file=queue)
    cp = Checkpointer(store, load_or_create_key(tmp_path / "k"), anchors=anchors)
    head = cp.appended(store.append_entries([event(1)]))
    assert head is not None
    assert not anchors.flush(1.0)  # retried, never dropped
    status = anchors.status()
    assert status["undelivered"] == 1 and int(status["failures"]) >= 1  # type: ignore[call-overload]
    anchors.close(0.1)
    assert [h.tree_size for h in read_head_file(queue)] == [1]  # kept for the next start


def test_undelivered_heads_survive_a_restart_and_are_delivered(
    tmp_path: Path, receiver: tuple[str, list[bytes]]
) -> None:
    url, bodies = receiver
    store = SQLiteStore(tmp_path / "audit.db")
    queue = tmp_path / "queue.jsonl"
    down = Anchors(webhook="http://127.0.0.1:9/", timeout=0.5, queue_file=queue)
    cp = Checkpointer(store, load_or_create_key(tmp_path / "k"), every_entries=1, anchors=down)
    for i in range(1, 4):
        cp.appended(store.append_entries([event(i)]))
    down.close(0.1)
    up = Anchors(webhook=url, queue_file=queue)
    assert up.flush(10)
    up.close()
    assert [json.loads(b)["tree_size"] for b in bodies] == [1, 2, 3]
    assert queue.read_text() == ""
