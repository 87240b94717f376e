"""The gateway's HTTP API for administrators, auditors and the command line.

``asgi``    serving an ASGI application (Starlette) on the gateway's own event loop
``app``     the API: login configuration, credentials for signed-in humans, SCIM, health
``bearer``  who is calling: OIDC bearer tokens, failed attempts audited
"""
