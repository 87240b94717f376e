from __future__ import annotations

import pytest

from wardgate.sql import AnalysisError, StatementKind, classify

R, W, DDL, DCL, TX, ADMIN = (
    StatementKind.READ, StatementKind.WRITE, StatementKind.DDL, StatementKind.DCL,
    StatementKind.TRANSACTION, StatementKind.ADMIN,
)  # fmt: skip

KINDS = [
    ("SELECT * FROM patients", [R]),
    ("TABLE patients", [R]),
    ("WITH d AS (DELETE FROM patients RETURNING *) SELECT * FROM d", [W]),
    ("SELECT 1 INTO t2", [DDL]),
    ("INSERT INTO t VALUES (1)", [W]),
    ("UPDATE t SET a = 1", [W]),
    ("DELETE FROM t", [W]),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", [W]),
    ("TRUNCATE t", [W]),
    ("COPY t FROM STDIN", [W]),
    ("COPY t TO STDOUT", [R]),
    ("CALL p()", [W]),
    ("CREATE TABLE t (a int)", [DDL]),
    ("ALTER TABLE t ADD COLUMN b int", [DDL]),
    ("DROP TABLE t", [DDL]),
    ("CREATE INDEX ON t (a)", [DDL]),
    ("CREATE VIEW v AS SELECT 1", [DDL]),
    ("COMMENT ON TABLE t IS 'x'", [DDL]),
    ("GRANT SELECT ON t TO bob", [DCL]),
    ("REVOKE SELECT ON t FROM bob", [DCL]),
    ("CREATE ROLE bob", [DCL]),
    ("ALTER ROLE bob SUPERUSER", [DCL]),
    ("BEGIN", [TX]),
    ("COMMIT", [TX]),
    ("ROLLBACK", [TX]),
    ("SAVEPOINT a", [TX]),
    ("SET search_path = x", [ADMIN]),
    ("SHOW search_path", [ADMIN]),
    ("VACUUM t", [ADMIN]),
    ("LISTEN x", [ADMIN]),
    ("EXPLAIN SELECT 1", [R]),
    ("EXPLAIN DELETE FROM t", [R]),
    ("EXPLAIN ANALYZE DELETE FROM t", [W]),
    ("DECLARE c CURSOR FOR SELECT 1", [R]),
    ("FETCH 1 FROM c", [R]),
    ("PREPARE q AS DELETE FROM t", [W]),
    ("EXECUTE q", [ADMIN]),
    ("DO $$ BEGIN END $$", [ADMIN]),
    ("COMMIT; CREATE TABLE x (a int)", [TX, DDL]),
    ("SELECT 1; DROP TABLE patients", [R, DDL]),
]


@pytest.mark.parametrize(("text", "kinds"), KINDS, ids=[k[0] for k in KINDS])
def test_kind(text: str, kinds: list[StatementKind]) -> None:
    result = classify(text)
    assert [s.kind for s in result.statements] == kinds
    assert result.multi_statement == (len(kinds) > 1)


