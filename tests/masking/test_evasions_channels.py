"""The evasion suite of the channels other than rows: every entry runs as the engineer (alice),
in text and in binary, and EVERYTHING the client receives is searched for the seeded PHI (rows,
COPY data, column names, notices, notifications, reported settings and every field of an
error), in any case, reversed, digits only, base64 or hex. A refusal passes when its text leaks
nothing. Entries are lists of statements run in order on one connection."""

from __future__ import annotations

import pytest

from tests.gateway_harness import RunningGateway
from tests.masking.channels import Leaks, receive
from tests.masking.test_masking_gateway import Seeded, database, gateway, seeded

__all__ = ["database", "gateway", "seeded"]

# fmt: off
SET_APP = "SELECT set_config('application_name', {}, false) FROM patients p WHERE id = 1"
NOTIFY = "SELECT pg_notify('c', {}) FROM patients p WHERE id < 4"

SIDE_CHANNELS: list[str | list[str]] = [
    *(
        SET_APP.format(v)
        for v in (
            "ssn",
            "reverse(ssn)",
            "upper(email)",
            "encode(convert_to(mrn, 'UTF8'), 'hex')",
            "encode(convert_to(phone, 'UTF8'), 'base64')",
            "first_name || last_name",
            "translate(ssn, '0123456789', 'abcdefghij')",
            "p::text",
            "row_to_json(p)::text",
            "coalesce(NULL, mrn)",
            "CASE WHEN id = 1 THEN email END",
            "(SELECT ssn)",
            "regexp_replace(ssn, '-', '', 'g')",
            "substr(ssn, 5)",
            "md5(ssn)",
        )
    ),
    "SELECT set_config('application_name', string_agg(ssn, ','), false) FROM patients",
    "SELECT set_config('application_name', (SELECT email FROM patients LIMIT 1), false)",
    "WITH s AS (SELECT ssn FROM patients LIMIT 1) SELECT set_config('application_name', ssn, true)"
    " FROM s",
    "SELECT (SELECT set_config('application_name', phone, false) FROM patients WHERE id = 3)",
    "SELECT x FROM patients p, LATERAL set_config('application_name', p.ssn, false) AS x",
    "SELECT set_config('myapp.x', ssn, false) FROM patients WHERE id = 1",
    ["SELECT set_config('myapp.y', 'constant', false)", "SELECT current_setting('myapp.y')"],
    "SELECT set_config(first_name, 'x', false) FROM patients WHERE id = 1",
    "SELECT set_config('search_path', ssn, false) FROM patients WHERE id = 1",
    "SELECT set_config('TimeZone', 'UTC', false), ssn FROM patients WHERE id = 1",
    ["SET application_name = 'constant'", "SELECT ssn, mrn FROM patients WHERE id = 1"],
    "SELECT current_setting('application_name'), ssn FROM patients WHERE id = 2",
    ["SHOW application_name"],
    *(
        ["LISTEN c", NOTIFY.format(v)]
        for v in (
            "ssn",
            "upper(email)",
            "reverse(mrn)",
            "row_to_json(p)::text",
            "first_name",
            "encode(convert_to(ssn, 'UTF8'), 'hex')",
            "concat(phone)",
        )
    ),
    ["LISTEN c", "SELECT pg_notify(ssn, 'x') FROM patients WHERE id = 1"],
    ["LISTEN c", "SELECT count(pg_notify('c', mrn)) FROM patients"],
    ["LISTEN c", "SELECT pg_notify('c', x) FROM (SELECT ssn AS x FROM patients) s"],
    ["LISTEN c", "NOTIFY c, 'a constant'", "SELECT ssn FROM patients WHERE id = 1"],
    ["LISTEN c", "SELECT pg_notify('c', 'static'), mrn FROM patients WHERE id = 1"],
    ["BEGIN", "SELECT pg_advisory_xact_lock(ascii(substr(ssn, 1, 1))) FROM patients WHERE id = 1",
     "SELECT objid FROM pg_locks WHERE locktype = 'advisory'"],
    ["BEGIN", "CREATE TEMP SEQUENCE sq", "SELECT setval('sq', substr(replace(ssn, '-', ''), 1,"
     " 9)::bigint) FROM patients WHERE id = 1", "SELECT last_value FROM sq"],
    "SELECT pg_sleep(ascii(ssn) / 10000.0) FROM patients WHERE id = 1",
]

