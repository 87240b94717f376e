"""The audit trail.

- ``events``: the event model, one plain JSON object per event (connection attempt, statement,
  disconnect), built from the core model so every protocol produces the same shape.
- ``jsonl``: ``AuditLog``, the addon that appends events to a JSON-lines file (the first cut).
- ``chained``: ``ChainedAudit``, the addon on the tamper-evident store: hooks record, ``commit``
  makes a batch durable (group commit) and fails closed with ``AuditUnavailable``.
  ``prepared``: a statement's event written straight to its canonical JSON, for the store.
- ``store``: entries, heads, cuts, the entry hash and the portable schema; ``sqlite``: the
  default store; ``pgstore``: the store on PostgreSQL, shared by replicas (``pgschema``: its
  tables and PL/pgSQL triggers); ``location``: a file or a ``postgresql://`` URL, told apart.
  ``canonical``: RFC 8785 JSON. ``merkle``: RFC 6962 trees and proofs.
- ``checkpoints``: the Ed25519 key and signed tree heads; ``anchors``: the head file and webhook.
- ``verify``: offline verification and inclusion proofs; ``retention``: purge at a signed cut.
- ``cli``: ``wardgate audit verify|prove|search|export|key|purge``. ``siem``: SIEM forwarding.
"""
