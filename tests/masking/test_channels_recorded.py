"""The session recording keeps what the client saw, on the other channels too: a column named
by an SSN and an error text withheld are recorded as the client got them, never raw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.masking.channels import receive
from tests.masking.test_masking_gateway import Seeded, database, demo_masking, seeded
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.recording.addon import locations
from wardgate.recording.keys import FileKeyProvider
from wardgate.recording.reader import records

__all__ = ["database", "seeded"]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    def recorded(raw: dict[str, Any]) -> None:
        demo_masking(raw)
        raw["recording"] = {"enabled": True}

    pki = tmp_path_factory.mktemp("pki")
    config = build_config(
        tmp_path_factory.mktemp("rec"), pki, target_entry(pg_server, database), edit=recorded
    )
    yield from running(config, pki / "ca.pem")


def test_the_recording_holds_no_raw_name_or_error_text(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, seeded: Seeded
) -> None:
    ssn = seeded.ssns[3]
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as admin:
        admin.execute(f'CREATE TABLE IF NOT EXISTS recorded_names ("{ssn}" int)')
    dsn = gateway.dsn("alice", application_name="recorded-channels")
    duplicate = (  # its error names the MRN it copies: masked for the client
        "INSERT INTO patients (mrn, first_name, last_name, ssn, date_of_birth, street, city,"
        " state, zip, phone, email, insurance_member_id) SELECT mrn, first_name, last_name, ssn,"
        " date_of_birth, street, city, state, zip, phone, email, insurance_member_id"
        " FROM patients WHERE id = 4"
    )
    got = receive(dsn, ["SELECT * FROM recorded_names", duplicate])
    assert got.names and ssn not in got.names[0] and got.sqlstate == "23505"
    ended = wait_for_event(gateway, type="session.end", session__application="recorded-channels")
    keys = FileKeyProvider(locations(gateway.gateway.config)[1])
    states = list(records(Path(ended["recording"]["path"]), keys))
    text = repr(states)
    assert "columns" in text and ssn not in text and ssn[::-1] not in text
    assert not any(mrn in text for mrn in seeded.mrns)
