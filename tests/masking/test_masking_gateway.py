"""Masking through a real gateway, with psycopg, against the demo schema with seeded patients.

The evasion table: every statement, run as the engineer (alice), either is refused or returns
no seeded SSN, MRN, name, phone number or e-mail address anywhere in its output, text or
binary, rows, COPY data or error messages. The clinician (bob) sees names raw and SSNs masked.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import DEMO_LABELS, seed

PATIENTS = 30


@dataclass(frozen=True)
class Seeded:
    ssns: tuple[str, ...]
    mrns: tuple[str, ...]
    names: tuple[str, ...]
    phones: tuple[str, ...]
    emails: tuple[str, ...]

    @classmethod
    def load(cls, dsn: str) -> Seeded:
        """The identifiers the demo seed put in the database at ``dsn``."""
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT ssn, mrn, first_name, last_name, phone, email FROM patients"
            ).fetchall()
        names = {r[2] for r in rows} | {r[3] for r in rows}
        return cls(
            tuple(r[0] for r in rows), tuple(r[1] for r in rows),
            tuple(sorted(n for n in names if len(n) > 2)),
            tuple(r[4] for r in rows), tuple(r[5] for r in rows),
        )  # fmt: skip

    def leaks(self, text: str) -> list[str]:
        found = [v for v in (*self.ssns, *self.mrns, *self.phones, *self.emails) if v in text]
        found += [n for n in self.names if re.search(rf"\b{re.escape(n)}\b", text)]
        return found


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    with temporary_database(pg_server, "wardgate_mask") as name:
        seed(pg_server.dsn(name), patients=PATIENTS)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            conn.execute(
                "CREATE VIEW patient_contacts AS"
                " SELECT first_name || ' ' || last_name AS name, phone FROM patients"
            )
        yield name


@pytest.fixture(scope="module")
def seeded(pg_server: LocalPostgres, database: str) -> Seeded:
    return Seeded.load(pg_server.dsn(database))


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    pki = tmp_path_factory.mktemp("pki")
    config = build_config(
        tmp_path_factory.mktemp("mask"), pki, target_entry(pg_server, database), edit=demo_masking
    )
    yield from running(config, pki / "ca.pem")


def demo_masking(raw: dict[str, Any]) -> None:
    """The demo's labels on the target; the clinician sees names and dates raw."""
    raw["targets"][0]["phi"] = DEMO_LABELS
    raw["masking"] = {"roles": {"clinician": {"raw": ["NAME", "DATE"]}}}


