"""What a red-team run against the demo found, as alice (the engineer): each a test that the
gateway now stops. (The run: a helper with only alice's password, 2026-12-07.)"""

from __future__ import annotations

import psycopg
import pytest

from tests.gateway_harness import RunningGateway
from tests.masking.channels import Leaks, receive
from tests.masking.test_masking_gateway import Seeded, database, gateway, seeded
from wardgate.demo.postgres import LocalPostgres

__all__ = ["database", "gateway", "seeded"]  # module fixtures shared with the row tests

DENIED = "42501"


@pytest.fixture(scope="module")
def leaks(seeded: Seeded) -> Leaks:
    return Leaks((*seeded.ssns, *seeded.mrns, *seeded.phones, *seeded.emails), seeded.names)


def ssn_digits(pg: LocalPostgres, database: str) -> int:
    """What patient 1's SSN is, as digits, read directly (the check that the attack would work)."""
    with psycopg.connect(pg.dsn(database)) as direct:
        found = direct.execute("SELECT replace(ssn, '-', '') FROM patients WHERE id = 1").fetchone()
    assert found is not None
    return int(found[0])


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT length(repeat('x', replace(ssn, '-', '')::int)) FROM patients WHERE id = 1",
        "SELECT length(repeat('x', ascii(substr(first_name, 1, 1)))) FROM patients WHERE id = 1",
        "SELECT cardinality(string_to_array(repeat('a,', substr(ssn, 5, 2)::int), ','))"
        " FROM patients WHERE id = 1",
        "SELECT num_nonnulls(nullif(substr(ssn, 1, 1), '5')) FROM patients WHERE id = 1",
    ],
)
def test_a_length_of_a_computed_value_is_not_content_free(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, statement: str
) -> None:
    """``length`` of a stored value says how long it is; of ``repeat('x', ssn::int)`` it says
    the SSN. Only stored values (cast or not) are measured; the rest stays PHI, masked."""
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate is None, got.error
    raw = ssn_digits(pg_server, database)
    assert str(raw) not in " ".join(got.rows)
    assert not any(row.isdigit() for row in got.rows), got.rows  # no number comes back


def test_a_plain_length_still_passes(gateway: RunningGateway) -> None:
    got = receive(gateway.dsn("alice"), ["SELECT length(ssn), count(ssn) FROM patients"
                                         " WHERE id = 1 GROUP BY ssn"])  # fmt: skip
    assert got.sqlstate is None or got.sqlstate == DENIED  # grouping on a masked column
    got = receive(gateway.dsn("alice"), ["SELECT length(ssn) FROM patients WHERE id = 1"])
    assert got.sqlstate is None and got.rows == ["11"], got


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TEMP VIEW encounters AS SELECT p.id, replace(p.ssn, '-', '')::bigint AS"
        " patient_id, p.first_name AS kind FROM public.patients p",
        "CREATE TEMP TABLE patients (id int, ssn text)",
        "CREATE TEMPORARY VIEW vv AS SELECT id, ssn FROM public.patients",
        "CREATE VIEW pg_temp.shadow AS SELECT id, ssn FROM public.patients",
        "CREATE TEMP SEQUENCE s",
        "SELECT id INTO TEMP t FROM public.patients",
    ],
)
def test_temporary_relations_are_refused(
    gateway: RunningGateway, leaks: Leaks, statement: str
) -> None:
    """PostgreSQL looks in pg_temp first: a temporary view named like a table masking knows
    (encounters) would hand the engineer raw SSNs as patient ids."""
    got = receive(gateway.dsn("alice"), [statement, "SELECT patient_id + 0 FROM encounters"])
    assert got.sqlstate == DENIED and "pg_temp" in got.error[0], got
    assert not leaks(got.text())


def test_the_clinician_sees_a_length_as_before(gateway: RunningGateway) -> None:
    got = receive(gateway.dsn("bob"), ["SELECT length(first_name) FROM patients WHERE id = 1"])
    assert got.sqlstate is None and got.rows and got.rows[0].isdigit()


