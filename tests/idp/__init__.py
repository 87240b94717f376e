"""A real OpenID provider for the tests: ``oidc-provider`` (OpenID Certified) on 127.0.0.1.

- ``package.json`` / ``package-lock.json``: the pinned npm packages. ``server.install`` runs
  ``npm ci`` into ``~/.cache/wardgate-test-idp/<hash of the lock file>`` (``$XDG_CACHE_HOME`` is
  honoured) once; later runs reuse it.
- ``provider.mjs``: the provider: clients ``wardgate`` and ``other-app``, accounts alice, bob and
  carol with a ``groups`` claim, JWT access tokens; see its header comment.
- ``server.TestIdp``: the running process, its issuer and private keys; ``rotate()`` restarts it
  on the same port with new keys.
- ``signin``: scripted code + PKCE and device flows with httpx, no browser.

The ``oidc_provider`` fixture (``tests/identity/conftest.py``) is session-scoped: it installs,
starts the provider on a free port (bounded wait), skips the tests that use it when node or npm
is missing, stops it at the end, and adds its log to the report of any test that fails.
"""
