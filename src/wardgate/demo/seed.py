"""Synthetic patients, encounters and clinical notes for the demo and the tests.

Every value is made up but shaped like the real thing, so that detectors have work to do: notes
repeat the patient's name, MRN, phone numbers and dates in the several ways clinicians write
them. Phone numbers stay in the 555-0100..0199 range reserved for fiction and e-mail addresses
in the example domains; SSNs merely look valid. The same seed and count give the same rows with
the same Faker release; another Faker release may draw other names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from faker import Faker
from psycopg import sql
from psycopg.rows import TupleRow

MRN_DIGITS = 8
"""An MRN is exactly this many decimal digits, zero-padded, with no prefix: ``00123456``."""

GENERATOR_VERSION = 1
"""Bump when generation changes, so that databases seeded by older code get seeded again."""

SEED_TABLE = "wardgate_seed"
TABLES = ("clinical_notes", "encounters", "patients")  # in an order they can be dropped in

PHI_COMMENTS: dict[tuple[str, str], str] = {
    ("patients", "mrn"): "PHI: MRN",
    ("patients", "first_name"): "PHI: name",
    ("patients", "last_name"): "PHI: name",
    ("patients", "ssn"): "PHI: SSN",
    ("patients", "date_of_birth"): "PHI: date of birth",
    ("patients", "street"): "PHI: address",
    ("patients", "city"): "PHI: address",
    ("patients", "zip"): "PHI: address",
    ("patients", "phone"): "PHI: phone",
    ("patients", "email"): "PHI: email",
    ("patients", "insurance_member_id"): "PHI: health plan member ID",
    ("encounters", "encounter_date"): "PHI: date of service",
    ("clinical_notes", "written_at"): "PHI: date of service",
    ("clinical_notes", "body"): "PHI: free text, may hold any identifier",
}

DEMO_LABELS: dict[str, str] = {
    "patients.mrn": "MRN",
    "patients.first_name": "NAME",
    "patients.last_name": "NAME",
    "patients.ssn": "SSN",
    "patients.date_of_birth": "DATE",
    "patients.street": "GEO",
    "patients.city": "GEO",
    "patients.zip": "ZIP",
    "patients.phone": "PHONE",
    "patients.email": "EMAIL",
    "patients.insurance_member_id": "HEALTH_PLAN_ID",
    "encounters.encounter_date": "DATE",
    "clinical_notes.written_at": "DATE",
    "clinical_notes.body": "TEXT",
}
"""The demo schema's PHI as masking labels (``targets[].phi``); the comments above say the same."""

_SCHEMA = """
CREATE TABLE patients (
    id serial PRIMARY KEY,
    mrn text NOT NULL UNIQUE,
    first_name text NOT NULL,
    last_name text NOT NULL,
    ssn text NOT NULL,
    date_of_birth date NOT NULL,
    street text NOT NULL,
    city text NOT NULL,
    state text NOT NULL,
    zip text NOT NULL,
    phone text NOT NULL,
    email text NOT NULL,
    insurance_member_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE encounters (
    id serial PRIMARY KEY,
    patient_id integer NOT NULL,
    encounter_date timestamptz NOT NULL,
    kind text NOT NULL,
    provider text NOT NULL,
    diagnosis_code text NOT NULL
);
CREATE TABLE clinical_notes (
    id serial PRIMARY KEY,
    encounter_id integer NOT NULL,
    patient_id integer NOT NULL,
    written_at timestamptz NOT NULL,
    body text NOT NULL
);
"""

# Added after loading, because checking keys in bulk is much faster than row by row.
_CONSTRAINTS = """
ALTER TABLE encounters ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE clinical_notes ADD FOREIGN KEY (encounter_id) REFERENCES encounters (id);
ALTER TABLE clinical_notes ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
CREATE INDEX ON encounters (patient_id);
CREATE INDEX ON clinical_notes (patient_id);
CREATE INDEX ON clinical_notes (encounter_id);
"""

