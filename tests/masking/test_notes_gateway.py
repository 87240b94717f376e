"""Addresses and the other stored identifiers in clinical notes, as alice (engineer) reads them
through a real gateway: the streets and cities the demo seeded into the notes never come back,
in any case, nor inside arrays or JSON (issue 15: "... address 7488 Weeks Divide, ..."), and
no SSN comes back in the text[] of regexp_matches."""

from __future__ import annotations

import psycopg
import pytest

from tests.gateway_harness import RunningGateway
from tests.masking.test_masking_gateway import Seeded, database, gateway, run, seeded  # noqa: F401
from wardgate.demo.postgres import LocalPostgres

STATEMENTS = [
    "SELECT body FROM clinical_notes",
    "SELECT upper(body) FROM clinical_notes",
    "SELECT lower(body) FROM clinical_notes",
    "SELECT array_agg(body) FROM clinical_notes",
    "SELECT to_json(body) FROM clinical_notes",
    "SELECT json_agg(n) FROM clinical_notes n",
    "SELECT ROW(id, body)::text FROM clinical_notes",
    r"SELECT regexp_matches(body, '\d{3}-\d{2}-\d{4}', 'g') FROM clinical_notes",
    "SELECT regexp_split_to_array(body, ', ') FROM clinical_notes",
    "SELECT string_to_array(upper(body), '. ') FROM clinical_notes",
]


@pytest.fixture(scope="module")
def places(pg_server: LocalPostgres, database: str) -> list[str]:  # noqa: F811
    """Every street, city and name of a patient whose address a note holds."""
    with psycopg.connect(pg_server.dsn(database)) as conn:
        rows = conn.execute(
            "SELECT p.street, p.city, p.first_name, p.last_name FROM patients p"
            " WHERE EXISTS (SELECT FROM clinical_notes n WHERE n.patient_id = p.id"
            " AND strpos(n.body, p.street) > 0)"
        ).fetchall()
    assert rows, "the demo seed wrote no address into a note"
    return sorted({v.lower() for row in rows for v in row if len(v) > 2})


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_addresses_in_notes_are_masked(
    gateway: RunningGateway,  # noqa: F811
    seeded: Seeded,  # noqa: F811
    places: list[str],
    statement: str,
    binary: bool,
) -> None:
    output = run(gateway, "alice", statement, binary=binary)
    assert output
    lowered = output.lower()
    leaked = [value for value in places if value in lowered] + seeded.leaks(output)
    assert not leaked, f"{statement!r} leaked {leaked[:5]}"


def test_stored_values_written_otherwise_are_masked(
    gateway: RunningGateway,  # noqa: F811
    pg_server: LocalPostgres,
    database: str,  # noqa: F811
) -> None:
    """The gateway read the patients' labelled columns when it loaded the catalog: a note that
    names the patient's city (one word, "Justinland") alone in lower case, the surname in
    capitals and the member id in lower case has none of them found by a rule, all of them by
    the stored values."""
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as conn:
        row = conn.execute(
            "SELECT p.id, p.last_name, p.city, p.insurance_member_id, p.email, e.id"
            " FROM patients p JOIN encounters e ON e.patient_id = p.id"
            " WHERE p.city NOT LIKE '% %' ORDER BY p.id LIMIT 1"
        ).fetchone()
        assert row is not None
        patient, last, city, member, email, encounter = row
        body = (
            f"Called {last.upper()} back: staying with family in {city.lower()} this week, "
            f"member number {member.lower()}, e-mail {email.upper()} for the forms."
        )
        note = conn.execute(
            "INSERT INTO clinical_notes (encounter_id, patient_id, written_at, body)"
            " VALUES (%s, %s, now(), %s) RETURNING id",
            (encounter, patient, body),
        ).fetchone()
    assert note is not None
    output = run(gateway, "alice", f"SELECT body FROM clinical_notes WHERE id = {note[0]}")
    assert "staying with family in" in output
    for value in (last, city, member, email):
        assert value.lower() not in output.lower(), value


def test_a_dose_glued_to_its_unit_leaves_the_note_readable(
    gateway: RunningGateway,  # noqa: F811
    pg_server: LocalPostgres,
    database: str,  # noqa: F811
) -> None:
    """ "0.5mg", "1/2tab": the number detector once raised on a short number with a separator
    glued to letters, and the column masker made the whole note NULL for the masked role."""
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as conn:
        row = conn.execute(
            "SELECT p.id, p.last_name, e.id FROM patients p"
            " JOIN encounters e ON e.patient_id = p.id ORDER BY p.id LIMIT 1"
        ).fetchone()
        assert row is not None
        patient, last, encounter = row
        body = f"Mr. {last} to take metformin 0.5mg BID and 1/2tab at night for 1-2wk."
        note = conn.execute(
            "INSERT INTO clinical_notes (encounter_id, patient_id, written_at, body)"
            " VALUES (%s, %s, now(), %s) RETURNING id",
            (encounter, patient, body),
        ).fetchone()
    assert note is not None
    output = run(gateway, "alice", f"SELECT body FROM clinical_notes WHERE id = {note[0]}")
    assert "metformin 0.5mg BID and 1/2tab at night for 1-2wk." in output, output
    assert last not in output
