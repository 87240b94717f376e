"""Facts of a whole statement beside its result columns, from the one parse: the columns it
refers to, the columns its conditions test against constants (a predicate oracle), calls that
send data to a side channel, and sources that a result only measures (``length``, ``count``)."""

from __future__ import annotations

import pytest

from wardgate.sql.analysis import analyse
from wardgate.sql.catalog import Catalog
from wardgate.sql.model import SourceColumn, StatementLineage


def facts(text: str, catalog: Catalog) -> StatementLineage:
    (found,) = analyse(text).lineage(catalog)
    return found


def cols(found: frozenset[SourceColumn]) -> set[str]:
    return {c.column for c in found}


@pytest.mark.parametrize(
    ("text", "compared"),
    [
        ("SELECT count(*) FROM patients WHERE id = 1 AND ssn LIKE '891-4%'", {"ssn", "id"}),
        ("SELECT 1 FROM patients WHERE substr(ssn, 1, 3) = '891'", {"ssn"}),
        ("SELECT 1 FROM patients WHERE ssn BETWEEN '1' AND '2'", {"ssn"}),
        ("SELECT 1 FROM patients WHERE mrn NOT IN ('a', 'b')", {"mrn"}),
        ("SELECT 1 FROM patients WHERE mrn = ANY('{a,b}')", {"mrn"}),
        ("SELECT 1 FROM patients WHERE mrn <> 'a'", {"mrn"}),
        ("SELECT 1 FROM patients WHERE mrn = 'a' || ''", {"mrn"}),
        ("SELECT 1 FROM patients WHERE lower(mrn) = 'a'", {"mrn"}),
        ("SELECT 1 FROM patients WHERE mrn = 'a'::text", {"mrn"}),
        ("SELECT 1 FROM patients WHERE email ~ '^a' OR NOT phone ILIKE '5%'", {"email", "phone"}),
        ("SELECT 1 FROM patients p WHERE starts_with(p.ssn, '8')", {"ssn"}),
        ("SELECT 1 FROM patients p WHERE p.ssn IN (SELECT '891-44-1234')", {"ssn"}),
        ("SELECT (SELECT count(*) FROM patients q WHERE q.ssn > '5') AS n", {"ssn"}),
        ("WITH t AS (SELECT ssn AS s FROM patients) SELECT 1 FROM t WHERE s LIKE '8%'", {"ssn"}),
        ("SELECT x FROM (SELECT ssn AS x FROM patients) s WHERE x SIMILAR TO '8%'", {"ssn"}),
        ("SELECT count(*) FILTER (WHERE ssn LIKE '8%') FROM patients", {"ssn"}),
        ("SELECT CASE WHEN ssn LIKE '8%' THEN 1 END FROM patients", {"ssn"}),
        ("SELECT CASE ssn WHEN '891-44-1234' THEN 1 END FROM patients", {"ssn"}),
        ("SELECT 1 FROM patients p JOIN encounters e ON p.ssn LIKE '8%'", {"ssn"}),
        ("UPDATE patients SET city = city WHERE ssn LIKE '8%'", {"ssn"}),
        ("DELETE FROM patients WHERE mrn LIKE 'x'", {"mrn"}),
        ("SELECT 1 FROM patients GROUP BY ssn HAVING min(ssn) < '5'", {"ssn"}),
        # joins between columns, NULL tests and measurements stay allowed
        ("SELECT 1 FROM patients p JOIN patients q ON p.ssn = q.ssn", set()),
        ("SELECT 1 FROM patients p, encounters e WHERE e.patient_id = p.id", set()),
        ("SELECT 1 FROM patients WHERE ssn IS NOT NULL", set()),
        ("SELECT 1 FROM patients WHERE length(ssn) = 11", set()),
        ("SELECT ssn FROM patients", set()),
    ],
)
def test_columns_tested_against_constants(
    demo_catalog: Catalog, text: str, compared: set[str]
) -> None:
    assert cols(facts(text, demo_catalog).compared) == compared


