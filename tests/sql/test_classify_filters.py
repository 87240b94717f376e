"""Classification for policy: key filters, LIMITs, COPY, PHI touched, smuggled statements."""

from __future__ import annotations

import pytest

from wardgate.masking.views import Labels
from wardgate.policy.phi import touched_phi
from wardgate.sql import StatementKind, classify

FILTERS = [
    # (statement, filtered, limit, unfiltered)
    ("SELECT * FROM patients", False, None, True),
    ("SELECT * FROM patients WHERE id = 1", True, None, False),
    ("SELECT * FROM patients WHERE 1 = id", True, None, False),
    ("SELECT * FROM patients p WHERE p.mrn = $1", True, None, False),
    ("SELECT * FROM patients WHERE ssn = '123-45-6789'::text", True, None, False),
    ("SELECT * FROM encounters WHERE patient_id IN (1, 2, 3)", True, None, False),
    ("SELECT * FROM patients WHERE id = 1 AND last_name LIKE 'A%'", True, None, False),
    ("SELECT * FROM patients WHERE id = 1 OR true", False, None, True),
    ("SELECT * FROM patients WHERE id = id", False, None, True),
    ("SELECT * FROM patients WHERE id > 1", False, None, True),
    ("SELECT * FROM patients WHERE last_name = 'Smith'", False, None, True),
    ("SELECT * FROM patients LIMIT 10", False, 10, False),
    ("SELECT * FROM patients FETCH FIRST 5 ROWS ONLY", False, 5, False),
    ("SELECT * FROM patients LIMIT $1", False, -1, False),
    ("SELECT * FROM patients LIMIT ALL", False, None, True),
    ("SELECT id FROM patients WHERE id = 1 UNION SELECT id FROM patients", False, None, True),
    ("SELECT id FROM patients WHERE id = 1 UNION SELECT id FROM patients WHERE id = 2",
     True, None, False),
    ("COPY patients TO STDOUT", False, None, True),
    ("COPY (SELECT * FROM patients WHERE id = 4) TO STDOUT", True, None, False),
    ("FETCH ALL FROM c", False, None, True),
    ("FETCH 10 FROM c", False, 10, False),
    ("SELECT now()", False, None, False),
    ("EXPLAIN SELECT * FROM patients", True, None, False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "filtered", "limit", "unfiltered"), FILTERS,
                         ids=[f[0] for f in FILTERS])  # fmt: skip
def test_filters(text: str, filtered: bool, limit: int | None, unfiltered: bool) -> None:
    (statement,) = classify(text).statements
    assert (statement.filtered, statement.limit, statement.unfiltered) == (
        filtered, limit, unfiltered,
    )  # fmt: skip


def test_copy() -> None:
    assert classify("COPY t TO STDOUT").copy
    assert classify("SELECT 1; COPY t FROM STDIN").copy
    assert not classify("SELECT * FROM t").copy


@pytest.mark.parametrize(
    ("text", "smuggled"),
    [
        (
            "SELECT 1; COMMIT; CREATE TABLE x (a int)",
            [StatementKind.TRANSACTION, StatementKind.DDL],
        ),
        ("COMMIT; CREATE TABLE x (a int)", [StatementKind.DDL]),
        ("SELECT 1; GRANT ALL ON t TO PUBLIC", [StatementKind.DCL]),
        ("BEGIN; SELECT 1", []),
        ("SELECT 1; SELECT 2", []),
        ("COMMIT", []),
    ],
)
def test_smuggled(text: str, smuggled: list[StatementKind]) -> None:
    assert [s.kind for s in classify(text).smuggled] == smuggled


LABELS = Labels.from_config(
    {"patients.ssn": "SSN", "patients.first_name": "NAME", "archive.notes.body": "TEXT"}
)


@pytest.mark.parametrize(
    ("text", "tables", "columns"),
    [
        ("SELECT id FROM patients", {("public", "patients")}, set()),
        ("SELECT ssn FROM patients", {("public", "patients")}, {"patients.ssn"}),
        ("SELECT * FROM patients", {("public", "patients")},
         {"patients.ssn", "patients.first_name"}),
        ("SELECT row_to_json(p) FROM patients p", {("public", "patients")},
         {"patients.ssn", "patients.first_name"}),
        ("SELECT count(*) FROM encounters", set(), set()),
        ("SELECT body FROM archive.notes", {("archive", "notes")}, {"notes.body"}),
        ("SELECT body FROM other.notes", set(), set()),
        ("SELECT body FROM notes", {("archive", "notes")}, {"notes.body"}),
    ],
)  # fmt: skip
def test_phi(text: str, tables: set[tuple[str, str]], columns: set[str]) -> None:
    found_tables, found_columns = touched_phi(classify(text).statements, LABELS)
    assert (set(found_tables), set(found_columns)) == (tables, columns)
