"""RFC 6962 trees: every proof for every size up to 64 verifies, and no altered proof does."""

from __future__ import annotations

import hashlib

import pytest

from wardgate.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    Purged,
    Tree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

N = 64
DATA = [f"entry {i}".encode() for i in range(N)]
LEAVES = [leaf_hash(d) for d in DATA]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 section 2.1 defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def altered(proof: list[bytes]) -> list[list[bytes]]:
    """Each node with one bit flipped, a node dropped, a node added, two swapped."""
    out = []
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 1
        out.append([*proof[:i], bytes(flipped), *proof[i + 1 :]])
        out.append(proof[:i] + proof[i + 1 :])
    out.append([*proof, proof[0] if proof else b"\0" * 32])
    if len(proof) > 1 and proof[0] != proof[1]:
        out.append([proof[1], proof[0], *proof[2:]])
    return out


def test_hash_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert Frontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_frontier_and_tree_roots_match_the_definition() -> None:
    frontier = Frontier()
    tree = Tree(LEAVES)
    for n in range(1, N + 1):
        frontier.append(LEAVES[n - 1])
        expected = reference_root(LEAVES[:n])
        assert frontier.root() == expected
        assert tree.root(n) == expected
        assert Frontier(n, frontier.nodes).root() == expected


@pytest.mark.parametrize("size", range(1, N + 1))
def test_every_inclusion_proof_verifies_and_altered_ones_fail(size: int) -> None:
    tree = Tree(LEAVES[:size])
    root = tree.root()
    for index in range(size):
        proof = tree.inclusion_proof(index, size)
        assert verify_inclusion(LEAVES[index], index, size, proof, root)
        other = LEAVES[(index + 1) % size]
        if other != LEAVES[index]:
            assert not verify_inclusion(other, index, size, proof, root)
        if size > 1:
            assert not verify_inclusion(LEAVES[index], (index + 1) % size, size, proof, root)
        for bad in altered(proof):
            assert not verify_inclusion(LEAVES[index], index, size, bad, root)


@pytest.mark.parametrize("new", range(1, N + 1))
def test_every_consistency_proof_verifies_and_altered_ones_fail(new: int) -> None:
    tree = Tree(LEAVES[:new])
    new_root = tree.root()
    for old in range(1, new + 1):
        old_root = tree.root(old)
        proof = tree.consistency_proof(old, new)
        assert verify_consistency(old, new, old_root, new_root, proof)
        if old == new:
            continue
        assert not verify_consistency(old, new, new_root, new_root, proof)
        assert not verify_consistency(old, new, old_root, old_root, proof)
        if old > 1:
            assert not verify_consistency(old - 1, new, old_root, new_root, proof)
        for bad in altered(proof):
            assert not verify_consistency(old, new, old_root, new_root, bad)


def test_a_tree_resumed_from_a_frontier_proves_what_lies_beyond_it() -> None:
    for base_size in range(1, 40):
        base = Frontier()
        for leaf in LEAVES[:base_size]:
            base.append(leaf)
        tree = Tree(LEAVES[base_size:], base)
        full = Tree(LEAVES)
        assert tree.root() == full.root()
        for index in range(base_size, N):
            assert tree.inclusion_proof(index, N) == full.inclusion_proof(index, N)
        for old in range(base_size, N + 1):
            assert tree.consistency_proof(old, N) == full.consistency_proof(old, N)
        if base_size & (base_size - 1):  # not a single perfect subtree: a leaf inside is gone
            with pytest.raises(Purged):
                tree.inclusion_proof(0, N)