EVASIONS = [
    "SELECT * FROM patients",
    "SELECT p.* FROM patients p",
    "SELECT p FROM patients p",
    "TABLE patients",
    "SELECT ssn AS x, mrn AS y FROM patients",
    "SELECT ssn::text, mrn::varchar FROM patients",
    "SELECT CAST(ssn AS varchar(40)) FROM patients",
    "SELECT ssn || '' FROM patients",
    "SELECT upper(first_name), lower(last_name) FROM patients",
    "SELECT initcap(lower(first_name)) FROM patients",
    "SELECT concat(first_name, ' ', last_name) FROM patients",
    "SELECT concat_ws(',', ssn, mrn, phone) FROM patients",
    "SELECT format('%s %s', first_name, last_name) FROM patients",
    "SELECT first_name || ' ' || last_name AS n FROM patients",
    "SELECT replace(ssn, '-', '-') FROM patients",
    "SELECT substr(ssn, 1, 11), left(phone, 40) FROM patients",
    "SELECT reverse(reverse(email)) FROM patients",
    "SELECT translate(mrn, '0123456789', '0123456789') FROM patients",
    "SELECT regexp_replace(email, 'x', 'x') FROM patients",
    "SELECT split_part(email || '|', '|', 1) FROM patients",
    "SELECT row_to_json(p) FROM patients p",
    "SELECT to_jsonb(p) FROM patients p",
    "SELECT to_jsonb(p) ->> 'ssn' FROM patients p",
    "SELECT json_agg(p) FROM patients p",
    "SELECT jsonb_agg(ssn) FROM patients",
    "SELECT array_agg(mrn) FROM patients",
    "SELECT string_agg(email, ',') FROM patients",
    "SELECT json_build_object('s', ssn) FROM patients",
    "SELECT jsonb_build_object('n', first_name, 'p', phone) FROM patients",
    "SELECT ARRAY[ssn, mrn] FROM patients",
    "SELECT ROW(ssn, mrn)::text FROM patients",
    "SELECT (p).ssn FROM patients p",
    "SELECT (p.*)::text FROM patients p",
    "SELECT (SELECT q.ssn FROM patients q WHERE q.id = p.id) FROM patients p",
    "SELECT x FROM (SELECT ssn AS x FROM patients) s",
    "WITH t AS (SELECT mrn FROM patients) SELECT * FROM t",
    "WITH RECURSIVE r(v) AS (SELECT email FROM patients UNION ALL SELECT v FROM r WHERE false)"
    " SELECT v FROM r",
    "SELECT ssn FROM patients UNION SELECT 'x'",
    "SELECT 'x' UNION ALL SELECT ssn FROM patients",
    "SELECT c FROM (VALUES ('a')) v(c) UNION ALL SELECT phone FROM patients",
    "SELECT ssn FROM patients INTERSECT SELECT ssn FROM patients",
    "SELECT ssn FROM patients EXCEPT SELECT 'nobody'",
    "SELECT CASE WHEN id > 0 THEN ssn ELSE 'n/a' END FROM patients",
    "SELECT coalesce(NULL, mrn), nullif(email, '') FROM patients",
    "SELECT greatest(first_name, last_name) FROM patients",
    "SELECT min(ssn), max(email) FROM patients",
    "SELECT DISTINCT last_name FROM patients ORDER BY 1",
    "SELECT t.ssn FROM patients t JOIN encounters e ON e.patient_id = t.id",
    "SELECT * FROM patients JOIN encounters ON encounters.patient_id = patients.id",
    "SELECT l.v FROM patients p, LATERAL (SELECT p.ssn AS v) l",
    "SELECT ssn::bytea::text FROM patients",
    "SELECT encode(convert_to(ssn, 'UTF8'), 'base64') FROM patients",
    "SELECT unnest(ARRAY[first_name, last_name]) FROM patients",
    "SELECT * FROM patient_contacts",
    "SELECT name, upper(phone) FROM patient_contacts",
    "SELECT body FROM clinical_notes",
    "SELECT body || '' FROM clinical_notes",
    "SELECT p.first_name, n.body FROM patients p JOIN clinical_notes n ON n.patient_id = p.id",
    "SELECT provider, kind FROM encounters",
    "SELECT ssn FROM ONLY patients WHERE id = 1",
    "SELECT xmlelement(name x, ssn)::text FROM patients",
    "SELECT jsonb_path_query(to_jsonb(p), '$.ssn') FROM patients p",
    "SELECT first_name FROM patients; SELECT mrn FROM patients",
    "SELECT quote_literal(ssn), quote_ident(last_name) FROM patients",
]


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def run(gw: RunningGateway, user: str, statement: str, *, binary: bool = False) -> str:
    """Everything the client gets back: rows of every result, or the error text."""
    out: list[str] = []
    try:
        with psycopg.connect(gw.dsn(user)) as conn, conn.cursor(binary=binary) as cur:
            cur.execute(statement)
            while True:
                if cur.description is not None:
                    out.extend(_text(v) for row in cur.fetchall() for v in row)
                if not cur.nextset():
                    break
    except psycopg.Error as exc:
        out.append(str(exc))
        if exc.diag.message_detail:
            out.append(exc.diag.message_detail)
    return "\n".join(out)


@pytest.mark.parametrize("statement", EVASIONS)
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_engineer_sees_no_raw_phi(
    gateway: RunningGateway, seeded: Seeded, statement: str, binary: bool
) -> None:
    output = run(gateway, "alice", statement, binary=binary)
    assert output, "no output at all"
    assert not seeded.leaks(output), f"{statement!r} leaked: {seeded.leaks(output)[:5]}"


def test_the_table_is_large_enough() -> None:
    assert len(EVASIONS) >= 60


def test_clinician_sees_names_but_not_ssns(gateway: RunningGateway, seeded: Seeded) -> None:
    with psycopg.connect(gateway.dsn("bob")) as conn:
        rows = conn.execute("SELECT first_name, last_name, ssn, mrn FROM patients").fetchall()
    assert {r[0] for r in rows} & set(seeded.names)
    assert not {r[2] for r in rows} & set(seeded.ssns)
    assert all(r[2] == "[SSN]" for r in rows)
    assert all(r[3].startswith("MRN-") and r[3] not in seeded.mrns for r in rows)


