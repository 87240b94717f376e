"""The HTTP reverse proxy for API targets (``apis:`` in the configuration; docs/http.md).

- ``codec``: the server side of HTTP/1.1 on h11, with the gateway's limits (sans-io).
- ``routing``: ``/<api>/<path>`` to the API's URL; which headers cross, and which never do.
- ``documents``: JSON media types, the gateway's error bodies (FHIR OperationOutcome), Bundle
  links rebased onto the gateway, the scan for the gateway's credential in answers.
- ``caller``: the caller's bearer token (OIDC, or a gateway credential) to an ``Identity``.
- ``upstream``: the httpx client per API, with its TLS and the credential the gateway injects.
- ``server``: the asyncio listener and the glue to the pipeline (``kind="http"`` requests).
"""
