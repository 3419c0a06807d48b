// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title NaiveAnchor
 * @notice Benchmark baseline, not part of ParcelProof: anchors every shipment milestone on its
 * own, one transaction and one storage slot per milestone hash, as a ledger without Merkle
 * checkpoints would. `scripts/benchkit/gas.py` compares its gas per milestone with
 * ParcelLedger's batched checkpoints.
 */
contract NaiveAnchor {
    /// @notice Number of the block in which each milestone hash was recorded; zero if it never was.
    mapping(bytes32 milestoneHash => uint64 blockNumber) public recordedAtBlock;

    /**
     * @notice Emitted when `milestoneHash` is recorded.
     * @param milestoneHash The recorded hash.
     * @param sender The account that recorded it.
     */
    event MilestoneRecorded(bytes32 indexed milestoneHash, address indexed sender);

    /**
     * @notice `milestoneHash` was recorded before: each hash is recorded once.
     * @param milestoneHash The duplicate hash.
     */
    error NaiveAnchorAlreadyRecorded(bytes32 milestoneHash);

    /**
     * @notice Records `milestoneHash` with the current block number.
     * @param milestoneHash Hash of one shipment milestone; reverts with
     * {NaiveAnchorAlreadyRecorded} if it was recorded before.
     */
    function record(bytes32 milestoneHash) external {
        if (recordedAtBlock[milestoneHash] != 0) revert NaiveAnchorAlreadyRecorded(milestoneHash);
        recordedAtBlock[milestoneHash] = uint64(block.number);
        emit MilestoneRecorded(milestoneHash, msg.sender);
    }
}
