"""Who is on the other end.

- ``authenticator``: the ``Authenticator`` interface every protocol calls, and
  ``StaticAuthenticator`` for users listed in the configuration.
- ``scram``: SCRAM-SHA-256 (RFC 5802, RFC 7677), both the server side (checking a client against a
  stored verifier) and the client side (the gateway logging in to a target). Sans-io.
- ``oidc``: ``OidcSettings`` (the ``identity.oidc`` configuration), provider discovery, and
  ``OidcVerifier``, which turns an ID or access token into an ``Identity``.
- ``oidc_claims``: ``Reason`` and ``TokenRejected`` (why a token was refused, and whom it
  claimed to be), and the checks of ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``; group-to-role
  mapping.
- ``jwks``: the provider's signing keys, cached, refetched on an unknown ``kid`` (rate-limited).
- ``oidc_auth``: ``OidcAuthenticator``, the ``Authenticator`` for which the password is a token.
- ``state``: the SQLite state store of humans, their credentials, and the command line's audit
  outbox.
- ``credentials``: issuing and verifying gateway credentials (``wgc_<id>_<secret>``), bound to a
  human owner; ``credential_auth``: the ``CredentialAuthenticator``.
- ``revocation``: the watcher that ends live sessions of revoked humans; the sign-in check.
- ``cli``: ``wardgate credential``, ``agent``, ``service``, ``credentials``, ``users``.
- ``scim``: the SCIM 2.0 ``/Users`` endpoint identity providers push to (``scim_app``, mounted
  at ``/scim/v2``); ``scim_model`` the User resource as kept and shown, ``scim_patch`` PatchOp,
  ``scim_filter`` filters, ``scim_provision`` what a change does to the human, ``scim_schema``
  the discovery documents.
"""
