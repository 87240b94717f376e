"""DEVELOPMENT ONLY: the resources of the Synthea transaction Bundles, in memory and read-only.

Loading does what a FHIR server does when it processes a transaction: every ``urn:uuid:``
reference to another entry of a bundle becomes a relative ``Type/id`` reference, and each
resource gets ``meta.versionId`` and ``meta.lastUpdated``. An entry whose type and id were
loaded already (the practitioners and organizations are repeated in the patients' bundles) is
not loaded twice.

Nothing here copies a resource for a caller: the handlers serialize them and never change them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wardgate.demo import fhir_data

Resource = dict[str, Any]

# Where a resource points at its patient (the search parameters ``patient`` and ``subject``).
PATIENT_FIELDS = ("subject", "patient")


def _references(value: Any) -> Iterator[dict[str, Any]]:
    """Every ``Reference`` (a dict with a string ``reference``) inside ``value``."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


@dataclass
class FhirStore:
    """Resources by type and id, in load order; the patient compartments."""

    by_type: dict[str, dict[str, Resource]] = field(default_factory=dict)
    # patient id -> (type, id) of every other resource that references Patient/<id> anywhere
    compartments: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: _instant(datetime.now(UTC)))

    @classmethod
    def from_bundles(cls, bundles: Iterable[Resource]) -> FhirStore:
        store = cls()
        pending = list(bundles)
        targets: dict[str, str] = {}  # fullUrl -> "Type/id"
        for bundle in pending:
            for entry in bundle.get("entry", ()):
                resource = entry.get("resource") or {}
                kind, rid = resource.get("resourceType"), resource.get("id")
                if isinstance(entry.get("fullUrl"), str) and kind and rid:
                    targets[entry["fullUrl"]] = f"{kind}/{rid}"
        for bundle in pending:
            for entry in bundle.get("entry", ()):
                resource = entry.get("resource") or {}
                if resource.get("resourceType") and resource.get("id"):
                    store.add(resource, targets)
        return store

    def add(self, resource: Resource, targets: dict[str, str]) -> None:
        kind, rid = resource["resourceType"], resource["id"]
        of_kind = self.by_type.setdefault(kind, {})
        if rid in of_kind:
            return
        for ref in _references(resource):
            if ref["reference"] in targets:
                ref["reference"] = targets[ref["reference"]]
        meta = resource.setdefault("meta", {})
        meta.setdefault("versionId", "1")
        meta.setdefault("lastUpdated", self.loaded_at)
        of_kind[rid] = resource
        if kind == "Patient":
            self.compartments.setdefault(rid, [])
            return
        patients = {
            ref["reference"].removeprefix("Patient/")
            for ref in _references(resource)
            if ref["reference"].startswith("Patient/")
        }
        for patient in sorted(patients):
            self.compartments.setdefault(patient, []).append((kind, rid))

    @property
    def types(self) -> list[str]:
        return sorted(self.by_type)

    def get(self, kind: str, rid: str) -> Resource | None:
        return self.by_type.get(kind, {}).get(rid)

    def all_of(self, kind: str) -> list[Resource]:
        return list(self.by_type.get(kind, {}).values())

    def everything(self, patient_id: str) -> list[Resource]:
        """The patient, then every resource that references them (``$everything``)."""
        patient = self.get("Patient", patient_id)
        if patient is None:
            return []
        found = [patient]
        for kind, rid in self.compartments.get(patient_id, ()):
            resource = self.get(kind, rid)
            if resource is not None:
                found.append(resource)
        return found

    def in_any_compartment(self) -> dict[str, list[Resource]]:
        """By type: the patients and everything that references one (``Patient/$export``)."""
        out: dict[str, list[Resource]] = {}
        if "Patient" in self.by_type:
            out["Patient"] = self.all_of("Patient")
        seen: set[tuple[str, str]] = set()
        for members in self.compartments.values():
            for key in members:
                if key not in seen:
                    seen.add(key)
                    resource = self.get(*key)
                    if resource is not None:
                        out.setdefault(key[0], []).append(resource)
        return out


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@functools.cache
def synthea_store() -> FhirStore:
    """The packaged Synthea bundles, loaded once per process (about 3,000 resources)."""
    return FhirStore.from_bundles(fhir_data.bundles())
