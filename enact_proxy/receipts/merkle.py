"""RFC 6962 Merkle tree hashing (SPEC §6): leaf and node hashes, a compact range for appends, inclusion
paths from stored subtree roots, and the RFC 9162 §2.1.3.2 inclusion check.

The records of the log, in ``seq`` order, are the leaves; a leaf's data is the record's canonical bytes
(signature included). Only whole, aligned subtrees (2^level leaves starting at a multiple of 2^level)
are ever stored or looked up; every other subtree root is computed from those, so an audit path at
any tree size costs O(log² n) lookups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (recursive; for small trees and tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


class CompactRange:
    """The roots of the perfect subtrees that make up a tree of ``size`` leaves (one per set bit of
    size, biggest first): all an appender needs for the next root. ``on_node(level, index, hash)`` is
    told about every whole subtree completed by an append (level 0 = the leaf itself)."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None):
        self.size = size
        self.hashes = list(hashes or [])
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} hashes, "
                             f"not {len(self.hashes)}")

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)

    def append(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        hashes = self.hashes
        hashes.append(leaf)
        if on_node is not None:
            on_node(0, self.size, leaf)
        self.size += 1
        size, level = self.size, 0
        while not size & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            size >>= 1
            level += 1
            if on_node is not None:
                on_node(level, size - 1, hashes[-1])

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            root = node_hash(h, root)
        return root


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees a compact range of ``size`` holds, biggest first."""
    found, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            found.append((level, start >> level))
            start += 1 << level
    return found


NodeLookup = Callable[[int, int], bytes]  # (level, index) -> the root of that whole, aligned subtree


def subtree_root(start: int, count: int, node: NodeLookup) -> bytes:
    """MTH of leaves [start, start + count) where ``start`` is aligned as RFC 6962's recursion makes it."""
    if count & (count - 1) == 0:
        level = count.bit_length() - 1
        return node(level, start >> level)
    k = _split(count)
    return node_hash(subtree_root(start, k, node), subtree_root(start + k, count - k, node))


def inclusion_path(index: int, size: int, node: NodeLookup) -> list[bytes]:
    """RFC 6962 PATH(index, D[size]), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, count, m = 0, size, index
    while count > 1:
        k = _split(count)
        if m < k:
            path.append(subtree_root(start + k, count - k, node))
            count = k
        else:
            path.append(subtree_root(start, k, node))
            start, count, m = start + k, count - k, m - k
    path.reverse()
    return path


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size or index < 0 or len(leaf) != 32 or len(root) != 32 or any(len(p) != 32 for p in path):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
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
