"""Signed tree heads: the Ed25519 key, signing and checking heads, and when to write one.

A head is ``{tree_size, root_hash, time, key_id, signature}``; ``signature`` is the hex Ed25519
signature over ``JCS({"key_id", "root_hash", "time", "tree_size"})``, ``root_hash`` the hex RFC 6962
root over the first ``tree_size`` entries, ``key_id`` the hex of the first 16 bytes of SHA-256 of
the raw 32-byte public key. Each head is stored and published to the ``Anchors`` (anchors.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wardgate.audit.anchors import Anchors
from wardgate.audit.canonical import canonical
from wardgate.audit.merkle import Frontier, Tree, leaf_hash
from wardgate.audit.store import (
    AuditStore,
    AuditUnavailable,
    Entry,
    Head,
    Tampered,
    entry_mac,
    tamper_message,
)
from wardgate.keyfile import KeyFileError, read_or_create


def utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``, created with mode 0600 if absent (``keyfile``); refused if
    others may read it."""

    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    try:
        pem = read_or_create(path, make)
    except KeyFileError as exc:
        raise AuditUnavailable(f"the audit signing key: {exc}") from None
    except OSError as exc:
        raise AuditUnavailable(f"{path}: cannot read or make the audit signing key: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise AuditUnavailable(f"{path}: not an Ed25519 private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditUnavailable(f"{path}: not an Ed25519 private key")
    return key


def mac_key(key: Ed25519PrivateKey) -> bytes:
    """The replicas' MAC key, derived from the signing key they share (``store.entry_mac``)."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hmac.new(raw, b"wardgate audit replica mac", hashlib.sha256).digest()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:16].hex()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def sign_head(key: Ed25519PrivateKey, frontier: Frontier, now: float) -> Head:
    unsigned = Head(frontier.size, frontier.root().hex(), utc(now), key_id(key.public_key()), "")
    signature = key.sign(canonical(unsigned.signed())).hex()
    return Head(
        unsigned.tree_size,
        unsigned.root_hash,
        unsigned.time,
        unsigned.key_id,
        signature,
        tuple(n.hex() for n in frontier.nodes),
    )


def signature_ok(head: Head, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(bytes.fromhex(head.signature), canonical(head.signed()))
    except (InvalidSignature, ValueError):
        return False
    return True


def frontier_of(head: Head) -> Frontier:
    """The head's stored frontier, checked against its signed root."""
    frontier = Frontier(head.tree_size, [bytes.fromhex(n) for n in head.frontier])
    if frontier.root().hex() != head.root_hash:
        raise ValueError(f"the frontier stored with head {head.tree_size} does not match its root")
    return frontier


def tree_upto(store: AuditStore, size: int, first_leaf: int) -> tuple[Tree, list[Entry]]:
    """A tree of ``size`` leaves holding every leaf from index ``first_leaf`` on: built from the
    frontier of the newest head at or below ``first_leaf`` entries and the entries after it."""
    cut = store.cut()
    floor = cut.tree_size if cut else 0
    if first_leaf < floor:
        raise ValueError(f"entry {first_leaf + 1} was purged (the log starts after {floor})")
    bases = [h for h in store.heads() if floor <= h.tree_size <= first_leaf and h.frontier]
    base = frontier_of(bases[-1]) if bases else Frontier()
    if base.size < floor:
        raise ValueError(f"entries up to {floor} were purged and no head at the cut holds them")
    entries = list(store.entries(base.size + 1, size))
    if len(entries) != size - base.size:
        raise ValueError(f"the store lacks entries {base.size + 1}..{size}")
    leaves = [leaf_hash(bytes.fromhex(e.hash)) for e in entries]
    return Tree(leaves, base), entries


class Checkpointer:
    """Writes a head every ``every_entries`` entries or when the oldest unsigned entry is
    ``every_seconds`` old, whichever comes first (and at the first append), keeping the tree as
    a frontier in memory. Entries that another
    writer appended (a replica sharing a PostgreSQL store) are read from the store into it."""

    def __init__(
        self,
        store: AuditStore,
        key: Ed25519PrivateKey,
        *,
        every_entries: int = 1000,
        every_seconds: float = 1.0,
        anchors: Anchors | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.0,
    ) -> None:
        self.store, self.key, self.anchors, self.clock = store, key, anchors, clock
        self.every_entries, self.every_seconds = every_entries, every_seconds
        # A head is due when the oldest unsigned entry is ``every_seconds - tick`` old: with a
        # timer every ``tick`` seconds, no entry stays unsigned longer than ``every_seconds``.
        self.tick_interval = tick
        self.unsigned_since: float | None = None
        # False for a command (``purge``) that writes beside the running gateway.
        self.sole_writer = True
        public = key.public_key()
        store.record_key(key_id(public), public_pem(public), utc(clock()))
        heads = store.heads()
        latest = heads[-1] if heads else None
        self.frontier = frontier_of(latest) if latest else Frontier()
        self.head_size = latest.tree_size if latest else 0
        self.head_time = clock() if latest else float("-inf")
        size, _ = store.last()
        if size > self.frontier.size:  # bounded: another replica may be appending
            for entry in store.entries(self.frontier.size + 1, size):
                self.frontier.append(leaf_hash(bytes.fromhex(entry.hash)))
        if self.frontier.size != size:
            raise AuditUnavailable(f"the audit store ends at {size}, its heads at {self.head_size}")
        self.tip = store.last()  # (seq, hash) of the last entry this gateway knows it wrote

    def check_tip(self) -> None:
        """Refuse to sign unless the store ends with the entry this gateway wrote last (a store
        shared by replicas is checked entry by entry instead, in ``_catch_up``)."""
        if self.store.shared or not self.sole_writer:
            return
        found = self.store.last()
        if found != self.tip:
            raise Tampered(tamper_message(found, self.tip), self.tip)

    def appended(self, entries: Sequence[Entry]) -> Head | None:
        if not entries:
            return self.tick()
        seqs = [e.seq for e in entries]
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            raise AuditUnavailable(f"entries {seqs} are not consecutive")
        return self.extend(seqs[0], [bytes.fromhex(e.hash) for e in entries])

    def extend(self, first: int, digests: Sequence[bytes]) -> Head | None:
        """Entries ``first``, ``first + 1``, ... with these raw hashes were appended."""
        if digests and first > self.frontier.size + 1:
            self._catch_up(first - 1)  # another writer (a replica) appended the ones between
        if digests and first != self.frontier.size + 1:
            expected = self.frontier.size + 1
            raise AuditUnavailable(
                f"entry {first} was appended by someone else; expected {expected}"
            )
        append = self.frontier.append
        for digest in digests:
            append(leaf_hash(digest))
        if digests:
            self.tip = (self.frontier.size, digests[-1].hex())
            if self.unsigned_since is None:
                self.unsigned_since = self.clock()
        return self.tick()

    def _catch_up(self, size: int, vouched: bool = True) -> None:
        """Take entries up to ``size`` that others appended into the tree, from the store. In a
        shared store each must carry a replica's MAC (``vouched``): the signer covers no entry
        that no replica vouches for."""
        first = self.frontier.size + 1
        key = self.store.mac_key if vouched and self.store.shared else None
        macs = self.store.vouches(first, size) if key is not None and size >= first else {}
        for entry in self.store.entries(first, size):
            if entry.seq != self.frontier.size + 1:
                break
            if key is not None and macs.get(entry.seq) != entry_mac(key, entry.hash):
                raise Tampered(
                    f"audit store tampered with: entry {entry.seq} was appended by no replica"
                    " (it has no valid replica MAC); nothing after it is signed",
                    self.tip,
                )
            self.frontier.append(leaf_hash(bytes.fromhex(entry.hash)))
            self.tip = (entry.seq, entry.hash)

    def catch_up(self) -> None:
        """Take whatever the store holds beyond the tree into it (a command run beside the
        gateway does, before it appends)."""
        found = self.store.last()
        self._catch_up(found[0])
        self.tip = found

    def resync(self) -> tuple[int, int]:
        """Take what the store holds beyond this gateway's tip into the tree (after an operator
        acknowledged a tamper alarm); returns the range taken, empty if none. A store that lost
        entries this gateway wrote cannot be resumed."""
        found = self.store.last()
        first = self.frontier.size + 1
        if found[0] < self.frontier.size:
            raise Tampered(
                tamper_message(found, self.tip) + "; entries this gateway wrote are gone:"
                " restore the store from a backup"
            )
        self._catch_up(found[0], vouched=False)  # the operator acknowledged them
        if self.frontier.size != found[0]:
            raise Tampered(f"the audit store lacks entries {self.frontier.size + 1}..{found[0]}")
        self.tip = found
        return first, found[0]

    def due(self, now: float) -> bool:
        if self.frontier.size == self.head_size:
            return False
        if self.head_time == float("-inf") or self.unsigned_since is None:
            return True  # the first entries, or ones left by a previous run
        return (
            self.frontier.size - self.head_size >= self.every_entries
            or now - self.unsigned_since >= self.every_seconds - self.tick_interval
        )

    def tick(self) -> Head | None:
        """Write a head if one is due; call it from a timer too, so quiet logs get heads."""
        now = self.clock()
        return self.checkpoint(now) if self.due(now) else None

    def checkpoint(self, now: float | None = None) -> Head | None:
        """A head at the current size now, unless the newest head already has this size."""
        if self.frontier.size == self.head_size:
            return None
        now = self.clock() if now is None else now
        self.check_tip()
        head = self._publish(sign_head(self.key, self.frontier, now))
        self.head_size, self.head_time = head.tree_size, now
        self.unsigned_since = None
        return head

    def head_at(self, size: int) -> Head:
        """The stored head of ``size`` entries, signing (and anchoring) one if there is none."""
        found = self.store.head_at(size)
        if found is not None:
            return found
        if size == self.frontier.size:
            head = self.checkpoint()
            assert head is not None
            return head
        self.check_tip()
        tree, _ = tree_upto(self.store, size, size - 1)
        frontier = tree_frontier(tree, size)
        return self._publish(sign_head(self.key, frontier, self.clock()))

    def _publish(self, head: Head) -> Head:
        self.store.add_head(head)
        if self.anchors is not None:
            self.anchors.publish(head)
        return head


def tree_frontier(tree: Tree, size: int) -> Frontier:
    """The frontier of the first ``size`` leaves of ``tree``."""
    nodes, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            nodes.append(tree.subtree(start, start + (1 << bit)))
            start += 1 << bit
    return Frontier(size, nodes)
