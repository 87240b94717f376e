"""What a policy rule can ask about an HTTP API call (FHIR in particular).

The target is the gateway's canonical spelling of the request (protocols/http/canonical.py):
decoded, ambiguous spellings refused, FHIR types and operations spelled one way, so that
``%24export``, ``$EXPORT`` and ``//Patient/$export/`` are all ``$export`` here and upstream.

- ``kinds``: ``read`` for GET and HEAD, ``write`` otherwise.
- ``resource``: the FHIR resource type, the first path segment under the API.
- ``operations``: the ``$operations`` named in the path (``$export``, ``$everything``).
- ``unfiltered``: a search (a GET of a resource type, no id) on the patient compartment's types
  without a patient filter (``patient``, ``subject``, ``_id``, ``identifier``).
- ``bulk``: ``$export`` or ``$everything``, a ``_count`` above ``policy.bulk_count``, or an
  unfiltered search, or a ``POST .../_search`` (its filter is in a body no rule reads). What an
  approver should look at before it runs.

Parameter names are compared without regard to case, and of several ``_count`` the largest
counts; a ``_count`` that is not a number counts as over the limit (fail closed).
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, unquote

from wardgate.policy.rules import Facts

BULK_OPERATIONS = frozenset({"$export", "$everything"})
PATIENT_FILTERS = frozenset({"patient", "subject", "_id", "identifier", "beneficiary"})
# Types whose searches return records of patients (the patient compartment, roughly).
PATIENT_DATA = frozenset(
    {
        "Patient", "Observation", "Encounter", "Condition", "Procedure", "Immunization",
        "MedicationRequest", "DiagnosticReport", "Claim", "ExplanationOfBenefit", "CarePlan",
        "Goal", "AllergyIntolerance", "DocumentReference", "Coverage", "RelatedPerson",
    }
)  # fmt: skip


def http_facts(method: str, target: str, resource: str, bulk_count: int) -> Facts:
    """``target``: the request target as sent (``/api/Type/id?query``)."""
    path, _, query = target.partition("?")
    segments = [unquote(s) for s in path.split("/")[2:] if s]  # under the API's name
    operations = frozenset(s.lower() for s in segments if s.startswith("$"))
    pairs = parse_qsl(query, keep_blank_values=True)
    params = {k.split(":", 1)[0].strip().lower() for k, _ in pairs}
    count = _count(pairs)
    read = method in ("GET", "HEAD")
    search = read and len(segments) == 1 and not segments[0].startswith("$")
    posted_search = method == "POST" and bool(segments) and segments[-1].lower() == "_search"
    unfiltered = search and resource in PATIENT_DATA and params.isdisjoint(PATIENT_FILTERS)
    unfiltered = unfiltered or (posted_search and resource in PATIENT_DATA)
    bulk = bool(operations & BULK_OPERATIONS) or count > bulk_count or unfiltered
    kinds = frozenset({"read" if read else "write"})
    return Facts(
        kinds, frozenset(), False, unfiltered, False, False, resource, operations, bulk
    )  # fmt: skip


def _count(pairs: list[tuple[str, str]]) -> float:
    """The largest ``_count`` asked for (servers differ on which of several they use)."""
    largest: float = 0
    for key, value in pairs:
        if key.split(":", 1)[0].strip().lower() == "_count" and value.strip():
            try:
                largest = max(largest, int(value))
            except ValueError:
                return math.inf
    return largest