PROCEDURAL: list[str | list[str]] = [
    "DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM patients LIMIT 1); END $$",
    "DO $$ DECLARE r record; BEGIN FOR r IN SELECT * FROM patients LOOP"
    " RAISE NOTICE '%', reverse(r::text); END LOOP; END $$",
    "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT mrn FROM patients LIMIT 1); END $$",
    "DO $$ BEGIN RAISE EXCEPTION 'x' USING DETAIL = (SELECT email FROM patients LIMIT 1); END $$",
    "DO $$ BEGIN PERFORM set_config('application_name', (SELECT ssn FROM patients LIMIT 1),"
    " false); END $$",
    "DO $$ BEGIN PERFORM pg_notify('c', (SELECT email FROM patients LIMIT 1)); END $$",
    "DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE x (\"' || (SELECT ssn FROM patients LIMIT 1)"
    " || '\" int)'; END $$",
    "DO LANGUAGE plpgsql $$ BEGIN RAISE WARNING '%', (SELECT phone FROM patients LIMIT 1); END $$",
    "DO $$ BEGIN EXECUTE format('COMMENT ON TABLE patients IS %L',"
    " (SELECT ssn FROM patients LIMIT 1)); END $$",
    "DO $$ BEGIN EXECUTE format('SET application_name = %L',"
    " (SELECT mrn FROM patients LIMIT 1)); END $$",
    "CREATE FUNCTION leak1() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM patients LIMIT 1'",
    "CREATE OR REPLACE FUNCTION leak2(int) RETURNS text LANGUAGE plpgsql AS"
    " $$ BEGIN RETURN (SELECT mrn FROM patients WHERE id = $1); END $$",
    "CREATE PROCEDURE leak3() LANGUAGE sql AS $$ SELECT 1 $$",
    ["CREATE TEMP TABLE tt (x text)", "CREATE RULE r AS ON INSERT TO tt DO ALSO NOTIFY c"],
    ["CREATE TEMP TABLE tt2 (x text)",
     "CREATE TRIGGER trg AFTER INSERT ON tt2 FOR EACH ROW EXECUTE FUNCTION leak2()"],
    "CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION leak2()",
    "ALTER FUNCTION pg_catalog.now() SECURITY DEFINER",
    "CALL no_such_procedure()",
    "SELECT query_to_xml('SELECT ssn FROM patients', true, false, '')",
    "SELECT * FROM query_to_xml('SELECT mrn FROM patients', true, false, '') AS x",
    "SELECT xpath('/row/ssn/text()', query_to_xml('SELECT ssn FROM patients', true, false, ''))",
    "SELECT lo_get(lo_from_bytea(0, convert_to((SELECT ssn FROM patients LIMIT 1), 'UTF8')))",
    ["PREPARE q AS SELECT ssn, reverse(mrn) FROM patients", "EXECUTE q"],
    ["BEGIN", "DECLARE k CURSOR FOR SELECT upper(email), phone FROM patients", "FETCH ALL k"],
    "SELECT * FROM dblink('dbname=postgres', 'SELECT ssn FROM patients') AS t(s text)",
    "SELECT ts_stat('SELECT to_tsvector(body) FROM clinical_notes')",
]

