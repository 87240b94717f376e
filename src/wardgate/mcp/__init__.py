"""``wardgate mcp``: a stdio MCP server for AI assistants (Cursor and others).

It is a client of the running gateway, never of the targets: SQL goes to the gateway's PostgreSQL
listener (psycopg), FHIR to its HTTP listener (httpx), both signed in with an agent credential
(``wgc_...``). Masking, policy, approvals, recording and audit all happen in the gateway.

Glossary:

- settings: what Cursor's ``mcp.json`` passes (flags, ``WARDGATE_CREDENTIAL``, a targets file).
- refusal: a gateway answer the assistant must read as text (a denial, a revoked credential),
  never a traceback (``errors.py``).
- job: a call the gateway holds for approval, kept running in the background on its own
  connection, and collected with ``approval_status`` (``jobs.py``).
- sql / fhir: the two clients of the gateway; server: the MCP tools over them.
- http: the same tools served by the gateway itself over Streamable HTTP at ``/mcp`` on its API
  listener (``listeners.api.mcp``), one server per bearer token, which signs in with that token.
"""
