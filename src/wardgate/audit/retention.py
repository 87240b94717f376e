"""Retention: purge entries older than the retention period, keeping the log verifiable.

The cut is the largest seq such that this entry and every one before it is older than
``now - retention_days`` (event times need not grow with seq, so nothing younger is deleted even
when an older event was committed after a younger one). Before deleting, a signed head of exactly
``cut`` entries is written (and anchored) and a ``Cut`` recorded: the hash of entry ``cut`` and
its inclusion proof under that head, after appending the signed ``audit.cut`` entry that
vouches for it (``cuts.py``). The verifier then starts from the head's frontier, proves the
recorded hash is leaf ``cut`` of the signed tree, checks that entry ``cut + 1`` chains to it,
and that the ``audit.cut`` entry further on names this cut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from wardgate.audit.checkpoints import Checkpointer, tree_upto, utc
from wardgate.audit.cuts import cut_event
from wardgate.audit.merkle import leaf_hash, verify_inclusion
from wardgate.audit.store import Cut, Head, Tampered, prepare

DEFAULT_RETENTION_DAYS = 2191  # six years, HIPAA 164.316(b)(2)


@dataclass(frozen=True)
class Purged:
    cut: int
    deleted: int
    head: Head


def purge(
    checkpointer: Checkpointer,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    now: float | None = None,
) -> Purged | None:
    """Delete the entries past retention; None when there are none beyond the current cut."""
    store = checkpointer.store
    checkpointer.sole_writer = False  # the gateway may be appending meanwhile
    checkpointer.catch_up()
    now = time.time() if now is None else now
    cut = store.older_than(utc(now - retention_days * 86400.0))
    previous = store.cut()
    if cut <= (previous.tree_size if previous else 0):
        return None
    head = checkpointer.head_at(cut)
    floor = previous.tree_size if previous else 0
    tree, entries = tree_upto(store, cut, floor)
    last = entries[-1] if entries else None
    if last is None or last.seq != cut:  # pragma: no cover - tree_upto reads up to cut
        raise ValueError(f"entry {cut} is missing")
    proof = tree.inclusion_proof(cut - 1, cut)
    if not verify_inclusion(
        leaf_hash(bytes.fromhex(last.hash)), cut - 1, cut, proof, bytes.fromhex(head.root_hash)
    ):
        raise ValueError(f"entry {cut} is not under the head of {cut} entries; not purging")
    consistency = {
        str(h.tree_size): [p.hex() for p in tree.consistency_proof(h.tree_size, cut)]
        for h in store.heads()
        if max(floor, 1) <= h.tree_size < cut
    }
    signed = cut_event(
        checkpointer.key,
        time=utc(now),
        tree_size=cut,
        root_hash=head.root_hash,
        last_hash=last.hash,
        last_time=last.time,
        retention_days=retention_days,
        consistency=consistency,
    )
    for attempt in range(3):  # the cut, in the chain, first (the gateway may be appending)
        store.resync()
        checkpointer.catch_up()
        try:
            rows, digests = store.append_prepared([prepare(signed)])
            break
        except Tampered:
            if attempt == 2:
                raise
    checkpointer.extend(rows[0][0], digests)
    deleted = store.purge(Cut(cut, last.hash, tuple(p.hex() for p in proof)))
    return Purged(cut, deleted, head)