@pytest.mark.parametrize(
    ("text", "lookups"),
    [
        ("SELECT 1 FROM patients WHERE mrn = 'a'", [("mrn", ("a",), False)]),
        ("SELECT 1 FROM patients WHERE 'a' = mrn::text", [("mrn", ("a",), False)]),
        ("SELECT 1 FROM patients WHERE mrn IN ('a', 'b')", [("mrn", ("a", "b"), False)]),
        ("SELECT 1 FROM patients WHERE mrn = $1", [("mrn", (), True)]),
        ("SELECT 1 FROM patients WHERE mrn IN ('a', $1)", [("mrn", ("a",), True)]),
        ("DELETE FROM patients WHERE mrn = 'x'", [("mrn", ("x",), False)]),
        ("SELECT CASE WHEN mrn = 'a' THEN 1 END FROM patients", [("mrn", ("a",), False)]),
        (
            "WITH t AS (SELECT mrn AS m FROM patients) SELECT 1 FROM t WHERE m = 'a'",
            [("mrn", ("a",), False)],
        ),
        # not a stored value, or not a plain equality with literals: compared, not looked up
        ("SELECT 1 FROM patients WHERE mrn = 'a' || ''", []),
        ("SELECT 1 FROM patients WHERE lower(mrn) = 'a'", []),
        ("SELECT 1 FROM patients WHERE mrn = 'a'::text", []),
        ("SELECT 1 FROM patients WHERE mrn NOT IN ('a')", []),
        ("SELECT 1 FROM (SELECT mrn FROM patients UNION ALL SELECT 'b') s WHERE mrn = 'a'", []),
        ("SELECT 1 FROM patients p JOIN patients q ON p.mrn = q.mrn", []),
        ("SELECT 1 FROM visit_summary WHERE kind = 'a'", [("kind", ("a",), False)]),
    ],
)
def test_equalities_with_literals_are_lookups(
    demo_catalog: Catalog, text: str, lookups: list[tuple[str, tuple[str, ...], bool]]
) -> None:
    """A stored column (cast or not) equal to string literals or parameters is a look-up, not
    a comparison: a masked role may look rows up by the pseudonyms it was given."""
    found = facts(text, demo_catalog)
    assert [(s.column, lk.values, lk.param) for lk in found.lookups for s in lk.sources] == (
        lookups
    )
    assert not {c for lk in found.lookups for c in cols(lk.sources)} & cols(found.compared)


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("SELECT mrn FROM patients", False),
        ("SELECT mrn::text FROM patients", False),
        ("SELECT mrn FROM patients UNION ALL SELECT mrn FROM patients", False),
        ("WITH t AS (SELECT mrn FROM patients) SELECT mrn FROM t", False),
        ("SELECT mrn FROM visit_summary", False),
        ("SELECT mrn FROM patients UNION ALL SELECT 'x'", True),
        ("SELECT mrn FROM patients UNION ALL SELECT $1", True),
        ("SELECT mrn FROM patients UNION ALL VALUES ('x')", True),
        ("SELECT mrn FROM patients FULL JOIN (VALUES ('x')) v(mrn) USING (mrn)", True),
        ("SELECT x FROM (SELECT mrn AS x FROM patients UNION ALL SELECT 'x') s", True),
        ("UPDATE patients SET mrn = 'x' WHERE id = 1 RETURNING mrn", True),
        ("INSERT INTO patients (mrn) VALUES ('x') RETURNING mrn", True),
    ],
)
def test_an_exact_value_the_statement_may_have_chosen(
    demo_catalog: Catalog, text: str, chosen: bool
) -> None:
    """``chosen``: a stored value that may be a constant of the statement instead (the
    masking gives no decodable pseudonym for it)."""
    (column,) = facts(text, demo_catalog).columns
    assert column.exact and column.chosen is chosen


def test_reads_every_column_referred_to(demo_catalog: Catalog) -> None:
    found = facts("SELECT 1 FROM patients p WHERE (p.mrn || 'x')::int > 0", demo_catalog)
    assert cols(found.reads) == {"mrn"}
    assert cols(facts("SELECT (p::text)::int FROM patients p", demo_catalog).reads) >= {"ssn"}
    assert cols(facts("SELECT * FROM patients", demo_catalog).reads) >= {"ssn", "mrn"}
    assert not facts("SELECT 1", demo_catalog).reads


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("SELECT set_config('application_name', ssn, false) FROM patients", ("set_config",)),
        ("SELECT pg_notify('c', ssn) FROM patients", ("pg_notify",)),
        ("SELECT set_config('application_name', (SELECT mrn FROM patients LIMIT 1), false)",
         ("set_config",)),
        ("SELECT x FROM patients p, LATERAL set_config('application_name', p.ssn, false) x",
         ("set_config",)),
        ("SELECT setval('patients_id_seq', ascii(ssn)) FROM patients", ("setval",)),
        ("SELECT pg_sleep(ascii(ssn) / 100.0) FROM patients", ("pg_sleep",)),
        ("SELECT pg_advisory_lock(ascii(mrn)) FROM patients", ("pg_advisory_lock",)),
        ("SELECT pg_advisory_lock(42), pg_sleep(0.1)", ()),
        ("SELECT set_config('application_name', 'fixed', false)", ()),
        ("SELECT pg_notify('c', 'done')", ()),
    ],
)  # fmt: skip
def test_side_channel_calls_with_data(
    demo_catalog: Catalog, text: str, calls: tuple[str, ...]
) -> None:
    assert facts(text, demo_catalog).side_channels == calls