FREE_TEXT: list[str | list[str]] = [
    *(
        f"SELECT {e} FROM clinical_notes n"
        for e in (
            "upper(body)",
            "lower(body)",
            "initcap(body)",
            "reverse(body)",
            "translate(body, '0123456789', 'abcdefghij')",
            "replace(body, '-', '')",
            r"regexp_replace(body, '(\d)', '\1 ', 'g')",
            r"regexp_matches(body, '\d{3}-\d{2}-\d{4}', 'g')",
            r"regexp_match(body, '\d{3}-\d{2}-\d{4}')",
            r"(regexp_match(body, '(\d{3}-\d{2}-\d{4})'))[1]",
            r"substring(body from '\d{3}-\d{2}-\d{4}')",
            "regexp_split_to_array(body, ' ')",
            "string_to_array(body, ' ')",
            "unnest(string_to_array(body, ' '))",
            "regexp_split_to_table(body, ',')",
            "substr(body, 1, 400)",
            "left(body, 300)",
            "right(body, 300)",
            "split_part(body, ' ', 3)",
            "encode(convert_to(body, 'UTF8'), 'base64')",
            "encode(convert_to(body, 'UTF8'), 'hex')",
            "convert_to(body, 'UTF8')",
            "body::bytea",
            "md5(body)",
            "sha256(convert_to(body, 'UTF8'))",
            "to_tsvector('simple', body)",
            "to_jsonb(body)",
            "json_build_array(body)",
            "jsonb_build_object('b', body)",
            "ARRAY[body]",
            "ROW(body)::text",
            "n::text",
            "to_jsonb(n)",
            "format('%s', body)",
            "concat(body, '')",
            "body || body",
            "lpad(body, 3000, '*')",
            "overlay(body placing 'x' from 1 for 0)",
            "quote_literal(body)",
            "quote_ident(body)",
            "xmlelement(name x, body)::text",
            "ascii(body)",
            "strpos(body, 'SSN')",
            "normalize(body)",
            "btrim(body)",
            "jsonb_path_query(to_jsonb(n), '$.body')",
            'body COLLATE "C"',
            "(SELECT string_agg(m[1], ',')"
            " FROM regexp_matches(body, '(\\d{3}-\\d{2}-\\d{4})', 'g') m)",
        )
    ),
    "SELECT array_agg(body) FROM clinical_notes",
    "SELECT string_agg(upper(body), '|') FROM clinical_notes",
    "SELECT m FROM clinical_notes, regexp_matches(body, '[0-9-]{8,}', 'g') AS m",
    "SELECT w FROM clinical_notes, regexp_split_to_table(body, ' ') AS w",
    "SELECT string_agg(chr(ascii(substr(body, i, 1))), '') FROM clinical_notes,"
    " generate_series(1, 80) AS i GROUP BY clinical_notes.id",
    "SELECT body FROM clinical_notes",
    "COPY (SELECT upper(body) FROM clinical_notes) TO STDOUT",
    "COPY (SELECT reverse(body) FROM clinical_notes) TO STDOUT (FORMAT binary)",
    "WITH t AS (SELECT lower(body) AS b FROM clinical_notes) SELECT b FROM t",
    "SELECT x FROM (SELECT translate(body, '-', '_') AS x FROM clinical_notes) s",
]

