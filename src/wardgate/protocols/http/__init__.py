"""The HTTP reverse proxy for API targets (``apis:`` in the configuration; docs/http.md).

- ``codec``: the server side of HTTP/1.1 on h11, with the gateway's limits (sans-io).
- ``canonical``: one spelling per request target (decoded, ambiguous spellings refused), which
  policy reads and the API receives; ``fhir_types`` the resource types it spells FHIR's way.
- ``routing``: ``/<api>/<path>`` to the API's URL; which headers cross, and which never do; the
  public URL links are built on.
- ``held``: answers held whole (JSON, NDJSON, other types) through the ``document`` hook.
- ``exports``: bulk-export status and file URLs bound to the caller they were given to.
- ``documents``: JSON and NDJSON media types, the gateway's error bodies (FHIR
  OperationOutcome), the API's links rebased onto the gateway, the scan for the gateway's
  credential in answers.
- ``caller``: the caller's bearer token (OIDC, or a gateway credential) to an ``Identity``.
- ``upstream``: the httpx client per API, with its TLS and the credential the gateway injects.
- ``server``: the asyncio listener and the glue to the pipeline (``kind="http"`` requests).
"""
