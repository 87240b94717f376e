"""Who is on the other end.

- ``authenticator``: the ``Authenticator`` interface every protocol calls, and
  ``StaticAuthenticator`` for users listed in the configuration.
- ``scram``: SCRAM-SHA-256 (RFC 5802, RFC 7677), both the server side (checking a client against a
  stored verifier) and the client side (the gateway logging in to a target). Sans-io.
"""