_PRED = "SELECT count(*) FROM patients p WHERE id = 1 AND {}"
PREDICATES: list[str | list[str]] = [
    *(
        _PRED.format(c)
        for c in (
            "ssn = '000-00-0000'",
            "ssn <> ''",
            "ssn LIKE '8%'",
            "ssn NOT LIKE '8%'",
            "ssn ILIKE '8%'",
            "ssn ~ '^8'",
            "ssn ~* '^8'",
            "ssn !~ '^8'",
            "ssn SIMILAR TO '8%'",
            "ssn BETWEEN '1' AND '5'",
            "ssn NOT BETWEEN '1' AND '5'",
            "ssn IN ('a', 'b')",
            "ssn NOT IN ('a')",
            "ssn = ANY (ARRAY['a', 'b'])",
            "ssn > '5'",
            "ssn <= '5'",
            "ssn IS DISTINCT FROM 'x'",
            "substr(ssn, 1, 3) = '891'",
            "left(ssn, 1) = '8'",
            "starts_with(ssn, '8')",
            "strpos(ssn, '44') > 0",
            "position('44' in ssn) = 5",
            "ascii(ssn) = 56",
            "md5(ssn) = 'x'",
            "date_part('month', date_of_birth) = 3",
            "extract(year from date_of_birth) < 1950",
            "date_of_birth > '1950-01-01'",
            "zip LIKE '021%'",
            "email LIKE '%@example.com'",
            "phone LIKE '555%'",
            "ssn::text LIKE '8%'",
            "(ssn || '') LIKE '8%'",
            "ssn COLLATE \"C\" > '5'",
            "ROW(ssn, 1) = ROW('x', 1)",
            "ARRAY[ssn] && ARRAY['x']",
            'to_jsonb(p) @> \'{"ssn": "x"}\'',
            "ssn > (SELECT '5')",
            "(ssn LIKE '8%' OR false)",
            "NOT (ssn < '5')",
            "coalesce(ssn, '') = 'x'",
            "(ssn LIKE '8%') IS TRUE",
            "ssn IN (SELECT '1')",
            "EXISTS (SELECT 1 WHERE p.ssn LIKE '8%')",
            "last_name ILIKE 's%'",
            "first_name = 'Ann'",
            "mrn = '00000001'",
            "insurance_member_id LIKE 'A%'",
            "city = 'Boston'",
            "street LIKE '1%'",
            "p.ssn IN (SELECT q.ssn FROM patients q)",
            "length(ssn) = 11",
            "ssn IS NULL",
        )
    ),
    "SELECT count(*) FILTER (WHERE ssn < '5') FROM patients",
    "SELECT sum(CASE WHEN ssn LIKE '8%' THEN 1 ELSE 0 END) FROM patients",
    "SELECT CASE ssn WHEN '000-00-0000' THEN 1 END FROM patients",
    "SELECT count(*) FROM patients GROUP BY id HAVING min(ssn) < '5'",
    "SELECT count(*) FROM patients p JOIN encounters e ON e.patient_id = p.id AND p.ssn > '5'",
    "UPDATE patients SET city = city WHERE ssn LIKE '8%'",
    "DELETE FROM patients WHERE ssn = 'no such ssn'",
    "SELECT count(*), min(id) FROM patients GROUP BY ssn LIKE '8%' ORDER BY 1",
    "SELECT id FROM patients ORDER BY substr(ssn, 1, 3) LIMIT 1",
    "SELECT DISTINCT ON (left(mrn, 3)) id FROM patients",
    "SELECT id, rank() OVER (ORDER BY ssn > '5') FROM patients",
    "EXPLAIN ANALYZE SELECT * FROM patients WHERE ssn = '000-00-0000'",
    "EXPLAIN SELECT * FROM patients WHERE mrn = '00000001'",
    "SELECT 1 WHERE (SELECT ssn FROM patients WHERE id = 1) LIKE '8%'",
    "WITH s AS (SELECT id, ssn AS x FROM patients) SELECT id FROM s WHERE x LIKE '8%'",
    ["PREPARE pp AS SELECT id FROM patients WHERE ssn LIKE $1", "EXECUTE pp('8%')"],
]

