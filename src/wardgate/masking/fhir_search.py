"""FHIR search parameters that would read masked elements back, for one view.

A search is a predicate the server evaluates on raw data: ``Patient?birthdate=ge1980-06`` answers
yes or no about a birth date the caller sees masked, and a few requests of that kind rebuild it
(9 for a full date, 83 for a family name with ``family=`` prefixes). So for a view that masks an
entity, a parameter on an element of that entity is refused, whatever its modifier or prefix
(``:exact``, ``:contains``, ``:missing``, ``ge``...), and so are:

- ``_sort`` on such an element (the order is an oracle too), chained parameters that end on one
  (``subject:Patient.family``, ``patient.name``) and ``_has`` whose last parameter is one;
- ``_content``, ``_text``, ``_filter`` and ``_query``, which search text or expressions no table
  can judge;
- a person's id, in ``_id`` or a reference parameter (``patient``, ``subject``...), that is not
  one of the gateway's ``pid-`` pseudonyms: with real ids in hand a caller could tie them to the
  pseudonyms the gateway answers with;
- for a view that masks DATE, a date with more than its year in any parameter of a search of
  a type whose dates are masked (``Encounter?date=ge2019-06-15``, ``_lastUpdated``, ``_since``,
  a chain, ``_has``: the value is judged, not the name, so a parameter nobody listed is caught),
  the ``ap`` prefix on a date parameter (its range is the server's to choose), and ``_sort`` by
  a date parameter: the masked element keeps its year, so a comparison with a year tells
  nothing more, and anything finer is an oracle of the date.

A value made only of ``pid-`` pseudonyms (``identifier=pid-...``) is allowed: the role was given
them, and the gateway decodes them on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from wardgate.masking.entities import Entity as E
from wardgate.masking.fhir import ID_TYPES, PERSONS, UNDATED
from wardgate.masking.fhir_ids import PREFIX
from wardgate.masking.views import View

_IDENTIFIERS = (E.SSN, E.MRN, E.LICENSE, E.OTHER_ID, E.HEALTH_PLAN_ID, E.ACCOUNT)
_TELECOM = (E.PHONE, E.FAX, E.EMAIL, E.URL, E.OTHER_ID)
# The search parameters of Patient, Person, RelatedPerson, Practitioner (and PractitionerRole's
# contact points) on elements masked by entity (masking/fhir.py, PERSON_FIELDS).
PERSON_PARAMS: dict[str, tuple[E, ...]] = {
    "name": (E.NAME,), "family": (E.NAME,), "given": (E.NAME,), "phonetic": (E.NAME,),
    "birthdate": (E.DATE,), "death-date": (E.DATE,), "deceased": (E.DATE,),
    "address": (E.GEO, E.ZIP), "address-city": (E.GEO,), "address-postalcode": (E.ZIP,),
    "phone": (E.PHONE,), "email": (E.EMAIL,), "telecom": _TELECOM, "identifier": _IDENTIFIERS,
}  # fmt: skip
# On any resource type.
ANY_PARAMS: dict[str, tuple[E, ...]] = {"subscriber-id": (E.HEALTH_PLAN_ID,)}
OTHER_PARAMS: dict[str, dict[str, tuple[E, ...]]] = {"Coverage": {"identifier": _IDENTIFIERS}}
FREE_SEARCH = frozenset({"_content", "_text", "_filter", "_query"})
PERSON_REFERENCES = frozenset({"patient", "subject", "beneficiary", "person", "link", "_id"})
# Date search parameters of FHIR R4 (for ``ap`` and ``_sort``; values are judged by their form).
DATE_PARAMS = frozenset({
    "date", "_lastupdated", "birthdate", "death-date", "onset-date", "abatement-date",
    "recorded-date", "authoredon", "created", "issued", "period", "occurrence", "effective",
    "effective-time", "recorded", "when", "sent", "received", "started", "datewritten",
    "whenhandedover", "whenprepared", "asserted-date", "last-date", "onset", "event-date",
    "service-date", "appointment-date", "expiration-date", "performed", "authored",
})  # fmt: skip
# A month or more of a date, anywhere in a value (after a prefix, in a chain, in _typeFilter).
_FINE_DATE = re.compile(r"(?<!\d)\d{4}-(0[1-9]|1[0-2])(?!\d)")
_PSEUDONYM = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9.\-]+")


def refusal(view: View, resource: str, target: str) -> str | None:
    """Why this search cannot run for ``view``, or None. ``target``: ``/api/Type...?query``
    (the gateway's canonical spelling)."""
    query = target.partition("?")[2]
    for raw_name, value in parse_qsl(query, keep_blank_values=True):
        name = raw_name.strip().lower()  # as a lenient server might read it
        why = _parameter(view, resource, name, value)
        if why is not None:
            return f"search parameter {raw_name!r}: {why}"
    return None


def _parameter(view: View, resource: str, name: str, value: str) -> str | None:
    base = name.split(":", 1)[0]
    if resource not in UNDATED and _masks(view, (E.DATE,)):
        why = _date_oracle(name, base, value)
        if why is not None:
            return why
    if base in FREE_SEARCH and _masks(view, E):
        return "free-text and expression searches can read masked elements"
    if base == "_sort":
        for key in value.lower().split(","):
            if _masked(view, resource, key.strip().lstrip("-")):
                return f"sorting by {key.strip()!r} reveals the order of masked values"
        return None
    if base == "_has":  # _has:Type:reference:parameter
        parts = name.split(":")
        if len(parts) >= 4 and _masked(view, _type_named(parts[1]), parts[3]):
            return "it searches an element masked for this caller"
        return None
    if "." in base or "." in name:  # a chain: the last link is the one searched
        last = name.rsplit(".", 1)[1].split(":", 1)[0].strip()
        if _masked(view, "Patient", last) and not _pseudonyms(value):
            return "it searches an element masked for this caller"
        if last in PERSON_REFERENCES and masks_ids(view) and not _person_ids_pseudonymous(value):
            return f"a person's id must be one of the gateway's {PREFIX} pseudonyms"
        return None
    if base in PERSON_REFERENCES and (base != "_id" or resource in ID_TYPES):
        if _masks(view, (E.MRN,)) and not _person_ids_pseudonymous(value):
            return f"a person's id must be one of the gateway's {PREFIX} pseudonyms"
        return None
    if _masked(view, resource, base) and not _pseudonyms(value):
        return "it searches an element masked for this caller"
    return None


def _date_oracle(name: str, base: str, value: str) -> str | None:
    """Why this parameter would compare a masked date with more than its year, or None."""
    if _FINE_DATE.search(_PSEUDONYM.sub("", value)):
        return "it compares a date masked for this caller with more than its year"
    last = name.rsplit(".", 1)[-1].split(":", 1)[0]
    if (base in DATE_PARAMS or last in DATE_PARAMS) and any(
        v.strip().lower().startswith("ap") for v in value.split(",")
    ):
        return "an approximate date search ('ap') compares a masked date with more than its year"
    if base == "_sort" and any(
        k.strip().lstrip("-") in DATE_PARAMS for k in value.lower().split(",")
    ):
        return "sorting by a date masked for this caller reveals more than its year"
    return None


def masks_ids(view: View) -> bool:
    """Whether ``view`` gets persons' ids as pseudonyms (they are MRNs: masking/fhir.py)."""
    return _masks(view, (E.MRN,))


def _masked(view: View, resource: str, param: str) -> bool:
    entities = ANY_PARAMS.get(param) or OTHER_PARAMS.get(resource, {}).get(param)
    if entities is None and (resource in PERSONS or resource == "PractitionerRole"):
        entities = PERSON_PARAMS.get(param)
    return entities is not None and _masks(view, entities)


def _masks(view: View, entities: Iterable[E]) -> bool:
    return any(view.operator(e.value) is not None for e in entities)


def _type_named(name: str) -> str:
    return next((t for t in (*PERSONS, "PractitionerRole") if t.lower() == name.lower()), name)


def _values(value: str) -> list[str]:
    """The values of an OR list, without a ``system|`` or a reference's ``Type/``."""
    return [v.rsplit("|", 1)[-1] for v in value.split(",")]


def _pseudonyms(value: str) -> bool:
    values = _values(value)
    return bool(values) and all(v.startswith(PREFIX) for v in values)


def _person_ids_pseudonymous(value: str) -> bool:
    """Every id in the value is a pseudonym, or names a type whose ids are not persons' (a
    bare id may be a person's)."""
    for item in _values(value):
        parts = item.rstrip("/").split("/")
        kind = parts[-2] if len(parts) >= 2 else ""
        if kind and kind not in ID_TYPES:
            continue
        if not parts[-1].startswith(PREFIX):
            return False
    return True
