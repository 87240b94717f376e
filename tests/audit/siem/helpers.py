"""A tiny HTTP receiver on loopback, and a bounded wait."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.audit.siem.samples import all_events
from wardgate.audit.events import Event


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


def numbered(start: int, count: int) -> list[Event]:
    """Statement events whose text carries a number, to check order and completeness."""
    template = next(e for e in all_events() if e.get("type") == "statement")
    return [
        {**template, "seq": i, "statement": f"select {i} -- n={i}"}
        for i in range(start, start + count)
    ]


class Receiver:
    """Answers 503 to the first ``fail_first`` POSTs (or to all while ``down``), then 200."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first, self.down = fail_first, False
        self.requests = 0
        self.batches: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for batch in self.batches for e in batch]


@contextmanager
def http_receiver(fail_first: int = 0) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.requests += 1
                failing = receiver.down or receiver.requests <= receiver.fail_first
                if not failing:
                    receiver.batches.append(json.loads(body))
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.server_address[1]}/ocsf"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
