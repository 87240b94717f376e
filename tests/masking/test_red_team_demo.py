"""Red-team run against the demo as alice (the engineer), 2026-12-07 evening: each attempt as a
test. A leak that works now is ``xfail(strict=True)``: the test asserts it does not happen."""

from __future__ import annotations

import psycopg
import pytest

from tests.gateway_harness import RunningGateway
from tests.masking.channels import receive
from tests.masking.test_masking_gateway import database, gateway, seeded
from wardgate.demo.postgres import LocalPostgres

__all__ = ["database", "gateway", "seeded"]

DENIED = "42501"


def first_ssn_digit(pg: LocalPostgres, database: str) -> str:
    with psycopg.connect(pg.dsn(database)) as direct:
        found = direct.execute("SELECT substr(ssn, 1, 1) FROM patients WHERE id = 1").fetchone()
    assert found is not None
    return str(found[0])


@pytest.mark.xfail(
    strict=True,
    reason="replace() is on the TOTAL list, but its output size depends on the masked 'from'"
    " argument: replace(repeat(d, 1e5), substr(ssn,1,1), repeat('x', 2e4)) needs 2 GB iff the"
    " SSN starts with d and fails with 54000 (program limit exceeded) - a one-bit-per-query"
    " error oracle that reads the SSN digit by digit",
)
def test_replace_size_blowup_is_not_an_error_oracle(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    failing = []
    for d in "0123456789":
        got = receive(
            gateway.dsn("alice"),
            [
                f"SELECT length(replace(repeat('{d}', 100000), substr(ssn, 1, 1),"
                " repeat('x', 20000))) FROM patients WHERE id = 1"
            ],
        )
        if got.sqlstate not in (None, DENIED):
            failing.append(d)
    # refused for every digit, or succeeds for every digit: no digit stands out
    assert failing != [first_ssn_digit(pg_server, database)], failing


def pseudonym(gateway: RunningGateway) -> str:
    got = receive(gateway.dsn("alice"), ["SELECT mrn FROM patients WHERE id = 1"])
    assert got.sqlstate is None and got.rows, got
    return got.rows[0].strip()


@pytest.mark.parametrize(
    "template",
    [
        "SELECT id FROM patients WHERE mrn = '{m}'; SELECT '{m}' AS x",
        "SELECT '{m}' AS x, id FROM patients WHERE mrn = '{m}'",
        "SELECT id, $q${m}$q$ AS x FROM patients WHERE mrn = '{m}'",
        "SELECT id, (SELECT p2.mrn = '{m}' FROM patients p2 WHERE p2.id = 2)"
        " FROM patients WHERE mrn = '{m}'",
        "SELECT id FROM patients WHERE mrn = '{m}' OR id = 1 AND '{m}' LIKE 'M%'",
        "SELECT id FROM patients WHERE lower(mrn) = '{m}'",
    ],
)
def test_a_pseudonym_outside_a_look_up_is_refused(gateway: RunningGateway, template: str) -> None:
    """A decoded pseudonym used anywhere but ``column = literal`` would hand back the real MRN
    (or compare against it); all refused."""
    m = pseudonym(gateway)
    got = receive(gateway.dsn("alice"), [template.format(m=m)])
    assert got.sqlstate is not None, got.rows


@pytest.mark.parametrize(
    "template",
    [
        "SELECT id FROM patients WHERE mrn = '{m}' -- {m}",
        "SELECT id FROM patients WHERE mrn = '{m}' /* '{m}' */",
    ],
)
def test_a_pseudonym_in_a_comment_is_harmless(gateway: RunningGateway, template: str) -> None:
    """The look-up works; the copy in a comment is not decoded into anything returned."""
    m = pseudonym(gateway)
    got = receive(gateway.dsn("alice"), [template.format(m=m)])
    assert got.sqlstate is None and [r.strip() for r in got.rows] == ["1"], got


@pytest.mark.xfail(
    strict=True,
    reason="string_to_array (TOTAL) splits a constant on a masked delimiter: the element count"
    " depends on the value, and array_to_string with a long constant separator then exceeds"
    " the 1 GB limit (54000) iff the SSN digit is the guess",
)
def test_string_to_array_count_blowup_is_not_an_error_oracle(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    failing = []
    for d in "0123456789":
        got = receive(
            gateway.dsn("alice"),
            [
                f"SELECT length(array_to_string(string_to_array(repeat('{d}', 100000),"
                " substr(ssn, 1, 1)), repeat('x', 20000))) FROM patients WHERE id = 1"
            ],
        )
        if got.sqlstate not in (None, DENIED):
            failing.append(d)
    assert failing != [first_ssn_digit(pg_server, database)], failing


@pytest.mark.xfail(
    strict=True,
    reason="the same replace() blow-up confirms a guessed birthday (MM-DD via to_char, which"
    " is TOTAL): 366 queries give the exact date of birth that the mask generalises",
)
def test_a_birthday_cannot_be_confirmed_by_a_blowup(
    gateway: RunningGateway, pg_server: LocalPostgres, database: str
) -> None:
    with psycopg.connect(pg_server.dsn(database)) as direct:
        found = direct.execute(
            "SELECT to_char(date_of_birth, 'MM-DD') FROM patients WHERE id = 1"
        ).fetchone()
    assert found is not None
    right = str(found[0])
    wrong = "02-30"  # no one's birthday

    def fails(guess: str) -> bool:
        got = receive(
            gateway.dsn("alice"),
            [
                f"SELECT length(replace(repeat('{guess}', 100000), to_char(date_of_birth,"
                " 'MM-DD'), repeat('x', 20000))) FROM patients WHERE id = 1"
            ],
        )
        return got.sqlstate not in (None, DENIED)

    assert fails(right) == fails(wrong)


def test_extract_of_a_masked_date_is_masked(gateway: RunningGateway) -> None:
    got = receive(
        gateway.dsn("alice"),
        ["SELECT id FROM patients WHERE id = 1 AND extract(doy FROM date_of_birth) > 1"],
    )
    assert got.sqlstate == DENIED, got
