"""Looking a row up by the pseudonym a masked role was given, as the engineer (alice) through the
gateway with psycopg: ``mrn = 'MRN-...'`` finds the row (still masked), and everything an
attacker would try with it is refused -- other predicates, guessed or forged values, tokens of
another kind, tokens of values the client chose, quotes, parameters, the token where the server
would show its decoded value back."""

from __future__ import annotations

import json
import time

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


def one(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement).fetchall()


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[int, str]:
    """Patient id -> the MRN pseudonym alice is shown."""
    rows = one(gateway.dsn("alice"), "SELECT id, mrn FROM patients ORDER BY id")
    return {int(str(i)): str(m) for i, m in rows}


def raw_row(pg_server: LocalPostgres, database: str, patient: int) -> tuple[object, ...]:
    with psycopg.connect(pg_server.dsn(database)) as conn:
        found = conn.execute("SELECT mrn, ssn FROM patients WHERE id = %s", (patient,)).fetchone()
    assert found is not None
    return found


def test_a_row_is_found_by_its_pseudonym_and_comes_back_masked(
    gateway: RunningGateway, tokens: dict[int, str], seeded: Seeded, leaks: Leaks
) -> None:
    token = tokens[3]
    assert token.startswith("MRN-") and token not in seeded.mrns
    got = receive(
        gateway.dsn("alice"),
        [f"SELECT id, mrn, ssn, last_name FROM patients WHERE mrn = '{token}'"],
    )
    assert got.sqlstate is None, got.error
    assert got.rows[:2] == ["3", token]  # the same row, its MRN still the pseudonym
    assert got.rows[2] == "[SSN]" and not leaks(got.text())
    both = one(
        gateway.dsn("alice"),
        f"SELECT id FROM patients WHERE mrn IN ('{tokens[4]}', '{tokens[7]}') ORDER BY id",
    )
    assert both == [(4,), (7,)]
    swapped = one(gateway.dsn("alice"), f"SELECT id FROM patients WHERE '{token}' = mrn::text")
    assert swapped == [(3,)]


