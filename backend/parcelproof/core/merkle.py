"""RFC 9162 §2.1 Merkle tree arithmetic over SHA-256: hashing, roots, proofs, verification.

Consensus-critical. Proof generation reads hashes of perfect, aligned subtrees through a
:class:`NodeReader` so that a store can serve O(log n) reads per proof without loading the
tree; :class:`MemoryLog` is the in-memory implementation used by tests and tools.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from parcelproof.core.errors import (
    FormatError,
    IndexOutOfRangeError,
    RootMismatchError,
    TrailingGarbageError,
    TruncationError,
    VerificationError,
)

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """Return ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    if n < 2:
        raise ValueError("n must be at least 2")
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH of a full list of leaf hashes (RFC 9162 §2.1.1). For tests and small trees."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


# --- proof generation over perfect subtrees -------------------------------------------------


class NodeReader(Protocol):
    """Reads the hash of the perfect subtree at ``level`` covering leaves
    ``[index * 2**level, (index + 1) * 2**level)``; level 0 are the leaf hashes."""

    def __call__(self, level: int, index: int) -> bytes: ...


def range_hash(read: NodeReader, start: int, end: int) -> bytes:
    """Return MTH(D[start:end]) for a range whose start is aligned to a power of two at
    least as large as the range (every range RFC 9162 recursion produces is)."""
    if end <= start:
        raise IndexOutOfRangeError(f"empty range [{start}, {end})")
    parts: list[bytes] = []
    pos = start
    size = end - start
    while size:
        level = size.bit_length() - 1
        width = 1 << level
        if pos % width:
            raise FormatError(f"range [{start}, {end}) is not aligned")
        parts.append(read(level, pos >> level))
        pos += width
        size -= width
    acc = parts[-1]
    for h in reversed(parts[:-1]):
        acc = node_hash(h, acc)
    return acc


def tree_root(read: NodeReader, size: int) -> bytes:
    """Return the root of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return range_hash(read, 0, size)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """Return the audit path for leaf ``index`` in the tree of ``size`` leaves (§2.1.3.1)."""
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"leaf index {index} outside tree of size {size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    # Walk down from the root; collect siblings, then reverse into leaf-to-root order.
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if m < k:
            path.append(range_hash(read, start + k, end))
            end = start + k
        else:
            path.append(range_hash(read, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def consistency_proof(read: NodeReader, size1: int, size2: int) -> list[bytes]:
    """Return the consistency proof from ``size1`` to ``size2`` (§2.1.4.1)."""
    if not 0 <= size1 <= size2:
        raise IndexOutOfRangeError(f"cannot prove consistency from {size1} to {size2}")
    if size1 == 0 or size1 == size2:
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, size2, size1, True
    while m != end - start:
        k = largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(range_hash(read, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(read, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(range_hash(read, start, end))
    proof.reverse()
    return proof


class MemoryLog:
    """An append-only log held in memory, storing each perfect subtree hash once."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]

    def __len__(self) -> int:
        return len(self._levels[0])

    def append_leaf_hash(self, h: bytes) -> int:
        """Append one leaf hash; return its index."""
        if len(h) != HASH_SIZE:
            raise FormatError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")
        index = len(self._levels[0])
        self._levels[0].append(h)
        level, i = 0, index
        while i & 1:
            parent = node_hash(self._levels[level][i - 1], self._levels[level][i])
            level += 1
            i >>= 1
            if len(self._levels) <= level:
                self._levels.append([])
            self._levels[level].append(parent)
        return index

    def append(self, leaf: bytes) -> int:
        """Append raw leaf data; return its index."""
        return self.append_leaf_hash(leaf_hash(leaf))

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree at (level, index)."""
        try:
            return self._levels[level][index]
        except IndexError:
            raise IndexOutOfRangeError(f"no subtree at level {level} index {index}") from None

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (all by default)."""
        return tree_root(self.node, len(self) if size is None else self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves (all by default)."""
        size = len(self) if size is None else self._check_size(size)
        return inclusion_proof(self.node, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from ``size1`` to ``size2`` (all by default)."""
        size2 = len(self) if size2 is None else self._check_size(size2)
        return consistency_proof(self.node, size1, size2)

    def _check_size(self, size: int) -> int:
        if not 0 <= size <= len(self):
            raise IndexOutOfRangeError(f"size {size} beyond log of {len(self)} leaves")
        return size


# --- verification (after transparency-dev/merkle) -------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray):
        raise FormatError(f"{what} must be bytes")
    if len(value) != HASH_SIZE:
        raise FormatError(f"{what} has {len(value)} bytes, want {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes], want: int) -> None:
    for i, h in enumerate(proof):
        _check_hash(h, f"proof[{i}]")
    if len(proof) < want:
        raise TruncationError(f"proof has {len(proof)} hashes, want {want}")
    if len(proof) > want:
        raise TrailingGarbageError(f"proof has {len(proof)} hashes, want {want}")


def _decompose(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in a well-formed audit path for ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"leaf index {index} is beyond tree size {size}")
    inner, border = _decompose(index, size)
    return inner + border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the root that ``proof`` implies for leaf hash ``leaf`` at ``index``."""
    want = inclusion_proof_length(index, size)
    _check_hash(leaf, "leaf hash")
    _check_proof(proof, want)
    inner, _ = _decompose(index, size)
    res = _chain_inner(bytes(leaf), proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root``."""
    _check_hash(root, "root")
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if calculated != root:
        raise RootMismatchError(bytes(root), calculated)


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise unless ``proof`` shows the tree ``root1`` of ``size1`` is a prefix of ``root2``."""
    if size1 < 0 or size2 < 0:
        raise IndexOutOfRangeError("tree sizes must not be negative")
    if size2 < size1:
        raise IndexOutOfRangeError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise TrailingGarbageError("size1 == size2 but the proof is not empty")
        if root1 != root2:
            raise RootMismatchError(bytes(root1), bytes(root2))
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    if not proof:
        raise TruncationError("empty consistency proof")
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, start = bytes(root1), 0
    else:
        _check_hash(proof[0], "proof[0]")
        seed, start = bytes(proof[0]), 1
    _check_proof(proof[start:], inner + border)
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != root1:
        raise RootMismatchError(bytes(root1), hash1, "first root")
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != root2:
        raise RootMismatchError(bytes(root2), hash2, "second root")


def is_valid(check: Callable[[], None]) -> bool:
    """Run a ``verify_*`` thunk and report success as a bool (for tables and CLIs)."""
    try:
        check()
    except (VerificationError, FormatError):
        return False
    return True
