"""RFC 9162 arithmetic: hand-computed tiny trees, proof generation and Hypothesis properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core import merkle
from parcelproof.core.errors import (
    FormatError,
    IndexOutOfRangeError,
    RootMismatchError,
    TrailingGarbageError,
    TruncationError,
    VerificationError,
)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _log(n: int) -> merkle.MemoryLog:
    log = merkle.MemoryLog()
    for i in range(n):
        log.append(i.to_bytes(4, "big"))
    return log


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.MemoryLog().root() == _sha(b"")


def test_three_leaf_tree_by_hand() -> None:
    a, b, c = (_sha(b"\x00" + x) for x in (b"a", b"b", b"c"))
    ab = _sha(b"\x01" + a + b)
    expected = _sha(b"\x01" + ab + c)
    log = merkle.MemoryLog()
    for x in (b"a", b"b", b"c"):
        log.append(x)
    assert log.root() == expected
    assert log.inclusion_proof(2) == [ab]
    assert log.inclusion_proof(0) == [b, c]
    assert log.consistency_proof(2) == [c]


def test_memory_log_matches_recursive_definition() -> None:
    log = _log(37)
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(37)]
    for size in range(38):
        assert log.root(size) == merkle.root_of(hashes[:size])


@given(n=st.integers(1, 300), data=st.data())
@settings(max_examples=150, deadline=None)
def test_every_leaf_proof_verifies(n: int, data: st.DataObject) -> None:
    log = _log(n)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    proof = log.inclusion_proof(index, size)
    leaf = merkle.leaf_hash(index.to_bytes(4, "big"))
    merkle.verify_inclusion(index, size, leaf, proof, log.root(size))


@given(n=st.integers(2, 300), data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_flipped_bit_or_shifted_index_fails(n: int, data: st.DataObject) -> None:
    log = _log(n)
    index = data.draw(st.integers(0, n - 1))
    proof = log.inclusion_proof(index)
    leaf = merkle.leaf_hash(index.to_bytes(4, "big"))
    root = log.root()
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[which])
        bad[bit // 8] ^= 1 << (bit % 8)
        tampered = [*proof[:which], bytes(bad), *proof[which + 1 :]]
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(index, n, leaf, tampered, root)
    other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index))
    with pytest.raises((VerificationError, FormatError)):
        merkle.verify_inclusion(other, n, leaf, proof, root)


@given(n=st.integers(2, 300), data=st.data())
@settings(max_examples=150, deadline=None)
def test_every_consistency_proof_verifies_and_flips_fail(n: int, data: st.DataObject) -> None:
    log = _log(n)
    size1 = data.draw(st.integers(1, n))
    proof = log.consistency_proof(size1, n)
    merkle.verify_consistency(size1, n, log.root(size1), log.root(), proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = bytearray(proof[which])
        bad[data.draw(st.integers(0, 31))] ^= 0x80
        tampered = [*proof[:which], bytes(bad), *proof[which + 1 :]]
        with pytest.raises(VerificationError):
            merkle.verify_consistency(size1, n, log.root(size1), log.root(), tampered)


def test_root_mismatch_carries_expected_and_calculated() -> None:
    log = _log(5)
    leaf = merkle.leaf_hash((1).to_bytes(4, "big"))
    wrong_root = bytes(32)
    with pytest.raises(RootMismatchError, match="root mismatch") as info:
        merkle.verify_inclusion(1, 5, leaf, log.inclusion_proof(1), wrong_root)
    assert info.value.expected == wrong_root
    assert info.value.calculated == log.root()


def test_truncated_proof_is_a_truncation_error() -> None:
    log = _log(8)
    proof = log.inclusion_proof(3)
    leaf = merkle.leaf_hash((3).to_bytes(4, "big"))
    with pytest.raises(TruncationError, match="want 3"):
        merkle.verify_inclusion(3, 8, leaf, proof[:-1], log.root())


def test_trailing_garbage_in_proof_is_rejected() -> None:
    log = _log(8)
    proof = log.inclusion_proof(3)
    leaf = merkle.leaf_hash((3).to_bytes(4, "big"))
    with pytest.raises(TrailingGarbageError, match="want 3"):
        merkle.verify_inclusion(3, 8, leaf, [*proof, bytes(32)], log.root())


def test_short_hash_in_proof_is_a_format_error() -> None:
    log = _log(4)
    proof = log.inclusion_proof(0)
    leaf = merkle.leaf_hash((0).to_bytes(4, "big"))
    with pytest.raises(FormatError, match=r"proof\[1\] has 31 bytes"):
        merkle.verify_inclusion(0, 4, leaf, [proof[0], proof[1][:31]], log.root())


def test_index_beyond_size_is_out_of_range() -> None:
    with pytest.raises(IndexOutOfRangeError, match="beyond tree size"):
        merkle.verify_inclusion(4, 4, bytes(32), [], bytes(32))
    with pytest.raises(IndexOutOfRangeError):
        _log(4).inclusion_proof(4)


def test_consistency_with_shrinking_size_is_rejected() -> None:
    log = _log(4)
    with pytest.raises(IndexOutOfRangeError, match="size2"):
        merkle.verify_consistency(4, 3, log.root(4), log.root(3), [])


def test_leaf_hash_of_wrong_length_refused_on_append() -> None:
    with pytest.raises(FormatError, match="32 bytes"):
        merkle.MemoryLog().append_leaf_hash(b"short")


def test_proof_generation_reads_logarithmically_many_nodes() -> None:
    log = _log(1000)
    reads: list[tuple[int, int]] = []

    def counting(level: int, index: int) -> bytes:
        reads.append((level, index))
        return log.node(level, index)

    merkle.inclusion_proof(counting, 517, 1000)
    assert len(reads) <= 2 * 10 + 2
    reads.clear()
    merkle.consistency_proof(counting, 377, 1000)
    assert len(reads) <= 2 * 10 + 2
