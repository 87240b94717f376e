"""A red-team run against look-ups by pseudonym (``mrn = 'MRN-...'`` decoded by the gateway), as
alice (the engineer) with psycopg through the gateway: what leaked, each a test that the gateway
now stops, and the attacks it already refused, kept as guards. (The run: a helper with only
alice's password against the demo, 2026-12-07.)"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.gateway_harness import RunningGateway
from tests.masking.channels import Leaks, receive
from tests.masking.test_masking_gateway import Seeded, database, gateway, seeded
from wardgate.demo.postgres import LocalPostgres

__all__ = ["database", "gateway", "seeded"]  # module fixtures shared with the row tests

DENIED = "42501"


@pytest.fixture(scope="module")
def leaks(seeded: Seeded) -> Leaks:
    return Leaks((*seeded.ssns, *seeded.mrns, *seeded.phones, *seeded.emails), seeded.names)


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[int, str]:
    """Patient id -> the MRN pseudonym alice is shown."""
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        rows = conn.execute("SELECT id, mrn FROM patients ORDER BY id").fetchall()
    return {int(i): str(m) for i, m in rows}


def raw(pg_server: LocalPostgres, database: str, column: str, patient: int) -> str:
    """What the column holds for the patient, read directly (the check that an attack works)."""
    with psycopg.connect(pg_server.dsn(database)) as conn:
        query = sql.SQL("SELECT {} FROM patients WHERE id = %s").format(sql.Identifier(column))
        found = conn.execute(query, (patient,)).fetchone()
    assert found is not None
    return str(found[0])


@contextlib.contextmanager
def written(pg_server: LocalPostgres, database: str, **values: str) -> Iterator[None]:
    """Patient 1's columns set to ``values`` straight on the server, put back after. A role
    that sees the columns masked may not write values of its own there through the gateway
    (the probe-row rule); these tests show that the rules on conditions hold on their own, for
    values someone who may write them (another role, an application) put there."""
    names = sql.SQL(", ").join(map(sql.Identifier, values))
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as conn:
        old = conn.execute(sql.SQL("SELECT {} FROM patients WHERE id = 1").format(names)).fetchone()
        assert old is not None
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in values)
        update = sql.SQL("UPDATE patients SET {} WHERE id = 1").format(sets)
        conn.execute(update, list(values.values()))
        try:
            yield
        finally:
            conn.execute(update, list(old))


# ---- leaks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        # current_query() returns the text the server runs: the decoded literal is in it
        "SELECT count(*) FROM patients WHERE mrn = '{token}'"
        " AND strpos(current_query(), 'E''{digit}') > 0",
        # ... from another statement of the same string
        "SELECT id FROM patients WHERE mrn = '{token}';"
        " SELECT count(*) FROM encounters WHERE strpos(current_query(), 'E''{digit}') > 0",
        # ... or through this backend's row of pg_stat_activity
        "SELECT count(*) FROM patients WHERE mrn = '{token}' AND EXISTS (SELECT 1 FROM"
        " pg_stat_activity WHERE pid = pg_backend_pid() AND query LIKE '%E''{digit}%')",
    ],
)
def test_the_decoded_text_cannot_be_tested_in_a_condition(
    gateway: RunningGateway,
    tokens: dict[int, str],
    pg_server: LocalPostgres,
    database: str,
    statement: str,
) -> None:
    """The first finding (critical): current_query() is masked in the select list, but in a
    condition it answered whether the decoded MRN starts with a digit, then the next, and so
    on: the MRN in about 80 statements, with no write. Nothing is decoded in a string that reads
    what the analysis cannot follow."""
    digit = raw(pg_server, database, "mrn", 3)[0]
    got = receive(gateway.dsn("alice"), [statement.format(token=tokens[3], digit=digit)])
    assert got.sqlstate == DENIED, got


def test_nothing_is_decoded_beside_a_value_of_unknown_lineage(
    gateway: RunningGateway, tokens: dict[int, str]
) -> None:
    """A second guard for the first finding: a string that reads what the analysis cannot
    follow (current_query(), pg_stat_activity, a function outside pg_catalog) has no pseudonym
    decoded, even where that value only comes back masked."""
    shown = f"SELECT current_query(), id FROM patients WHERE mrn = '{tokens[3]}'"
    got = receive(gateway.dsn("alice"), [shown])
    assert got.sqlstate == DENIED and "not decoded" in got.error[0], got


def test_another_session_cannot_test_the_decoded_text_in_pg_stat_activity(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    """The second finding (critical): one session sleeps in a look-up, another counts the rows
    of pg_stat_activity whose query holds a guessed prefix of the decoded value (and, before
    look-ups, the clinician's statements with raw names). A condition, grouping or count that
    tests a value of unknown lineage is refused for a role that sees PHI masked."""
    mrn = raw(pg_server, database, "mrn", 3)
    sleeper = threading.Thread(
        target=receive,
        args=(
            gateway.dsn("alice"),
            [f"SELECT pg_sleep(3), id FROM patients WHERE mrn = '{tokens[3]}'"],
        ),
    )
    sleeper.start()
    try:
        time.sleep(1)
        got = receive(
            gateway.dsn("alice"),
            [f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%E''{mrn[:4]}%'"],
        )
    finally:
        sleeper.join()
    assert got.sqlstate == DENIED or got.rows == ["0"], got


@pytest.mark.parametrize(
    "statement",
    [
        # the text this statement runs, its digits spelled as letters past the content scan
        "UPDATE encounters SET provider = translate(current_query(), '0123456789', 'abcdefghij')"
        " WHERE id = 1 AND EXISTS (SELECT 1 FROM patients WHERE mrn = '{token}')",
        # the text another session runs
        "UPDATE encounters SET provider = (SELECT translate(string_agg(query, '|'),"
        " '0123456789', 'abcdefghij') FROM pg_stat_activity WHERE query LIKE '%pg_sleep%')"
        " WHERE id = 1",
        "INSERT INTO encounters (patient_id, encounter_date, kind, provider)"
        " SELECT 1, now(), 'x', reverse(query) FROM pg_stat_activity",
    ],
)
def test_the_decoded_text_cannot_be_stored_and_read_back(
    gateway: RunningGateway,
    tokens: dict[int, str],
    pg_server: LocalPostgres,
    database: str,
    statement: str,
) -> None:
    """The fifth finding (critical): current_query() or pg_stat_activity.query, stored in a
    column the role reads unmasked, came back with the decoded MRN in it (the content scan
    catches the MRN as it is, not translated to letters). A value of unknown lineage is not
    stored by a role that sees PHI masked."""
    mrn = raw(pg_server, database, "mrn", 3)
    spelled = mrn.translate(str.maketrans("0123456789", "abcdefghij"))
    sleeper = threading.Thread(
        target=receive,
        args=(
            gateway.dsn("alice"),
            [f"SELECT pg_sleep(2), id FROM patients WHERE mrn = '{tokens[3]}'"],
        ),
    )
    sleeper.start()
    try:
        time.sleep(0.7)
        with psycopg.connect(gateway.dsn("alice")) as conn:
            try:
                conn.execute(statement.format(token=tokens[3]))
                stored = conn.execute("SELECT provider FROM encounters").fetchall()
            except psycopg.errors.InsufficientPrivilege:
                stored = []
            conn.rollback()
    finally:
        sleeper.join()
    text = " ".join(str(v) for (v,) in stored)
    assert spelled not in text and spelled[::-1] not in text and mrn[::-1] not in text


@pytest.mark.parametrize("cast", ["varchar(1)", "char(1)", '"char"'])
def test_a_cut_value_gets_no_pseudonym_of_its_own(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, cast: str
) -> None:
    """The third finding (high, for a role that may write an MRN, as alice may): a cast that
    cuts the value was exact for the lineage, so ``mrn::varchar(1)`` came out as the token of
    the MRN's first character; a written row's MRN '0' ... '9' gave the ten tokens to compare it
    with, then '00' ... for the second: the MRN in about 80 statements."""
    first = raw(pg_server, database, "mrn", 3)[0]
    with written(pg_server, database, mrn=first), psycopg.connect(gateway.dsn("alice")) as conn:
        (chosen,) = conn.execute("SELECT mrn FROM patients WHERE id = 1").fetchone() or ("",)
        try:  # refused, or masked whole: either way no token of its own
            found = conn.execute(f"SELECT mrn::{cast} FROM patients WHERE id = 3").fetchone()
            cut = found[0] if found else None
        except psycopg.errors.InsufficientPrivilege:
            cut = None
    assert chosen.startswith("MRN-")
    assert cut != chosen


@pytest.mark.parametrize(
    "condition",
    [
        "p.mrn::varchar(3) = {token}",  # a look-up of a cut value by a written value's token
        "p.mrn::char(3) IN ({token})",
        "q.ssn = p.ssn::varchar(3)",  # a join of a cut SSN with a written one
        'q.ssn::"char" = p.ssn::"char"',
        "q.mrn = p.mrn::numeric(20, -4)::text",  # rounded
    ],
)
def test_a_cut_value_is_no_look_up_nor_join(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, condition: str
) -> None:
    """The same finding through the conditions: alice writes the first three characters of
    patient 3's SSN or MRN into patient 1's row (in a transaction she rolls back), and a join or
    look-up of the cut value counted whether they were right."""
    ssn, mrn = raw(pg_server, database, "ssn", 3), raw(pg_server, database, "mrn", 3)
    probe = {"ssn": ssn, "mrn": mrn[:3]}
    if "ssn" in condition:
        probe["ssn"] = ssn[:3] if "varchar" in condition else ssn[:1]
    if "numeric" in condition:
        probe["mrn"] = str(round(int(mrn), -4))
    with written(pg_server, database, **probe), psycopg.connect(gateway.dsn("alice")) as conn:
        (token,) = conn.execute("SELECT mrn FROM patients WHERE id = 1").fetchone() or ("",)
        statement = (
            "SELECT count(*) FROM patients p, patients q WHERE p.id = 3 AND q.id = 1 AND "
            + condition.format(token=sql.quote(token))
        )
        try:
            found = conn.execute(statement).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            found = None
    assert found is None, (statement, found)


def test_an_error_position_tells_nothing_of_the_decoded_value(
    gateway: RunningGateway, tokens: dict[int, str], pg_server: LocalPostgres, database: str
) -> None:
    """The fourth finding (low): an error after the look-up's literal came with the position of
    its cause in the text the server ran, whose literal is the decoded value: the shift from the
    client's text is the value's length, which the token's padding hides."""
    statement = f"SELECT id FROM patients WHERE mrn = '{tokens[3]}' AND id = 'abc'"
    with (
        psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InvalidTextRepresentation) as caught,
    ):
        conn.execute(statement)
    position = caught.value.diag.statement_position
    assert position is None or int(position) == statement.index("'abc'") + 1, position
    assert raw(pg_server, database, "mrn", 3) not in str(caught.value)


