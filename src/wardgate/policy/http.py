"""What a policy rule can ask about an HTTP API call (FHIR in particular).

- ``kinds``: ``read`` for GET and HEAD, ``write`` otherwise.
- ``resource``: the FHIR resource type, the first path segment under the API.
- ``operations``: the ``$operations`` named in the path (``$export``, ``$everything``).
- ``unfiltered``: a search (a GET of a resource type, no id) on the patient compartment's types
  without a patient filter (``patient``, ``subject``, ``_id``, ``identifier``).
- ``bulk``: ``$export`` or ``$everything``, a ``_count`` above ``policy.bulk_count``, or an
  unfiltered search. What an approver should look at before it runs.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

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
    segments = [s for s in path.split("/")[2:] if s]  # under the API's name
    operations = frozenset(s for s in segments if s.startswith("$"))
    params = {k.split(":", 1)[0] for k, _ in parse_qsl(query, keep_blank_values=True)}
    count = _count(query)
    read = method in ("GET", "HEAD")
    search = read and len(segments) == 1 and not segments[0].startswith("$")
    unfiltered = search and resource in PATIENT_DATA and params.isdisjoint(PATIENT_FILTERS)
    bulk = bool(operations & BULK_OPERATIONS) or count > bulk_count or unfiltered
    kinds = frozenset({"read" if read else "write"})
    return Facts(
        kinds, frozenset(), False, unfiltered, False, False, resource, operations, bulk
    )  # fmt: skip


def _count(query: str) -> int:
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "_count":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
