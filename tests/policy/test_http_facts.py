"""What a rule sees of an API call (policy/http.py), from the gateway's canonical target."""

from __future__ import annotations

import pytest

from wardgate.policy.http import http_facts


@pytest.mark.parametrize(
    ("method", "target", "resource", "bulk", "unfiltered"),
    [("GET", "/ehr/Patient?_count=5&_count=500", "Patient", True, True),
     ("GET", "/ehr/Observation?patient=pid-x&_count=5&_COUNT=500", "Observation", True, False),
     ("GET", "/ehr/Observation?patient=pid-x&_count=1e9", "Observation", True, False),
     ("GET", "/ehr/Observation?patient=pid-x&_count=", "Observation", False, False),
     ("GET", "/ehr/Observation?PATIENT=pid-x", "Observation", False, False),
     ("POST", "/ehr/Observation/_search", "Observation", True, True),
     ("GET", "/ehr/Patient/pid-x/$EVERYTHING", "Patient", True, False)],
)  # fmt: skip
def test_http_facts(method: str, target: str, resource: str, bulk: bool, unfiltered: bool) -> None:
    facts = http_facts(method, target, resource, bulk_count=100)
    assert (facts.bulk, facts.unfiltered) == (bulk, unfiltered)


def test_operations_in_lower_case() -> None:
    facts = http_facts("GET", "/ehr/Patient/%24Export", "Patient", bulk_count=100)
    assert facts.operations == frozenset({"$export"}) and facts.bulk
