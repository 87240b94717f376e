"""When the audit cannot be written, nothing is released: no session starts, and a result whose
record cannot be made durable never reaches the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.core.model import Statement
from wardgate.core.pipeline import Addon
from wardgate.demo.postgres import LocalPostgres


class Durable(Addon):
    """Records statements and makes them durable on commit, or fails to, when told."""

    name = "durable"

    def __init__(self) -> None:
        self.recorded: list[str] = []
        self.durable: list[str] = []
        self.broken = False

    def statement_end(self, request: Statement) -> None:
        self.recorded.append(request.text)

    def commit(self) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        self.durable.extend(self.recorded)
        self.recorded.clear()


@pytest.fixture
def durable_gateway(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> Iterator[tuple[RunningGateway, Durable]]:
    addon = Durable()
    config = build_config(tmp_path, pki_dir, target_entry(pg_server, target_db))
    for gw in running(config, pki_dir / "ca.pem", [addon]):
        yield gw, addon


def test_result_is_withheld_when_its_record_cannot_be_committed(
    durable_gateway: tuple[RunningGateway, Durable],
) -> None:
    gw, addon = durable_gateway
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 'recorded first'").fetchone() == ("recorded first",)
        assert "SELECT 'recorded first'" in addon.durable
        addon.broken = True
        with pytest.raises(psycopg.OperationalError) as excinfo:
            conn.execute("SELECT 'secret row'").fetchone()
    assert "audit log is unavailable" in str(excinfo.value)
    assert "SELECT 'secret row'" not in addon.durable
    end = wait_for_event(gw, type="session.end")
    assert end["reason"].startswith("audit commit failed")


def test_no_session_starts_when_the_audit_file_cannot_be_written(
    tmp_path: Path, pki_dir: Path, pg_server: LocalPostgres, target_db: str
) -> None:
    config = build_config(tmp_path, pki_dir, target_entry(pg_server, target_db))
    full = config.model_copy(
        update={"audit": config.audit.model_copy(update={"path": Path("/dev/full")})}
    )
    for gw in running(full, pki_dir / "ca.pem"):
        with pytest.raises(psycopg.OperationalError) as excinfo:
            psycopg.connect(gw.dsn())
        assert "could not record this session" in str(excinfo.value)
