"""DEVELOPMENT ONLY: the CapabilityStatement (``GET /metadata``): what this server does."""

from __future__ import annotations

from typing import Any

from wardgate.demo.fhir.params import params_of
from wardgate.demo.fhir.store import FhirStore

SOFTWARE = "wardgate development FHIR server (tests and demo only)"


def capability_statement(store: FhirStore, base: str, header: str | None) -> dict[str, Any]:
    resources = []
    for kind in store.types:
        params = params_of(kind)
        entry: dict[str, Any] = {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": p.name, "type": p.kind} for p in params.values()],
        }
        includes = [f"{kind}:{p.name}" for p in params.values() if p.kind == "reference"]
        if includes:
            entry["searchInclude"] = includes
        if kind == "Patient":
            entry["operation"] = [
                {"name": "everything", "definition": _OPERATION + "Patient-everything"},
                {"name": "export", "definition": _BULK + "patient-export"},
            ]
        resources.append(entry)
    how = f"an API key in {header}, or as a bearer token" if header else "a bearer token"
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": store.loaded_at,
        "kind": "instance",
        "software": {"name": SOFTWARE},
        "implementation": {"description": SOFTWARE, "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": f"Every request needs {how}."},
                "resource": resources,
                "searchParam": [
                    {"name": "_count", "type": "number"},
                    {"name": "_offset", "type": "number"},
                    {"name": "_summary", "type": "token"},
                ],
                "operation": [{"name": "export", "definition": _BULK + "export"}],
            }
        ],
    }


_OPERATION = "http://hl7.org/fhir/OperationDefinition/"
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
