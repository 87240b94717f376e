"""A labelled synthetic corpus of clinical notes, for measuring the detectors.

Every note is built from a template whose fields are drawn from one seeded `random.Random`, and
every identifier put into it is recorded as a gold span. Names come from the detector's own
lists plus made-up surnames it has never seen (which only context can find); filler sentences
carry the things that must not be found: vitals, doses, lab values, ICD codes, bare years,
eponyms, numbers that fail their validators and names that are common words.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wardgate.masking.detectors.base import Span
from wardgate.masking.detectors.names import name_lists
from wardgate.masking.detectors.validators import luhn_ok, nanp_ok
from wardgate.masking.entities import Entity


@dataclass(frozen=True)
class Gold:
    entity: Entity
    start: int
    end: int


@dataclass(frozen=True)
class Note:
    text: str
    gold: tuple[Gold, ...]


_TEMPLATES = (
    "New patient intake: {full}, DOB {date_iso}, SSN {ssn}. Address {street}, {city}, {state} "
    "{zip}. Insurance member ID {member_id}. Preferred contact {phone}, {email}.",
    "Registration for {last_first} (MRN {mrn}). DOB {date_us}; SSN ending {ssn4} on file. "
    "Emergency contact: {contact} ({relation}) {phone}.",
    "Pt {full} (MRN {mrn}) seen {date_iso} for {dx}. Vitals stable. Callback {phone}.",
    "S: {first} reports {symptom} x {days} days. O: BP {bp}, HR {hr}. A: {code} {dx}. P: {plan}. "
    "RTC {month_day} or call {phone}.",
    "{last_first} - DOB {date_us}. Follow-up {date_long} for {dx} ({code}). {plan}. Next visit "
    "{month_day}.",
    "Telehealth visit {date_iso}. Identity verified with DOB {date_us} and last 4 of SSN ({ssn4})."
    " {full} reports {symptom}. Summary sent to {email}.",
    "Video visit w/ {full}, {age}yo {sex}, MRN:{mrn}. {relation} {contact} present, reachable at "
    "{phone}. A/P: {dx}; {plan}.",
    "Lab results for MRN#{mrn} ({last}) reviewed {date_us}: {lab}. Left VM at {phone} asking pt "
    "to call back.",
    "ED note {date_iso} {time}: {old_age} y/o {sex} BIB {relation} ({contact}, {phone}). CC: "
    "{symptom}. Dx {code}. Dispo: {dispo}. Pt {full}, MRN {mrn}.",
    "Discharge summary - {full}, MRN {mrn}, DOB {date_iso}. Admitted {date_iso}, discharged "
    "{date_us}. Dx: {dx}. Meds: {med}. F/u with {provider} on {month_day}; questions to {phone}.",
    "Addendum {date_short}: pt {first} {initial}. called from {phone} re: refill of {med}. "
    "Routed to {provider}.",
    "Spoke with pt's {relation} {contact} at {phone} about {first}'s {dx}; appointment moved to "
    "{month_day}.",
    "Referral faxed to {provider} at fax {fax}. Patient {title} {rare_last} (medical record no. "
    "{mrn}) to be seen {date_long}.",
    "Consent signed by {title} {last}, SSN {ssn}, phone {phone}. Portal: {url} (login from {ip}).",
    "{old_age} year old {sex} with {dx}. Lives at {street}, {city}, {state} {zip}. Daughter "
    "{contact} ({email}) is health care proxy. Chart # {mrn}.",
    "Prior auth: member ID {member_id}, NPI {npi}, ordering {provider}. Card on file "
    "{card}. Call {phone} with questions.",
    "Dr. {rare_first} {rare_last} reviewed imaging on {date_long}; discussed with {full} and "
    "wife {contact}. Return {month_day}.",
    "Mrs. {rare_last} ({age} y/o) reports {symptom}. Husband {first_m} at {phone}. MRN {mrn}.",
)
_FILLER = (
    "BP {bp}, HR {hr}, SpO2 97% on RA.",
    "Continue metformin 500 mg BID and lisinopril 20 mg daily.",
    "A1c 7.9% in 2024, down from 8.4% in 2023.",
    "Grace period for the prior auth ends Friday.",
    "Will follow up after the holidays.",
    "Frank blood noted on exam; sharp pain in RLQ, short of breath on stairs.",
    "History of Bell's palsy and Crohn's disease; Foley catheter removed.",
    "Holter monitor ordered. Parkinson disease stable on carbidopa.",
    "Patient is a {age} y/o {sex} in no acute distress.",
    "Old chart lists SSN as 000-12-3456 and 666-12-3456, both invalid.",
    "Test card 4111 1111 1111 1112 declined. Ref 123-456-7890.",
    "Room 4521, bed 2. Weight 82.5 kg, height 175 cm.",
    "Dx codes {code} and E11.9 reviewed; ICD-10 updated 2025.",
    "May need a repeat CBC. Mark the site before the procedure.",
    "Brown discharge resolved. Green stool, no blood.",
    "Ratio 1/2 tab at bedtime; 2/3 of doses taken.",
    "Version 2.1.4 of the order set; protocol step 10.2.",
    "Lipids: LDL 162 mg/dL, HDL 38, TG 210.",
)
_DX = (
    "essential hypertension",
    "type 2 diabetes",
    "asthma",
    "low back pain",
    "migraine",
    "hyperlipidemia",
    "GERD",
    "atrial fibrillation",
    "hypothyroidism",
    "cellulitis",
)
_CODES = ("I10", "E11.9", "J45.909", "M54.50", "G43.909", "E78.5", "K21.9", "I48.91", "E03.9")
_SYMPTOMS = (
    "cough",
    "fatigue",
    "headache",
    "dizziness",
    "nausea",
    "chest tightness",
    "shortness of breath",
    "sore throat",
    "palpitations",
    "poor sleep",
)
_PLANS = (
    "continue current meds",
    "start metformin 500 mg BID",
    "CBC and BMP ordered",
    "PT referral placed",
    "rest, fluids, ibuprofen PRN",
    "ECG today",
)
_MEDS = ("metformin", "lisinopril", "atorvastatin", "levothyroxine", "albuterol", "sertraline")
_LABS = ("A1c 7.9%", "LDL 162 mg/dL", "TSH 6.1 mIU/L", "Hgb 10.8 g/dL", "potassium 3.2 mmol/L")
_RELATIONS = ("daughter", "son", "wife", "husband", "mother", "father", "caregiver")
_DISPO = ("discharged home", "admitted to medicine", "transferred to cardiology")
_STREET_WORDS = (
    "Oak",
    "Maple",
    "Cedar",
    "Lincoln",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "River",
    "Elm",
    "Chestnut",
    "Highland",
    "Meadow",
    "Forest",
)
_STREET_KINDS = (
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Lane",
    "Drive",
    "Blvd",
    "Court",
    "Way",
    "Place",
    "Terrace",
    "Parkway",
    "Circle",
)
_CITY_PREFIX = ("Port", "East", "West", "North", "South", "New", "Lake", "Fort", "Mount")
_STATES = ("NY", "CA", "TX", "FL", "MA", "WA", "IL", "OH", "GA", "NC", "PA", "AZ", "MN", "OR")
_TITLES = ("Mr.", "Ms.", "Mrs.", "Dr.")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SYLLABLES = ("ka", "zu", "mbe", "ol", "ow", "ade", "ny", "ek", "wo", "chu", "ra", "vi", "tz",
              "quo", "ba", "dri", "lun", "ix", "pe", "sha")  # fmt: skip

Field = Callable[["_Builder"], tuple[str, Entity | None]]


@dataclass
class _Builder:
    rng: random.Random
    first: list[str]
    last: list[str]
    state: dict[str, tuple[str, Entity | None]] = field(default_factory=dict)

    def pick(self, values: tuple[str, ...] | list[str] | str) -> str:
        return values[self.rng.randrange(len(values))]


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _rare(b: _Builder) -> str:
    known = set(name_lists()[0]) | set(name_lists()[1])
    while True:
        word = "".join(b.pick(_SYLLABLES) for _ in range(b.rng.randint(2, 3)))
        if word not in known and len(word) >= 4:
            return _cap(word)


def _ssn_digits(b: _Builder) -> tuple[str, str, str]:
    area = b.rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{b.rng.randint(1, 99):02d}", f"{b.rng.randint(1, 9999):04d}"


def _phone(b: _Builder) -> str:
    while True:
        area, exchange = str(b.rng.randint(201, 989)), str(b.rng.randint(200, 999))
        if nanp_ok(area, exchange):
            break
    line = f"{b.rng.randint(0, 9999):04d}"
    style = b.rng.randrange(6)
    return (
        f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}", f"+1 {area} {exchange} {line}", f"1-{area}-{exchange}-{line}",
    )[style]  # fmt: skip


def _date(b: _Builder) -> tuple[int, int, int]:
    return b.rng.randint(1930, 2025), b.rng.randint(1, 12), b.rng.randint(1, 28)


def _luhn_number(b: _Builder, prefix: str, length: int) -> str:
    body = prefix + "".join(str(b.rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in string.digits if luhn_ok(body + d))


def _fields() -> dict[str, Field]:
    def name(kind: str) -> Field:
        def make(b: _Builder) -> tuple[str, Entity | None]:
            first, last = b.pick(b.first), b.pick(b.last)
            text = {"full": f"{first} {last}", "first": first, "last": last,
                    "last_first": f"{last}, {first}"}[kind]  # fmt: skip
            return text, Entity.NAME

        return make

    def ssn(b: _Builder) -> tuple[str, Entity | None]:
        a, g, s = _ssn_digits(b)
        style = b.rng.choices((0, 1, 2), (7, 1, 2))[0]
        return ("-", " ", "")[style].join((a, g, s)), Entity.SSN

    def simple(entity: Entity | None, make: Callable[[_Builder], str]) -> Field:
        return lambda b: (make(b), entity)

    def date_iso(b: _Builder) -> str:
        y, m, d = _date(b)
        return f"{y}-{m:02d}-{d:02d}"

    def date_us(b: _Builder) -> str:
        y, m, d = _date(b)
        return f"{m:02d}/{d:02d}/{y}"

    def date_short(b: _Builder) -> str:
        y, m, d = _date(b)
        return f"{m}/{d}/{y % 100:02d}"

    def date_long(b: _Builder) -> str:
        y, m, d = _date(b)
        return b.rng.choice((f"{_MONTH_NAMES[m - 1]} {d}, {y}", f"{d} {_MONTH_NAMES[m - 1]} {y}",
                             f"{_MONTH_NAMES[m - 1][:3]} {d}, {y}"))  # fmt: skip

    def month_day(b: _Builder) -> str:
        return f"{b.rng.randint(1, 12)}/{b.rng.randint(1, 28)}"

    def street(b: _Builder) -> str:
        return f"{b.rng.randint(1, 9999)} {b.pick(_STREET_WORDS)} {b.pick(_STREET_KINDS)}"

    def city(b: _Builder) -> str:
        return f"{b.pick(_CITY_PREFIX)} {b.pick(b.first)}"

    def provider(b: _Builder) -> tuple[str, Entity | None]:
        return f"{b.pick(b.first)} {b.pick(b.last)}", Entity.NAME

    return {
        "full": name("full"),
        "first": name("first"),
        "first_m": name("first"),
        "last": name("last"),
        "last_first": name("last_first"),
        "contact": name("full"),
        "rare_last": simple(Entity.NAME, _rare),
        "rare_first": simple(Entity.NAME, _rare),
        "initial": simple(None, lambda b: b.pick(string.ascii_uppercase)),
        "title": simple(None, lambda b: b.pick(_TITLES).rstrip(".")),
        "ssn": ssn,
        "ssn4": simple(Entity.SSN, lambda b: _ssn_digits(b)[2]),
        "phone": simple(Entity.PHONE, _phone),
        "fax": simple(Entity.FAX, _phone),
        "email": simple(Entity.EMAIL, lambda b: (
            f"{b.pick(b.first).lower()}.{b.pick(b.last).lower()}{b.rng.randint(1, 99)}"
            f"@{b.pick(_DOMAINS)}")),
        "mrn": simple(Entity.MRN, lambda b: f"{b.rng.randrange(1, 10**8):08d}"),
        "date_iso": simple(Entity.DATE, date_iso),
        "date_us": simple(Entity.DATE, date_us),
        "date_short": simple(Entity.DATE, date_short),
        "date_long": simple(Entity.DATE, date_long),
        "month_day": simple(Entity.DATE, month_day),
        "street": simple(Entity.GEO, street),
        "city": simple(Entity.GEO, city),
        "state": simple(None, lambda b: b.pick(_STATES)),
        "zip": simple(Entity.ZIP, lambda b: f"{b.rng.randint(1001, 99950):05d}"),
        "member_id": simple(Entity.HEALTH_PLAN_ID, lambda b: (
            f"{b.pick(('BCX', 'AET', 'UHC', 'HUM'))}{b.rng.randrange(10**9):09d}")),
        "npi": simple(Entity.OTHER_ID, lambda b: _luhn_number(b, "80840" + b.pick(("1", "2")),
                                                              15)[5:]),
        "card": simple(Entity.ACCOUNT, lambda b: _luhn_number(b, "4", 16)),
        "url": simple(Entity.URL, lambda b: (
            f"https://portal.{b.pick(_DOMAINS)}/patient/{b.rng.randrange(10**6)}")),
        "ip": simple(Entity.IP, lambda b: (
            f"{b.rng.randint(11, 223)}.{b.rng.randrange(256)}.{b.rng.randrange(256)}"
            f".{b.rng.randint(1, 254)}")),
        "age": simple(None, lambda b: str(b.rng.randint(18, 89))),
        "old_age": simple(Entity.AGE_OVER_89, lambda b: str(b.rng.randint(90, 104))),
        "time": simple(None, lambda b: f"{b.rng.randrange(24):02d}:{b.rng.randrange(60):02d}"),
        "provider": provider,
        "relation": simple(None, lambda b: b.pick(_RELATIONS)),
        "sex": simple(None, lambda b: b.pick(("M", "F"))),
        "dx": simple(None, lambda b: b.pick(_DX)),
        "code": simple(None, lambda b: b.pick(_CODES)),
        "symptom": simple(None, lambda b: b.pick(_SYMPTOMS)),
        "plan": simple(None, lambda b: b.pick(_PLANS)),
        "med": simple(None, lambda b: b.pick(_MEDS)),
        "lab": simple(None, lambda b: b.pick(_LABS)),
        "dispo": simple(None, lambda b: b.pick(_DISPO)),
        "days": simple(None, lambda b: str(b.rng.randint(2, 21))),
        "bp": simple(None, lambda b: f"{b.rng.randint(104, 168)}/{b.rng.randint(62, 102)}"),
        "hr": simple(None, lambda b: str(b.rng.randint(54, 118))),
    }  # fmt: skip


_FIELDS = _fields()


def _render(template: str, b: _Builder, text: list[str], gold: list[Gold], offset: int) -> int:
    for literal, name, _, _ in string.Formatter().parse(template):
        text.append(literal)
        offset += len(literal)
        if name is None:
            continue
        value, entity = _FIELDS[name](b)
        if entity is not None:
            gold.append(Gold(entity, offset, offset + len(value)))
        text.append(value)
        offset += len(value)
    return offset


def generate(count: int = 2000, seed: int = 5, filler: tuple[int, int] = (0, 2)) -> list[Note]:
    """`count` notes, each one template and `filler` (a range) sentences without PHI, with gold
    spans. The default makes dense notes, nearly every sentence holding identifiers; more
    filler makes notes closer to real ones, where most sentences hold none."""
    first, last, _ = name_lists()
    b = _Builder(
        random.Random(seed),
        sorted(_cap(n) for n in first),
        sorted(_cap(n) for n in last),
    )
    notes = []
    for _ in range(count):
        text: list[str] = []
        gold: list[Gold] = []
        offset = 0
        extra = b.rng.randint(*filler)
        pieces = [b.pick(_TEMPLATES)] + [b.pick(_FILLER) for _ in range(extra)]
        b.rng.shuffle(pieces)
        for i, piece in enumerate(pieces):
            if i:
                text.append(" ")
                offset += 1
            offset = _render(piece, b, text, gold, offset)
        notes.append(Note("".join(text), tuple(gold)))
    return notes


@dataclass
class Score:
    gold: int = 0
    found: int = 0  # gold spans fully covered by spans of the same entity
    predicted: int = 0
    correct: int = 0  # predicted spans that overlap a gold span of the same entity

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0


_SAME = {Entity.FAX: Entity.PHONE}  # a fax found as a phone is still found


def _group(entity: Entity) -> Entity:
    return _SAME.get(entity, entity)


def evaluate(notes: Iterable[Note], scan: Callable[[str], list[Span]]) -> dict[Entity, Score]:
    """Recall and precision per entity; FAX and PHONE count as one. Also returns, under no
    entity, how many gold spans were left with an uncovered character by any span (leaks)."""
    scores: dict[Entity, Score] = {}
    for note in notes:
        spans = scan(note.text)
        for g in note.gold:
            score = scores.setdefault(_group(g.entity), Score())
            score.gold += 1
            covered: set[int] = set()
            for s in spans:
                if _group(s.entity) == _group(g.entity) and s.start < g.end and g.start < s.end:
                    covered.update(range(max(s.start, g.start), min(s.end, g.end)))
            if all(i in covered or note.text[i].isspace() for i in range(g.start, g.end)):
                score.found += 1
        for s in spans:
            score = scores.setdefault(_group(s.entity), Score())
            score.predicted += 1
            if any(
                _group(g.entity) == _group(s.entity) and s.start < g.end and g.start < s.end
                for g in note.gold
            ):
                score.correct += 1
    return scores