DANGEROUS = [
    ("SELECT pg_read_file('/etc/passwd')", "calls pg_read_file"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "calls pg_read_binary_file"),
    ("SELECT * FROM pg_ls_dir('.')", "calls pg_ls_dir"),
    ("SELECT lo_import('/etc/passwd')", "calls lo_import"),
    ("SELECT lo_export(1, '/tmp/x')", "calls lo_export"),
    ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", "calls dblink"),
    ("SELECT dblink_exec('host=x', 'DROP TABLE t')", "calls dblink_exec"),
    ("SELECT 1 WHERE pg_read_file('/x') IS NULL", "calls pg_read_file"),
    ("COPY t TO PROGRAM 'curl x'", "COPY runs a program on the server"),
    ("COPY t FROM PROGRAM 'id'", "COPY runs a program on the server"),
    ("COPY t TO '/tmp/x'", "COPY reads or writes a file on the server"),
    ("COPY t FROM '/etc/passwd'", "COPY reads or writes a file on the server"),
    ("LOAD 'plugin'", "LOAD loads a shared library"),
    ("DO $$BEGIN NULL; END$$", "DO runs procedural code"),
    ("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN NULL; END$$", "CREATE FUNCTION"),
    ("CALL p()", "CALL runs a procedure"),
    ("ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM"),
    ("CREATE EXTENSION file_fdw", "CREATE EXTENSION"),
    ("ALTER EXTENSION x UPDATE", "ALTER EXTENSION"),
    ("CREATE FOREIGN DATA WRAPPER w", "foreign data wrapper"),
    ("CREATE SERVER s FOREIGN DATA WRAPPER w", "foreign server"),
    ("CREATE FOREIGN TABLE f (a text) SERVER s", "foreign table"),
    ("IMPORT FOREIGN SCHEMA r FROM SERVER s INTO l", "IMPORT FOREIGN SCHEMA"),
    ("CREATE USER MAPPING FOR CURRENT_USER SERVER s", "user mapping"),
    ("SET session_preload_libraries = 'x'", "loads libraries"),
    ("SET \"Local_Preload_Libraries\" = 'x'", "loads libraries"),
    ("ALTER ROLE r SET log_statement = 'none'", "log or audit trail"),
    ("SET ROLE postgres", "changes whose privileges"),
    ("SET standard_conforming_strings = off", "how the gateway reads"),
    ("SET NAMES 'LATIN1'", "how the gateway reads"),
    ("SET DateStyle = 'SQL, DMY'", "how the gateway reads"),
    ("SELECT set_config('client_encoding', $1, false)", "how the gateway reads"),
    ("SELECT set_config('session_authorization', 'x', false)", "set_config"),
    ("SELECT set_config(current_user, 'x', false)", "cannot read"),
    ("SELECT pg_terminate_backend(1)", "acts on the server"),
    ("SELECT query_to_xml('SELECT pg_read_file(1)', true, false, '')", "SQL given as text"),
    ("SELECT lo_get(1)", "large objects"),
    ("SELECT * FROM pg_catalog.pg_ls_replslotdir('x')", "server's files"),
    (
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC"
        " SELECT (SELECT pg_catalog.pg_read_file('x')); END",
        "calls pg_read_file",
    ),
    ("WITH a AS (SELECT 1) SELECT (SELECT lo_import('/x') FROM a)", "calls lo_import"),
    ("EXPLAIN ANALYZE SELECT pg_reload_conf()", "calls pg_reload_conf"),
    ("PREPARE p AS SELECT pg_promote()", "calls pg_promote"),
]


@pytest.mark.parametrize(("text", "reason"), DANGEROUS, ids=[d[0] for d in DANGEROUS])
def test_dangerous(text: str, reason: str) -> None:
    assert any(reason in why for why in classify(text).dangerous)


def test_safe_statements_are_not_dangerous() -> None:
    for text in (
        "SELECT upper(ssn) FROM patients", "COPY t TO STDOUT", "COPY t FROM STDIN",
        "SET search_path = x", "SET statement_timeout = 0", "RESET ROLE", "RESET ALL",
        "SELECT set_config('application_name', 'x', false)", "SELECT current_setting('x')",
        # what drivers and ORMs set, to the values the gateway assumes anyway
        "SET standard_conforming_strings = on", "SET client_encoding = 'UTF8'",
        "SET NAMES 'utf-8'", "SET DateStyle = ISO, MDY", "SET intervalstyle = iso_8601",
        "SELECT set_config('client_encoding', 'unicode', false)",
    ):  # fmt: skip
        assert classify(text).dangerous == ()


def test_tables_touched() -> None:
    result = classify(
        "WITH x AS (SELECT * FROM patients) SELECT * FROM x JOIN archive.encounters e ON true"
        " WHERE EXISTS (SELECT 1 FROM clinical_notes)"
    )
    assert result.tables == {
        (None, "patients"),
        ("archive", "encounters"),
        (None, "clinical_notes"),
    }
    assert classify("EXECUTE q").statements[0].name == "q"


def test_unparsable_fails_closed() -> None:
    with pytest.raises(AnalysisError):
        classify("SELECT FROM WHERE")


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", True),  # no parse needed
        ("select a from t for update", True),  # a lock, not a change
        ("SELECT '(' AS paren", True),  # a parenthesis in a literal: judged on the parse
        ("SELECT a FROM t UNION SELECT b FROM u", True),
        ("EXPLAIN SELECT 1", True),
        ("SELECT nextval('s')", False),  # any function call may write
        ("SELECT count(*) FROM t", False),
        ("SELECT * INTO t2 FROM t", False),  # creates a table
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", False),
        ("SELECT 1; DELETE FROM t", False),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 1", False),
        ("EXPLAIN ANALYZE DELETE FROM t", False),
        ("BEGIN", False),
        ("SET search_path = x", False),
        ("FETCH 10 FROM c", False),  # the cursor's query is elsewhere
        ("EXECUTE p", False),
        ("CREATE TABLE t (a int)", False),
        ("SELEC 1", False),  # does not parse
    ],
)
def test_only_plain_reads_may_run_before_their_record_is_durable(text: str, reads: bool) -> None:
    from wardgate.sql.analysis import analyse

    assert analyse(text).reads_only is reads
