"""Synthea FHIR R4 bundles (synthetic patients, no real person), gzip-compressed: the demo's and
the tests' patient-record API serves them. From the public repository
smart-on-fhir/generated-sample-data (R4/SYNTHEA), Apache License 2.0 (``LICENSE`` here).

Each file is a transaction Bundle of one patient's record (Patient, Encounter, Observation,
Condition, Claim, ...). Synthea uses the Patient's id as its MRN too.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any


def bundles() -> Iterator[dict[str, Any]]:
    """Every bundle, in file-name order."""
    folder = resources.files(__name__)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json.gz"):
            yield json.loads(gzip.decompress(entry.read_bytes()))


def resources_of(kind: str) -> Iterator[dict[str, Any]]:
    """Every resource of one type (``Patient``...) in the bundles."""
    for bundle in bundles():
        for item in bundle.get("entry", ()):
            resource = item.get("resource", {})
            if resource.get("resourceType") == kind:
                yield resource
