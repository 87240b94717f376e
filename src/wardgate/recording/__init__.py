"""Session recording and replay: what every session did and saw, provably untouched.

Glossary:

- **recording**: one file per session, ``<session id>.wgrec``, written while the session runs.
- **record**: one framed item of a recording (``format``): the header, a request, a result's
  columns, a row, a notice or error, a result's end, a truncation marker, the session's end.
- **state**: a record as a plain dictionary (``get_state``/``from_state`` in mitmproxy's terms);
  old versions are brought up to date by a chain of upgrade functions (``format.upgrade``).
- **chunk**: the unit of encryption (``container``): AES-256-GCM, its own nonce, its index and a
  final flag in the associated data, so that a dropped, reordered, spliced or cut-off chunk fails.
- **key provider**: where the key comes from (``keys``): a file now, a KMS later.
"""