IDENTIFIERS: list[str | list[str]] = [
    "SELECT ssn AS name, mrn AS \"SELECT\" FROM patients",
    ["CREATE TEMP TABLE i1 AS SELECT ssn, mrn FROM patients", "SELECT * FROM i1"],
    ["SELECT ssn, email INTO TEMP i2 FROM patients", "SELECT * FROM i2"],
    ["CREATE TEMP TABLE i3 (x text)", "INSERT INTO i3 SELECT reverse(mrn) FROM patients",
     "SELECT x, upper(x) FROM i3"],
    ["CREATE TEMP VIEW i4 AS SELECT ssn, phone FROM patients", "SELECT * FROM i4",
     "SELECT pg_get_viewdef('i4')"],
    ["CREATE TEMP TABLE i5 (x text DEFAULT 'a')",
     "SELECT column_default FROM information_schema.columns WHERE table_name = 'i5'"],
    ["CREATE TEMP TABLE i6 (x text)", "UPDATE i6 SET x = (SELECT ssn FROM patients LIMIT 1)",
     "INSERT INTO i6 SELECT email FROM patients RETURNING x", "SELECT * FROM i6"],
    "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats"
    " WHERE tablename = 'patients'",
    "SELECT * FROM pg_stats WHERE tablename = 'patients'",
    "SELECT query FROM pg_stat_activity",
    "SELECT pg_get_viewdef('patient_contacts')",
    "SELECT attname FROM pg_attribute WHERE attrelid = 'patients'::regclass",
    "SELECT column_name, column_default FROM information_schema.columns"
    " WHERE table_name = 'patients'",
    "SELECT obj_description('patients'::regclass), col_description('patients'::regclass, 5)",
    "SELECT p FROM patients p",
    "SELECT (p).* FROM patients p",
    "SELECT t.* FROM (SELECT ssn, mrn FROM patients) t(a, b)",
    "SELECT * FROM patients NATURAL JOIN (SELECT id, ssn AS x FROM patients) s",
    "SELECT jsonb_object_keys(jsonb_object_agg(ssn, 1)) FROM patients",
    "SELECT key FROM patients p, jsonb_each_text(jsonb_build_object(p.mrn, 1))",
    ["BEGIN", "UPDATE patients SET state = reverse(ssn)", "SELECT state FROM patients"],
    ["BEGIN", "UPDATE encounters SET kind = (SELECT upper(email) FROM patients p"
     " WHERE p.id = patient_id)", "SELECT kind FROM encounters"],
    ["BEGIN", "CREATE TABLE laundry AS SELECT reverse(mrn) AS x FROM patients",
     "SELECT x FROM laundry"],
    ["BEGIN", "ALTER TABLE patients ADD COLUMN g text GENERATED ALWAYS AS (reverse(ssn)) STORED",
     "SELECT g FROM patients"],
    ["BEGIN", "INSERT INTO encounters (patient_id, encounter_date, kind, provider,"
     " diagnosis_code) SELECT id, now(), reverse(phone), 'x', 'y' FROM patients",
     "SELECT kind FROM encounters"],
    "SELECT * FROM jsonb_to_record((SELECT to_jsonb(p) FROM patients p LIMIT 1))"
    " AS x(ssn text, mrn text)",
]

_INSERT_ROW = (
    "INSERT INTO patients (mrn, first_name, last_name, ssn, date_of_birth, street, city, state,"
    " zip, phone, email, insurance_member_id) SELECT {} FROM patients LIMIT 1"
)
ERRORS: list[str | list[str]] = [
    *(f"SELECT {e} FROM patients p WHERE id = 1" for e in (
        "(p::text)::int", "('MRN' || mrn)::int", "reverse(ssn)::int", "ssn::int", "ssn::date",
        "email::inet", "phone::numeric", "first_name::int", "last_name::boolean", "ssn::json",
        "ssn::uuid", "ssn::regclass", "mrn::regproc", "ssn::regtype",
        "(to_jsonb(p) ->> 'email')::int", "encode(convert_to(ssn, 'UTF8'), 'base64')::int",
        "translate(ssn, '0123456789', 'abcdefghij')::int",
        "replace(phone, '-', '')::int2", "upper(email)::timestamptz", "ARRAY[ssn]::int[]",
        "ROW(ssn)::text::int", "concat(ssn)::money", "to_timestamp(ssn, 'HH24')",
        "xmlparse(document ssn)",
        "jsonb_path_query(to_jsonb(p), 'strict $.ssn.x')", "(ssn || 'x')::interval", "ssn::bit(3)",
        "1 / (length(ssn) - 11)", "to_number(email, '999')", "make_date(1, 1, ascii(ssn))",
        "ssn::point", "md5(ssn)::int", "email::xml::text::int", "mrn::oid", "('x' || mrn)::int8",
    )),
    "SELECT id FROM patients ORDER BY ssn::int",
    "SELECT id FROM patients WHERE id = ('1' || mrn)::int",
    "SELECT (SELECT 'x' || ssn FROM patients WHERE id = 1)::int",
    "COPY (SELECT ssn::int FROM patients) TO STDOUT",
    ["BEGIN", _INSERT_ROW.format(
        "mrn, first_name, last_name, ssn, date_of_birth, street, city, state, zip, phone,"
        " email, insurance_member_id")],
    ["BEGIN", _INSERT_ROW.format(
        "mrn || 'x', first_name, last_name, ssn, date_of_birth, street, city, state, zip, phone,"
        " NULL, insurance_member_id")],
    ["CREATE TEMP TABLE e1 (x text CHECK (x = 'no'))", "INSERT INTO e1 SELECT ssn FROM patients"],
    ["CREATE TEMP TABLE e2 (x text UNIQUE)", "INSERT INTO e2 SELECT ssn FROM patients",
     "INSERT INTO e2 SELECT ssn FROM patients"],
    ["CREATE TEMP TABLE e3 (x text REFERENCES patients (mrn))",
     "INSERT INTO e3 SELECT reverse(mrn) FROM patients"],
    ["CREATE TEMP TABLE e4 (x int)", "INSERT INTO e4 SELECT ssn::int FROM patients"],
    ["SET client_min_messages = debug5", "SELECT reverse(ssn) FROM patients WHERE id = 1"],
    ["SET client_min_messages = debug5", "SET debug_print_plan = on",
     "SELECT upper(email) FROM patients WHERE id = 1"],
    "SELECT ssn FROM patients WHERE id = 1 FOR UPDATE OF no_such_table",
    "SELECT (SELECT ssn FROM patients)",
    "SELECT no_such_column, ssn FROM patients",
]

