"""The lineage table: statements against the demo schema and where each result column comes from.

A column is written as its sources, space-separated, `p.` for patients, `e.` for encounters,
`n.` for clinical_notes, `pc.` for the patient_cities materialized view, or fully qualified;
a leading `=` means exact (the stored value, possibly cast), a leading `?` means unknown, and
an empty string a constant. `None` instead of a list: the number of columns is not known.
"""

from __future__ import annotations

from dataclasses import dataclass

PATIENTS = [
    "id",
    "mrn",
    "first_name",
    "last_name",
    "ssn",
    "date_of_birth",
    "street",
    "city",
    "state",
    "zip",
    "phone",
    "email",
    "insurance_member_id",
    "created_at",
]
ENCOUNTERS = ["id", "patient_id", "encounter_date", "kind", "provider", "diagnosis_code"]
P_ALL = " ".join(f"p.{c}" for c in PATIENTS)
P_STAR = [f"=p.{c}" for c in PATIENTS]
E_STAR = [f"=e.{c}" for c in ENCOUNTERS]


@dataclass(frozen=True)
class Case:
    sql: str
    columns: list[str] | None
    run: bool = True  # also run it and check against RowDescription
    phi_functions: bool = False  # analyse with patient_ssn configured as returning patients.ssn
    # The first PostgreSQL major version that has the syntax the case uses.
    since: int = 13


