from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import (
    MRN_DIGITS,
    PHI_COMMENTS,
    SeedError,
    create_database_if_missing,
    seed,
)

SMALL = 300


@pytest.fixture
def dsn(pg_server: LocalPostgres, scratch_db: str) -> str:
    return pg_server.dsn(scratch_db)


@pytest.fixture
def other_dsn(pg_server: LocalPostgres) -> Iterator[str]:
    name = f"wardgate_test_{uuid.uuid4().hex[:12]}"
    create_database_if_missing(pg_server.dsn("postgres"), name)
    create_database_if_missing(pg_server.dsn("postgres"), name)  # a second call changes nothing
    try:
        yield pg_server.dsn(name)
    finally:
        with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def _one(dsn: str, query: sql.Composed) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _count(dsn: str, table: str) -> int:
    count = _one(dsn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    assert isinstance(count, int)
    return count


def _fingerprint(dsn: str) -> list[object]:
    digest = sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM {} t")
    tables = ("patients", "encounters", "clinical_notes")
    return [_one(dsn, digest.format(sql.Identifier(table))) for table in tables]


def test_seed_creates_linked_tables(dsn: str) -> None:
    summary = seed(dsn, patients=SMALL)
    assert summary.created
    assert summary.patients == _count(dsn, "patients") == SMALL
    assert summary.encounters == _count(dsn, "encounters")
    assert summary.notes == _count(dsn, "clinical_notes")
    assert SMALL <= summary.encounters <= 5 * SMALL
    assert summary.notes >= summary.encounters
    with psycopg.connect(dsn) as conn:
        keys = conn.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' ORDER BY 1, 2"
        ).fetchall()
        assert keys == [
            ("clinical_notes", "encounters"),
            ("clinical_notes", "patients"),
            ("encounters", "patients"),
        ]
        # the sequences continue after the loaded ids
        conn.execute(
            "INSERT INTO patients (mrn, first_name, last_name, ssn, date_of_birth, street, city,"
            " state, zip, phone, email, insurance_member_id) VALUES ('x', 'a', 'b', 'c',"
            " '2000-01-01', 'd', 'e', 'f', 'g', 'h', 'i', 'j')"
        )
        assert conn.execute("SELECT max(id) FROM patients").fetchone() == (SMALL + 1,)
        conn.rollback()


def test_phi_columns_carry_comments(dsn: str) -> None:
    seed(dsn, patients=10)
    with psycopg.connect(dsn) as conn:
        for (table, column), comment in PHI_COMMENTS.items():
            row = conn.execute(
                "SELECT col_description(%s::regclass, attnum) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attname = %s",
                (table, table, column),
            ).fetchone()
            assert row == (comment,)
            assert comment.startswith("PHI: ")


def test_values_look_real(dsn: str) -> None:
    seed(dsn, patients=SMALL)
    with psycopg.connect(dsn) as conn:
        patients = conn.execute(
            "SELECT id, mrn, first_name, last_name, ssn, phone, email, date_of_birth FROM patients"
        ).fetchall()
        notes = conn.execute("SELECT patient_id, body FROM clinical_notes").fetchall()
        before_birth = conn.execute(
            "SELECT count(*) FROM encounters e JOIN patients p ON p.id = e.patient_id"
            " WHERE e.encounter_date::date < p.date_of_birth"
        ).fetchone()
    assert before_birth == (0,)
    mrns = [p[1] for p in patients]
    assert len(set(mrns)) == len(mrns)
    assert all(re.fullmatch(rf"\d{{{MRN_DIGITS}}}", mrn) for mrn in mrns)
    for _, _, _, _, ssn, phone, email, _ in patients:
        area, group, serial = (int(part) for part in ssn.split("-"))
        assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", ssn)
        assert 0 < area < 900 and area != 666 and group > 0 and serial > 0
        assert re.fullmatch(r"[2-9]\d\d-555-01\d\d", phone)
        assert email.rsplit("@", 1)[1].endswith(("example.com", "example.org", "example.net"))

    by_id = {p[0]: p for p in patients}
    for patient_id, body in notes:
        _, _, first, last, *_ = by_id[patient_id]
        assert first in body or last in body, body
    bodies = " ".join(body for _, body in notes)
    assert sum(p[1] in bodies for p in patients) > SMALL / 2  # most MRNs recur in free text
    assert any(p[4] in bodies for p in patients)  # some full SSNs do too
    assert re.search(r"\(\d{3}\) 555-01\d\d", bodies) and re.search(r"\d{10}", bodies)
    assert re.search(r"\d{2}/\d{2}/\d{4}", bodies) and re.search(r"\d{4}-\d{2}-\d{2}", bodies)


def test_same_seed_gives_same_rows_and_another_seed_does_not(dsn: str, other_dsn: str) -> None:
    seed(dsn, patients=SMALL, seed=7)
    seed(other_dsn, patients=SMALL, seed=7)
    assert _fingerprint(dsn) == _fingerprint(other_dsn)
    seed(other_dsn, patients=SMALL, seed=8)
    assert _fingerprint(dsn) != _fingerprint(other_dsn)


def test_seeding_again_is_skipped_and_a_new_count_reseeds(dsn: str) -> None:
    first = seed(dsn, patients=SMALL)
    fingerprint = _fingerprint(dsn)
    again = seed(dsn, patients=SMALL)
    assert not again.created
    assert (again.encounters, again.notes) == (first.encounters, first.notes)
    assert again.seconds < 1
    assert _fingerprint(dsn) == fingerprint

    smaller = seed(dsn, patients=50)
    assert smaller.created
    assert _count(dsn, "patients") == 50
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT seed, patients FROM wardgate_seed").fetchall() == [
            (20261129, 50)
        ]


def test_tables_it_did_not_create_are_left_alone(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE patients (id int)")
        conn.execute("INSERT INTO patients VALUES (1)")
    with pytest.raises(SeedError, match="patients"):
        seed(dsn, patients=10)
    assert _count(dsn, "patients") == 1


def test_rejects_an_empty_seed(dsn: str) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        seed(dsn, patients=0)


@pytest.mark.slow
def test_default_seed_of_ten_thousand_patients(dsn: str) -> None:
    summary = seed(dsn)
    assert summary.created and summary.patients == 10_000
    assert summary.seconds < 30, summary
    assert not seed(dsn).created
