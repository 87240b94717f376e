"""The audit trail.

- ``events``: the event model, one plain JSON object per event (connection attempt, statement,
  disconnect), built from the core model so every protocol produces the same shape.
- ``jsonl``: ``AuditLog``, the addon that appends events to a JSON-lines file.

The hash-chained, signed store replaces the JSON-lines sink; the event model stays.
"""