# ---- refused or harmless, kept as guards ------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        # a CASE with an operand compares it with each WHEN: not a look-up
        "SELECT CASE mrn WHEN '{token}' THEN 1 END FROM patients",
        # the server would read the rewritten text differently from the gateway
        "SET standard_conforming_strings = off",
        # statements whose text the server keeps or shows back
        "DECLARE c CURSOR FOR SELECT id FROM patients WHERE mrn = '{token}'",
        "EXPLAIN ANALYZE SELECT id FROM patients WHERE mrn = '{token}'",
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM patients WHERE mrn = '{token}'",
        # a look-up through a function of the column, or of a computed value
        "SELECT id FROM patients WHERE nullif(mrn, '7') = '{token}'",
        "SELECT id FROM patients WHERE coalesce(mrn, 'x') = '{token}'",
        "SELECT id FROM patients WHERE greatest(mrn, '5') = '{token}'",
        "SELECT id FROM patients WHERE mrn::text COLLATE \"C\" = '{token}'::text",
        # the token in a string the server would show back
        "SELECT id FROM patients WHERE mrn = '{token}' UNION ALL SELECT length('{token}')",
        "SELECT id FROM patients WHERE mrn = '{token}' AND 'x' = $${token}$$",
        # parameters and prepared statements
        "PREPARE q(text) AS SELECT id FROM patients WHERE mrn = $1",
    ],
)
def test_refused_attacks_stay_refused(
    gateway: RunningGateway,
    tokens: dict[int, str],
    leaks: Leaks,
    pg_server: LocalPostgres,
    database: str,
    statement: str,
) -> None:
    got = receive(gateway.dsn("alice"), [statement.format(token=tokens[3])])
    assert got.sqlstate == DENIED, got
    assert raw(pg_server, database, "mrn", 3) not in got.text() and not leaks(got.text())


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, mrn FROM patients WHERE mrn = '{token}' /* '{token}' */",
        "WITH x AS (SELECT id, mrn FROM patients WHERE mrn = '{token}') SELECT * FROM x",
        "SELECT id, mrn FROM patients WHERE (mrn) = ('{token}') OR mrn = '{token}'",
        "SELECT id, mrn FROM patients WHERE mrn COLLATE \"C\" = '{token}'",
        "SELECT id, (SELECT mrn FROM patients WHERE mrn = '{token}') FROM patients WHERE id = 3",
        "SELECT id, mrn FROM patients WHERE mrn::varchar = '{token}'",
        "COPY (SELECT id, mrn FROM patients WHERE mrn = '{token}') TO STDOUT",
    ],
)
def test_allowed_look_ups_give_back_the_token_only(
    gateway: RunningGateway,
    tokens: dict[int, str],
    leaks: Leaks,
    pg_server: LocalPostgres,
    database: str,
    statement: str,
) -> None:
    """Comments, CTEs, subqueries, collations, lossless casts and COPY: the row is found and its
    MRN comes back as the same token; the raw value is nowhere."""
    got = receive(gateway.dsn("alice"), [statement.format(token=tokens[3])])
    assert got.sqlstate is None, got
    assert tokens[3] in got.text()
    assert raw(pg_server, database, "mrn", 3) not in got.text() and not leaks(got.text())


