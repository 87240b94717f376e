"""PostgreSQL frontend/backend protocol v3.

- ``wire``: message type bytes, codes, and functions that parse or build single messages.
- ``framing``: ``MessageReader`` cuts a byte stream into messages, enforcing length limits.
- ``upstream_auth``: the client side of authentication towards the target (SCRAM, md5).
- ``relay``: the sans-io state machine of a proxied session after start-up; it watches both
  directions, tells the pipeline about requests and results, and decides what bytes go where.
- ``cancel``: the map from the BackendKeyData the gateway hands out to the target's own.
- ``endpoint``: one socket as an asyncio protocol (buffered during start-up, then a sink).
- ``server``: asyncio glue (listener, TLS upgrade, start-up, authentication, the session).

Nothing here except ``endpoint`` and ``server`` imports asyncio.
"""
