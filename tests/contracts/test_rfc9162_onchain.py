"""The Solidity RFC 9162 verifiers agree with core.merkle on vectors and random trees."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import merkle
from parcelproof.core.errors import FormatError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962"
MAX_LEAVES = 65_536


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def _all_hashes_fit(*hashes: bytes, proof: Sequence[bytes]) -> bool:
    return all(len(h) == merkle.HASH_SIZE for h in (*hashes, *proof))


def python_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    return merkle.is_valid(lambda: merkle.verify_inclusion(index, size, leaf, proof, root))


def python_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> bool:
    return merkle.is_valid(lambda: merkle.verify_consistency(size1, size2, root1, root2, proof))


# --- transparency-dev vectors ---------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vector_on_chain(shared_ledger: LedgerClient, case: dict[str, Any]) -> None:
    proof = [_b(p) for p in case["proof"] or []]
    leaf, root = _b(case["leafHash"]), _b(case["root"])
    index, size = case["leafIdx"], case["treeSize"]
    expected = not case["wantErr"]
    assert python_inclusion(index, size, leaf, proof, root) is expected
    if not _all_hashes_fit(leaf, root, proof=proof):
        # bytes32 cannot carry it: the client rejects it before the chain, i.e. "false".
        assert not expected, "a valid vector with a non-32-byte hash cannot be expressed on chain"
        with pytest.raises(FormatError, match="must be 32 bytes"):
            shared_ledger.verify_inclusion_proof(index, size, leaf, proof, root)
        return
    assert shared_ledger.verify_inclusion_proof(index, size, leaf, proof, root) is expected


@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vector_on_chain(shared_ledger: LedgerClient, case: dict[str, Any]) -> None:
    proof = [_b(p) for p in case["proof"] or []]
    root1, root2 = _b(case["root1"]), _b(case["root2"])
    size1, size2 = case["size1"], case["size2"]
    expected = not case["wantErr"]
    assert python_consistency(size1, size2, root1, root2, proof) is expected
    if not _all_hashes_fit(root1, root2, proof=proof):
        if expected:
            pytest.skip(
                f"valid only for {len(root1)}-byte roots, which bytes32 cannot carry; "
                "the 32-byte equivalent is test_equal_sizes_need_equal_roots_and_no_proof"
            )
        with pytest.raises(FormatError, match="must be 32 bytes"):
            shared_ledger.verify_consistency_proof(size1, size2, root1, root2, proof)
        return
    assert shared_ledger.verify_consistency_proof(size1, size2, root1, root2, proof) is expected


def test_equal_sizes_need_equal_roots_and_no_proof(shared_ledger: LedgerClient) -> None:
    log = _log()
    for size in (1, 2, 7, 64):
        root = log.root(size)
        assert shared_ledger.verify_consistency_proof(size, size, root, root, [])
        assert not shared_ledger.verify_consistency_proof(size, size, root, log.root(3), [])
        assert not shared_ledger.verify_consistency_proof(size, size, root, root, [root])


def test_proofs_from_the_empty_tree_are_refused(shared_ledger: LedgerClient) -> None:
    """Like the Python verifier (and unlike transparency-dev), size1 == 0 proves nothing."""
    log = _log()
    assert not shared_ledger.verify_consistency_proof(
        0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, []
    )
    assert not shared_ledger.verify_consistency_proof(0, 5, merkle.EMPTY_ROOT, log.root(5), [])
    assert not shared_ledger.verify_inclusion_proof(0, 0, log.node(0, 0), [], merkle.EMPTY_ROOT)


# --- random trees up to 65,536 leaves -------------------------------------------------------


@cache
def _log() -> merkle.MemoryLog:
    """A log of 65,536 random leaves; its prefixes are the trees under test."""
    rng = random.Random(9162)
    log = merkle.MemoryLog()
    for _ in range(MAX_LEAVES):
        log.append(rng.randbytes(rng.randrange(0, 48)))
    return log


def _edge_sizes() -> list[int]:
    sizes = {1, 2, 3, 5, 6, 7, 1000, 12_345, MAX_LEAVES - 1, MAX_LEAVES}
    for k in range(1, 17):
        sizes |= {2**k - 1, 2**k, 2**k + 1}
    return sorted(s for s in sizes if 1 <= s <= MAX_LEAVES)


SIZES = _edge_sizes()


def _indices(size: int, rng: random.Random) -> list[int]:
    return sorted({0, size - 1, size // 2, rng.randrange(size)})


def _flip(h: bytes, bit: int) -> bytes:
    return bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(h))


def test_inclusion_agrees_on_random_trees(shared_ledger: LedgerClient) -> None:
    log = _log()
    rng = random.Random(1)
    checked = 0
    for size in SIZES:
        root = log.root(size)
        for index in _indices(size, rng):
            leaf = log.node(0, index)
            proof = log.inclusion_proof(index, size)
            assert python_inclusion(index, size, leaf, proof, root)
            assert shared_ledger.verify_inclusion_proof(index, size, leaf, proof, root), (
                index,
                size,
            )
            checked += 1
    assert checked > 150


#: Mutations that may still verify, on both sides alike: a proof binds the tree size only through
#: its shape, so a larger size giving the same proof shape verifies too (as in RFC 9162).
SIZE_BLIND = frozenset({"size + 1", "size2 + 1"})


def test_inclusion_negatives_agree_on_random_trees(shared_ledger: LedgerClient) -> None:
    """Flipped bits, shifted indices, wrong sizes and wrong lengths: both sides give the same
    answer, and it is false for everything but the shape-preserving size changes."""
    log = _log()
    rng = random.Random(2)
    for size in [*SIZES[::2], MAX_LEAVES]:
        root = log.root(size)
        index = rng.randrange(size)
        leaf = log.node(0, index)
        proof = log.inclusion_proof(index, size)
        bad: list[tuple[str, int, int, bytes, list[bytes], bytes]] = [
            ("flipped leaf", index, size, _flip(leaf, rng.randrange(256)), proof, root),
            ("flipped root", index, size, leaf, proof, _flip(root, rng.randrange(256))),
            ("index + 1", index + 1, size, leaf, proof, root),
            ("index beyond size", size, size, leaf, proof, root),
            ("size + 1", index, size + 1, leaf, proof, root),
            ("extra node", index, size, leaf, [*proof, root], root),
        ]
        if index:
            bad.append(("index - 1", index - 1, size, leaf, proof, root))
        if proof:
            at = rng.randrange(len(proof))
            flipped = [*proof[:at], _flip(proof[at], rng.randrange(256)), *proof[at + 1 :]]
            bad.append(("flipped proof node", index, size, leaf, flipped, root))
            bad.append(("missing node", index, size, leaf, proof[:-1], root))
        for desc, i, n, lf, pf, rt in bad:
            expected = python_inclusion(i, n, lf, pf, rt)
            assert shared_ledger.verify_inclusion_proof(i, n, lf, pf, rt) is expected, (desc, i, n)
            if desc not in SIZE_BLIND:
                assert not expected, (desc, i, n)


def _pairs(rng: random.Random) -> list[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for size2 in SIZES[1:]:
        lower = 1 << ((size2 - 1).bit_length() - 1)
        for size1 in {1, size2 - 1, size2 // 2, lower, rng.randrange(1, size2)}:
            if 1 <= size1 < size2:
                pairs.add((size1, size2))
    pairs |= {(1, MAX_LEAVES), (MAX_LEAVES - 1, MAX_LEAVES), (32_768, MAX_LEAVES), (1000, 2000)}
    return sorted(pairs)


def test_consistency_agrees_on_random_trees(shared_ledger: LedgerClient) -> None:
    log = _log()
    pairs = _pairs(random.Random(3))
    assert len(pairs) > 150
    for size1, size2 in pairs:
        root1, root2 = log.root(size1), log.root(size2)
        proof = log.consistency_proof(size1, size2)
        assert python_consistency(size1, size2, root1, root2, proof)
        assert shared_ledger.verify_consistency_proof(size1, size2, root1, root2, proof), (
            size1,
            size2,
        )


def test_consistency_negatives_agree_on_random_trees(shared_ledger: LedgerClient) -> None:
    log = _log()
    rng = random.Random(4)
    for size1, size2 in _pairs(rng)[::3]:
        root1, root2 = log.root(size1), log.root(size2)
        proof = log.consistency_proof(size1, size2)
        at = rng.randrange(len(proof))
        flipped = [*proof[:at], _flip(proof[at], rng.randrange(256)), *proof[at + 1 :]]
        bad: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
            ("flipped proof node", size1, size2, root1, root2, flipped),
            ("flipped root1", size1, size2, _flip(root1, rng.randrange(256)), root2, proof),
            ("flipped root2", size1, size2, root1, _flip(root2, rng.randrange(256)), proof),
            ("swapped roots", size2, size1, root2, root1, proof),
            ("size2 + 1", size1, size2 + 1, root1, root2, proof),
            ("missing node", size1, size2, root1, root2, proof[:-1]),
            ("extra node", size1, size2, root1, root2, [*proof, root1]),
            ("empty proof", size1, size2, root1, root2, []),
        ]
        if size1 > 1:
            bad.append(("size1 - 1", size1 - 1, size2, root1, root2, proof))
        if size1 + 1 < size2:
            bad.append(("size1 + 1", size1 + 1, size2, root1, root2, proof))
        for desc, s1, s2, r1, r2, pf in bad:
            expected = python_consistency(s1, s2, r1, r2, pf)
            onchain = shared_ledger.verify_consistency_proof(s1, s2, r1, r2, pf)
            assert onchain is expected, (desc, s1, s2)
            if desc not in SIZE_BLIND:
                assert not expected, (desc, s1, s2)


def test_huge_sizes_do_not_revert(shared_ledger: LedgerClient) -> None:
    """uint256 extremes: no overflow, no revert, just false."""
    leaf = _log().node(0, 0)
    top = 2**256 - 1
    assert not shared_ledger.verify_inclusion_proof(top - 1, top, leaf, [leaf], leaf)
    assert not shared_ledger.verify_inclusion_proof(0, top, leaf, [leaf] * 3, leaf)
    assert not shared_ledger.verify_consistency_proof(top - 1, top, leaf, leaf, [leaf])
    assert not shared_ledger.verify_consistency_proof(1, top, leaf, leaf, [leaf] * 2)