def test_masked_values_keep_their_types_and_pseudonyms_are_stable(gateway: RunningGateway) -> None:
    query = "SELECT date_of_birth, mrn, zip FROM patients ORDER BY id"
    with psycopg.connect(gateway.dsn("alice")) as conn:
        text_rows = conn.execute(query).fetchall()
        binary_rows = conn.cursor(binary=True).execute(query).fetchall()
        again = conn.execute("SELECT mrn FROM patients ORDER BY id").fetchall()
    assert text_rows == binary_rows  # the same masked values in both wire formats
    assert all(r[0].month == 1 and r[0].day == 1 for r in text_rows)  # a date, to the year
    assert [r[1] for r in text_rows] == [r[0] for r in again]  # pseudonyms join and group
    assert all(len(r[2]) == 3 and r[2].isdigit() for r in text_rows)  # ZIP to three digits


def test_extended_protocol_and_prepared_statements(gateway: RunningGateway, seeded: Seeded) -> None:
    with psycopg.connect(gateway.dsn("alice")) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            for _ in range(3):  # psycopg prepares a statement server-side after a few runs
                cur.execute(
                    "SELECT ssn, first_name, email FROM patients WHERE id < %s", [100],
                    prepare=True,
                )  # fmt: skip
                assert not seeded.leaks(" ".join(_text(v) for r in cur.fetchall() for v in r))


def test_cursors(gateway: RunningGateway, seeded: Seeded) -> None:
    with psycopg.connect(gateway.dsn("alice")) as conn:
        with conn.cursor(name="server_side") as cur:  # DECLARE ... FETCH by psycopg
            cur.execute("SELECT ssn, last_name FROM patients")
            named = " ".join(_text(v) for r in cur.fetchall() for v in r)
        with conn.transaction():
            conn.execute("DECLARE c CURSOR FOR SELECT mrn, phone FROM patients")
            fetched = conn.execute("FETCH ALL FROM c").fetchall()
        conn.execute("PREPARE q AS SELECT email, first_name FROM patients")
        executed = conn.execute("EXECUTE q").fetchall()
    for text in (named, " ".join(_text(v) for r in (*fetched, *executed) for v in r)):
        assert text and not seeded.leaks(text)


@pytest.mark.parametrize(
    "statement",
    [
        "COPY patients TO STDOUT",
        "COPY (SELECT ssn, first_name, body FROM patients JOIN clinical_notes n"
        " ON n.patient_id = patients.id) TO STDOUT",
        "COPY patients (ssn, mrn, email) TO STDOUT (FORMAT binary)",
    ],
)
def test_copy_is_masked(gateway: RunningGateway, seeded: Seeded, statement: str) -> None:
    with (
        psycopg.connect(gateway.dsn("alice")) as conn,
        conn.cursor() as cur,
        cur.copy(statement) as copy,
    ):
        data = b"".join(bytes(chunk) for chunk in copy)
    assert data
    assert not seeded.leaks(data.decode("utf-8", "replace"))
    if "binary" not in statement:
        lines = data.decode().splitlines()
        assert len(lines) >= PATIENTS and all("\t" in line for line in lines)


@pytest.mark.parametrize(
    "statement",
    [
        "COPY patients TO STDOUT (FORMAT csv)",
        "COPY patients TO STDOUT WITH CSV HEADER",
        "COPY (SELECT ssn, first_name, body FROM patients JOIN clinical_notes n"
        " ON n.patient_id = patients.id) TO STDOUT (FORMAT csv, FORCE_QUOTE *)",
        "COPY (SELECT mrn, email, upper(body) FROM patients JOIN clinical_notes n"
        " ON n.patient_id = patients.id) TO STDOUT"
        " (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'none', HEADER)",
    ],
)
def test_copy_in_csv_is_masked(gateway: RunningGateway, seeded: Seeded, statement: str) -> None:
    with (
        psycopg.connect(gateway.dsn("alice")) as conn,
        conn.cursor() as cur,
        cur.copy(statement) as copy,
    ):
        data = b"".join(bytes(chunk) for chunk in copy).decode()
    assert data and not seeded.leaks(data)
    if "';'" in statement:
        rows = list(csv.reader(io.StringIO(data), delimiter=";", quotechar="'", escapechar="\\"))
    else:
        rows = list(csv.reader(io.StringIO(data)))
    assert len(rows) >= PATIENTS and len({len(r) for r in rows}) == 1  # still valid CSV


