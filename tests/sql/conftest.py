from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.databases import temporary_database
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import seed
from wardgate.sql import Catalog, load_catalog

# Views, a materialized view, a schema with a same-named table, a partitioned table and two
# functions that read PHI: what the lineage table runs against, on top of the demo schema.
EXTRAS = """
CREATE VIEW patient_contacts AS SELECT first_name || ' ' || last_name AS name, phone FROM patients;
CREATE VIEW contact_names AS SELECT name FROM patient_contacts;
CREATE VIEW visit_summary AS
    SELECT p.mrn, e.encounter_date, e.kind FROM patients p JOIN encounters e ON e.patient_id = p.id;
CREATE MATERIALIZED VIEW patient_cities AS
    SELECT city, zip, count(*) AS n FROM patients GROUP BY city, zip;
CREATE SCHEMA archive;
CREATE TABLE archive.patients (id integer, ssn text);
CREATE TABLE lab_results (patient_id integer, taken date, value text) PARTITION BY RANGE (taken);
CREATE TABLE lab_results_2024 PARTITION OF lab_results
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE FUNCTION patient_ssn(pid integer) RETURNS text LANGUAGE sql STABLE
    AS 'SELECT ssn FROM patients WHERE id = pid';
CREATE FUNCTION patient_rows() RETURNS SETOF patients LANGUAGE sql STABLE
    AS 'SELECT * FROM patients';
"""


@pytest.fixture(scope="module")
def demo_dsn(pg_server: LocalPostgres) -> Iterator[str]:
    """A database with the demo schema (a few seeded patients) and `EXTRAS`, per module."""
    with temporary_database(pg_server, "wardgate_sql") as name:
        dsn = pg_server.dsn(name)
        seed(dsn, patients=5, seed=7)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(EXTRAS)
        yield dsn


@pytest.fixture(scope="module")
def demo_catalog(demo_dsn: str) -> Catalog:
    with psycopg.connect(demo_dsn) as conn:
        return load_catalog(conn)


@pytest.fixture
def demo_conn(demo_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(demo_dsn) as conn:
        yield conn
        conn.rollback()