@pytest.mark.parametrize(
    ("statement", "direct"),
    [
        (
            "SELECT make_date((extract(month FROM date_of_birth) * 100"
            " + extract(day FROM date_of_birth))::int, 1, 1) FROM patients WHERE id = 1",
            "SELECT to_char(date_of_birth, 'FMMMDD') FROM patients WHERE id = 1",
        ),
        ("SELECT reverse(zip) FROM patients WHERE id = 1",
         "SELECT reverse(zip) FROM patients WHERE id = 1"),
        ("SELECT substr(zip, 3) || '00' FROM patients WHERE id = 1",
         "SELECT substr(zip, 3) FROM patients WHERE id = 1"),
        ("SELECT substr(mrn, 1, 0) || '0' FROM patients WHERE id = 1", None),
    ],
)  # fmt: skip
def test_an_operator_is_not_applied_to_a_computed_value(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, statement: str,
    direct: str | None,
) -> None:  # fmt: skip
    """Keeping a date's year or a ZIP's first three digits, or pseudonymising an id, is made
    for the stored value; on a value computed from it, it keeps what the computation put there
    (the day of birth as a year, the ZIP's last digits, a pseudonym of a chosen constant that
    builds a dictionary). A derived value is masked whole."""
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate is None, got.error
    if direct is not None:
        with psycopg.connect(pg_server.dsn(database)) as conn:
            found = conn.execute(direct).fetchone()
        assert found is not None
        assert str(found[0]).lstrip("0") not in " ".join(got.rows), got.rows
    assert not any("MRN-" in row or row[:1].isdigit() for row in got.rows), got.rows


@pytest.mark.parametrize(
    "template",
    [
        "SELECT count(*) FROM (SELECT ssn FROM patients WHERE id = 1 INTERSECT SELECT '{ssn}') t",
        "SELECT count(*) FROM (SELECT ssn FROM patients WHERE id = 1 EXCEPT SELECT '{ssn}') t",
        "SELECT count(*) FROM (SELECT substr(ssn, 1, 1) FROM patients WHERE id = 1"
        " UNION SELECT '{first}') t",
        "SELECT count(*) FROM (SELECT x FROM (SELECT substr(ssn, 1, 1) x FROM patients"
        " WHERE id = 1 UNION ALL SELECT '{first}') u GROUP BY x) t",
        "SELECT count(*) FROM (SELECT substr(ssn, 1, 1) FROM patients GROUP BY 1) t",
        "SELECT count(*) FROM (SELECT DISTINCT substr(ssn, 1, 1) FROM patients) t",
        "SELECT count(*) FROM (SELECT substr(ssn, 1, 1) AS x FROM patients GROUP BY x) t",
    ],
)
def test_deduplication_is_a_comparison_too(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, leaks: Leaks,
    template: str,
) -> None:  # fmt: skip
    """UNION, INTERSECT, EXCEPT, GROUP BY and DISTINCT compare values with each other; with a
    constant on one side, a count of the rows says whether the masked value was that constant
    (the second red-team run rebuilt SSNs, names and dates of birth this way). Refused."""
    with psycopg.connect(pg_server.dsn(database)) as conn:
        found = conn.execute("SELECT ssn FROM patients WHERE id = 1").fetchone()
    assert found is not None
    statement = template.format(ssn=found[0], first=found[0][0])
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate == DENIED, (statement, got)
    assert not leaks(got.text())


def test_union_all_and_grouping_by_a_stored_column_stay_allowed(gateway: RunningGateway) -> None:
    got = receive(gateway.dsn("alice"), [
        "SELECT ssn FROM patients WHERE id = 1 UNION ALL SELECT 'x'",
        "SELECT count(*) FROM patients GROUP BY state",
    ])  # fmt: skip
    assert got.sqlstate is None, got.error