_SEED_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {SEED_TABLE} (
    seed bigint NOT NULL,
    patients integer NOT NULL,
    encounters integer NOT NULL,
    notes integer NOT NULL,
    generator integer NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now()
)
"""

_COLUMNS = {
    "patients": (
        "id, mrn, first_name, last_name, ssn, date_of_birth, street, city, state, zip, phone, "
        "email, insurance_member_id, created_at"
    ),
    "encounters": "id, patient_id, encounter_date, kind, provider, diagnosis_code",
    "clinical_notes": "id, encounter_id, patient_id, written_at, body",
}

_Row = tuple[Any, ...]
_Conn = psycopg.Connection[TupleRow]


class SeedError(RuntimeError):
    pass


@dataclass(frozen=True)
class SeedSummary:
    seed: int
    patients: int
    encounters: int
    notes: int
    created: bool  # False when the database already held exactly this seed
    seconds: float


def seed(dsn: str, *, patients: int = 10_000, seed: int = 20261129) -> SeedSummary:
    """Fill the database at `dsn` with synthetic records unless it already holds this seed.

    A database seeded with another seed or count is emptied and seeded again, in one
    transaction. Tables of the same names that this module did not create raise `SeedError`.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    started = time.monotonic()
    wanted = (seed, patients, GENERATOR_VERSION)
    with psycopg.connect(dsn) as conn:
        # Concurrent seeders of one database queue here instead of failing on CREATE TABLE.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SEED_TABLE,))
        recorded = _recorded(conn)
        if recorded is not None and (recorded[0], recorded[1], recorded[4]) == wanted:
            _, _, encounters, notes, _ = recorded
            return SeedSummary(seed, patients, encounters, notes, False, _since(started))
        if recorded is None and (present := [t for t in TABLES if _exists(conn, t)]):
            raise SeedError(f"tables not created by wardgate seed exist: {', '.join(present)}")
        for table in TABLES:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        conn.execute(_SEED_SCHEMA)
        conn.execute(f"DELETE FROM {SEED_TABLE}")
        conn.execute(_SCHEMA)
        tables = _Generator(seed).generate(patients)
        for table, rows in tables.items():
            _copy(conn, table, rows)
            conn.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), {})").format(
                    sql.Literal(table), sql.Literal(len(rows))
                )
            )
        conn.execute(_CONSTRAINTS)
        for (table, column), comment in PHI_COMMENTS.items():
            conn.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    sql.Identifier(table), sql.Identifier(column), sql.Literal(comment)
                )
            )
        counts = (len(tables["encounters"]), len(tables["clinical_notes"]))
        conn.execute(
            f"INSERT INTO {SEED_TABLE} (seed, patients, encounters, notes, generator)"
            " VALUES (%s, %s, %s, %s, %s)",
            (seed, patients, *counts, GENERATOR_VERSION),
        )
        conn.execute("ANALYZE patients, encounters, clinical_notes")
    return SeedSummary(seed, patients, *counts, True, _since(started))