CASES: list[Case] = [
    # plain references and aliases
    Case("SELECT ssn FROM patients", ["=p.ssn"]),
    Case("SELECT ssn AS x, mrn AS y FROM patients", ["=p.ssn", "=p.mrn"]),
    Case("SELECT p.first_name AS a FROM patients AS p", ["=p.first_name"]),
    Case("SELECT public.patients.ssn FROM public.patients", ["=p.ssn"]),
    Case('SELECT "SSN" FROM (SELECT ssn AS "SSN" FROM patients) AS "X"', ["=p.ssn"]),
    Case("SELECT * FROM patients", P_STAR),
    Case("TABLE patients", P_STAR),
    Case("SELECT * FROM patients WHERE false", P_STAR),
    Case("SELECT p.* FROM patients p JOIN encounters e ON e.patient_id = p.id", P_STAR),
    Case(
        "SELECT e.*, p.ssn FROM patients p JOIN encounters e ON e.patient_id = p.id",
        [*E_STAR, "=p.ssn"],
    ),
    Case("SELECT ctid, ssn FROM patients", ["", "=p.ssn"]),
    Case("SELECT 1 AS one, 'two'", ["", ""]),
    # arithmetic and string functions
    Case("SELECT ssn || '' FROM patients", ["p.ssn"]),
    Case(
        "SELECT upper(first_name), lower(last_name) FROM patients", ["p.first_name", "p.last_name"]
    ),
    Case("SELECT substr(ssn, 1, 3) || '-' || substr(ssn, 5) FROM patients", ["p.ssn"]),
    Case("SELECT replace(phone, '-', '') FROM patients", ["p.phone"]),
    Case("SELECT date_of_birth + 1 FROM patients", ["p.date_of_birth"]),
    Case("SELECT extract(year FROM date_of_birth) FROM patients", ["p.date_of_birth"]),
    Case("SELECT md5(ssn), reverse(mrn) FROM patients", ["p.ssn", "p.mrn"]),
    Case("SELECT translate(ssn, '0123456789', 'abcdefghij') FROM patients", ["p.ssn"]),
    Case("SELECT encode(convert_to(ssn, 'UTF8'), 'base64') FROM patients", ["p.ssn"]),
    Case("SELECT regexp_replace(body, '[0-9]', 'X', 'g') FROM clinical_notes", ["n.body"]),
    Case("SELECT ssn = '1', id + 1 FROM patients", ["p.ssn", "p.id"]),
    Case("SELECT id IN (SELECT patient_id FROM encounters) FROM patients", ["p.id e.patient_id"]),
    # casts, both ways
    Case("SELECT ssn::text FROM patients", ["=p.ssn"]),
    Case("SELECT CAST(date_of_birth AS text)::date FROM patients", ["=p.date_of_birth"]),
    Case("SELECT (ssn::bytea)::text FROM patients", ["=p.ssn"]),
    Case('SELECT ssn COLLATE "C" FROM patients', ["=p.ssn"]),
    # CASE, COALESCE, NULLIF, GREATEST
    Case("SELECT CASE WHEN id > 0 THEN ssn ELSE mrn END FROM patients", ["p.id p.ssn p.mrn"]),
    Case("SELECT COALESCE(NULL, email) FROM patients", ["p.email"]),
    Case("SELECT NULLIF(phone, '') FROM patients", ["p.phone"]),
    Case("SELECT GREATEST(first_name, last_name) FROM patients", ["p.first_name p.last_name"]),
    # concatenating and formatting functions, json and array aggregates
    Case("SELECT concat(first_name, ' ', last_name) FROM patients", ["p.first_name p.last_name"]),
    Case("SELECT concat_ws(',', street, city, zip) FROM patients", ["p.street p.city p.zip"]),
    Case("SELECT format('%s %s', first_name, ssn) FROM patients", ["p.first_name p.ssn"]),
    Case("SELECT jsonb_build_object('s', ssn) FROM patients", ["p.ssn"]),
    Case("SELECT json_build_array(ssn, date_of_birth) FROM patients", ["p.ssn p.date_of_birth"]),
    Case("SELECT json_agg(ssn) FROM patients", ["p.ssn"]),
    Case("SELECT array_agg(mrn ORDER BY id) FROM patients", ["p.mrn p.id"]),
    Case("SELECT string_agg(email, ';') FROM patients", ["p.email"]),
    Case("SELECT string_agg(DISTINCT zip, ',') FROM patients", ["p.zip"]),
    Case("SELECT json_object_agg(mrn, phone) FROM patients", ["p.mrn p.phone"]),
    Case("SELECT count(*), max(ssn) FROM patients", ["", "p.ssn"]),
    Case("SELECT lag(ssn) OVER (ORDER BY id) FROM patients", ["p.ssn"]),
    Case("SELECT xmlelement(name a, ssn) FROM patients", ["p.ssn"]),
    Case("SELECT ARRAY[ssn, mrn] FROM patients", ["p.ssn p.mrn"]),
    Case("SELECT (ARRAY[ssn])[1] FROM patients", ["p.ssn"]),
    Case(
        "SELECT first_name FROM patients GROUP BY first_name HAVING count(*) > 1", ["=p.first_name"]
    ),
    Case("SELECT DISTINCT ON (mrn) mrn FROM patients ORDER BY mrn", ["=p.mrn"]),
    # whole-row references
    Case("SELECT p FROM patients p", [P_ALL]),
    Case("SELECT row_to_json(p) FROM patients p", [P_ALL]),
    Case("SELECT to_jsonb(p.*) FROM patients p", [P_ALL]),
    Case("SELECT jsonb_agg(p) FROM patients p", [P_ALL]),
    Case("SELECT to_jsonb(p) ->> 'ssn' FROM patients p", [P_ALL]),
    Case("SELECT ROW(first_name, ssn) FROM patients", ["p.first_name p.ssn"]),
    Case("SELECT (p).ssn FROM patients p", ["=p.ssn"]),
    Case("SELECT x FROM patients p, LATERAL (SELECT p) s(x)", [P_ALL]),
    Case("SELECT value FROM patients p, jsonb_each_text(to_jsonb(p))", [P_ALL]),
    # set operations
    Case("SELECT ssn FROM patients UNION SELECT 'x'", ["=p.ssn"]),
    Case("SELECT 'x' UNION ALL SELECT ssn FROM patients", ["=p.ssn"]),
    Case(
        "SELECT first_name FROM patients UNION SELECT provider FROM encounters",
        ["=p.first_name e.provider"],
    ),
    Case("SELECT ssn FROM patients INTERSECT SELECT mrn FROM patients", ["=p.ssn p.mrn"]),
    Case("SELECT ssn FROM patients EXCEPT SELECT ssn FROM patients WHERE id = 1", ["=p.ssn"]),
    Case("SELECT * FROM (VALUES ('a'), ('b')) AS v(x) UNION SELECT ssn FROM patients", ["=p.ssn"]),
    Case("SELECT * FROM (VALUES (1, 'a')) v", ["", ""]),
    Case("VALUES (1, 'a'), (2, 'b')", ["", ""]),
    # CTEs
    Case("WITH s AS (SELECT ssn AS x FROM patients) SELECT x FROM s", ["=p.ssn"]),
    Case("WITH s(y) AS (SELECT ssn FROM patients) SELECT upper(y) FROM s", ["p.ssn"]),
    Case(
        "WITH a AS (SELECT ssn FROM patients), b AS (SELECT ssn FROM a) SELECT * FROM b", ["=p.ssn"]
    ),
    Case(
        "WITH RECURSIVE r(n, v) AS (SELECT 1, mrn FROM patients WHERE id = 1"
        " UNION ALL SELECT n + 1, v || '' FROM r WHERE n < 3) SELECT n, v FROM r",
        ["", "p.mrn"],
    ),
    Case(
        "WITH RECURSIVE r AS (SELECT id, email FROM patients UNION SELECT id, email FROM r)"
        " SELECT email FROM r",
        ["=p.email"],
    ),
    # subqueries: scalar, in FROM, LATERAL
    Case("SELECT (SELECT ssn FROM patients LIMIT 1)", ["=p.ssn"]),
    Case(
        "SELECT e.id, (SELECT p.phone FROM patients p WHERE p.id = e.patient_id) FROM encounters e",
        ["=e.id", "=p.phone"],
    ),
    Case("SELECT (SELECT ssn) FROM patients", ["=p.ssn"]),
    Case("SELECT ARRAY(SELECT email FROM patients)", ["p.email"]),
    Case("SELECT EXISTS (SELECT 1 FROM patients)", [""]),
    Case("SELECT x.s FROM (SELECT ssn AS s FROM patients) x", ["=p.ssn"]),
    Case(
        "SELECT * FROM (SELECT mrn, first_name FROM patients) AS sub(a, b)",
        ["=p.mrn", "=p.first_name"],
    ),
    Case("SELECT * FROM (SELECT * FROM (SELECT ssn FROM patients) a) b", ["=p.ssn"]),
    Case(
        "SELECT p.id, l.x FROM patients p, LATERAL (SELECT p.ssn || p.mrn AS x) l",
        ["=p.id", "p.ssn p.mrn"],
    ),
    Case(
        "SELECT p.id, e.encounter_date FROM patients p CROSS JOIN LATERAL"
        " (SELECT encounter_date FROM encounters WHERE patient_id = p.id LIMIT 1) e",
        ["=p.id", "=e.encounter_date"],
    ),
    Case(
        "SELECT * FROM (SELECT 1) x(a) JOIN LATERAL (SELECT ssn FROM patients LIMIT 1) y ON true",
        ["", "=p.ssn"],
    ),
    # joins: USING, NATURAL, FULL, aliased joins
    Case("SELECT id, kind FROM patients JOIN encounters USING (id)", ["=p.id e.id", "=e.kind"]),
    Case(
        "SELECT * FROM patients NATURAL JOIN encounters",
        ["=p.id e.id", *P_STAR[1:], *E_STAR[1:]],
    ),
    Case("SELECT id FROM patients p FULL JOIN encounters e USING (id)", ["=p.id e.id"]),
    Case(
        "SELECT j.id, j.ssn FROM (patients JOIN encounters USING (id)) AS j",
        ["=p.id e.id", "=p.ssn"],
    ),
    Case("SELECT u.id FROM patients JOIN encounters USING (id) AS u", ["=p.id e.id"], since=14),
    Case(
        "SELECT n.body, p.mrn FROM clinical_notes n JOIN patients p ON p.id = n.patient_id",
        ["=n.body", "=p.mrn"],
    ),
    # views, nested views, a materialized view, a partition, another schema
    Case("SELECT * FROM patient_contacts", ["p.first_name p.last_name", "=p.phone"]),
    Case("SELECT upper(c.name) FROM patient_contacts c", ["p.first_name p.last_name"]),
    Case("SELECT name FROM contact_names", ["p.first_name p.last_name"]),
    Case("SELECT mrn, encounter_date FROM visit_summary", ["=p.mrn", "=e.encounter_date"]),
    Case("SELECT v FROM visit_summary v", ["p.mrn e.encounter_date e.kind"]),
    Case("SELECT * FROM patient_cities", ["=p.city pc.city", "=p.zip pc.zip", "pc.n"]),
    Case(
        "SELECT value FROM lab_results_2024",
        ["=public.lab_results_2024.value public.lab_results.value"],
    ),
    Case("SELECT ssn FROM archive.patients", ["=archive.patients.ssn"]),
    # functions: PHI-returning, user-defined, set-returning, opaque builtins
    Case("SELECT patient_ssn(id) FROM patients", ["?"]),
    Case("SELECT patient_ssn(id) FROM patients", ["p.ssn p.id"], phi_functions=True),
    Case("SELECT * FROM patient_rows()", None),
    Case("SELECT r.ssn FROM patient_rows() r", ["?"]),
    Case("SELECT * FROM generate_series(1, 3) g", [""]),
    Case("SELECT u FROM patients, unnest(ARRAY[ssn, phone]) AS u", ["p.ssn p.phone"]),
    Case(
        "SELECT t.x FROM patients p, LATERAL ROWS FROM (unnest(ARRAY[p.mrn]))"
        " WITH ORDINALITY AS t(x, i)",
        ["p.mrn"],
    ),
    Case("""SELECT * FROM json_to_record('{"a": 1}') AS r(a int)""", [""]),
    Case("SELECT current_setting('wardgate.smuggled', true)", ["?"]),
    Case("SELECT query_to_xml('SELECT ssn FROM patients', true, false, '')", ["?"]),
    Case("SELECT most_common_vals FROM pg_stats", ["?"]),
    Case("SELECT query FROM pg_stat_activity", ["?"]),
    Case("SELECT statement FROM pg_prepared_statements", ["?"]),
    # what is not there is unknown
    Case("SELECT ssn FROM nonexistent", ["?"], run=False),
    Case("SELECT * FROM nonexistent", None, run=False),
    Case("SELECT p.nosuchcolumn FROM patients p", ["?"], run=False),
    Case("SELECT $1::text", [""], run=False),
    # DML with RETURNING (run in a transaction that is rolled back)
    Case(
        "UPDATE patients SET phone = phone WHERE id = 1 RETURNING ssn, phone",
        ["=p.ssn", "=p.phone"],
    ),
    Case("UPDATE patients SET phone = ssn WHERE id = 1 RETURNING phone", ["=p.phone p.ssn"]),
    Case(
        "INSERT INTO encounters (patient_id, encounter_date, kind, provider, diagnosis_code)"
        " SELECT id, now(), ssn, 'x', 'y' FROM patients WHERE id = 1 RETURNING kind",
        ["=e.kind p.ssn"],
    ),
    Case("DELETE FROM clinical_notes WHERE id = -1 RETURNING body", ["=n.body"]),
    Case(
        "DELETE FROM clinical_notes n USING patients p WHERE n.patient_id = p.id AND false"
        " RETURNING p.email",
        ["=p.email"],
    ),
    Case(
        "WITH d AS (UPDATE patients SET city = city WHERE id = 1 RETURNING email) SELECT * FROM d",
        ["=p.email"],
    ),
    # COPY, EXPLAIN (checked on their own in test_lineage.py as well)
    Case("COPY (SELECT email FROM patients) TO STDOUT", ["=p.email"], run=False),
    Case("COPY patients (ssn, mrn) TO STDOUT", ["=p.ssn", "=p.mrn"], run=False),
    Case("COPY patients TO STDOUT", P_STAR, run=False),
    Case("EXPLAIN SELECT ssn FROM patients", [""]),
]
