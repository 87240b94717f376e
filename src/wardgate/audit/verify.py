"""Offline verification: the database (a file, or a PostgreSQL URL), the public key, and
optionally the anchored heads.

One pass in seq order, so the first problem reported is the first bad entry (or head):

1. a retention cut, if any, is vouched for by a signed head of its size: the head's frontier gives
   its root, and the recorded hash of the last purged entry is proven to be that tree's last leaf;
2. every entry: seq is the next one; the event is valid JSON in its canonical form; ``time``,
   ``type`` and the search columns (``subject``, ``on_behalf``, ``target``, ``tables``,
   ``decision``) match the event; ``prev_hash`` is the previous entry's hash; ``hash`` is
   recomputed;
3. at each stored or anchored head's size: its key id is the given key's, its signature verifies,
   and its root equals the Merkle root recomputed from the entries;
4. no head (stored or anchored) is beyond the last entry; consecutive heads are consistent
   (RFC 6962 consistency proofs); the log has at least one signed head;
5. a retention cut is vouched for by a signed ``audit.cut`` entry (``cuts.py``) made when the
   last entry cut was past the retention period, and every head below the cut is consistent
   with the head at it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wardgate.audit.anchors import read_head_file
from wardgate.audit.canonical import CanonicalizationError, canonical
from wardgate.audit.checkpoints import frontier_of, key_id, signature_ok, tree_upto
from wardgate.audit.cuts import CUT, age_days, cut_signed
from wardgate.audit.location import Location
from wardgate.audit.merkle import Frontier, Tree, leaf_hash, verify_consistency, verify_inclusion
from wardgate.audit.store import (
    GENESIS,
    AuditStore,
    AuditUnavailable,
    Entry,
    Head,
    entry_hash,
    open_store,
    search_columns,
)

_COLUMN_NAMES = ("subject", "on_behalf", "target", "tables", "decision")


@dataclass
class Report:
    ok: bool = True
    problem: str = ""
    bad_seq: int | None = None
    first_seq: int = 0
    last_seq: int = 0
    heads: int = 0
    anchored: int = 0
    notes: list[str] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq, self.problem = seq, problem


def verify(
    db: Location,
    public: Ed25519PublicKey,
    head_file: Path | None = None,
    pin: str | None = None,
) -> Report:
    """``db`` is a SQLite file or a PostgreSQL URL (read in one snapshot). With ``pin`` (a key
    id), a public key with another id is refused before anything else is read."""
    report = Report()
    try:
        if pin is not None and key_id(public) != pin.lower():
            raise _Bad(
                None,
                f"the public key given has key id {key_id(public)}, not the pinned {pin.lower()}"
                " (heads signed by any other key are refused)",
            )
        anchored = read_head_file(head_file) if head_file is not None else []
        if isinstance(db, Path) and not db.is_file():
            raise _Bad(None, f"{db}: no such database file")
        try:
            store = open_store(db, readonly=True)
        except AuditUnavailable as exc:
            raise _Bad(None, f"cannot read the audit store: {exc}") from exc
        try:
            _check(store, public, anchored, report)
        finally:
            store.close()
    except _Bad as bad:
        report.ok, report.problem, report.bad_seq = False, bad.problem, bad.seq
    except (ValueError, OSError) as exc:
        report.ok, report.problem = False, str(exc)
    return report


def _check_signature(head: Head, kid: str, public: Ed25519PublicKey, what: str) -> None:
    if head.key_id != kid:
        raise _Bad(
            head.tree_size, f"{what} {head.tree_size} is signed by key {head.key_id}, not {kid}"
        )
    if not signature_ok(head, public):
        raise _Bad(head.tree_size, f"{what} {head.tree_size}: the signature does not verify")


def _check(
    store: AuditStore, public: Ed25519PublicKey, anchored: list[Head], report: Report
) -> None:
    kid = key_id(public)
    stored = {h.tree_size: h for h in store.heads()}
    by_size: dict[int, list[tuple[str, Head]]] = {}
    for head in stored.values():
        by_size.setdefault(head.tree_size, []).append(("head", head))
    for head in anchored:
        by_size.setdefault(head.tree_size, []).append(("anchored head", head))
    report.heads, report.anchored = len(stored), len(anchored)

    cut = store.cut()
    frontier, prev = Frontier(), GENESIS
    if cut is not None:
        frontier, prev = _check_cut(
            cut.tree_size, cut.last_hash, cut.last_proof, stored, kid, public
        )
        report.notes.append(f"entries 1..{cut.tree_size} were purged at a signed cut")
    floor = frontier.size
    for size in sorted(s for s in by_size if s <= floor):  # purged: signatures (and the cut)
        for what, head in by_size[size]:
            _check_signature(head, kid, public, what)
            if size == floor and head.root_hash != frontier.root().hex():
                raise _Bad(size, f"{what} {size}: its root differs from the head at the cut")

    base = frontier.copy()
    cuts: dict[int, tuple[int, dict[str, object]]] = {}  # signed audit.cut entries by cut size
    leaves: list[bytes] = []
    roots: dict[int, bytes] = {floor: frontier.root()} if floor else {}
    for entry in store.entries(floor + 1):
        expected = frontier.size + 1
        if entry.seq != expected:
            raise _Bad(expected, f"entry {expected} is missing (the next entry is {entry.seq})")
        _check_entry(entry, prev)
        if entry.type == CUT:
            cut_entry = json.loads(entry.event)
            if not cut_signed(cut_entry, public):
                raise _Bad(entry.seq, f"entry {entry.seq}: a retention cut not signed by key {kid}")
            cuts[int(cut_entry["tree_size"])] = (entry.seq, cut_entry)
        prev = entry.hash
        leaf = leaf_hash(bytes.fromhex(entry.hash))
        frontier.append(leaf)
        leaves.append(leaf)
        for what, head in by_size.get(entry.seq, ()):
            _check_signature(head, kid, public, what)
            roots[entry.seq] = root = frontier.root()
            if head.root_hash != root.hex():
                raise _Bad(
                    entry.seq,
                    f"{what} {entry.seq}: its root does not match entries 1..{entry.seq}"
                    " (entries were changed after it was signed)",
                )
    size = frontier.size
    report.first_seq, report.last_seq = (floor + 1 if size > floor else 0), size
    beyond = sorted(s for s in by_size if s > size)
    if beyond:
        what = by_size[beyond[0]][0][0]
        raise _Bad(
            size + 1,
            f"{what} {beyond[0]} is beyond the end of the log ({size} entries):"
            f" entries {size + 1}..{beyond[0]} were removed or the log was rolled back",
        )
    if size and not stored:
        raise _Bad(None, "no signed head in the store: nothing vouches for these entries")
    if cut is not None:
        _check_cut_entry(cut.tree_size, cut.last_hash, stored, cuts, by_size, report)
    tree = Tree(leaves, base)
    sizes = sorted(roots)
    for old, new in itertools.pairwise(sizes):
        proof = tree.consistency_proof(old, new)
        if not verify_consistency(old, new, roots[old], roots[new], proof):  # pragma: no cover
            raise _Bad(new, f"heads {old} and {new} are not consistent")
    signed = max(stored) if stored else 0
    if signed < size:
        report.notes.append(f"entries {signed + 1}..{size} are chained but not yet signed")


def _check_cut(
    size: int,
    last_hash: str,
    last_proof: tuple[str, ...],
    stored: dict[int, Head],
    kid: str,
    public: Ed25519PublicKey,
) -> tuple[Frontier, str]:
    head = stored.get(size)
    if head is None:
        raise _Bad(size, f"the retention cut at {size} has no signed head")
    _check_signature(head, kid, public, "head")
    try:
        frontier = frontier_of(head)
    except ValueError as exc:
        raise _Bad(size, str(exc)) from None
    proof = [bytes.fromhex(p) for p in last_proof]
    root = bytes.fromhex(head.root_hash)
    if not verify_inclusion(leaf_hash(bytes.fromhex(last_hash)), size - 1, size, proof, root):
        raise _Bad(size, f"the hash recorded for purged entry {size} is not under its head")
    return frontier, last_hash


def _check_cut_entry(
    floor: int,
    last_hash: str,
    stored: dict[int, Head],
    cuts: dict[int, tuple[int, dict[str, object]]],
    by_size: dict[int, list[tuple[str, Head]]],
    report: Report,
) -> None:
    """The cut at ``floor`` is vouched for by a signed ``audit.cut`` entry further on, made when
    entry ``floor`` was past its retention period; heads below the cut are consistent with the
    head at it (the proofs the cut entry carries)."""
    found = cuts.get(floor)
    if found is None:
        raise _Bad(
            floor,
            f"the retention cut at {floor} is not vouched for by a signed audit.cut entry:"
            f" entries 1..{floor} were deleted without one",
        )
    seq, event = found
    if event.get("root_hash") != stored[floor].root_hash or event.get("last_hash") != last_hash:
        raise _Bad(
            seq, f"entry {seq}: the audit.cut entry names another cut than the one at {floor}"
        )
    try:
        age, days = age_days(event), float(str(event["retention_days"]))
    except (KeyError, ValueError):
        raise _Bad(seq, f"entry {seq}: the audit.cut entry has no valid times") from None
    if age < days:
        raise _Bad(
            seq,
            f"the retention cut at {floor} deleted entries younger than its retention period:"
            f" entry {floor} was {age:.2f} days old when cut, the period is {days:g} days",
        )
    report.notes[-1] = (
        f"entries 1..{floor} were purged at a signed cut (entry {seq}, {event['time']}:"
        f" entry {floor} was {age:.0f} days old, retention {days:g} days)"
    )
    proofs = event.get("consistency")
    proofs = proofs if isinstance(proofs, dict) else {}
    root = bytes.fromhex(stored[floor].root_hash)
    unproven = []
    for size in sorted(s for s in by_size if 0 < s < floor):
        proof = proofs.get(str(size))
        if proof is None:
            unproven.append(size)
            continue
        nodes = [bytes.fromhex(p) for p in proof]
        for what, head in by_size[size]:
            if not verify_consistency(size, floor, bytes.fromhex(head.root_hash), root, nodes):
                raise _Bad(
                    size,
                    f"{what} {size} is not consistent with the head at the cut ({floor}):"
                    " the log before the cut was rewritten",
                )
    if unproven:
        report.notes.append(
            f"heads {unproven[0]}..{unproven[-1]} below the cut predate an earlier cut: only their"
            " signatures are checked"
        )


def _check_entry(entry: Entry, prev: str) -> None:
    seq = entry.seq
    try:
        event = json.loads(entry.event)
        encoded = canonical(event)
    except (ValueError, CanonicalizationError):
        raise _Bad(seq, f"entry {seq}: the event is not valid JSON") from None
    data = entry.event.encode()
    if encoded != data:
        raise _Bad(seq, f"entry {seq}: the event is not in canonical form (it was edited)")
    columns = (
        (str(event.get("time", "")), str(event.get("type", "")))
        if isinstance(event, dict)
        else None
    )
    if columns != (entry.time, entry.type):
        raise _Bad(seq, f"entry {seq}: its time or type column differs from its event")
    if entry.prev_hash != prev:
        raise _Bad(seq, f"entry {seq}: prev_hash is not the hash of entry {seq - 1}")
    if entry_hash(seq, prev, data) != entry.hash:
        raise _Bad(seq, f"entry {seq}: the hash does not match its contents")
    if entry.columns is not None and isinstance(event, dict):
        expected = search_columns(event)
        for name, stored, wanted in zip(_COLUMN_NAMES, entry.columns, expected, strict=True):
            if (stored or None) != (wanted or None):
                raise _Bad(
                    seq,
                    f"entry {seq}: its {name} column {stored!r} differs from its event"
                    f" ({wanted!r}); search would miss or misfile it",
                )


def prove(store: AuditStore, seq: int) -> dict[str, object]:
    """The inclusion proof of entry ``seq`` under the newest signed head that covers it."""
    heads = [h for h in store.heads() if h.tree_size >= seq]
    if seq < 1 or not heads:
        raise ValueError(f"no signed head covers entry {seq} (yet)")
    head = heads[-1]
    tree, entries = tree_upto(store, head.tree_size, seq - 1)
    entry = entries[seq - 1 - tree.offset]
    leaf = leaf_hash(bytes.fromhex(entry.hash))
    proof = tree.inclusion_proof(seq - 1, head.tree_size)
    if not verify_inclusion(leaf, seq - 1, head.tree_size, proof, bytes.fromhex(head.root_hash)):
        raise ValueError(f"entry {seq} is not under the head of {head.tree_size}: run verify")
    return {
        "seq": seq,
        "entry": {
            "seq": entry.seq,
            "event": json.loads(entry.event),
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        },
        "leaf_index": seq - 1,
        "leaf_hash": leaf.hex(),
        "tree_size": head.tree_size,
        "proof": [p.hex() for p in proof],
        "head": head.public(),
    }