# fmt: on

EVASIONS = [
    *(("side channel", e) for e in SIDE_CHANNELS),
    *(("procedural", e) for e in PROCEDURAL),
    *(("free text", e) for e in FREE_TEXT),
    *(("predicate", e) for e in PREDICATES),
    *(("identifier", e) for e in IDENTIFIERS),
    *(("error", e) for e in ERRORS),
]


@pytest.fixture(scope="module")
def leaks(seeded: Seeded) -> Leaks:
    return Leaks((*seeded.ssns, *seeded.mrns, *seeded.phones, *seeded.emails), seeded.names)


def _id(entry: tuple[str, str | list[str]]) -> str:
    category, statements = entry
    text = statements if isinstance(statements, str) else " ; ".join(statements)
    return f"{category}: {text[:90]}"


@pytest.mark.parametrize("entry", EVASIONS, ids=[_id(e) for e in EVASIONS])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_no_channel_carries_raw_phi(
    gateway: RunningGateway, leaks: Leaks, entry: tuple[str, str | list[str]], binary: bool
) -> None:
    _, statements = entry
    got = receive(
        gateway.dsn("alice"),
        [statements] if isinstance(statements, str) else statements,
        binary=binary,
    )
    assert got.rows or got.names or got.error or got.notices, "nothing came back"
    found = leaks(got.text())
    assert not found, f"leaked {found[:5]} in {got}"


def test_the_suite_is_large_enough() -> None:
    assert len(EVASIONS) >= 150
    assert {c for c, _ in EVASIONS} == {
        "side channel",
        "procedural",
        "free text",
        "predicate",
        "identifier",
        "error",
    }


def test_the_checker_finds_transformed_values(seeded: Seeded, leaks: Leaks) -> None:
    """Not vacuous: each transform of a seeded value is found, on any channel."""
    ssn, email, name = seeded.ssns[0], seeded.emails[0], seeded.names[0]
    import base64

    for text in (
        ssn.upper(),
        ssn[::-1],
        ssn.replace("-", ""),
        email.upper(),
        email[::-1],
        base64.b64encode(f"note: {email} x".encode()).decode(),
        f"\\x{ssn.encode().hex()}",
        f"hint: {name.upper()} was here",
    ):
        assert leaks(text), text
    assert not leaks("wardgate: nothing here, [SSN] MRN-0123456789abcdef")