def test_copy_in_csv_with_an_encoding_is_refused(gateway: RunningGateway) -> None:
    with (
        psycopg.connect(gateway.dsn("alice")) as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="COPY of PHI"),
        cur.copy("COPY patients TO STDOUT (FORMAT csv, ENCODING 'LATIN1')") as copy,
    ):
        for _ in copy:
            pass


def test_errors_that_echo_values_are_masked(gateway: RunningGateway, seeded: Seeded) -> None:
    with psycopg.connect(gateway.dsn("alice")) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation) as cast:
            conn.execute("SELECT ssn, state::int FROM patients")
        conn.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation) as unique:
            conn.execute(
                "INSERT INTO patients (mrn, first_name, last_name, ssn, date_of_birth, street,"
                " city, state, zip, phone, email, insurance_member_id)"
                " SELECT mrn, first_name, last_name, ssn, date_of_birth, street, city, 'st', zip,"
                " phone, email, insurance_member_id FROM patients LIMIT 1"
            )
        conn.rollback()
    for exc in (cast.value, unique.value):
        text = f"{exc} {exc.diag.message_detail or ''} {exc.diag.context or ''}"
        assert not seeded.leaks(text), text
    assert "[MASKED]" in (unique.value.diag.message_detail or "")


def test_returning_is_masked(gateway: RunningGateway, seeded: Seeded) -> None:
    with psycopg.connect(gateway.dsn("alice")) as conn:
        rows = conn.execute("UPDATE patients SET city = city RETURNING ssn, email").fetchall()
        conn.rollback()
    assert rows and not seeded.leaks(" ".join(_text(v) for r in rows for v in r))


def test_unparsable_statement_is_refused(gateway: RunningGateway) -> None:
    with (
        psycopg.connect(gateway.dsn("alice")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"cannot be (analysed|parsed)"),
    ):
        conn.execute("SELEC ssn FROM patients")


def test_audit_counts_masked_values(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn("alice", application_name="counted")) as conn:
        conn.execute("SELECT ssn, first_name FROM patients WHERE id <= 5").fetchall()
    event = wait_for_event(gateway, type="statement", statement=(
        "SELECT ssn, first_name FROM patients WHERE id <= 5"
    ))  # fmt: skip
    assert event["masking"]["masked"] == {"NAME": 5, "SSN": 5}
    plan = event["masking"]["plan"][0]
    assert {p["column"] for p in plan} == {0, 1}


def test_a_large_result_is_masked_as_each_row_alone(gateway: RunningGateway) -> None:
    """Thousands of rows come over many reads and are masked a read's worth at a time (rows cut
    between reads among them): each as it is masked alone, and every cell counted."""
    columns = "p.id, p.ssn, p.first_name, p.date_of_birth, p.mrn, p.zip, p.email"
    one = f"SELECT {columns} FROM patients p ORDER BY p.id"
    many = f"SELECT {columns} FROM patients p, generate_series(1, 700) AS g ORDER BY g, p.id"
    with psycopg.connect(gateway.dsn("alice", application_name="large")) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            alone = cur.execute(one).fetchall()
            assert cur.execute(many).fetchall() == alone * 700
    counts = [
        wait_for_event(gateway, type="statement", statement=text)["masking"]["masked"]
        for text in (one, many)
    ]
    assert counts[1] == {label: n * 700 for label, n in counts[0].items()}


def test_the_leak_check_finds_raw_values(
    pg_server: LocalPostgres, database: str, seeded: Seeded
) -> None:
    """The check above is not vacuous: the same statements straight to PostgreSQL leak."""
    with psycopg.connect(pg_server.dsn(database)) as conn:
        rows = conn.execute("SELECT ssn, first_name, body FROM patients p"
                            " JOIN clinical_notes n ON n.patient_id = p.id").fetchall()  # fmt: skip
    text = "\n".join(_text(v) for r in rows for v in r)
    assert len(set(seeded.leaks(text))) > PATIENTS
