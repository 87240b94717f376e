"""``wardgate classify``: the combining logic on plain data, then the command as a user runs it
against a real PostgreSQL seeded with the demo schema."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.protocols.postgres.conftest import target_entry
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import DEMO_LABELS, seed
from wardgate.masking import Scanner
from wardgate.masking.cli import SMALL_PAGES, render_json, render_yaml
from wardgate.masking.proposals import ColumnInfo, Proposal, classify, name_tokens, propose
from wardgate.sql.model import SourceColumn

SCANNER = Scanner()
TYPES = {  # type_name: (base_type, category)
    "text": ("text", "S"),
    "date": ("date", "D"),
    "timestamp with time zone": ("timestamptz", "D"),
    "integer": ("int4", "N"),
    "boolean": ("bool", "B"),
    "bytea": ("bytea", "U"),
    "inet": ("inet", "I"),
}


def column(
    name: str, type_name: str = "text", comment: str | None = None, *, table: str = "t"
) -> ColumnInfo:
    base, category = TYPES[type_name]
    return ColumnInfo("public", table, name, type_name, base, category, comment)


def guess(
    name: str,
    samples: Sequence[str] | None = None,
    type_name: str = "text",
    comment: str | None = None,
    table: str = "t",
) -> Proposal:
    return propose(column(name, type_name, comment, table=table), samples, SCANNER)


NOTES = [
    "Pt John Carter (MRN 00123456) seen today for cough. Callback 212-555-0142 if worse.",
    "Spoke with daughter Mary Carter at (212) 555-0199 about the refill; she will pick it up.",
    "Follow-up with Susan Miller next week, phone 617-555-0111, BP stable, continue meds.",
    "Results called to David Nguyen at 718-555-0123: A1c 7.9%, recheck in 3 months.",
    "Left a voicemail for Karen Lopez at 312-555-0187 asking her to call the clinic back.",
]


def test_free_text_with_names_and_phones_is_text() -> None:
    p = guess("notes", NOTES)
    assert (p.label, p.confident, p.level) == ("TEXT", True, "high")
    content = [s for s in p.evidence if s.kind == "content"]
    assert content and "NAME" in content[0].detail and "PHONE" in content[0].detail


def test_content_alone_finds_ssns() -> None:
    p = guess("col1", ["123-45-6789", "234-56-7890", "345-67-8901", "456-78-9012", "521-12-3344"])
    assert (p.label, p.confident) == ("SSN", True)
    assert [s.kind for s in p.evidence] == ["content"]
    assert p.evidence[0].detail == "5/5 sampled values read as SSN"


def test_a_record_keeping_date_is_not_phi() -> None:
    assert guess("created_at", None, "timestamp with time zone").label is None
    assert guess("updated_at", None, "date", table="patients").label is None
    # a date of something that happened to the patient is
    for name in ("admission_date", "discharged_at", "dob", "DateOfBirth", "visit_on"):
        assert guess(name, None, "date").proposed == "DATE", name
    assert guess("date", None, "date", table="encounters").proposed == "DATE"
    assert guess("birth_year", None, "integer").label is None


def test_comment_alone() -> None:
    p = guess("x1", None, comment="PHI: phone")
    assert (p.proposed, p.level) == ("PHONE", "high")
    assert p.evidence[0].detail == "comment 'PHI: phone'"
    assert guess("written_at", None, "timestamp with time zone", "PHI: date of service").proposed
    assert guess("zip", None, comment="PHI: address").proposed == "ZIP"  # the name refines it
    assert guess("x2", None, comment="PHI").proposed == "TEXT"  # PHI of no named kind: scan it
    assert guess("x3", None, comment="patient's home phone").proposed is None  # no "PHI": weaker
    assert guess("phone", None, comment="not PHI: the clinic's switchboard").proposed is None


def test_name_patterns() -> None:
    cases = {
        "ssn": "SSN", "social_security_number": "SSN", "mrn": "MRN", "medical_record_no": "MRN",
        "first_name": "NAME", "lastName": "NAME", "surname": "NAME", "guardian_name": "NAME",
        "street_address": "GEO", "city": "GEO", "county": "GEO", "postal_code": "ZIP",
        "zip5": "ZIP", "mobile": "PHONE", "emergency_contact_phone": "PHONE", "fax": "FAX",
        "email_address": "EMAIL", "insurance_member_id": "HEALTH_PLAN_ID",
        "policy_number": "HEALTH_PLAN_ID", "account_number": "ACCOUNT", "license": "LICENSE",
        "license_plate": "VEHICLE_ID", "vin": "VEHICLE_ID", "device_serial": "DEVICE_ID",
        "imei": "DEVICE_ID", "website": "URL", "photo_url": "URL", "passport_number": "OTHER_ID",
    }  # fmt: skip
    for name, label in cases.items():
        assert guess(name).proposed == label, name
    assert guess("ip_address", type_name="inet").proposed == "IP"
    assert guess("photo", type_name="bytea").proposed == "PHOTO"
    assert guess("name", table="patients").proposed == "NAME"
    assert guess("name", table="departments").proposed is None
    for name in ("id", "state", "kind", "diagnosis_code", "phone_type", "account_status", "mode"):
        assert guess(name).label is None, name
    assert name_tokens("patientDOB2") == ["patient", "dob", "2"]


def test_the_type_must_fit() -> None:
    assert guess("ssn", type_name="boolean").label is None
    assert guess("photo").label is None  # a photo is bytes
    assert guess("email", type_name="integer").label is None
    assert guess("patient_id", type_name="integer").label is None
    assert guess("mrn", type_name="integer").proposed == "MRN"


def test_samples_that_contradict_the_name() -> None:
    emails = [f"user{i}@example.com" for i in range(8)]
    p = guess("phone", emails)
    assert p.proposed == "EMAIL"
    words = ["home", "work", "mobile", "other", "home", "work"]
    p = guess("phone", words)
    assert p.label == "PHONE" and not p.confident
    assert "only 0/6 sampled values read as PHONE" in [s.detail for s in p.evidence]


def test_a_providers_name_is_a_note_not_a_label() -> None:
    providers = ["Dr. Emily Huang, NP", "Dr. Paul Thomas, MD", "Dr. Mary Watson, DO"] * 2
    p = guess("provider", providers, table="encounters")
    assert (p.label, p.confident, p.level) == ("NAME", False, "low")
    assert "Safe Harbor" in p.evidence[-1].detail
    assert guess("col2", providers).proposed == "NAME"  # nothing says whose names they are


def test_dates_in_text_need_a_person() -> None:
    dates = ["2024-01-03", "2023-12-30", "2022-07-14", "2021-02-02"]
    assert not guess("col3", dates).confident
    assert guess("birth", dates).proposed == "DATE"


def test_short_values_and_too_few_samples() -> None:
    assert guess("kind", ["office visit", "lab", "telehealth", "lab", "follow-up"]).label is None
    assert guess("col4", ["123-45-6789"]).label is None  # one value says little
    assert guess("col5", []).label is None


def table_columns() -> list[ColumnInfo]:
    return [
        column("id", "integer", table="people"),
        column("ssn", table="people"),
        column("first name", table="people"),
        column("notes", table="people"),
    ]


def test_report_and_yaml() -> None:
    configured = {
        SourceColumn("public", "people", "ssn"): "SSN",
        SourceColumn("public", "people", "notes"): "NAME",
        SourceColumn("public", "people", "gone"): "MRN",
    }
    samples: dict[SourceColumn, Sequence[str] | str] = {
        SourceColumn("public", "people", "notes"): NOTES,
        SourceColumn("public", "people", "first name"): "no SELECT privilege",
    }
    report = classify(table_columns(), samples, SCANNER, configured, "demo")
    assert [p.column.column for p in report.proposals] == ["first name", "id", "notes", "ssn"]
    assert report.missing == (("people.gone", "MRN"),)
    assert report.labels() == {
        "people.ssn": "SSN",
        "people.notes": "TEXT",
        "people.first name": "NAME",
    }
    text = render_yaml(report)
    assert yaml.safe_load(text) == {
        "phi": {"people.ssn": "SSN", "people.notes": "NAME", "people.first name": "NAME"}
    }
    lines = {line.split(":")[0].strip(): line for line in text.splitlines()}
    assert "in config; classify agrees" in lines["people.ssn"]
    assert "DISAGREES: classify proposes TEXT" in lines["people.notes"]
    assert "not sampled: no SELECT privilege" in lines['"people.first name"']
    assert "the target has no such column" in lines["# people.gone"]
    document = json.loads(render_json(report))
    by_key = {p["key"]: p for p in document["proposals"]}
    assert by_key["people.notes"]["agrees"] is False
    assert by_key["people.id"]["label"] is None
    assert document["configured_missing"] == [{"key": "people.gone", "configured": "MRN"}]


def test_yaml_comments_cannot_break_the_mapping() -> None:
    col = column("ssn", comment="PHI: SSN\nbobby: tables\n# more", table="weird\ntable")
    report = classify([col], {}, SCANNER, {})
    loaded = yaml.safe_load(render_yaml(report))
    assert loaded == {"phi": {"weird\ntable.ssn": "SSN"}}
    assert yaml.safe_load(render_yaml(classify([], {}, SCANNER, {}))) == {"phi": {}}


# ---- the command against PostgreSQL ------------------------------------------------------------


def write_config(tmp: Path, pg: LocalPostgres, database: str, **target: Any) -> Path:
    entry = {**target_entry(pg, database, name="demo"), **target}
    path = tmp / "wardgate.yaml"
    path.write_text(yaml.safe_dump({"audit": {"path": "audit.jsonl"}, "targets": [entry]}))
    return path


def wardgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wardgate", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def demo_db(pg_server: LocalPostgres, scratch_db: str) -> str:
    seed(pg_server.dsn(scratch_db), patients=50)
    return scratch_db


def test_classify_proposes_the_demo_labels(
    tmp_path: Path, pg_server: LocalPostgres, demo_db: str
) -> None:
    config = write_config(tmp_path, pg_server, demo_db)
    result = wardgate("classify", "demo", "-c", str(config), "--sample", "40")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"phi": DEMO_LABELS}
    assert "# encounters.provider: NAME  # low" in result.stdout

    result = wardgate("classify", "demo", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    proposals = json.loads(result.stdout)["proposals"]
    confident = {p["key"]: p["proposed"] for p in proposals if p["proposed"]}
    assert confident == DEMO_LABELS
    by_key = {p["key"]: p for p in proposals}
    nothing = [
        "patients.id", "patients.state", "patients.created_at", "encounters.kind",
        "encounters.diagnosis_code", "encounters.patient_id", "wardgate_seed.notes",
    ]  # fmt: skip
    for key in nothing:
        assert by_key[key]["label"] is None, key
    provider = by_key["encounters.provider"]
    assert (provider["label"], provider["level"], provider["proposed"]) == ("NAME", "low", None)
    assert {p["level"] for p in proposals if p["proposed"]} == {"high"}


def test_configured_labels_are_shown_and_disagreements_flagged(
    tmp_path: Path, pg_server: LocalPostgres, demo_db: str
) -> None:
    phi = {"patients.ssn": "SSN", "public.patients.city": "ZIP", "patients.shoe_size": "OTHER_ID"}
    config = write_config(tmp_path, pg_server, demo_db, phi=phi)
    result = wardgate("classify", "demo", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["phi"] == {**DEMO_LABELS, "patients.city": "ZIP"}
    lines = {line.split(":")[0].strip(): line for line in result.stdout.splitlines()}
    assert "in config; classify agrees" in lines["patients.ssn"]
    assert "in config; DISAGREES: classify proposes GEO" in lines["patients.city"]
    assert "no such column" in lines["# patients.shoe_size"]


def test_a_big_table_is_sampled_not_read(
    tmp_path: Path, pg_server: LocalPostgres, scratch_db: str
) -> None:
    with psycopg.connect(pg_server.dsn(scratch_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT i AS id, format('%s-%s-%s', 100 + i % 500,"
            " lpad((1 + i % 98)::text, 2, '0'), lpad((1 + i % 9998)::text, 4, '0')) AS col1,"
            " NULL::text AS empty FROM generate_series(1, 100000) AS i"
        )
        pages = conn.execute("SELECT pg_relation_size('big') / 8192").fetchone()
    assert pages is not None and pages[0] > SMALL_PAGES
    config = write_config(tmp_path, pg_server, scratch_db)
    result = wardgate("classify", "demo", "-c", str(config), "--json", "--sample", "20")
    assert result.returncode == 0, result.stderr
    by_key = {p["key"]: p for p in json.loads(result.stdout)["proposals"]}
    assert by_key["big.col1"]["proposed"] == "SSN"
    assert "20/20 sampled values read as SSN" in by_key["big.col1"]["evidence"][0]["detail"]
    assert by_key["big.empty"]["evidence"][0]["detail"] == "no value to sample"


def test_usage_and_connection_problems(tmp_path: Path, pg_server: LocalPostgres) -> None:
    config = write_config(tmp_path, pg_server, "postgres")
    result = wardgate("classify", "nope", "-c", str(config))
    assert result.returncode == 2
    assert "no target named 'nope' in the configuration (targets: demo)" in result.stderr

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = write_config(tmp_path, pg_server, "postgres", port=port)
    result = wardgate("classify", "demo", "-c", str(closed))
    assert result.returncode == 2
    assert "cannot connect to target 'demo'" in result.stderr

    missing = write_config(tmp_path, pg_server, "wardgate_no_such_database")
    result = wardgate("classify", "demo", "-c", str(missing))
    assert result.returncode == 2
    assert "cannot connect to target 'demo'" in result.stderr

    for args in (("-c", str(tmp_path / "absent.yaml")), ("-c", str(config), "--sample", "0")):
        result = wardgate("classify", "demo", *args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
