// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title RFC9162
 * @notice Verification of RFC 9162 section 2.1 Merkle inclusion and consistency proofs over
 * SHA-256, following transparency-dev/merkle's `proof` package step by step (decomposition into
 * inner and border parts, `chainInner`, `chainInnerRight`, `chainBorderRight`).
 * @dev Consensus-critical: must agree with `parcelproof.core.merkle` on every input. Functions
 * return false, never revert, on malformed input (wrong proof length, index out of range,
 * `size1 == 0`, `size1 > size2`). Interior nodes are `SHA-256(0x01 || left || right)`, computed
 * with the SHA-256 precompile (address 0x02) on a 65-byte scratch buffer beyond the free memory
 * pointer, so no memory is allocated per hash.
 */
library RFC9162 {
    /**
     * @notice Tells whether `proof` shows `leafHash` at `leafIndex` in the tree `root` of
     * `treeSize` leaves (transparency-dev `VerifyInclusion`).
     * @param leafIndex Zero-based index of the leaf; false unless `leafIndex < treeSize`.
     * @param treeSize Number of leaves of the tree.
     * @param leafHash `SHA-256(0x00 || leaf)`.
     * @param proof The audit path, leaf to root; false unless exactly as long as required.
     * @param root The expected tree root.
     * @return True if the proof leads from the leaf to `root`.
     */
    function verifyInclusion(
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) internal view returns (bool) {
        if (leafIndex >= treeSize) return false;
        (uint256 inner, uint256 border) = _decompose(leafIndex, treeSize);
        if (proof.length != inner + border) return false;
        bytes32 result = _chainInner(leafHash, proof[:inner], leafIndex);
        result = _chainBorderRight(result, proof[inner:]);
        return result == root;
    }

    /**
     * @notice Tells whether `proof` shows the tree `root1` of `size1` leaves to be a prefix of
     * the tree `root2` of `size2` leaves (transparency-dev `VerifyConsistency`, except that
     * `size1 == 0` is rejected: a proof from the empty tree proves nothing).
     * @param size1 The older tree size (at least 1).
     * @param size2 The newer tree size (at least `size1`); equal sizes need equal roots and an
     * empty proof.
     * @param root1 The older root.
     * @param root2 The newer root.
     * @param proof The consistency proof; false unless exactly as long as required.
     * @return True if both roots are rebuilt from the proof.
     */
    function verifyConsistency(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) internal view returns (bool) {
        if (size2 < size1 || size1 == 0) return false;
        if (size1 == size2) return proof.length == 0 && root1 == root2;
        if (proof.length == 0) return false;

        (uint256 inner, uint256 border) = _decompose(size1 - 1, size2);
        uint256 shift = _trailingZeros(size1);
        // shift < inner whenever size1 < size2.
        inner -= shift;
        uint256 mask = (size1 - 1) >> shift;
        // The proof starts with the root of the subtree of size 2**shift, unless size1 is it.
        if (size1 == 1 << shift) {
            return _verifyConsistencyChains(root1, proof, inner, border, mask, root1, root2);
        }
        return _verifyConsistencyChains(proof[0], proof[1:], inner, border, mask, root1, root2);
    }

    /**
     * @dev Second half of {verifyConsistency}: with `proof` now a suffix of the inclusion proof of
     * leaf `size1 - 1` in the tree of `size2`, rebuild both roots from `seed`.
     */
    function _verifyConsistencyChains(
        bytes32 seed,
        bytes32[] calldata proof,
        uint256 inner,
        uint256 border,
        uint256 mask,
        bytes32 root1,
        bytes32 root2
    ) private view returns (bool) {
        if (proof.length != inner + border) return false;
        bytes32 hash1 = _chainBorderRight(_chainInnerRight(seed, proof[:inner], mask), proof[inner:]);
        if (hash1 != root1) return false;
        bytes32 hash2 = _chainBorderRight(_chainInner(seed, proof[:inner], mask), proof[inner:]);
        return hash2 == root2;
    }

    /// @dev Splits an audit path for `index` in a tree of `size` into its inner and border parts.
    function _decompose(uint256 index, uint256 size) private pure returns (uint256 inner, uint256 border) {
        unchecked {
            inner = _bitLength(index ^ (size - 1));
            border = _popCount(index >> inner);
        }
    }

    /// @dev Hashes `seed` with each proof node, as left or right sibling by the bits of `index`.
    function _chainInner(bytes32 seed, bytes32[] calldata proof, uint256 index) private view returns (bytes32) {
        unchecked {
            for (uint256 i = 0; i < proof.length; ++i) {
                seed = (index >> i) & 1 == 0 ? _hashNode(seed, proof[i]) : _hashNode(proof[i], seed);
            }
        }
        return seed;
    }

    /// @dev Like {_chainInner}, but only the nodes that are left siblings (bit set) are used.
    function _chainInnerRight(bytes32 seed, bytes32[] calldata proof, uint256 index) private view returns (bytes32) {
        unchecked {
            for (uint256 i = 0; i < proof.length; ++i) {
                if ((index >> i) & 1 == 1) seed = _hashNode(proof[i], seed);
            }
        }
        return seed;
    }

    /// @dev Hashes each proof node in as a left sibling.
    function _chainBorderRight(bytes32 seed, bytes32[] calldata proof) private view returns (bytes32) {
        unchecked {
            for (uint256 i = 0; i < proof.length; ++i) {
                seed = _hashNode(proof[i], seed);
            }
        }
        return seed;
    }

    /// @dev `SHA-256(0x01 || left || right)` through the precompile, in scratch memory.
    function _hashNode(bytes32 left, bytes32 right) private view returns (bytes32 result) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, shl(248, 1))
            mstore(add(ptr, 1), left)
            mstore(add(ptr, 33), right)
            if iszero(staticcall(gas(), 0x02, ptr, 65, 0x00, 0x20)) {
                revert(0, 0)
            }
            result := mload(0x00)
        }
    }

    /// @dev Number of bits needed to write `x` (0 for 0).
    function _bitLength(uint256 x) private pure returns (uint256 n) {
        if (x == 0) return 0;
        unchecked {
            n = 1;
            if (x >> 128 != 0) {
                x >>= 128;
                n += 128;
            }
            if (x >> 64 != 0) {
                x >>= 64;
                n += 64;
            }
            if (x >> 32 != 0) {
                x >>= 32;
                n += 32;
            }
            if (x >> 16 != 0) {
                x >>= 16;
                n += 16;
            }
            if (x >> 8 != 0) {
                x >>= 8;
                n += 8;
            }
            if (x >> 4 != 0) {
                x >>= 4;
                n += 4;
            }
            if (x >> 2 != 0) {
                x >>= 2;
                n += 2;
            }
            if (x >> 1 != 0) {
                n += 1;
            }
        }
    }

    /// @dev Number of set bits of `x`.
    function _popCount(uint256 x) private pure returns (uint256 count) {
        unchecked {
            while (x != 0) {
                x &= x - 1;
                ++count;
            }
        }
    }

    /// @dev Number of trailing zero bits of a non-zero `x`.
    function _trailingZeros(uint256 x) private pure returns (uint256) {
        unchecked {
            return _bitLength(x & (~x + 1)) - 1;
        }
    }
}
