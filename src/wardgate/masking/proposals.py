"""Proposing labels for a target's columns (``wardgate classify``): what a person reviews and
writes under ``targets[].phi``. Labels in the configuration stay authoritative.

signal      one piece of evidence for a label, with a weight in 0..1: the column's name, its
            comment, its type, the share of sampled values the detectors recognise
confidence  a label's signals combined as independent evidence, 1 - prod(1 - weight), then
            capped where the type, a provider's name or a "not PHI" comment says so
proposal    a column's best label (or none) with its confidence and evidence; confident (0.5
            and over) proposals are written as labels, weaker ones as commented-out notes

Nothing here does I/O: ``masking/cli.py`` reads the catalog and the samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from wardgate.masking.detectors import Scanner, Span
from wardgate.masking.detectors.base import words
from wardgate.masking.entities import Entity
from wardgate.masking.views import DEFAULT_SCHEMA, TEXT
from wardgate.sql.model import SourceColumn

CONFIDENT = 0.5  # and over: written as a label
HIGH = 0.75
NAME_WEIGHT, WEAK_NAME_WEIGHT = 0.6, 0.35
PHI_COMMENT_WEIGHT, COMMENT_WEIGHT = 0.75, 0.45
WHOLE = 0.6  # a value "is" an entity when its spans cover this share of it
MIN_SAMPLES = 3
CAP_NOTE = 0.3  # what a capped label keeps: shown, never written

_ALL = frozenset({*(e.value for e in Entity), TEXT})
_IDS = frozenset({"MRN", "HEALTH_PLAN_ID", "ACCOUNT", "DEVICE_ID", "OTHER_ID", "LICENSE"})
# Which labels a column of each kind of type can hold.
FITS: dict[str, frozenset[str]] = {
    "text": _ALL - {"PHOTO"},
    "date": frozenset({"DATE"}),
    "number": _IDS | {"SSN", "PHONE", "FAX", "ZIP", "AGE_OVER_89", "GEO"},
    "network": frozenset({"IP"}),
    "binary": frozenset({"PHOTO", "BIOMETRIC"}),
    "uuid": _IDS - {"LICENSE"},
    "interval": frozenset({"AGE_OVER_89"}),
    "other": frozenset(),
}
_FAMILIES = ({"GEO", "ZIP"}, {"PHONE", "FAX"})

# Column-name phrases: tokens joined by "_" ("date_of_birth" also matches "dateofbirth").
_NAME_RULES: tuple[tuple[str, float, str], ...] = (
    ("SSN", NAME_WEIGHT, "ssn social_security socsec"),
    ("MRN", NAME_WEIGHT, "mrn medical_record med_rec medrec chart_number chart_no"),
    ("NAME", NAME_WEIGHT, "first_name last_name surname given_name full_name patient_name "
     "middle_name maiden_name family_name fname lname preferred_name nickname employer "
     "guardian_name mother_name father_name spouse_name contact_name next_of_kin nok_name "
     "emergency_contact"),
    ("DATE", NAME_WEIGHT, "dob birth birth_date date_of_birth birthday born"),
    ("AGE_OVER_89", 0.5, "age patient_age age_at"),
    ("GEO", NAME_WEIGHT, "street street_address address addr address_line city town county "
     "precinct neighborhood neighbourhood latitude longitude lat lon lng geolocation "
     "coordinates"),
    ("ZIP", NAME_WEIGHT, "zip zipcode zip_code postal postal_code postcode"),
    ("PHONE", NAME_WEIGHT, "phone telephone mobile cell_phone cellphone phone_number"),
    ("PHONE", WEAK_NAME_WEIGHT, "tel cell contact_number"),
    ("FAX", NAME_WEIGHT, "fax fax_number facsimile"),
    ("EMAIL", NAME_WEIGHT, "email e_mail email_address mail_address"),
    ("HEALTH_PLAN_ID", NAME_WEIGHT, "member_id member_number insurance_id insurance_number "
     "insurance_member_id policy_number policy_no policy_id beneficiary beneficiary_id "
     "subscriber_id subscriber_number medicaid medicaid_id medicare medicare_id mbi hicn "
     "group_number"),
    ("HEALTH_PLAN_ID", WEAK_NAME_WEIGHT, "insurance member"),
    ("ACCOUNT", NAME_WEIGHT, "account_number account_no acct acct_no acct_number bank_account "
     "iban card_number credit_card cc_number"),
    ("ACCOUNT", WEAK_NAME_WEIGHT, "account"),
    ("LICENSE", NAME_WEIGHT, "license licence license_number licence_number drivers_license "
     "driver_license dl_number dea dea_number certificate_number"),
    ("VEHICLE_ID", NAME_WEIGHT, "vin license_plate licence_plate plate plate_number vehicle_id"),
    ("DEVICE_ID", NAME_WEIGHT, "device device_id serial serial_number serial_no imei udi "
     "mac_address"),
    ("URL", NAME_WEIGHT, "url website web_site homepage home_page web_address uri"),
    ("IP", NAME_WEIGHT, "ip ip_address ipaddr ip_addr ipv client_ip remote_addr remote_ip"),
    ("PHOTO", NAME_WEIGHT, "photo photograph image picture headshot portrait avatar selfie "
     "mugshot"),
    ("BIOMETRIC", NAME_WEIGHT, "biometric fingerprint voiceprint voice_print retina iris_scan "
     "palm_print face_template"),
    ("OTHER_ID", 0.5, "passport passport_number national_id"),
    (TEXT, WEAK_NAME_WEIGHT, "notes note body comments comment narrative free_text memo "
     "transcript message history hpi assessment remarks description summary text"),
)  # fmt: skip
# A date tied to a person by the name of a date/time column (admission_date, visit_at, dos).
_EVENTS = frozenset(
    words(
        "death deceased died admission admit admitted discharge discharged visit encounter service "
        "appointment appt procedure surgery dos expired"
    )
)
_DATE_WORDS = frozenset(words("date dt day time datetime timestamp ts at on when"))
_EVENT_TABLES = _EVENTS | {"encounters", "visits", "admissions", "appointments", "procedures"}
_PERSON_TABLES = frozenset(
    words(
        "patient patients person persons people member members contact contacts guardian "
        "guardians relative relatives subscriber subscribers beneficiary beneficiaries client "
        "clients resident residents kin"
    )
)
# A name with one of these words is about the value, not the value: phone_type, ssn_verified.
_NEGATING = frozenset(
    words(
        "type kind status flag count verified consent format preference pref category valid "
        "enabled year length optin optout"
    )
)
# Names of providers and staff are not the patient's identifiers under Safe Harbor.
_STAFF = frozenset(
    words(
        "provider physician doctor clinician nurse attending author surgeon prescriber "
        "practitioner staff referring pcp therapist user username by"
    )
)

_PHI_COMMENT = re.compile(r"\b(?:phi|hipaa)\b", re.IGNORECASE)
_NOT_PHI = re.compile(r"\b(?:not|no|non)[\s-]+phi\b|\bphi\s*:\s*(?:none|no)\b", re.IGNORECASE)
# The first label of a rule is what the words mean; the others are what they may be narrowed to
# ("address": GEO, or ZIP when the column's name says so).
_COMMENT_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), tuple(labels.split()))
    for pattern, labels in (
        (r"\bssn\b|social security", "SSN"),
        (r"\bmrn\b|medical record|\bchart (?:no|number)", "MRN"),
        (r"\bnames?\b", "NAME"),
        (r"\bdates?\b|\bdob\b|birth", "DATE"),
        (r"\bages?\b", "AGE_OVER_89"),
        (r"address|\bstreet\b|\bcity\b|\bcounty\b|\btown\b|geograph", "GEO ZIP"),
        (r"\bzip\b|postal", "ZIP"),
        (r"phone|\bmobile\b", "PHONE FAX"),
        (r"\bfax\b", "FAX"),
        (r"e-?mail", "EMAIL"),
        (r"member id|health plan|insurance|beneficiar|policy (?:no|number)|subscriber|medicaid|"
         r"medicare", "HEALTH_PLAN_ID"),
        (r"\baccount\b|card number", "ACCOUNT"),
        (r"licen[cs]e|certificate|\bdea\b", "LICENSE"),
        (r"\bvin\b|vehicle|plate", "VEHICLE_ID"),
        (r"device|serial|\bimei\b|\budi\b", "DEVICE_ID"),
        (r"\burls?\b|web ?site|web address", "URL"),
        (r"\bip\b", "IP"),
        (r"biometric|fingerprint|voice ?print", "BIOMETRIC"),
        (r"photo|image|picture", "PHOTO"),
        (r"free[- ]text|\bnotes?\b|narrative", TEXT),
    )
)  # fmt: skip
_COMPOUND_ADDRESS = re.compile(r"\b(e-?mail|ip|web|mac)\s+address", re.IGNORECASE)

# The word that tells the detectors what a short value claims to be ("ZIP 06511").
_CONTEXT = {
    "SSN": "SSN", "MRN": "MRN", "HEALTH_PLAN_ID": "member ID", "ACCOUNT": "account",
    "LICENSE": "license", "VEHICLE_ID": "plate", "DEVICE_ID": "serial", "ZIP": "ZIP",
    "FAX": "fax", "PHONE": "phone", "DATE": "DOB", "AGE_OVER_89": "age", "IP": "IP",
    "GEO": "address",
}  # fmt: skip
# Labels whose values the detectors validate: a column of such a name whose samples do not
# read as one is probably something else.
_CHECKABLE = frozenset({"SSN", "PHONE", "FAX", "EMAIL", "IP", "URL", "ZIP", "DATE"})
_SHORT = 64  # longer values are not re-scanned with a context word
_FREE_TEXT_CHARS, _FREE_TEXT_WORDS = 40, 6


@dataclass(frozen=True)
class ColumnInfo:
    schema: str
    table: str
    column: str
    type_name: str  # as PostgreSQL prints it: "character varying(40)", "text[]"
    base_type: str  # pg_type.typname under domains and arrays: "varchar", "timestamptz"
    category: str  # pg_type.typcategory of base_type: S string, D date/time, N numeric ...
    comment: str | None = None

    @property
    def source(self) -> SourceColumn:
        return SourceColumn(self.schema, self.table, self.column)

    @property
    def key(self) -> str:
        return label_key(self.source)

    @property
    def kind(self) -> str:
        if self.category == "S" or self.base_type in ("json", "jsonb", "xml"):
            return "text"
        if self.category == "D" and self.base_type not in ("time", "timetz"):
            return "date"
        named = {"bytea": "binary", "uuid": "uuid", "interval": "interval"}
        if self.base_type in named:
            return named[self.base_type]
        return {"N": "number", "I": "network"}.get(self.category, "other")

    @property
    def text_like(self) -> bool:
        return self.kind == "text"


def label_key(source: SourceColumn) -> str:
    """How the configuration names a column: ``table.column`` in public, else with the schema."""
    if source.schema == DEFAULT_SCHEMA:
        return f"{source.table}.{source.column}"
    return str(source)


@dataclass(frozen=True)
class Signal:
    label: str
    kind: str  # name, comment, type, content, note
    weight: float
    detail: str


@dataclass(frozen=True)
class Proposal:
    column: ColumnInfo
    label: str | None
    confidence: float
    evidence: tuple[Signal, ...] = ()
    alternatives: tuple[tuple[str, float], ...] = ()
    configured: str | None = None

    @property
    def level(self) -> str:
        if self.label is None:
            return "none"
        return "high" if self.confidence >= HIGH else "medium" if self.confident else "low"

    @property
    def confident(self) -> bool:
        return self.label is not None and self.confidence >= CONFIDENT

    @property
    def proposed(self) -> str | None:
        """The label written for this column, or None."""
        return self.label if self.confident else None

    @property
    def agrees(self) -> bool | None:
        return None if self.configured is None else self.configured == self.proposed


@dataclass(frozen=True)
class Report:
    target: str
    proposals: tuple[Proposal, ...]
    missing: tuple[tuple[str, str], ...] = field(default=())  # configured, absent: (key, label)

    def labels(self) -> dict[str, str]:
        """The confident proposals as a ``phi`` mapping."""
        return {p.column.key: p.label for p in self.proposals if p.label and p.confident}


# ---- signals ------------------------------------------------------------------------------------


def name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    spaced = re.sub(r"(?<=[a-z])(?=\d)", "_", spaced.lower())
    return [t for t in re.split(r"[^a-z0-9]+", spaced) if t]


def _find(tokens: Sequence[str], phrase: Sequence[str]) -> tuple[int, int] | None:
    size, joined = len(phrase), "".join(phrase)
    for i, token in enumerate(tokens):
        if list(tokens[i : i + size]) == list(phrase):
            return i, i + size
        if size > 1 and token == joined:
            return i, i + 1
    return None


def name_signals(column: ColumnInfo) -> list[Signal]:
    tokens = name_tokens(column.column)
    if not tokens or _NEGATING & set(tokens):
        return []
    matches: list[tuple[str, float, int, int, str]] = []
    for label, weight, phrases in _NAME_RULES:
        for phrase in phrases.split():
            found = _find(tokens, phrase.split("_"))
            if found is not None:
                matches.append((label, weight, *found, phrase))
    # "insurance_member_id" is one phrase, not also "insurance" and "member_id"
    kept = [m for m in matches if not any(o[2] <= m[2] and m[3] <= o[3] and
                                          o[3] - o[2] > m[3] - m[2] for o in matches)]  # fmt: skip
    signals: dict[str, Signal] = {}
    for label, weight, start, end, phrase in kept:
        # the head noun is last: emergency_contact_phone is a phone
        weight += 0.05 * (end == len(tokens)) + 0.05 * (end - start) / len(tokens)
        signal = Signal(label, "name", round(min(weight, 0.7), 3), f"name matches '{phrase}'")
        if label not in signals or signals[label].weight < signal.weight:
            signals[label] = signal
    table = set(name_tokens(column.table))
    if tokens == ["name"] and "NAME" not in signals:
        person = bool(table & _PERSON_TABLES)
        weight = NAME_WEIGHT if person else WEAK_NAME_WEIGHT
        detail = f"name 'name' in table '{column.table}'"
        signals["NAME"] = Signal("NAME", "name", weight, detail)
    if column.kind == "date" and "DATE" not in signals:
        if _EVENTS & set(tokens):
            word = next(t for t in tokens if t in _EVENTS)
            signals["DATE"] = Signal(
                "DATE", "name", NAME_WEIGHT, f"a date column named for '{word}'"
            )
        elif set(tokens) <= _DATE_WORDS | {"start", "end", "started", "ended"} and (
            table & _EVENT_TABLES
        ):
            detail = f"a date or time in table '{column.table}'"
            signals["DATE"] = Signal("DATE", "name", CONFIDENT, detail)
    return list(signals.values())


def comment_signals(column: ColumnInfo) -> list[Signal]:
    comment = " ".join((column.comment or "").split())
    if not comment or _NOT_PHI.search(comment):
        return []
    phi = bool(_PHI_COMMENT.search(comment))
    weight = PHI_COMMENT_WEIGHT if phi else COMMENT_WEIGHT
    text = _COMPOUND_ADDRESS.sub(r"\1", comment)
    labels: dict[str, float] = {}
    for pattern, found in _COMMENT_RULES:
        if pattern.search(text):
            for i, label in enumerate(found):
                labels[label] = max(labels.get(label, 0.0), weight - 0.05 * bool(i))
    detail = f"comment {_quote(comment)}"
    if not labels and phi:  # PHI of an unnamed kind
        generic = {"text": TEXT, "date": "DATE", "number": "OTHER_ID", "uuid": "OTHER_ID"}
        unnamed = generic.get(column.kind)
        return [] if unnamed is None else [Signal(unnamed, "comment", CONFIDENT, detail)]
    return [Signal(label, "comment", w, detail) for label, w in sorted(labels.items())]


# A type made for the label backs up what the name or the comment says.
_TYPED = {"date": ("DATE",), "network": ("IP",), "binary": ("PHOTO", "BIOMETRIC")}


def type_signals(column: ColumnInfo, claimed: Iterable[str]) -> list[Signal]:
    detail = f"type {column.type_name}"
    labels = _TYPED.get(column.kind, ())
    return [Signal(label, "type", 0.3, detail) for label in labels if label in claimed]


@dataclass(frozen=True)
class ContentStats:
    sampled: int
    whole: Mapping[str, tuple[int, float]]  # label -> (values it covers, mean span score)
    free_text: int = 0  # values that read as prose
    free_text_with_ids: int = 0
    free_text_kinds: frozenset[str] = frozenset()


def content_stats(
    samples: Sequence[str], scanner: Scanner, confirm: Iterable[str] = ()
) -> ContentStats:
    """What the detectors make of sampled values; `confirm` labels are checked again on short
    values with their context word (a bare ``06511`` is not a ZIP code, ``ZIP 06511`` is)."""
    values = [v.strip() for v in samples if v and v.strip()]
    scores: dict[str, list[float]] = {}
    free = with_ids = 0
    kinds: set[str] = set()
    context = [(label, _CONTEXT[label]) for label in confirm if label in _CONTEXT]
    for value in values:
        spans = scanner.scan(value)
        best: dict[str, float] = {}
        for label, score in _covering(spans, 0, value):
            best[label] = max(best.get(label, 0.0), score)
        if len(value) <= _SHORT:
            for label, word in context:
                if label not in best:
                    prefix = f"{word} "
                    found = scanner.scan(prefix + value)
                    for got, score in _covering(found, len(prefix), value):
                        if got == label:
                            best[label] = score
        for label, score in best.items():
            scores.setdefault(label, []).append(score)
        if len(value) >= _FREE_TEXT_CHARS and len(value.split()) >= _FREE_TEXT_WORDS:
            free += 1
            if spans:
                with_ids += 1
                kinds.update(s.entity.value for s in spans)
    whole = {label: (len(s), sum(s) / len(s)) for label, s in scores.items()}
    return ContentStats(len(values), whole, free, with_ids, frozenset(kinds))


def _covering(spans: Sequence[Span], offset: int, value: str) -> Iterable[tuple[str, float]]:
    """Labels whose spans cover most of `value` (which starts at `offset`), with their score."""
    covered: dict[str, tuple[int, float]] = {}
    for span in spans:
        start, end = max(span.start, offset), span.end
        if end > start:
            size, score = covered.get(span.entity.value, (0, 0.0))
            covered[span.entity.value] = (size + end - start, max(score, span.score))
    compact = len(value.replace(" ", "")) or 1
    for label, (size, score) in covered.items():
        if size / compact >= WHOLE or size / len(value) >= WHOLE:
            yield label, score


def content_signals(
    column: ColumnInfo, stats: ContentStats, claimed: Iterable[str]
) -> tuple[list[Signal], dict[str, float]]:
    """Signals from sampled values, and the factors that lower labels the samples contradict."""
    n = stats.sampled
    signals: list[Signal] = []
    factors: dict[str, float] = {}
    if n < MIN_SAMPLES:
        return signals, factors
    claimed = set(claimed)
    for label, (count, score) in stats.whole.items():
        share = count / n
        if share >= (CONFIDENT if label in claimed else WHOLE):
            detail = f"{count}/{n} sampled values read as {label}"
            signals.append(Signal(label, "content", round(share * score, 3), detail))
    if stats.free_text / n >= 0.5 and stats.free_text:
        with_ids = stats.free_text_with_ids / stats.free_text
        kinds = ", ".join(sorted(stats.free_text_kinds)) or "none"
        detail = (f"{stats.free_text}/{n} sampled values are free text, {stats.free_text_with_ids}"
                  f" of them with identifiers ({kinds})")  # fmt: skip
        if len(stats.free_text_kinds) >= 2 and with_ids >= 0.3:
            signals.append(Signal(TEXT, "content", round(0.5 + 0.4 * with_ids, 3), detail))
        elif TEXT in claimed:
            signals.append(Signal(TEXT, "content", 0.0, detail))
    if n >= 5:
        for label in claimed & _CHECKABLE:
            count = stats.whole.get(label, (0, 0.0))[0]
            if count / n < 0.2 and (label != "DATE" or column.kind == "text"):
                factors[label] = 0.5
                detail = f"only {count}/{n} sampled values read as {label}"
                signals.append(Signal(label, "content", 0.0, detail))
    return signals, factors


# ---- combining ----------------------------------------------------------------------------------


def propose(
    column: ColumnInfo,
    samples: Sequence[str] | None,
    scanner: Scanner,
    configured: str | None = None,
    *,
    unsampled: str | None = None,
) -> Proposal:
    """`samples` None: not sampled (a type that is not text, or `unsampled` says why)."""
    signals = name_signals(column) + comment_signals(column)
    claimed = {s.label for s in signals}
    signals += type_signals(column, claimed)
    factors: dict[str, float] = {}
    if samples is not None:
        stats = content_stats(samples, scanner, claimed)
        found, factors = content_signals(column, stats, claimed)
        signals += found
        if stats.sampled == 0:
            signals.append(Signal("", "note", 0.0, "no value to sample"))
    elif unsampled:
        signals.append(Signal("", "note", 0.0, f"not sampled: {unsampled}"))
    fits = FITS[column.kind]
    by_label: dict[str, list[Signal]] = {}
    notes = [s for s in signals if s.kind == "note"]
    for signal in signals:
        if signal.kind == "note":
            continue
        if signal.label not in fits:
            if signal.weight >= CONFIDENT:
                detail = f"{signal.detail}, but type {column.type_name} cannot hold {signal.label}"
                notes.append(Signal(signal.label, "note", 0.0, detail))
            continue
        by_label.setdefault(signal.label, []).append(signal)
    scores = {label: _combine(s.weight for s in group) * factors.get(label, 1.0)
              for label, group in by_label.items()}  # fmt: skip
    caps = _caps(column, scores)
    for label, (cap, why) in caps.items():
        if scores.get(label, 0.0) > cap:
            scores[label] = cap
            by_label.setdefault(label, []).append(Signal(label, "note", 0.0, why))
    scores = {label: score for label, score in scores.items() if score > 0}
    if not scores:
        return Proposal(column, None, 0.0, tuple(notes), (), configured)
    best = max(scores, key=lambda label: (scores[label], label != TEXT))
    others = tuple(
        (label, round(score, 2))
        for label, score in sorted(scores.items(), key=lambda item: -item[1])
        if label != best and not any({best, label} <= family for family in _FAMILIES)
        and score >= CONFIDENT
    )  # fmt: skip
    evidence = tuple(sorted(by_label[best], key=lambda s: -s.weight)) + tuple(notes)
    return Proposal(column, best, round(scores[best], 3), evidence, others, configured)


def _combine(weights: Iterable[float]) -> float:
    return 1.0 - math.prod(1.0 - min(w, 0.99) for w in weights)


def _caps(column: ColumnInfo, scores: Mapping[str, float]) -> dict[str, tuple[float, str]]:
    caps: dict[str, tuple[float, str]] = {}
    tokens = set(name_tokens(column.column))
    if column.comment and _NOT_PHI.search(column.comment):
        why = f"comment {_quote(column.comment)} says it is not PHI"
        caps.update({label: (CAP_NOTE, why) for label in scores})
    if tokens & _STAFF and column.kind == "text":
        why = "a provider's or staff member's name: not the patient's identifier (Safe Harbor)"
        caps["NAME"] = (CAP_NOTE, why)
    if "DATE" in scores and column.kind == "text":
        person = bool({"dob", "birth", "birthday", "born"} & tokens or _EVENTS & tokens)
        if not person and not _PHI_COMMENT.search(column.comment or ""):
            caps["DATE"] = (CAP_NOTE, "dates, but nothing says they are a person's")
    return caps


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def classify(
    columns: Iterable[ColumnInfo],
    samples: Mapping[SourceColumn, Sequence[str] | str],
    scanner: Scanner,
    configured: Mapping[SourceColumn, str],
    target: str = "",
) -> Report:
    """Proposals for every column, sorted by schema, table and column. `samples` holds the
    sampled values of each text-like column, or why it could not be sampled."""
    proposals = []
    seen = set()
    for column in sorted(columns, key=lambda c: (c.schema, c.table, c.column)):
        seen.add(column.source)
        got = samples.get(column.source)
        values, why = (None, got) if isinstance(got, str) else (got, None)
        label = configured.get(column.source)
        proposals.append(propose(column, values, scanner, label, unsampled=why))
    missing = tuple(
        sorted((label_key(source), label) for source, label in configured.items()
               if source not in seen)
    )  # fmt: skip
    return Report(target, tuple(proposals), missing)