def test_a_pseudonym_finds_rows_of_other_tables(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    with psycopg.connect(pg_server.dsn(database)) as conn:
        expected = conn.execute("SELECT count(*) FROM encounters WHERE patient_id = 5").fetchone()
    found = one(
        gateway.dsn("alice"),
        "SELECT count(*) FROM encounters e JOIN patients p ON p.id = e.patient_id"
        f" WHERE p.mrn = '{tokens[5]}'",
    )
    assert found == [expected]
    updated = receive(
        gateway.dsn("alice"), [f"UPDATE patients SET state = state WHERE mrn = '{tokens[5]}'"]
    )
    assert updated.sqlstate is None, updated.error


def test_the_audit_records_the_pseudonym_and_that_it_was_decoded(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    statement = f"SELECT id FROM patients WHERE mrn = '{tokens[6]}' AND id > 0"
    assert one(gateway.dsn("alice"), statement) == [(6,)]
    events = [e for e in gateway.events() if e.get("statement") == statement]
    assert events, "no audit event for the look-up"
    decoded = events[-1]["masking"]["decoded"]
    assert decoded == [
        {"columns": ["public.patients.mrn"], "label": "MRN", "pseudonyms": [tokens[6]]}
    ]
    real_mrn = str(raw_row(pg_server, database, 6)[0])
    assert real_mrn not in json.dumps(events)  # what the client sent, never the value


def test_the_clinician_looks_up_the_engineers_pseudonym(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    """Tokens are bound to the entity and the operator, not to a role: bob masks MRNs with the
    same operator, so he is shown the same tokens and may look them up too."""
    assert one(gateway.dsn("bob"), f"SELECT id FROM patients WHERE mrn = '{tokens[2]}'") == [(2,)]


def test_a_pseudonym_is_never_decoded_against_a_column_the_role_sees(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    """Compared with an unmasked column, a token is just text: the server gets it as sent."""
    assert one(gateway.dsn("alice"), f"SELECT id FROM encounters WHERE kind = '{tokens[2]}'") == []


@pytest.mark.parametrize(
    "condition",
    [
        "mrn LIKE '{token}%'",
        "mrn > '{token}'",
        "mrn BETWEEN '{token}' AND '{token}'",
        "mrn ~ '{token}'",
        "mrn <> '{token}'",
        "mrn NOT IN ('{token}')",
        "mrn = ANY(ARRAY['{token}'])",
        "lower(mrn) = lower('{token}')",
        "mrn = '{token}' || ''",
        "mrn IN ('{token}', 'MRN00000001')",
    ],
)
def test_other_predicates_with_a_pseudonym_are_refused(
    gateway: RunningGateway, tokens: dict[int, str], condition: str
) -> None:
    statement = "SELECT id FROM patients WHERE " + condition.format(token=tokens[3])
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate == DENIED and "tests the masked column" in got.error[0], got.error


def test_what_is_not_a_pseudonym_of_this_column_is_refused(
    gateway: RunningGateway,
    tokens: dict[int, str],
    pg_server: LocalPostgres,
    database: str,
) -> None:
    real_mrn, real_ssn = raw_row(pg_server, database, 3)
    token = tokens[3]
    member = one(gateway.dsn("alice"), "SELECT insurance_member_id FROM patients WHERE id = 3")
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    notes = one(gateway.dsn("alice"), "SELECT body FROM clinical_notes")
    words = (w.strip(".,():#") for (body,) in notes for w in str(body).split())
    scanned = next(w for w in words if w.startswith("MRN-"))
    for condition in [
        f"mrn = '{real_mrn}'",  # a guessed raw value
        f"ssn = '{real_ssn}'",
        f"mrn = '{flipped}'",  # tampered
        f"mrn = 'MRN-{'A' * 43}'",  # forged
        f"mrn = '{token[4:]}'",  # without its prefix
        f"insurance_member_id = '{token}'",  # an MRN's token for a member id
        f"mrn = '{member[0][0]}'",  # a member id's token for an MRN
        f"mrn = '{scanned}'",  # what the content scan of a note gives: a one-way hash
        f"ssn = '{token}'",  # a column the role is given no pseudonyms of
    ]:
        got = receive(gateway.dsn("alice"), [f"SELECT id FROM patients WHERE {condition}"])
        assert got.sqlstate == DENIED and "not a pseudonym" in got.error[0], (condition, got.error)


def test_values_the_client_chose_get_no_pseudonym_it_could_decode(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    """The oracle: were the gateway to seal a value of the client's choosing, decoding it in a
    look-up would answer ``mrn = <that value>``. A UNION branch, a VALUES row, a merged join
    column or an unlabelled table beside the MRNs are masked with the one-way hash instead."""
    guess = str(raw_row(pg_server, database, 3)[0])
    for chooser in [
        f"SELECT mrn FROM patients WHERE id = 1 UNION ALL SELECT '{guess}'",
        f"SELECT mrn FROM patients WHERE id = 1 UNION ALL VALUES ('{guess}')",
        f"SELECT mrn FROM patients FULL JOIN (VALUES ('{guess}')) v(mrn) USING (mrn)",
        "SELECT mrn FROM patients WHERE id = 1 UNION ALL SELECT kind FROM encounters",
    ]:
        values = [str(v) for (v,) in one(gateway.dsn("alice"), chooser)]
        assert values and guess not in values
        for value in values:
            got = receive(gateway.dsn("alice"), [f"SELECT id FROM patients WHERE mrn = '{value}'"])
            assert got.sqlstate == DENIED, (chooser, value)


def test_a_value_of_the_roles_choosing_never_gets_a_pseudonym(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    """Writing it and reading it back (RETURNING) would make a pseudonym of a chosen value, a
    dictionary entry: a masked role cannot write its own value into a masked column at all."""
    got = receive(
        gateway.dsn("alice"), ["UPDATE patients SET mrn = 'MRN-CHOSEN' WHERE id = 1 RETURNING mrn"]
    )
    assert got.sqlstate == DENIED, got
    assert "MRN-CHOSEN" not in "".join(map(str, got.rows))


@pytest.mark.parametrize(
    "statement",
    [
        # quotes: a pseudonym never holds one, so this is no pseudonym at all
        "SELECT id FROM patients WHERE mrn = '{token}'' OR ''1''=''1'",
        "SELECT id FROM patients WHERE mrn = '{token}' OR mrn = 'x'' OR true --'",
        # the token where its decoded value would come back: the select list, a name, a comment
        "SELECT '{token}' AS t, id FROM patients WHERE mrn = '{token}'",
        "SELECT $$ '{token}' $$, id FROM patients WHERE mrn = E'{token}'",
        "SELECT id FROM patients WHERE mrn = E'{token}' -- '{token}'",
        "SELECT id FROM patients WHERE mrn = '{token}'; COMMENT ON TABLE patients IS '{token}'",
        # another spelling of the literal
        "SELECT id FROM patients WHERE mrn = E'{token}'",
        "SELECT id FROM patients WHERE mrn = U&'{token}'",
        # statements whose text the server shows back
        "EXPLAIN SELECT id FROM patients WHERE mrn = '{token}'",
        "PREPARE q AS SELECT id FROM patients WHERE mrn = '{token}'",
    ],
)
def test_a_pseudonym_cannot_smuggle_anything(
    gateway: RunningGateway,
    tokens: dict[int, str],
    leaks: Leaks,
    pg_server: LocalPostgres,
    database: str,
    statement: str,
) -> None:
    got = receive(gateway.dsn("alice"), [statement.format(token=tokens[3])])
    assert got.sqlstate == DENIED, got
    real_mrn = str(raw_row(pg_server, database, 3)[0])
    assert real_mrn not in got.text() and not leaks(got.text())


def test_only_the_literal_of_the_look_up_is_decoded(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    """A name spelled like the token is a name, not a literal: it stays as the client wrote it."""
    got = receive(
        gateway.dsn("alice"),
        [f"SELECT id AS \"{tokens[3]}\" FROM patients WHERE mrn = '{tokens[3]}'"],
    )
    assert got.sqlstate is None and got.rows == ["3"] and got.names == [tokens[3]], got
    assert str(raw_row(pg_server, database, 3)[0]) not in got.text()


@pytest.mark.parametrize("cast", ["int", "date"])
def test_a_cast_that_could_fail_on_the_decoded_value_is_refused(
    gateway: RunningGateway,
    tokens: dict[int, str],
    pg_server: LocalPostgres,
    database: str,
    cast: str,
) -> None:
    """The server would read the decoded literal as the cast's type, and an error doing so
    would quote it (or its occurrence would tell something): a cast of a masked column that can
    fail is refused before anything runs."""
    got = receive(
        gateway.dsn("alice"), [f"SELECT id FROM patients WHERE mrn::{cast} = '{tokens[3]}'"]
    )
    assert got.sqlstate == DENIED, got
    assert str(raw_row(pg_server, database, 3)[0]) not in got.text()


def test_the_statement_text_is_not_shown_back(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    """current_query() returns the text the server runs, which holds the decoded value: nothing
    is decoded beside it (tested in a condition or stored, it told the value: a red-team
    finding, tests/masking/test_red_team_lookups.py)."""
    got = receive(
        gateway.dsn("alice"),
        [f"SELECT current_query(), id FROM patients WHERE mrn = '{tokens[3]}'"],
    )
    assert got.sqlstate == DENIED and "not decoded" in got.error[0], got.error
    assert str(raw_row(pg_server, database, 3)[0]) not in got.text()


def test_a_parameter_bound_to_a_pseudonym_is_refused_with_a_reason(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="as a literal"):
            conn.execute("SELECT id FROM patients WHERE mrn = %s", (tokens[3],))
        # psycopg's client-side binding sends the literal in a simple Query: allowed
        with psycopg.ClientCursor(conn) as cur:
            cur.execute("SELECT id FROM patients WHERE mrn = %s", (tokens[3],))
            assert cur.fetchall() == [(3,)]


def test_a_prepared_look_up_is_refused_with_a_reason(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    with (
        psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="simple Query"),
    ):
        conn.cursor(binary=True).execute(f"SELECT id FROM patients WHERE mrn = '{tokens[3]}'")


def test_no_pseudonym_is_decoded_beside_a_schema_change(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    """A rename (``mrn`` to another name, a column the role fills named ``mrn``) would make the
    decoded value meet another column than the one judged: after DDL, the session that ran it
    decodes nothing, and other sessions only once the catalog was read again."""
    look_up = f"SELECT id FROM patients WHERE mrn = '{tokens[3]}'"
    beside = receive(
        gateway.dsn("alice"), [f"CREATE TABLE IF NOT EXISTS lookup_a (x int); {look_up}"]
    )
    assert beside.sqlstate == DENIED and "schema" in beside.error[0], beside.error
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS lookup_b (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="reconnect"):
            conn.execute(look_up)
    for _ in range(100):  # the catalog is read again about a second after the change
        got = receive(gateway.dsn("alice"), [look_up])
        if got.sqlstate is None:
            break
        assert "schema" in got.error[0], got.error
        time.sleep(0.1)
    assert got.sqlstate is None and got.rows == ["3"], got
