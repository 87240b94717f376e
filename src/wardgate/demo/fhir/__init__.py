"""DEVELOPMENT ONLY: a small FHIR R4 server for wardgate's tests and ``wardgate demo``, serving the
Synthea bundles of ``wardgate.demo.fhir_data`` (synthetic patients) from memory. It binds
loopback addresses only, over plain HTTP, and is no FHIR server to build on.

Glossary of this folder:

- ``store``: the bundles loaded as a server loads transactions (``urn:uuid:`` references made
  ``Type/id``), by type and id; a patient's *compartment* is every resource that references them.
- ``params``: the search parameters per type and how each reads a resource.
- ``search``: a query string parsed into filters (AND across parameters, OR within a comma
  list), run over the store; ``_include`` of the referenced patient.
- ``responses``: ``application/fhir+json``, OperationOutcome, searchset Bundles with paging links
  on the request's base URL (``_count`` 20 by default, at most 200; pages by ``_offset``).
- ``capability``: the CapabilityStatement of ``/metadata``.
- ``export``: Bulk Data ``$export`` (kick-off, status, manifest, NDJSON files), in memory.
- ``auth``: the upstream credential (``X-API-Key`` or bearer) every request needs.
- ``misbehave``: test-only endpoints under ``/_test/`` (malformed, 503, 100 MiB, slow, an
  answer that quotes the server's base URL), served only with ``misbehave=True``.
- ``routes`` and ``server``: the Starlette application; the thread that serves it.
"""

from __future__ import annotations

from wardgate.demo.fhir.routes import create_app
from wardgate.demo.fhir.server import FhirServer, running_fhir_server
from wardgate.demo.fhir.store import FhirStore, synthea_store

__all__ = ["FhirServer", "FhirStore", "create_app", "running_fhir_server", "synthea_store"]
