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
    the SSN. Only stored values (cast or not) are measured; the rest stays PHI, masked. (A cast
    to a number and ``repeat`` may fail on a masked value: those are refused now, see
    `test_what_may_fail_on_a_masked_value_is_refused`.)"""
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate in (None, DENIED), got.error
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
        # a domain named text, searched before pg_catalog's: ssn::text would fail on a guess
        "CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (VALUE NOT LIKE '1%')",
        "CREATE TYPE pg_temp.varchar AS (a int)",
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
    assert got.sqlstate in (None, DENIED), got.error  # make_date may fail: refused
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


# ---- the fourth run: whether a statement fails is one bit -------------------------------------

MAY_FAIL = [
    "SELECT 1/(ascii(substr(ssn, 1, 1)) - 49) FROM patients WHERE id = 1",
    "SELECT (substr(ssn, 1, 1) || '0')::int FROM patients WHERE id = 1",
    "SELECT ssn::int FROM patients WHERE id = 1",
    "SELECT (SELECT ssn FROM patients WHERE id = 1)::int",
    "SELECT to_date(substr(ssn, 1, 2), 'MM') FROM patients WHERE id = 1",
    "SELECT make_date(extract(year FROM date_of_birth)::int, 2, 29) FROM patients WHERE id = 1",
    "SELECT date_of_birth + 1 FROM patients WHERE id = 1",
    "SELECT (ARRAY[1, 2, 3])[ascii(ssn)] FROM patients WHERE id = 1",
    "SELECT repeat('x', ascii(ssn)) FROM patients WHERE id = 1",
    "SELECT chr(ascii(ssn)) FROM patients WHERE id = 1",
    "SELECT count(*) FROM patients WHERE id = 1 AND 1/(ascii(ssn) - 49) IS NOT NULL",
    "SELECT CASE WHEN id = 1 THEN 1/(ascii(ssn) - 49) END FROM patients",
    "SELECT coalesce(1/(ascii(ssn) - 49), 0) FROM patients WHERE id = 1",
    "SELECT nullif(0, 1/(ascii(ssn) - 49)) FROM patients WHERE id = 1",
    "SELECT 'x' ~ last_name FROM patients WHERE id = 1",
    "SELECT convert_to(first_name, 'LATIN1') FROM patients WHERE id = 1",
    "SELECT jsonb_build_object(nullif(substr(ssn, 1, 1), '1'), 1) FROM patients WHERE id = 1",
    "SELECT xmlparse(content ssn) FROM patients WHERE id = 1",
    "SELECT lag(id, ascii(ssn)) OVER () FROM patients WHERE id = 1",
    "SELECT count(*) FROM patients WHERE id = 1 AND ssn::varchar(1)::int IS NULL",
    "SELECT ssn OPERATOR(public.||) 'x' FROM patients WHERE id = 1",
    "SELECT ssn::public.text FROM patients WHERE id = 1",
    "SELECT 'x' ~ ANY (SELECT last_name FROM patients WHERE id = 1)",
]


@pytest.mark.parametrize("statement", MAY_FAIL)
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_what_may_fail_on_a_masked_value_is_refused(
    gateway: RunningGateway, leaks: Leaks, statement: str, binary: bool
) -> None:
    """``1/(ascii(ssn) - 49)`` fails iff the SSN starts with 1, a cast iff the value does not
    parse, ``make_date(year, 2, 29)`` iff the year is not a leap year: the error is one bit,
    and 11 characters are rebuilt in a few dozen statements. A masked value may only go through
    functions that never fail (`functions.TOTAL`); the rest is refused, naming the column."""
    got = receive(gateway.dsn("alice"), [statement], binary=binary)
    assert got.sqlstate == DENIED, (statement, got)
    assert "may fail" in got.error[0] and "public.patients." in got.error[0], got.error
    assert not leaks(got.text())


def test_the_error_bit_is_what_the_refusal_closes(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    """The attack itself, read directly: the statement fails for one digit and not for the
    others. Through the gateway it is refused for every digit alike."""
    first = str(ssn_digits(pg_server, database)).zfill(9)[0]
    outcomes = {}
    for guess in (first, "0" if first != "0" else "1"):
        statement = f"SELECT 1/(ascii(substr(ssn, 1, 1)) - {ord(guess)}) FROM patients WHERE id = 1"
        with psycopg.connect(pg_server.dsn(database)) as direct:
            try:
                direct.execute(statement).fetchall()
                outcomes[guess] = "ok"
            except psycopg.errors.DivisionByZero:
                outcomes[guess] = "22012"
        got = receive(gateway.dsn("alice"), [statement])
        assert got.sqlstate == DENIED, got
    assert sorted(outcomes.values()) == ["22012", "ok"]


def test_a_search_path_before_pg_catalog_makes_casts_and_operators_unknown(
    gateway: RunningGateway,
) -> None:
    """With another schema searched first, ``text`` and ``||`` may name a domain with a CHECK
    or an operator of that schema, which fail on values of its choosing."""
    got = receive(gateway.dsn("alice"), [
        "SET search_path = public, pg_catalog",
        "SELECT ssn::text FROM patients WHERE id = 1",
    ])  # fmt: skip
    assert got.sqlstate == DENIED and "may fail" in got.error[0], got


ALLOWED = [
    "SELECT ssn, mrn, first_name, date_of_birth FROM patients WHERE id = 1",
    "SELECT upper(first_name), lower(last_name), concat(ssn, '!'), ssn || '' FROM patients"
    " WHERE id = 1",
    "SELECT coalesce(ssn, 'x'), nullif(mrn, ''), CASE WHEN id > 0 THEN email END FROM patients"
    " WHERE id = 1",
    "SELECT substr(ssn, 1, 3), replace(phone, '-', ''), ssn::text, CAST(mrn AS varchar(40))"
    " FROM patients WHERE id = 1",
    "SELECT extract(year FROM date_of_birth), to_char(date_of_birth, 'YYYY'),"
    " date_of_birth::text FROM patients WHERE id = 1",
    "SELECT to_jsonb(p) ->> 'ssn', json_build_object('s', ssn) FROM patients p WHERE id = 1",
    "SELECT min(ssn), count(ssn), array_agg(mrn), string_agg(email, ',') FROM patients",
    "SELECT 1/(length(ssn) - 10) FROM patients WHERE id = 1",  # a length is no secret
    "SELECT count(*) FROM patients p JOIN encounters e ON e.patient_id = p.id",
    "SELECT count(*) FROM patients p JOIN patients q ON p.ssn = q.ssn",
    "SELECT count(*) FROM patients p JOIN patients q ON p.first_name = q.last_name",
    "SELECT count(*) FROM patients WHERE ssn IS NOT NULL",
]


@pytest.mark.parametrize("statement", ALLOWED)
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_what_never_fails_stays_allowed(
    gateway: RunningGateway, leaks: Leaks, statement: str, binary: bool
) -> None:
    got = receive(gateway.dsn("alice"), [statement], binary=binary)
    assert got.sqlstate is None, (statement, got.error)
    assert got.rows and not leaks(got.text())


# ---- the fourth run: a probe row and an equality join ------------------------------------------

_COLUMNS = (
    "mrn, first_name, last_name, ssn, date_of_birth, street, city, state, zip, phone, email,"
    " insurance_member_id"
)


@pytest.fixture(scope="module")
def scratch(pg_server: LocalPostgres, database: str) -> str:
    """A table of the engineer's own, no label on it, and patient 1's raw values."""
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS scratch (x text)")
        found = admin.execute("SELECT ssn, mrn FROM patients WHERE id = 1").fetchone()
    assert found is not None
    return f"{found[0]}|{found[1]}"


@pytest.mark.parametrize(
    "statements",
    [
        # a guess in a labelled column of another entity, then joined with the SSNs
        ["UPDATE patients SET city = '{ssn}' WHERE id = 2",
         "SELECT count(*) FROM patients p JOIN patients q ON p.ssn = q.city"],
        # a second row holding the guess in the SSN column itself, joined with the first
        [f"INSERT INTO patients ({_COLUMNS}) SELECT 'MRN-PROBE', first_name, last_name, '{{ssn}}',"
         " date_of_birth, street, city, state, zip, phone, email, insurance_member_id"
         " FROM patients WHERE id = 2",
         "SELECT count(*) FROM patients a JOIN patients b ON a.ssn = b.ssn AND a.id <> b.id"],
        ["UPDATE patients SET ssn = '{ssn}' WHERE id = 2"],
        ["UPDATE patients SET ssn = '{first}' || substr(ssn, 2) WHERE id = 2"],
        ["UPDATE patients SET ssn = DEFAULT WHERE id = 2"],
        ["MERGE INTO patients p USING (SELECT 2 AS id) s ON p.id = s.id"
         " WHEN MATCHED THEN UPDATE SET ssn = '{ssn}'"],
        # a unique index answers whether a guessed MRN exists (23505 or not)
        [f"INSERT INTO patients ({_COLUMNS}) SELECT '{{mrn}}', first_name, last_name, ssn,"
         " date_of_birth, street, city, state, zip, phone, email, insurance_member_id"
         " FROM patients WHERE id = 2"],
        ["ALTER TABLE patients ALTER COLUMN ssn SET DEFAULT '{ssn}'"],
    ],
)  # fmt: skip
def test_a_value_of_the_client_is_not_written_into_a_masked_column(
    gateway: RunningGateway, leaks: Leaks, scratch: str, statements: list[str]
) -> None:
    """A guess written where masked values are (a labelled column, the SSN column itself)
    is a probe: a join of it with the stored values, or a unique index, says whether the guess
    is somebody's value. The engineer writes into a masked column only copies of a column with
    the same label (``SET city = city``)."""
    ssn, mrn = scratch.split("|")
    sql = [s.format(ssn=ssn, mrn=mrn, first=ssn[0]) for s in statements]
    got = receive(gateway.dsn("alice"), sql)
    assert got.sqlstate == DENIED, (sql, got)
    assert "cannot write" in got.error[0] and "public.patients." in got.error[0], got.error
    assert not leaks(got.text())


def test_copy_into_a_masked_column_is_refused(gateway: RunningGateway, scratch: str) -> None:
    ssn = scratch.split("|")[0]
    with (
        psycopg.connect(gateway.dsn("alice")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot write"),
        conn.cursor().copy(f"COPY patients ({_COLUMNS}) FROM STDIN") as copy,
    ):
        copy.write_row(["MRN-P", "a", "b", ssn, "2000-01-01", "s", "c", "st", "z", "p", "e", "i"])


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM patients p JOIN patients q ON p.ssn = q.city",
        "SELECT count(*) FROM patients p JOIN patients q ON p.ssn = q.phone AND p.id = 1",
        "SELECT count(*) FROM patients p WHERE p.ssn IN (SELECT city FROM patients)",
        "SELECT count(*) FROM (SELECT ssn AS v FROM patients UNION ALL SELECT x FROM scratch) u"
        " JOIN patients p ON p.ssn = u.v",
        # a foreign key answers each INSERT of a guess into scratch with 23503 or not
        "ALTER TABLE scratch ADD FOREIGN KEY (x) REFERENCES patients (ssn)",
        "CREATE TABLE probe (x text REFERENCES patients (ssn))",
        "CREATE TABLE probe (x text, FOREIGN KEY (x) REFERENCES patients)",
    ],
)
def test_a_join_with_a_column_masked_otherwise_is_refused(
    gateway: RunningGateway, scratch: str, statement: str
) -> None:
    """A join compares the stored values of two columns with one label; a column with another
    label (or none, in a union with one that has) may hold a guess the client put there."""
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate == DENIED and "same label" in got.error[0], (statement, got)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM scratch s JOIN patients p ON s.x = p.ssn",
        "SELECT count(*) FROM (VALUES ('{ssn}')) v(x) JOIN patients p ON v.x = p.ssn",
        "WITH g(x) AS (SELECT '{ssn}') SELECT count(*) FROM g JOIN patients p ON g.x = p.ssn",
        "SELECT count(*) FROM patients p JOIN patients q ON p.ssn = lower(q.ssn)",
    ],
)
def test_joins_with_what_is_not_a_masked_column_stay_refused(
    gateway: RunningGateway, scratch: str, statement: str
) -> None:
    """Refused before this run too (an unlabelled column, constants, a computed value): pinned."""
    sql = statement.format(ssn=scratch.split("|")[0])
    got = receive(gateway.dsn("alice"), ["INSERT INTO scratch VALUES ('x')", sql])
    assert got.sqlstate == DENIED, (sql, got)


@pytest.mark.parametrize(
    "template",
    [
        "SELECT count(*) FROM patients p JOIN (SELECT ssn AS v FROM patients WHERE false"
        " UNION ALL SELECT '{ssn}') u ON p.ssn = u.v",
        "WITH u(v) AS (SELECT ssn FROM patients WHERE false UNION ALL VALUES ('{ssn}'))"
        " SELECT count(*) FROM patients p WHERE p.ssn IN (SELECT v FROM u)",
        "SELECT count(*) FROM (SELECT v FROM (SELECT ssn AS v FROM patients WHERE id = 1"
        " UNION ALL SELECT '{ssn}') u GROUP BY v) t",
        "SELECT count(DISTINCT v) FROM (SELECT ssn AS v FROM patients WHERE id = 1"
        " UNION ALL SELECT '{ssn}') u",
        "INSERT INTO patients ({columns}) SELECT 'MRN-U', first_name, last_name, v,"
        " date_of_birth, street, city, state, zip, phone, email, insurance_member_id"
        " FROM (SELECT ssn AS v FROM patients WHERE false UNION ALL SELECT '{ssn}') u,"
        " patients WHERE id = 2",
    ],
)
def test_a_union_of_a_masked_column_with_a_guess_is_no_stored_value(
    gateway: RunningGateway, leaks: Leaks, scratch: str, template: str
) -> None:
    """``SELECT ssn ... UNION ALL SELECT '123-45-6789'`` is masked as the SSN column, but it
    holds the guess: joined, grouped or written as if it were stored SSNs, it confirms it."""
    statement = template.format(ssn=scratch.split("|")[0], columns=_COLUMNS)
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate == DENIED, (statement, got)
    assert not leaks(got.text())


def test_writes_of_copies_and_into_unlabelled_tables_stay_allowed(
    gateway: RunningGateway, scratch: str
) -> None:
    got = receive(gateway.dsn("alice"), [
        "INSERT INTO scratch VALUES ('anything')",
        "UPDATE patients SET city = city WHERE id = 1",
        "UPDATE patients SET first_name = last_name WHERE false",
    ])  # fmt: skip
    assert got.sqlstate is None, got.error
    copied = receive(gateway.dsn("alice"), [
        f"INSERT INTO patients ({_COLUMNS}) SELECT {_COLUMNS} FROM patients WHERE id = 1"
    ])  # fmt: skip
    assert copied.sqlstate == "23505", copied  # allowed through; the MRN is unique
