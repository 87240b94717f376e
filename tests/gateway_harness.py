"""A real gateway on a loopback port, run on its own event loop thread so that blocking clients
(psql, psycopg, pgbench) can talk to it from the test."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wardgate.app import Gateway
from wardgate.config import Config, loads
from wardgate.core.pipeline import Addon
from wardgate.identity.authenticator import Authenticator


@dataclass
class RunningGateway:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    port: int
    ca: Path
    password: dict[str, str] = field(default_factory=dict)

    @property
    def audit_path(self) -> Path:
        path = self.gateway.config.audit.path
        assert path is not None, "this gateway writes no JSON-lines audit"
        return path

    def dsn(self, user: str = "alice", dbname: str = "test", **extra: str) -> str:
        parts = {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": user,
            "password": self.password.get(user, ""),
            "dbname": dbname,
            "sslmode": "verify-full",
            "sslrootcert": str(self.ca),
            "connect_timeout": "10",
        }
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def events(self) -> list[dict[str, Any]]:
        self.call(_noop)  # let the loop finish writing what it was writing
        # Beside the signed store, a statement's summary follows its released result (the
        # gateway's timer writes it within a quarter second): write it now.
        self.gateway.audit.settle()
        text = self.audit_path.read_text()
        # a committer thread may be writing the last line as we read: it is not an event yet
        complete = text if text.endswith("\n") else text.rpartition("\n")[0]
        return [json.loads(line) for line in complete.splitlines() if line]

    def audit_settled(self, timeout: float = 5.0) -> dict[str, Any]:
        """The audit's health once nothing it recorded waits for a commit: a statement's
        summary and a session's end follow the result the client saw."""
        deadline = time.monotonic() + timeout
        while True:
            self.gateway.audit.settle()
            audit: dict[str, Any] = self.gateway.health()["audit"]  # type: ignore[assignment]
            if not audit.get("pending") or time.monotonic() > deadline:
                return audit
            time.sleep(0.05)

    def call(self, fn: Any, *args: Any) -> Any:
        done: Future[Any] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(10)


def _noop() -> None:
    return None


Edit = Callable[[dict[str, Any]], None]


def build_config(
    tmp: Path,
    pki_dir: Path,
    target: dict[str, Any],
    *,
    edit: Edit | None = None,
    **listener: Any,
) -> Config:
    """A configuration in ``tmp/wardgate.yaml``: a TLS PostgreSQL listener (``listener``
    overrides its keys), users alice (engineer) and bob (clinician), ``target``, a JSON-lines
    audit; ``edit`` changes the raw sections before the file is written (and loaded). Targets
    accept a superuser login (``allow_superuser``) unless ``edit`` says otherwise."""
    from wardgate.pki import ensure_dev_pki

    pki = ensure_dev_pki(pki_dir)
    pg_listener: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "tls": {"cert": str(pki.server_cert), "key": str(pki.server_key)},
    }
    pg_listener.update(listener)
    raw: dict[str, Any] = {
        "listeners": {"postgres": pg_listener},
        "users": [
            {"name": "alice", "password": "alice-secret", "roles": ["engineer"]},
            {"name": "bob", "password": "bob-secret", "roles": ["clinician"]},
        ],
        "targets": [target],
        "audit": {"path": str(tmp / "audit.jsonl")},
    }
    if edit is not None:
        edit(raw)
    for entry in raw.get("targets", ()):
        # The tests' local PostgreSQL is reached as its superuser, which the gateway refuses
        # unless told (policy/upstream.py); tests of that check set allow_superuser: false.
        entry.setdefault("allow_superuser", True)
    path = tmp / "wardgate.yaml"
    path.write_text(yaml.safe_dump(raw))
    return loads(path.read_text(), path)


def running(
    config: Config,
    ca: Path,
    addons: list[Addon] | None = None,
    authenticator: Authenticator | None = None,
) -> Iterator[RunningGateway]:
    loop = asyncio.new_event_loop()
    started: Future[Gateway] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            gateway = Gateway(config, addons, authenticator)
            try:
                await gateway.start()
            except BaseException:
                await gateway.close()
                raise
            started.set_result(gateway)

        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            started.set_exception(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=main, name="wardgate-test-loop", daemon=True)
    thread.start()
    try:
        gateway = started.result(30)
    except BaseException:
        thread.join(30)
        loop.close()
        raise
    port = gateway.addresses.get("postgres", ("", 0))[1]  # 0: no PostgreSQL listener
    running_gateway = RunningGateway(
        gateway, loop, port, ca, {"alice": "alice-secret", "bob": "bob-secret"}
    )
    try:
        yield running_gateway
    finally:
        asyncio.run_coroutine_threadsafe(gateway.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