def create_database_if_missing(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # created since we looked
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _recorded(conn: _Conn) -> tuple[int, int, int, int, int] | None:
    if not _exists(conn, SEED_TABLE):
        return None
    query = f"SELECT seed, patients, encounters, notes, generator FROM {SEED_TABLE}"
    row = conn.execute(query).fetchone()
    if row is None:
        return None
    seed, patients, encounters, notes, generator = (int(value) for value in row)
    return seed, patients, encounters, notes, generator


def _exists(conn: _Conn, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _copy(conn: _Conn, table: str, rows: list[_Row]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(_COLUMNS[table])
    )
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _since(started: float) -> float:
    return time.monotonic() - started


# Vocabulary for the generator. Codes are ICD-10-CM.
_DIAGNOSES = (
    ("E11.9", "type 2 diabetes mellitus without complications"),
    ("I10", "essential hypertension"),
    ("J06.9", "acute upper respiratory infection"),
    ("J45.909", "asthma, uncomplicated"),
    ("M54.50", "low back pain"),
    ("F41.1", "generalized anxiety disorder"),
    ("F32.A", "depression, unspecified"),
    ("E78.5", "hyperlipidemia"),
    ("N39.0", "urinary tract infection"),
    ("K21.9", "gastro-esophageal reflux disease"),
    ("R07.9", "chest pain, unspecified"),
    ("S93.401A", "sprain of right ankle ligament, initial encounter"),
    ("Z00.00", "general adult medical examination"),
    ("J02.9", "acute pharyngitis"),
    ("I48.91", "atrial fibrillation"),
    ("E03.9", "hypothyroidism"),
    ("G43.909", "migraine"),
    ("L03.115", "cellulitis of right lower limb"),
    ("U07.1", "COVID-19"),
)
_KINDS = ("office visit", "follow-up", "telehealth", "lab", "emergency", "inpatient")
_KIND_WEIGHTS = (40, 20, 15, 12, 8, 5)
_CREDENTIALS = ("MD", "MD", "DO", "NP", "PA-C")
_SYMPTOMS = (
    "cough", "fatigue", "headache", "dizziness", "nausea", "intermittent chest tightness",
    "shortness of breath on exertion", "low back pain", "sore throat", "palpitations",
    "poor sleep", "dysuria", "swelling in the right ankle", "fever to 101.2F",
)  # fmt: skip
_PLANS = (
    "continue current meds", "start metformin 500 mg BID", "increase lisinopril to 20 mg",
    "CBC and BMP ordered", "PT referral placed", "rest, fluids, ibuprofen PRN",
    "ECG today, Holter monitor ordered", "sertraline 50 mg daily, reassess in 6 weeks",
    "amoxicillin 500 mg TID x 10 days", "lifestyle counseling, recheck A1c in 3 months",
)  # fmt: skip
_MEDS = (
    "metformin", "lisinopril", "atorvastatin", "levothyroxine", "albuterol inhaler",
    "sertraline", "omeprazole", "amlodipine", "apixaban", "sumatriptan",
)  # fmt: skip
_LABS = (
    "A1c 7.9%", "LDL 162 mg/dL", "TSH 6.1 mIU/L", "Hgb 10.8 g/dL", "creatinine 1.4 mg/dL",
    "UA positive for nitrites", "rapid strep negative", "potassium 3.2 mmol/L",
)  # fmt: skip
_RELATIONS = ("daughter", "son", "wife", "husband", "mother", "father", "brother", "caregiver")
_GUARDIANS = ("mother", "father", "grandmother", "caregiver")
_PREGNANCY = ("Z34.90", "supervision of normal pregnancy")
_DISPOSITIONS = ("discharged home", "admitted to medicine", "transferred to cardiology", "AMA")
_RELATION_SEX = {
    "daughter": "F", "wife": "F", "mother": "F", "sister": "F", "grandmother": "F",
    "son": "M", "husband": "M", "father": "M", "brother": "M",
}  # fmt: skip
_VOCABULARY = {
    "symptom": _SYMPTOMS,
    "plan": _PLANS,
    "med": _MEDS,
    "lab": _LABS,
    "dispo": _DISPOSITIONS,
}
# Plausible geographic area codes: not N11, N9X, N00, 555 or a toll-free 8NN.
_AREA_CODES = tuple(
    code
    for code in range(201, 990)
    if code % 100 not in (0, 11)
    and code // 10 % 10 != 9
    and code not in (555, *range(833, 899, 11))
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
# Areas 000, 666 and 900-999 are never issued, nor group 00 or serial 0000.
_SSN_AREAS = tuple(area for area in range(1, 900) if area != 666)
_PAYERS = ("BCX", "AET", "UHC", "CGN", "HUM", "MCD", "KPX")

_START = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
_END = dt.datetime(2025, 10, 31, tzinfo=dt.UTC)
_OLDEST = dt.date(1930, 1, 1)
_YOUNGEST = dt.date(2023, 12, 31)

_INTAKE = (
    "New patient intake: {full}, DOB {dob_iso}, SSN {ssn}. Address {street}, {city}, {state} "
    "{zip}. Insurance member ID {member_id}. Preferred contact {phone}, {email}."
)
_INTAKE_LAST4 = (
    "Registration for {last}, {first} (MRN {mrn}). DOB {dob_us}; SSN ending {ssn4} on file. "
    "Emergency contact: {contact} ({relation}) {alt_phone}."
)
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "office visit": (
        "Pt {full} (MRN {mrn}) seen {date_iso} for {dx}. Vitals stable. Callback {phone}.",
        "S: {first} reports {symptom} x {days} days. O: BP {bp}, HR {hr}. A: {code} {dx}. "
        "P: {plan}. RTC {followup} or call {phone}.",
    ),
    "follow-up": (
        "{last}, {first} - DOB {dob_us}. Follow-up {date_long} for {dx} ({code}). "
        "{plan}. Next visit {followup}.",
        "F/u visit {date_short}: {first} {last_initial}. doing better, {symptom} improving. "
        "Plan: {plan}. -- {provider}",
    ),
    "telehealth": (
        "Telehealth visit {date_iso}. Identity verified with DOB {dob_us} and last 4 of SSN "
        "({ssn4}). {first} {last} reports {symptom}. Summary sent to {email}.",
        "Video visit w/ {full}, {age}yo {sex}, MRN:{mrn}. {relation} {contact} present, "
        "reachable at {alt_phone}. A/P: {dx}; {plan}.",
    ),
    "lab": (
        "Lab results for MRN#{mrn} ({last}) reviewed {date_us}: {lab}. Left VM at {phone} "
        "asking pt to call back.",
        "Results called to {first} {last} at {phone} on {date_long}: {lab}. Pt verbalized "
        "understanding.",
    ),
    "emergency": (
        "ED note {date_iso} {time}: {age} y/o {sex} BIB {relation} ({contact}, {alt_phone}). "
        "CC: {symptom}. Dx {code}. Dispo: {dispo}. Pt {full}, MRN {mrn}.",
    ),
    "inpatient": (
        "Discharge summary - {full}, MRN {mrn}, DOB {dob_iso}. Admitted {admitted}, discharged "
        "{date_us}. Dx: {dx}. Meds: {med}. F/u with {provider} on {followup}; questions to "
        "{phone}.",
    ),
    "addendum": (
        "Addendum {date_short}: pt {first} {last_initial}. called from {phone} re: refill of "
        "{med}. Routed to {provider}.",
        "Addendum: spoke with pt's {relation} {contact} at {alt_phone} about {first}'s {dx}; "
        "appointment moved to {followup}.",
    ),
}


@dataclass(frozen=True)
class _Patient:
    id: int
    mrn: str
    first: str
    last: str
    sex: str
    ssn: str
    dob: dt.date
    street: str
    city: str
    state: str
    zip: str
    phone: str
    email: str
    member_id: str


@dataclass(frozen=True)
class _Visit:
    patient: _Patient
    when: dt.datetime
    code: str
    dx: str
    provider: str


class _Generator:
    """Draws every choice from one seeded `random.Random`, after drawing name pools from Faker.

    Faker picks each name by a weighted draw costing ~100 us; pools drawn once keep its
    frequencies for a fraction of the cost.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.first = {
            "F": [fake.first_name_female() for _ in range(600)],
            "M": [fake.first_name_male() for _ in range(600)],
        }
        self.last = [fake.last_name() for _ in range(1500)]
        self.streets = [fake.street_name() for _ in range(800)]
        self.places = []
        for _ in range(400):
            state = fake.state_abbr(include_territories=False)
            self.places.append((fake.city(), state, fake.zipcode_in_state(state)))
        self.providers = [
            f"Dr. {fake.first_name()} {fake.last_name()}, {self.rng.choice(_CREDENTIALS)}"
            for _ in range(60)
        ]

    def generate(self, count: int) -> dict[str, list[_Row]]:
        rng = self.rng
        patients = [self._patient(i + 1, mrn) for i, mrn in enumerate(self._mrns(count))]
        encounters: list[_Row] = []
        notes: list[_Row] = []
        for patient in patients:
            first_day = max(_START, dt.datetime.combine(patient.dob, dt.time(), dt.UTC))
            times = sorted(self._instant(first_day) for _ in range(rng.randint(1, 5)))
            for number, when in enumerate(times):
                kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
                code, dx = rng.choice(_DIAGNOSES)
                if (
                    patient.sex == "F"
                    and 16 <= _age(patient.dob, when) <= 45
                    and rng.random() < 0.1
                ):
                    code, dx = _PREGNANCY
                visit = _Visit(patient, when, code, dx, rng.choice(self.providers))
                encounter = (
                    len(encounters) + 1,
                    patient.id,
                    when,
                    kind,
                    visit.provider,
                    visit.code,
                )
                encounters.append(encounter)
                if number == 0:
                    template = _INTAKE if rng.random() < 0.3 else _INTAKE_LAST4
                else:
                    template = rng.choice(_TEMPLATES[kind])
                written = when + dt.timedelta(minutes=rng.randint(5, 600))
                body = template.format_map(_NoteFields(self, visit))
                notes.append((len(notes) + 1, len(encounters), patient.id, written, body))
                if rng.random() < 0.15:
                    written += dt.timedelta(hours=rng.randint(2, 96))
                    later = _Visit(patient, written, visit.code, visit.dx, visit.provider)
                    body = rng.choice(_TEMPLATES["addendum"]).format_map(_NoteFields(self, later))
                    notes.append((len(notes) + 1, len(encounters), patient.id, written, body))
        return {
            "patients": [self._patient_row(p) for p in patients],
            "encounters": encounters,
            "clinical_notes": notes,
        }

    def _mrns(self, count: int) -> list[str]:
        numbers = self.rng.sample(range(1, 10**MRN_DIGITS), count)
        return [f"{number:0{MRN_DIGITS}d}" for number in numbers]

    def _patient(self, number: int, mrn: str) -> _Patient:
        rng = self.rng
        sex = rng.choice("FM")
        first, last = rng.choice(self.first[sex]), rng.choice(self.last)
        city, state, zip_code = rng.choice(self.places)
        handle = "".join(c for c in f"{first}.{last}" if c.isalnum() or c == ".").lower()
        return _Patient(
            id=number,
            mrn=mrn,
            first=first,
            last=last,
            sex=sex,
            ssn=f"{rng.choice(_SSN_AREAS):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
            dob=_OLDEST + dt.timedelta(days=rng.randrange((_YOUNGEST - _OLDEST).days)),
            street=f"{rng.randint(1, 9999)} {rng.choice(self.streets)}",
            city=city,
            state=state,
            zip=zip_code,
            phone=self.phone(),
            email=f"{handle}{rng.randint(1, 99)}@{rng.choice(_EMAIL_DOMAINS)}",
            member_id=f"{rng.choice(_PAYERS)}{rng.randrange(10**9):09d}",
        )

    def _patient_row(self, p: _Patient) -> _Row:
        created = _START + dt.timedelta(seconds=self.rng.randrange(86_400 * 365))
        return (
            p.id, p.mrn, p.first, p.last, p.ssn, p.dob, p.street, p.city, p.state, p.zip,
            p.phone, p.email, p.member_id, created,
        )  # fmt: skip

    def phone(self) -> str:
        """A number in the range reserved for fiction, under a plausible area code."""
        area = self.rng.choice(_AREA_CODES)
        return f"{area}-555-01{self.rng.randint(0, 99):02d}"

    def _instant(self, start: dt.datetime) -> dt.datetime:
        seconds = self.rng.randrange(int((_END - start).total_seconds()))
        return start + dt.timedelta(seconds=seconds)


class _NoteFields(dict[str, object]):
    """A template's fields, each computed on first use, so a note pays only for what it says."""

    def __init__(self, generator: _Generator, visit: _Visit) -> None:
        super().__init__()
        self.generator = generator
        self.visit = visit

    def __missing__(self, key: str) -> object:
        self[key] = value = self._compute(key)
        return value

    def _compute(self, key: str) -> object:
        p, when, rng = self.visit.patient, self.visit.when, self.generator.rng
        day = when.date()
        match key:
            case "full":
                return f"{p.first} {p.last}"
            case "first" | "last" | "mrn" | "ssn" | "sex" | "email" | "member_id":
                return getattr(p, key)
            case "street" | "city" | "state" | "zip":
                return getattr(p, key)
            case "last_initial":
                return p.last[0]
            case "ssn4":
                return p.ssn[-4:]
            case "dob_iso":
                return p.dob.isoformat()
            case "dob_us":
                return f"{p.dob:%m/%d/%Y}"
            case "age":
                return _age(p.dob, when)
            case "phone":
                return _format_phone(p.phone, rng.randrange(5))
            case "alt_phone":
                return _format_phone(self.generator.phone(), rng.randrange(5))
            case "relation":
                return rng.choice(_RELATIONS if _age(p.dob, when) >= 18 else _GUARDIANS)
            case "contact":
                sex = _RELATION_SEX.get(str(self["relation"])) or rng.choice("FM")
                return f"{rng.choice(self.generator.first[sex])} {p.last}"
            case "date_iso":
                return day.isoformat()
            case "date_us":
                return f"{day:%m/%d/%Y}"
            case "date_short":
                return f"{day.month}/{day.day}/{day:%y}"
            case "date_long":
                return f"{day:%B} {day.day}, {day.year}"
            case "time":
                return f"{when:%H:%M}"
            case "admitted":
                return (day - dt.timedelta(days=rng.randint(1, 9))).isoformat()
            case "followup":
                later = day + dt.timedelta(days=rng.choice((7, 14, 30, 90)))
                return f"{later.month}/{later.day}"
            case "dx" | "code" | "provider":
                return getattr(self.visit, key)
            case "bp":
                return f"{rng.randint(104, 168)}/{rng.randint(62, 102)}"
            case "hr":
                return rng.randint(54, 118)
            case "days":
                return rng.randint(2, 21)
        return rng.choice(_VOCABULARY[key])


def _age(born: dt.date, when: dt.datetime) -> int:
    return when.year - born.year - ((when.month, when.day) < (born.month, born.day))


def _format_phone(phone: str, style: int) -> str:
    area, exchange, line = phone.split("-")
    return (
        f"({area}) {exchange}-{line}",
        phone,
        f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}",
        f"+1 {area} {exchange} {line}",
    )[style]


GATEWAY_LOGIN = "wardgate_gateway"
"""The demo gateway's login to its target: not a superuser, and holding no role that reaches
the server's files or programs (docs/configuration.md, least privilege upstream)."""


def create_gateway_login(admin_dsn: str, password: str, login: str = GATEWAY_LOGIN) -> None:
    """Create (or reset the password of) ``login`` in the database of ``admin_dsn`` with what
    the demo's roles need through the gateway: read and write the seeded tables and their
    sequences, nothing more (no CREATE, no superuser, CREATEROLE, CREATEDB or replication).
    Run after `seed`, which may have re-created the tables."""
    role = sql.Identifier(login)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS PASSWORD {}"
            ).format(role, sql.Literal(password))
        )
        database = conn.info.dbname
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(database), role))  # fmt: skip
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        tables = sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(tables, role)
        )
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}")
                     .format(role))  # fmt: skip