def test_lengths_and_counts_only_measure(demo_catalog: Catalog) -> None:
    found = facts(
        "SELECT length(body), count(body), upper(body), length(body) + 1, body"
        " FROM clinical_notes GROUP BY body",
        demo_catalog,
    )
    measured = [bool(c.measured) and c.measured == c.sources for c in found.columns]
    assert measured == [True, True, False, True, False]
    assert found.columns[4].exact and not found.columns[2].exact


@pytest.mark.parametrize(
    ("text", "compared"),
    [
        ("SELECT count(*), min(id) FROM patients GROUP BY ssn LIKE '8%'", {"ssn"}),
        ("SELECT min(id) FROM patients GROUP BY substr(ssn, 1, 3) ORDER BY 1", {"ssn"}),
        ("SELECT id FROM patients ORDER BY ssn LIKE '8%' DESC", {"ssn"}),
        ("SELECT DISTINCT ON (left(mrn, 2)) id FROM patients", {"mrn"}),
        ("SELECT rank() OVER (ORDER BY ssn > '5') FROM patients", {"ssn"}),
        ("SELECT count(*) FROM patients GROUP BY ROLLUP (upper(email))", {"email"}),
        ("EXPLAIN ANALYZE SELECT * FROM patients WHERE ssn LIKE '1'", {"ssn"}),
        ("EXPLAIN SELECT * FROM patients WHERE mrn < '1'", {"mrn"}),
        # row counts: set-returning functions of masked values, LIMIT and OFFSET
        (
            "SELECT count(*) FROM generate_series(1, (SELECT ascii(ssn) FROM patients LIMIT 1))",
            {"ssn"},
        ),
        ("SELECT generate_series(1, ascii(ssn)) FROM patients", {"ssn"}),
        (r"SELECT regexp_matches(body, '\d{3}', 'g') FROM clinical_notes", {"body"}),
        ("SELECT 1 FROM patients p, unnest(ARRAY[p.mrn]) x", {"mrn"}),
        (
            "SELECT 1 FROM generate_series(1, 9) LIMIT (SELECT ascii(ssn) FROM patients LIMIT 1)",
            {"ssn"},
        ),
        ("SELECT 1 FROM patients OFFSET (SELECT length(ssn) FROM patients LIMIT 1)", set()),
        # by the column itself, or an output column: no class of values is made
        ("SELECT ssn, count(*) FROM patients GROUP BY ssn ORDER BY ssn", set()),
        ("SELECT ssn AS s FROM patients ORDER BY s, 1", set()),
        ("SELECT count(*) FROM patients GROUP BY ssn::text", set()),
    ],
)
def test_grouping_and_sorting_by_a_computation(
    demo_catalog: Catalog, text: str, compared: set[str]
) -> None:
    assert cols(facts(text, demo_catalog).compared) == compared


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("UPDATE patients SET state = reverse(ssn)", [({"state"}, {"ssn"})]),
        ("UPDATE patients SET city = city", [({"city"}, {"city"})]),
        ("INSERT INTO encounters (kind) SELECT mrn FROM patients", [({"kind"}, {"mrn"})]),
        ("CREATE TABLE t AS SELECT upper(ssn) AS x, id FROM patients", [(set(), {"ssn", "id"})]),
        ("SELECT email INTO TEMP t FROM patients", [(set(), {"email"})]),
        ("ALTER TABLE patients ADD COLUMN g text GENERATED ALWAYS AS (reverse(ssn)) STORED",
         [(set(), {"ssn"})]),
        ("ALTER TABLE patients ADD CONSTRAINT c CHECK (ssn NOT LIKE '8%') NOT VALID",
         [(set(), {"ssn"})]),
        ("CREATE INDEX i ON patients (id) WHERE mrn LIKE '1%'", [(set(), {"mrn"})]),
        ("CREATE POLICY p ON patients USING (ssn > '5')", [(set(), {"ssn"})]),
        ("CREATE STATISTICS s ON (upper(email)), id FROM patients", [(set(), {"email"})]),
        ("COPY (SELECT reverse(ssn) FROM patients) TO '/tmp/x'", [(set(), {"ssn"})]),
        ("COPY patients (mrn) TO PROGRAM 'cat'", [(set(), {"mrn"})]),
        ("UPDATE patients SET city = 'x' WHERE id = 1", []),
        ("CREATE TABLE t (x text CHECK (x <> ''))", []),
    ],
)  # fmt: skip
def test_what_a_statement_stores(
    demo_catalog: Catalog, text: str, stored: list[tuple[set[str], set[str]]]
) -> None:
    found = facts(text, demo_catalog).stores
    assert [(cols(t), cols(v)) for t, v in found] == stored