def test_a_lossless_cast_keeps_its_token(gateway: RunningGateway, tokens: dict[int, str]) -> None:
    """The fix of the third finding leaves the casts that keep the value: ``mrn::text`` and
    ``mrn::varchar`` are the token of the MRN, ``mrn::varchar(3)`` is masked whole."""
    with psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT mrn::text, mrn::varchar, mrn::varchar(3) FROM patients WHERE id = 3"
        ).fetchone()
    assert row is not None
    assert row[0] == row[1] == tokens[3]
    assert row[2] != tokens[3] and not str(row[2]).startswith("MRN-")


def test_an_operator_of_the_role_cannot_stand_for_equality(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    """The sixth finding (high, where the role may create objects in a schema, as it may in
    this test's database though not in the demo's): ``CREATE OPERATOR public.= (...,
    function = text_lt)`` and ``SET search_path = public, pg_catalog`` make every ``=`` of text
    a ``<`` that the analysis still reads as equality: a join of the stored SSN with a written
    one (or a look-up of a decoded MRN with a written one's token) answered ``ssn < '...'``,
    a binary search."""
    ssn = raw(pg_server, database, "ssn", 3)
    found: list[tuple[object, ...]] | None = None
    try:
        with (
            psycopg.connect(gateway.dsn("alice"), autocommit=True) as conn,
            contextlib.suppress(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(
                "CREATE OPERATOR public.= (leftarg = text, rightarg = text, function = text_lt)"
            )
        with psycopg.connect(gateway.dsn("alice")) as conn:
            try:
                conn.execute("SET search_path = public, pg_catalog")
                conn.execute("UPDATE patients SET ssn = %s WHERE id = 1", (ssn + "0",))
                found = conn.execute(
                    "SELECT count(*) FROM patients p, patients q"
                    " WHERE p.id = 3 AND q.id = 1 AND p.ssn = q.ssn"
                ).fetchall()
            except psycopg.errors.InsufficientPrivilege:
                found = None
            conn.rollback()
    finally:
        with psycopg.connect(pg_server.dsn(database), autocommit=True) as direct:
            direct.execute("DROP OPERATOR IF EXISTS public.= (text, text)")
    assert found is None or found == [(0,)], found


@pytest.mark.parametrize(
    "condition",
    [
        "p.ssn < q.ssn",
        "p.ssn >= q.ssn",
        "p.ssn OPERATOR(pg_catalog.>=) q.ssn",
        "p.ssn LIKE q.ssn",
        "p.ssn ~ q.ssn",
        "p.ssn >= ALL (SELECT ssn FROM patients WHERE id = 1)",
        "p.mrn >= q.mrn",
    ],
)
def test_an_order_or_pattern_of_two_masked_columns_is_no_join(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, condition: str
) -> None:
    """The seventh finding (critical, for a role that may write a masked column, as alice may):
    a join was any operator between the stored values of two masked columns, so with patient
    1's SSN set to '5' (then to '4%'...), ``p.ssn >= q.ssn`` and ``p.ssn LIKE q.ssn`` answered
    ``ssn >= '5'`` and ``ssn LIKE '4%'`` of patient 3: a binary search, no pseudonym needed. Only
    ``=`` and ``<>`` (IN, IS [NOT] DISTINCT FROM) join."""
    ssn = raw(pg_server, database, "ssn", 3)
    # a value the true answer is 1 for: below for >=, a prefix pattern for LIKE and ~
    chosen = ssn[:1] + "%" if "LIKE" in condition else ssn[:1] if "~" in condition else "0"
    column = "mrn" if "mrn" in condition else "ssn"
    probe = {column: chosen}
    with written(pg_server, database, **probe), psycopg.connect(gateway.dsn("alice")) as conn:
        try:
            found = conn.execute(
                "SELECT count(*) FROM patients p, patients q WHERE p.id = 3 AND q.id = 1 AND "
                + condition
            ).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            found = None
    assert found is None, found


@pytest.mark.parametrize(
    "condition",
    [
        "p.ssn = q.ssn",
        "p.ssn IS NOT DISTINCT FROM q.ssn",
        "p.ssn <> q.ssn",
        "p.mrn IN (SELECT mrn FROM patients WHERE id = 1)",
    ],
)
def test_an_equality_of_two_masked_columns_stays_a_join(
    gateway: RunningGateway, condition: str
) -> None:
    got = receive(
        gateway.dsn("alice"),
        ["SELECT count(*) FROM patients p, patients q WHERE q.id = 1 AND " + condition],
    )
    assert got.sqlstate is None, got


def test_an_operator_cannot_be_defined_by_a_masked_role(gateway: RunningGateway) -> None:
    for statement in [
        "CREATE OPERATOR public.=== (leftarg = text, rightarg = text, function = text_lt)",
        "CREATE CAST (text AS int4) WITH INOUT",
        "CREATE OPERATOR FAMILY red_team_f USING btree",
    ]:
        got = receive(gateway.dsn("alice"), [statement])
        assert got.sqlstate == DENIED and "operators" in got.error[0], (statement, got)


def test_a_written_date_of_birth_joined_with_another_finds_it_in_a_few_hundred_tries(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    """An eighth finding (high): the date of birth shows its year (date_to_year); with patient
    1's set to each day of that year in turn (in a transaction rolled back), the equality join
    ``p.date_of_birth = q.date_of_birth`` counted 1 on the right day: at most 366 statements.
    Closed by the probe-row rule: a masked role writes no value of its own into a masked
    column."""
    born = raw(pg_server, database, "date_of_birth", 3)
    with psycopg.connect(gateway.dsn("alice")) as conn:
        try:
            conn.execute("UPDATE patients SET date_of_birth = %s WHERE id = 1", (born,))
            found = conn.execute(
                "SELECT count(*) FROM patients p, patients q"
                " WHERE p.id = 3 AND q.id = 1 AND p.date_of_birth = q.date_of_birth"
            ).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            found = None
        conn.rollback()
    assert found is None, found


def test_a_written_ssn_sorted_beside_another_tells_its_order(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    """A ninth finding (critical where the role may write a masked column): with patient 1's
    SSN set to a guess, ``ORDER BY ssn`` of patients 1 and 3 said whether patient 3's SSN sorts
    before it: a binary search of about 30 statements per SSN. Closed by the probe-row rule: the
    guess cannot be written (as a parameter or as a literal)."""
    guess = raw(pg_server, database, "ssn", 3)[:3]
    with psycopg.connect(gateway.dsn("alice")) as conn:
        for statement, params in [
            ("UPDATE patients SET ssn = %s WHERE id = 1", (guess,)),
            (f"UPDATE patients SET ssn = '{guess}' WHERE id = 1", None),
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, params)
            conn.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM pg_stats WHERE histogram_bounds::text LIKE '%{digits}%'",
        "SELECT count(*) FROM pg_stat_get_activity(NULL) a WHERE a.query LIKE '%{digits}%'",
        "SELECT count(*) FROM pg_stat_activity, LATERAL regexp_matches(query, '{digits}') m",
        "SELECT count(*) FROM pg_stat_activity GROUP BY substr(query, 1, 1)",
    ],
)
def test_other_opaque_values_are_not_tested_either(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str, statement: str
) -> None:
    """The same rule for the other values the lineage cannot follow: statistics' copies of
    values (pg_stats lists an MRN column's histogram bounds once the table is analysed) and
    the activity function behind pg_stat_activity, in a condition, a row count or a grouping."""
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as direct:
        direct.execute("ANALYZE patients")
    digits = raw(pg_server, database, "mrn", 3)[:3]
    got = receive(gateway.dsn("alice"), [statement.format(digits=digits)])
    assert got.sqlstate == DENIED and "cannot trace" in got.error[0], got


def test_catalog_introspection_with_builtin_functions_still_passes(
    gateway: RunningGateway,
) -> None:
    """What psql's ``\\d`` sends: conditions on catalog tables, a builtin set-returning function
    in FROM (pg_partition_ancestors), UNION of catalog rows: not values of unknown origin."""
    got = receive(
        gateway.dsn("alice"),
        [
            "SELECT t.tgname, CASE WHEN t.tgparentid != 0 THEN (SELECT u.tgrelid::regclass"
            " FROM pg_catalog.pg_trigger AS u, pg_catalog.pg_partition_ancestors(t.tgrelid)"
            " WITH ORDINALITY AS a(relid, depth) WHERE u.tgname = t.tgname"
            " AND u.tgrelid = a.relid ORDER BY a.depth LIMIT 1) END"
            " FROM pg_catalog.pg_trigger t WHERE t.tgrelid = 'patients'::regclass",
            "SELECT pubname FROM pg_catalog.pg_publication UNION SELECT 'x'",
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~)"
            " '^(patients)$' AND pg_catalog.pg_table_is_visible(c.oid)",
        ],
    )
    assert got.sqlstate is None, got


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1 / strpos(query, 'E''7') FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
        "SELECT (substr(current_query(), 40, 1) || '0')::int FROM patients WHERE id = 1",
        "SELECT chr(ascii(substr(query, 60, 1)) * 100000) FROM pg_stat_activity",
    ],
)
def test_whether_an_unfollowed_value_makes_a_statement_fail_is_no_oracle(
    gateway: RunningGateway, statement: str
) -> None:
    """Whether a statement fails tests the values it fails on: another session's statement text
    (a look-up's decoded MRN, a clinician's query naming a patient) read from pg_stat_activity,
    or the session's own, given to something that fails on some values, is refused like a
    condition on it (found merging the error-oracle rule with the opaque values)."""
    got = receive(gateway.dsn("alice"), [statement])
    assert got.sqlstate == DENIED, got
