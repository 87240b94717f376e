"""RFC 6962 / RFC 9162 Merkle tree hashes, inclusion proofs and consistency proofs (SHA-256).

A leaf hash is ``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``;
the tree over n leaves splits at the largest power of two below n, so its left part is always a
perfect subtree. The audit log's leaf data for entry ``seq`` is the 32 raw bytes of that entry's
hash; leaf index = seq - 1.

``Frontier`` is the compact form of a tree: the roots of its maximal perfect subtrees, left to
right (one per set bit of the size). It extends by one leaf in amortised O(1) and gives the root
at any size, so the gateway never keeps the leaves. ``Tree`` builds proofs; it may start from a
frontier instead of leaves (after a retention purge), which suffices for every proof whose leaf
or old size lies beyond that frontier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
_CACHED_FROM = 6  # perfect subtrees of 2**6 leaves and more are memoised by Tree


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} nodes")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash (already ``leaf_hash``-ed)."""
        node = leaf
        size = self.size
        while size & 1:  # each trailing one bit is a perfect subtree the new node completes
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)


class Purged(LookupError):
    """A proof needs a subtree whose leaves were purged and which the frontier does not hold."""


class Tree:
    """Leaves ``base.size`` .. ``base.size + len(leaves) - 1`` after the frontier ``base``."""

    def __init__(self, leaves: Sequence[bytes], base: Frontier | None = None) -> None:
        base = base or Frontier()
        self.offset = base.size
        self.leaves = leaves
        self._known: dict[tuple[int, int], bytes] = {}
        start = 0
        for node in base.nodes:  # the maximal perfect subtrees of [0, offset)
            width = 1 << (base.size ^ start).bit_length() - 1
            self._known[(start, width)] = node
            start += width
        self._cache: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return self.offset + len(self.leaves)

    def _perfect(self, start: int, width: int) -> bytes:
        known = self._known.get((start, width))
        if known is not None:
            return known
        if start + width <= self.offset:
            raise Purged(f"leaves {start + 1}..{start + width} were purged")
        if width == 1:
            return self.leaves[start - self.offset]
        cached = self._cache.get((start, width))
        if cached is not None:
            return cached
        half = width >> 1
        node = node_hash(self._perfect(start, half), self._perfect(start + half, half))
        if width >= 1 << _CACHED_FROM:
            self._cache[(start, width)] = node
        return node

    def subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end); ``start`` is aligned as in every RFC 6962 recursion."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            return self._perfect(start, n)
        k = _split(n)
        return node_hash(self._perfect(start, k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check(size)
        return self.subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` (0-based) in the tree of ``size`` leaves."""
        self._check(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """The RFC 6962 proof that the tree of ``old`` leaves is a prefix of the one of ``new``."""
        self._check(new)
        if not 0 < old <= new:
            raise ValueError(f"no consistency proof from {old} to {new} leaves")
        proof: list[bytes] = []
        start, end, whole = 0, new, True
        while old - start != end - start:
            k = _split(end - start)
            if old - start <= k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start += k
                whole = False
        if not whole:
            proof.append(self.subtree(start, end))
        proof.reverse()
        return proof

    def _check(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` put ``leaf`` (a leaf hash) at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``old`` leaves with ``old_root`` a prefix of the tree
    of ``new`` leaves with ``new_root``?"""
    if not 0 < old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the proof's first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