def test_a_view_is_read_through_but_its_conditions_count(demo_catalog: Catalog) -> None:
    found = facts("CREATE VIEW v AS SELECT id FROM patients WHERE ssn LIKE '8%'", demo_catalog)
    assert cols(found.compared) == {"ssn"} and not found.stores


def test_comparisons_of_two_columns_are_kept_with_their_exactness(demo_catalog: Catalog) -> None:
    found = facts(
        "SELECT 1 FROM patients p, encounters e WHERE p.ssn = e.kind AND lower(p.mrn) = p.city"
        " AND p.email IN (SELECT q.email FROM patients q)",
        demo_catalog,
    )
    joins = [(cols(a), ae, cols(b), be) for a, ae, b, be in found.joins]
    assert joins == [
        ({"ssn"}, True, {"kind"}, True),
        ({"mrn"}, False, {"city"}, True),
        ({"email"}, True, {"email"}, True),
    ]


@pytest.mark.parametrize(
    ("text", "partial"),
    [
        ("SELECT 1/(ascii(ssn) - 49) FROM patients", {"ssn"}),
        ("SELECT ssn::int, (mrn || 'x')::date FROM patients", {"ssn", "mrn"}),
        ("SELECT (ARRAY[1, 2])[ascii(mrn)] FROM patients", {"mrn"}),
        ("SELECT jsonb_build_object(ssn, 1) FROM patients", {"ssn"}),
        ("SELECT 'x' ~ last_name, email ~ 'x' FROM patients", {"last_name"}),
        ("SELECT 1 FROM patients WHERE chr(ascii(ssn)) IS NULL", {"ssn"}),
        # a function that is not a builtin may fail on anything it is given; what it returns
        # has unknown lineage (masked whole), and what it reads inside is out of sight
        ("SELECT patient_ssn(id)::int FROM patients", {"id"}),
        # what never fails, and what is only measured
        ("SELECT upper(ssn), ssn::text, substr(ssn, 1, 3), ssn || '' FROM patients", set()),
        ("SELECT jsonb_build_object('k', ssn), to_jsonb(p) ->> 'mrn' FROM patients p", set()),
        ("SELECT 1/(length(ssn) - 10), count(ssn) + 1 FROM patients", set()),
        ("SELECT coalesce(ssn, 'x'), CASE WHEN id > 0 THEN mrn END FROM patients", set()),
    ],
)
def test_what_may_fail_on_the_values_it_is_given(
    demo_catalog: Catalog, text: str, partial: set[str]
) -> None:
    found = facts(text, demo_catalog).partial
    assert set().union(*(cols(sources) for _, sources in found)) == partial


@pytest.mark.parametrize(
    ("text", "writes"),
    [
        ("UPDATE patients SET city = city", [({"city"}, {"city"}, True)]),
        ("UPDATE patients SET ssn = 'x', mrn = mrn || ''", [
            ({"ssn"}, set(), False), ({"mrn"}, {"mrn"}, False)]),
        ("INSERT INTO patients (ssn) SELECT ssn FROM patients", [({"ssn"}, {"ssn"}, True)]),
        ("INSERT INTO patients (ssn) VALUES ($1)", [({"ssn"}, set(), False)]),
        ("COPY patients (ssn) FROM STDIN", [({"ssn"}, set(), False)]),
        ("ALTER TABLE patients ALTER COLUMN ssn SET DEFAULT 'x'", [({"ssn"}, set(), False)]),
    ],
)  # fmt: skip
def test_what_is_written_into_existing_columns(
    demo_catalog: Catalog, text: str, writes: list[tuple[set[str], set[str], bool]]
) -> None:
    found = facts(text, demo_catalog).writes
    assert [(cols(t), cols(v), as_is) for t, v, as_is in found] == writes


def test_a_foreign_key_is_a_join(demo_catalog: Catalog) -> None:
    found = facts("ALTER TABLE encounters ADD FOREIGN KEY (kind) REFERENCES patients (ssn)",
                  demo_catalog)  # fmt: skip
    assert [(cols(a), cols(b)) for a, _, b, _ in found.joins] == [({"kind"}, {"ssn"})]
    found = facts("CREATE TABLE t (x text REFERENCES patients (mrn))", demo_catalog)
    assert [(cols(a), cols(b)) for a, _, b, _ in found.joins] == [({"x"}, {"mrn"})]
