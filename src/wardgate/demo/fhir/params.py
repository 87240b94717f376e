"""DEVELOPMENT ONLY: the search parameters the server knows, per resource type, and how each
reads its values out of a resource.

Four kinds, as in FHIR: ``string`` (HumanName parts), ``token`` (``system|code`` pairs),
``date`` (a half-open range of instants per value) and ``reference`` (``Type/id``).
Instants without a zone count as UTC, a simplification a real server would not make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from wardgate.demo.fhir.store import PATIENT_FIELDS, Resource

Kind = Literal["string", "token", "date", "reference"]
Range = tuple[datetime, datetime]
Token = tuple[str | None, str]

_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    values: Callable[[Resource], list[Any]]
    target: str | None = None  # the type a reference parameter points at, when only one


def date_range(text: str) -> Range | None:
    """The instants ``text`` covers at its precision: a year, a month, a day or a second."""
    try:
        if len(text) == 4 and text.isdigit():
            return datetime(int(text), 1, 1, tzinfo=UTC), datetime(int(text) + 1, 1, 1, tzinfo=UTC)
        if len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:])
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return datetime(year, month, 1, tzinfo=UTC), end
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day, day + timedelta(days=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, moment + timedelta(seconds=1)


def _dates(*fields: str) -> Callable[[Resource], list[Range]]:
    def read(resource: Resource) -> list[Range]:
        found: list[Range] = []
        for name in fields:
            value = resource.get(name)
            if isinstance(value, str):
                span = date_range(value)
                if span is not None:
                    found.append(span)
            elif isinstance(value, dict):  # a Period; an open end is unbounded
                start = date_range(value["start"]) if "start" in value else None
                end = date_range(value["end"]) if "end" in value else None
                if start or end:
                    found.append((start[0] if start else _FAR_PAST, end[1] if end else _FAR_FUTURE))
        return found

    return read


def _codes(field: str) -> Callable[[Resource], list[Token]]:
    def read(resource: Resource) -> list[Token]:
        value = resource.get(field)
        concepts = value if isinstance(value, list) else [value]
        return [
            (coding.get("system"), coding["code"])
            for concept in concepts
            if isinstance(concept, dict)
            for coding in concept.get("coding", ())
            if isinstance(coding.get("code"), str)
        ]

    return read


def _code(field: str) -> Callable[[Resource], list[Token]]:
    def read(resource: Resource) -> list[Token]:
        value = resource.get(field)
        return [(None, value)] if isinstance(value, str) else []

    return read


def _refs(*fields: str) -> Callable[[Resource], list[str]]:
    def read(resource: Resource) -> list[str]:
        found = []
        for name in fields:
            value = resource.get(name)
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                found.append(value["reference"])
        return found

    return read


def _names(*parts: str) -> Callable[[Resource], list[str]]:
    def read(resource: Resource) -> list[str]:
        found: list[str] = []
        for name in resource.get("name", ()):
            for part in parts:
                value = name.get(part)
                if isinstance(value, str):
                    found.append(value)
                elif isinstance(value, list):
                    found.extend(v for v in value if isinstance(v, str))
        return found

    return read


def _identifiers(resource: Resource) -> list[Token]:
    return [
        (item.get("system"), item["value"])
        for item in resource.get("identifier", ())
        if isinstance(item.get("value"), str)
    ]


def _patient_refs(resource: Resource) -> list[str]:
    return [ref for ref in _refs(*PATIENT_FIELDS)(resource) if ref.startswith("Patient/")]


# The types whose resources point at a patient; the date and code parameter of each, if simple.
_DATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Observation": ("date", ("effectiveDateTime", "effectivePeriod", "effectiveInstant")),
    "Encounter": ("date", ("period",)),
    "Condition": ("onset-date", ("onsetDateTime", "onsetPeriod")),
    "Procedure": ("date", ("performedDateTime", "performedPeriod")),
    "Immunization": ("date", ("occurrenceDateTime",)),
    "MedicationRequest": ("authoredon", ("authoredOn",)),
    "DiagnosticReport": ("date", ("effectiveDateTime", "effectivePeriod")),
    "Claim": ("created", ("created",)),
    "ExplanationOfBenefit": ("created", ("created",)),
    "CarePlan": ("date", ("period",)),
}
_CODES: dict[str, tuple[str, str]] = {
    "Observation": ("code", "code"),
    "Condition": ("code", "code"),
    "Procedure": ("code", "code"),
    "DiagnosticReport": ("code", "code"),
    "MedicationRequest": ("code", "medicationCodeableConcept"),
    "Immunization": ("vaccine-code", "vaccineCode"),
    "Encounter": ("type", "type"),
}
PATIENT_LINKED = (*_DATES, "Goal")


def _by_name(*params: Param) -> dict[str, Param]:
    return {param.name: param for param in params}


def _build() -> dict[str, dict[str, Param]]:
    common = Param("_id", "token", lambda r: [(None, r["id"])])
    table: dict[str, dict[str, Param]] = {
        "Patient": _by_name(
            common,
            Param("name", "string", _names("family", "given", "prefix", "suffix", "text")),
            Param("family", "string", _names("family")),
            Param("given", "string", _names("given")),
            Param("birthdate", "date", _dates("birthDate")),
            Param("identifier", "token", _identifiers),
            Param("gender", "token", _code("gender")),
        ),
    }
    for kind in PATIENT_LINKED:
        params = [
            common,
            Param("patient", "reference", _patient_refs, "Patient"),
            Param("subject", "reference", _refs(*PATIENT_FIELDS)),
            Param("encounter", "reference", _refs("encounter"), "Encounter"),
            Param("status", "token", _code("status")),
        ]
        if kind in _DATES:
            name, fields = _DATES[kind]
            params.append(Param(name, "date", _dates(*fields)))
        if kind in _CODES:
            name, field = _CODES[kind]
            params.append(Param(name, "token", _codes(field)))
        if kind in ("Claim", "ExplanationOfBenefit"):
            params.append(Param("identifier", "token", _identifiers))
        table[kind] = _by_name(*params)
    return table


PARAMS = _build()


def params_of(kind: str) -> dict[str, Param]:
    """The parameters of ``kind``; a type not in the table has ``_id`` only."""
    return PARAMS.get(kind) or {"_id": PARAMS["Patient"]["_id"]}
