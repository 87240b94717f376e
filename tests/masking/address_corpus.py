"""A labelled corpus of clinical notes that carry addresses, generated apart from the detectors.

Nothing here comes from the detector code: the addresses are Faker's (its own street names,
suffixes, cities, states and ZIP codes), the sentences are this module's, and no word list is
shared with wardgate.masking.detectors. Each note belongs to a patient of a small registry (the
rows a target would store in its labelled columns); a quarter of the addresses are somebody
else's (a pharmacy, a previous home, a relative's), which only the rules can find. Gold spans
are the street (with its unit), the city (GEO) and the ZIP code (ZIP); the state is not an
identifier Safe Harbor removes. Distractor sentences hold numbers followed by capitalised words
that are not addresses, and city-like words that are not the patient's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

from tests.masking.corpus import Gold, Note
from wardgate.masking.entities import Entity


@dataclass(frozen=True)
class Patient:
    first: str
    last: str
    street: str
    city: str
    state: str
    zip: str


# {s}: street, {c}: city, {st}: state, {z}: ZIP; {n}: the patient's first name
_WITH_ADDRESS = (
    "Address on file: {s}, {c}, {st} {z}.",
    "Pt {n} lives at {s}, {c}, {st} {z} with her husband.",
    "Mailing address updated to {s}, {c}, {st} {z} per patient request.",
    "Home visit scheduled at {s}; pt reports the building has no elevator.",
    "Patient moved last month; new address {s} in {c}.",
    "Discharged home to {s}\n{c}, {st} {z}",
    "Demographics: {s} | {c} | {st} | {z}",
    "ADDRESS: {S}, {C}, {st} {z}",
    "Transport to pick up pt at {s} at 0730.",
    "Pt states she is staying with her sister in {c} until the wound heals.",
    "Returned mail from {s}, {c} {st} {z}; address could not be confirmed.",
    "Lives alone at {s}. Neighbor checks in daily.",
)
_OTHER_ADDRESS = (
    "Prescriptions sent to the pharmacy at {s}, {c}, {st} {z}.",
    "Previous address {s}, {c}, {st} {z} (until 2019).",
    "Daughter's address for correspondence: {s}, {c}, {st} {z}.",
)
_FILLER = (
    "Take 2 Tablets Daily with food.",
    "Room 4521 Bed 2, transferred from the ICU at 1400.",
    "BP 128/82, HR 76, T 98.6 F, RR 16.",
    "Metformin 500 mg BID, Lisinopril 10 mg daily.",
    "Follow up in 3 Weeks with Cardiology.",
    "Walked 200 Feet with a Rolling Walker.",
    "Pain 6 Out of 10, worse at night.",
    "Ordered 1 Unit PRBC; repeat Hgb in 6 Hours.",
    "Completed 12 Sessions of Physical Therapy at the Main Campus.",
    "Seen in the North Clinic, Suite B, by the wound care team.",
    "Hx of Lyme disease; Parkinson Plus syndrome ruled out.",
    "Insurance plan Blue Ridge Premier, gold tier.",
)


def _patient(fake: Faker) -> Patient:
    street = fake.street_address()
    return Patient(fake.first_name(), fake.last_name(), street, fake.city(),
                   fake.state_abbr(), fake.zipcode())  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    patients: tuple[Patient, ...]
    notes: tuple[Note, ...]


def generate(count: int = 1500, seed: int = 42, patients: int = 300) -> Corpus:
    """`count` notes about `patients` patients, each note one address sentence and 1-3 filler
    sentences, shuffled."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    registry = tuple(_patient(fake) for _ in range(patients))
    notes = []
    for _ in range(count):
        patient = rng.choice(registry)
        if rng.random() < 0.25:
            template, place = rng.choice(_OTHER_ADDRESS), _patient(fake)
        else:
            template, place = rng.choice(_WITH_ADDRESS), patient
        filler = [(rng.choice(_FILLER), None) for _ in range(rng.randint(1, 3))]
        sentences = [(template, place), *filler]
        rng.shuffle(sentences)
        text: list[str] = []
        gold: list[Gold] = []
        offset = 0
        for i, (sentence, who) in enumerate(sentences):
            if i:
                text.append(" ")
                offset += 1
            offset = _render(sentence, who, patient, text, gold, offset)
        notes.append(Note("".join(text), tuple(gold)))
    return Corpus(registry, tuple(notes))


def _render(
    template: str,
    place: Patient | None,
    patient: Patient,
    text: list[str],
    gold: list[Gold],
    offset: int,
) -> int:
    position = 0
    while True:
        start = template.find("{", position)
        if start < 0:
            text.append(template[position:])
            return offset + len(template) - position
        end = template.index("}", start)
        literal = template[position:start]
        text.append(literal)
        offset += len(literal)
        field = template[start + 1 : end]
        value, entity = _field(field, place, patient)
        if entity is not None:
            gold.append(Gold(entity, offset, offset + len(value)))
        text.append(value)
        offset += len(value)
        position = end + 1


def _field(field: str, place: Patient | None, patient: Patient) -> tuple[str, Entity | None]:
    assert place is not None or field == "n"
    match field:
        case "s" | "S":
            assert place is not None
            return (place.street.upper() if field == "S" else place.street), Entity.GEO
        case "c" | "C":
            assert place is not None
            return (place.city.upper() if field == "C" else place.city), Entity.GEO
        case "st":
            assert place is not None
            return place.state, None
        case "z":
            assert place is not None
            return place.zip, Entity.ZIP
        case "n":
            return patient.first, Entity.NAME
    raise KeyError(field)
