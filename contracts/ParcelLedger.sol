// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IParcelLedger} from "./IParcelLedger.sol";
import {RFC9162} from "./RFC9162.sol";

/**
 * @title ParcelLedger
 * @notice The ParcelProof consortium ledger. See {IParcelLedger}.
 * @dev `DEFAULT_ADMIN_ROLE` (granted to the deployer) is the consortium admin; `RESOLVER_ROLE`
 * holders resolve disputes. Each courier's append-only property is enforced here: a checkpoint is
 * accepted only with a valid RFC 9162 consistency proof from the previous one.
 *
 * Storage per courier is two slots (account + admission time; removal time, suspension state +
 * latest checkpoint summary), so anchoring touches the account index, the summary slot, the
 * previous root and the new root only. The latest audit-log head takes two more (size + time;
 * head); each suspension period one (suspension + reinstatement time), read only by
 * {isAgentKeyValid} and the suspension views.
 */
contract ParcelLedger is AccessControl, IParcelLedger {
    /// @inheritdoc IParcelLedger
    bytes32 public constant RESOLVER_ROLE = keccak256("RESOLVER_ROLE");

    /// @inheritdoc IParcelLedger
    uint256 public constant MAX_SUSPENSIONS = 32;

    /// @dev Courier record as stored; slot 1 packs everything anchoring and {isAgentKeyValid}
    /// read, so that suspension checks cost no extra storage read. Block times fit in 48 bits
    /// (as in OpenZeppelin's clocks) for millions of years.
    struct CourierRecord {
        // slot 0
        address account;
        uint64 admittedAt;
        // slot 1
        uint64 removedAt;
        uint64 latestSize;
        uint48 latestAnchoredAt;
        uint8 suspensionCount; // periods in `_suspensions`, at most MAX_SUSPENSIONS
        bool suspended; // the latest period has not ended
        uint64 checkpointCount;
    }

    /// @dev Latest audit-log head of a courier: size and time share a slot, the head takes one.
    struct AuditHeadRecord {
        // slot 0
        uint64 size;
        uint64 anchoredAt;
        // slot 1
        bytes32 head;
    }

    mapping(bytes32 courierId => CourierRecord) private _couriers;
    mapping(address account => bytes32 courierId) private _courierOf;
    mapping(address account => bytes32 courierId) private _retiredAccounts;
    mapping(bytes32 courierId => mapping(uint64 size => bytes32 root)) private _roots;
    mapping(address agent => AgentKey) private _agentKeys;
    mapping(bytes32 disputeId => Dispute) private _disputes;
    mapping(bytes32 courierId => AuditHeadRecord) private _auditHeads;
    mapping(bytes32 courierId => mapping(uint256 index => Suspension)) private _suspensions;

    /**
     * @param admin The consortium admin, granted `DEFAULT_ADMIN_ROLE`.
     */
    constructor(address admin) {
        if (admin == address(0)) revert ParcelLedgerInvalidAccount(address(0));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view virtual override returns (bool) {
        return interfaceId == type(IParcelLedger).interfaceId || super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------------------------------
    // Membership
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IParcelLedger
    function admitCourier(bytes32 courierId, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (courierId == bytes32(0)) revert ParcelLedgerInvalidCourierId();
        if (_couriers[courierId].admittedAt != 0) revert ParcelLedgerCourierExists(courierId);
        _claimAccount(courierId, account);
        CourierRecord storage record = _couriers[courierId];
        record.account = account;
        record.admittedAt = uint64(block.timestamp);
        emit CourierAdmitted(courierId, account);
    }

    /// @inheritdoc IParcelLedger
    function removeCourier(bytes32 courierId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        CourierRecord storage record = _activeCourier(courierId);
        uint64 removedAt = uint64(block.timestamp);
        record.removedAt = removedAt;
        emit CourierRemoved(courierId, removedAt);
    }

    /// @inheritdoc IParcelLedger
    function suspendCourier(bytes32 courierId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        CourierRecord storage record = _activeCourier(courierId);
        uint8 count = record.suspensionCount;
        if (record.suspended) revert ParcelLedgerCourierSuspended(courierId, _currentSuspension(courierId, count));
        if (count >= MAX_SUSPENSIONS) revert ParcelLedgerTooManySuspensions(courierId, MAX_SUSPENSIONS);
        uint64 suspendedAt = uint64(block.timestamp);
        _suspensions[courierId][count] = Suspension({suspendedAt: suspendedAt, reinstatedAt: 0});
        record.suspensionCount = count + 1;
        record.suspended = true;
        emit CourierSuspended(courierId, suspendedAt);
    }

    /// @inheritdoc IParcelLedger
    function reinstateCourier(bytes32 courierId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        CourierRecord storage record = _activeCourier(courierId);
        if (!record.suspended) revert ParcelLedgerCourierNotSuspended(courierId);
        uint64 reinstatedAt = uint64(block.timestamp);
        _suspensions[courierId][record.suspensionCount - 1].reinstatedAt = reinstatedAt;
        record.suspended = false;
        emit CourierReinstated(courierId, reinstatedAt);
    }

    /// @inheritdoc IParcelLedger
    function setCourierAccount(bytes32 courierId, address newAccount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        CourierRecord storage record = _activeCourier(courierId);
        _claimAccount(courierId, newAccount);
        address previousAccount = record.account;
        delete _courierOf[previousAccount];
        _retiredAccounts[previousAccount] = courierId;
        record.account = newAccount;
        emit CourierAccountChanged(courierId, previousAccount, newAccount);
    }

    /// @inheritdoc IParcelLedger
    function courier(bytes32 courierId) external view returns (Courier memory) {
        CourierRecord storage record = _knownCourier(courierId);
        return
            Courier({
                account: record.account,
                admittedAt: record.admittedAt,
                removedAt: record.removedAt,
                active: record.removedAt == 0,
                checkpointCount: record.checkpointCount,
                latestSize: record.latestSize,
                latestAnchoredAt: record.latestAnchoredAt
            });
    }

    /// @inheritdoc IParcelLedger
    function suspensions(bytes32 courierId) external view returns (Suspension[] memory periods) {
        uint256 count = _knownCourier(courierId).suspensionCount;
        mapping(uint256 => Suspension) storage stored = _suspensions[courierId];
        periods = new Suspension[](count);
        for (uint256 i = 0; i < count; ++i) {
            periods[i] = stored[i];
        }
    }

    /// @inheritdoc IParcelLedger
    function isCourierSuspended(bytes32 courierId) external view returns (bool) {
        return _knownCourier(courierId).suspended;
    }

    /// @inheritdoc IParcelLedger
    function courierOf(address account) external view returns (bytes32) {
        return _courierOf[account];
    }

    // ------------------------------------------------------------------------------------------
    // Agent keys
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IParcelLedger
    function registerAgentKey(address agent, uint64 validFrom, uint64 validUntil) external {
        (bytes32 courierId, ) = _senderCourier();
        if (agent == address(0)) revert ParcelLedgerInvalidAccount(address(0));
        if (validFrom >= validUntil) revert ParcelLedgerInvalidValidityWindow(validFrom, validUntil);
        AgentKey storage key = _agentKeys[agent];
        if (key.courierId != bytes32(0)) revert ParcelLedgerAgentKeyExists(agent, key.courierId);
        key.courierId = courierId;
        key.validFrom = validFrom;
        key.validUntil = validUntil;
        emit AgentKeyRegistered(courierId, agent, validFrom, validUntil);
    }

    /// @inheritdoc IParcelLedger
    function revokeAgentKey(address agent) external {
        AgentKey storage key = _agentKeys[agent];
        bytes32 courierId = key.courierId;
        if (courierId == bytes32(0)) revert ParcelLedgerUnknownAgentKey(agent);
        if (_courierOf[msg.sender] != courierId) revert ParcelLedgerUnauthorizedAccount(msg.sender);
        if (key.revokedAt != 0) revert ParcelLedgerAgentKeyAlreadyRevoked(agent, key.revokedAt);
        uint64 revokedAt = uint64(block.timestamp);
        key.revokedAt = revokedAt;
        emit AgentKeyRevoked(courierId, agent, revokedAt);
    }

    /// @inheritdoc IParcelLedger
    function agentKey(address agent) external view returns (AgentKey memory) {
        AgentKey memory key = _agentKeys[agent];
        if (key.courierId == bytes32(0)) revert ParcelLedgerUnknownAgentKey(agent);
        return key;
    }

    /// @inheritdoc IParcelLedger
    function isAgentKeyValid(bytes32 courierId, address agent, uint64 at) external view returns (bool) {
        AgentKey storage key = _agentKeys[agent];
        if (courierId == bytes32(0) || key.courierId != courierId) return false;
        if (at < key.validFrom || at >= key.validUntil) return false;
        uint64 revokedAt = key.revokedAt;
        if (revokedAt != 0 && revokedAt <= at) return false;
        CourierRecord storage record = _couriers[courierId];
        uint64 removedAt = record.removedAt;
        uint256 suspensionCount = record.suspensionCount; // same slot: read before any branch
        if (removedAt != 0 && removedAt <= at) return false;
        return suspensionCount == 0 || !_suspendedAt(courierId, suspensionCount, at);
    }

    // ------------------------------------------------------------------------------------------
    // Checkpoints
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IParcelLedger
    function anchorCheckpoint(uint64 size, bytes32 root, bytes32[] calldata consistencyProof) external {
        (bytes32 courierId, CourierRecord storage record) = _senderCourier();
        uint64 previousSize = record.latestSize;
        if (size <= previousSize) revert ParcelLedgerNonGrowingCheckpoint(courierId, previousSize, size);
        if (root == bytes32(0)) revert ParcelLedgerInvalidRoot(courierId, size);
        mapping(uint64 => bytes32) storage roots = _roots[courierId];
        if (previousSize == 0) {
            if (consistencyProof.length != 0) {
                revert ParcelLedgerInconsistentCheckpoint(courierId, previousSize, size);
            }
        } else if (!RFC9162.verifyConsistency(previousSize, size, roots[previousSize], root, consistencyProof)) {
            revert ParcelLedgerInconsistentCheckpoint(courierId, previousSize, size);
        }
        roots[size] = root;
        record.latestSize = size;
        record.latestAnchoredAt = uint48(block.timestamp);
        unchecked {
            // At most one checkpoint per distinct size: cannot exceed 2**64 - 1.
            record.checkpointCount += 1;
        }
        emit CheckpointAnchored(courierId, size, root, previousSize);
    }

    /// @inheritdoc IParcelLedger
    function latestCheckpoint(bytes32 courierId)
        external
        view
        returns (uint64 size, bytes32 root, uint64 anchoredAt)
    {
        CourierRecord storage record = _knownCourier(courierId);
        size = record.latestSize;
        anchoredAt = record.latestAnchoredAt;
        root = _roots[courierId][size];
    }

    /// @inheritdoc IParcelLedger
    function checkpointRoot(bytes32 courierId, uint64 size) public view returns (bytes32 root) {
        root = _roots[courierId][size];
        if (root == bytes32(0)) revert ParcelLedgerUnknownCheckpoint(courierId, size);
    }

    /// @inheritdoc IParcelLedger
    function verifyInclusion(
        bytes32 courierId,
        uint64 size,
        uint256 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return RFC9162.verifyInclusion(leafIndex, size, leafHash, proof, checkpointRoot(courierId, size));
    }

    /// @inheritdoc IParcelLedger
    function verifyInclusionProof(
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) external view returns (bool) {
        return RFC9162.verifyInclusion(leafIndex, treeSize, leafHash, proof, root);
    }

    /// @inheritdoc IParcelLedger
    function verifyConsistencyProof(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return RFC9162.verifyConsistency(size1, size2, root1, root2, proof);
    }

    // ------------------------------------------------------------------------------------------
    // Audit log
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IParcelLedger
    function anchorAuditHead(uint64 size, bytes32 head) external {
        (bytes32 courierId, ) = _senderCourier();
        AuditHeadRecord storage record = _auditHeads[courierId];
        uint64 previousSize = record.size;
        if (size <= previousSize) revert ParcelLedgerAuditSizeNotIncreasing(courierId, previousSize, size);
        record.size = size;
        record.anchoredAt = uint64(block.timestamp);
        record.head = head;
        emit AuditHeadAnchored(courierId, size, head);
    }

    /// @inheritdoc IParcelLedger
    function latestAuditHead(bytes32 courierId)
        external
        view
        returns (uint64 size, bytes32 head, uint64 anchoredAt)
    {
        _knownCourier(courierId);
        AuditHeadRecord storage record = _auditHeads[courierId];
        return (record.size, record.head, record.anchoredAt);
    }

    // ------------------------------------------------------------------------------------------
    // Disputes
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IParcelLedger
    function openDispute(
        bytes32 disputeId,
        bytes32 courierId,
        bytes32 subjectHash,
        bytes32 evidenceHash
    ) external {
        if (!hasRole(RESOLVER_ROLE, msg.sender)) {
            bytes32 senderCourier = _courierOf[msg.sender];
            if (senderCourier == bytes32(0) || _couriers[senderCourier].removedAt != 0) {
                revert ParcelLedgerUnauthorizedAccount(msg.sender);
            }
        }
        _knownCourier(courierId);
        Dispute storage record = _disputes[disputeId];
        if (record.openedAt != 0) revert ParcelLedgerDisputeExists(disputeId);
        record.courierId = courierId;
        record.subjectHash = subjectHash;
        record.evidenceHash = evidenceHash;
        record.openedBy = msg.sender;
        record.openedAt = uint64(block.timestamp);
        emit DisputeOpened(disputeId, courierId, msg.sender, subjectHash, evidenceHash);
    }

    /// @inheritdoc IParcelLedger
    function resolveDispute(bytes32 disputeId, bytes32 outcomeHash) external onlyRole(RESOLVER_ROLE) {
        Dispute storage record = _disputes[disputeId];
        if (record.openedAt == 0) revert ParcelLedgerUnknownDispute(disputeId);
        if (record.resolvedAt != 0) revert ParcelLedgerDisputeAlreadyResolved(disputeId, record.resolvedAt);
        record.outcomeHash = outcomeHash;
        record.resolvedBy = msg.sender;
        record.resolvedAt = uint64(block.timestamp);
        emit DisputeResolved(disputeId, msg.sender, outcomeHash);
    }

    /// @inheritdoc IParcelLedger
    function dispute(bytes32 disputeId) external view returns (Dispute memory) {
        Dispute memory record = _disputes[disputeId];
        if (record.openedAt == 0) revert ParcelLedgerUnknownDispute(disputeId);
        return record;
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    /// @dev Binds `account` to `courierId`; an account never serves two couriers, even once
    /// rotated away (retired).
    function _claimAccount(bytes32 courierId, address account) private {
        if (account == address(0)) revert ParcelLedgerInvalidAccount(address(0));
        bytes32 owner = _courierOf[account];
        if (owner == bytes32(0)) owner = _retiredAccounts[account];
        if (owner != bytes32(0)) revert ParcelLedgerAccountInUse(account, owner);
        _courierOf[account] = courierId;
    }

    /// @dev The record of an admitted courier, removed or not.
    function _knownCourier(bytes32 courierId) private view returns (CourierRecord storage record) {
        record = _couriers[courierId];
        if (record.admittedAt == 0) revert ParcelLedgerUnknownCourier(courierId);
    }

    /// @dev The record of an admitted, not removed courier.
    function _activeCourier(bytes32 courierId) private view returns (CourierRecord storage record) {
        record = _knownCourier(courierId);
        if (record.removedAt != 0) revert ParcelLedgerInactiveCourier(courierId, record.removedAt);
    }

    /// @dev The active, not suspended courier whose current account is `msg.sender`.
    function _senderCourier() private view returns (bytes32 courierId, CourierRecord storage record) {
        courierId = _courierOf[msg.sender];
        if (courierId == bytes32(0)) revert ParcelLedgerUnauthorizedAccount(msg.sender);
        record = _couriers[courierId];
        // Both read before any branch, so that the optimizer reads the summary slot once.
        uint64 removedAt = record.removedAt;
        bool suspended = record.suspended;
        if (removedAt != 0) revert ParcelLedgerInactiveCourier(courierId, removedAt);
        if (suspended) {
            revert ParcelLedgerCourierSuspended(courierId, _currentSuspension(courierId, record.suspensionCount));
        }
    }

    /// @dev Start of the ongoing suspension of a courier with `count` periods (the latest).
    function _currentSuspension(bytes32 courierId, uint256 count) private view returns (uint64) {
        return _suspensions[courierId][count - 1].suspendedAt;
    }

    /// @dev True if `at` lies in one of the courier's first `count` suspension periods. They are
    /// chronological and disjoint, so only the latest one starting at or before `at` can hold it:
    /// the scan runs newest first and stops there (at most `count` <= MAX_SUSPENSIONS reads).
    function _suspendedAt(bytes32 courierId, uint256 count, uint64 at) private view returns (bool) {
        mapping(uint256 => Suspension) storage periods = _suspensions[courierId];
        for (uint256 i = count; i > 0; --i) {
            Suspension memory period = periods[i - 1];
            if (period.suspendedAt <= at) {
                return period.reinstatedAt == 0 || at < period.reinstatedAt;
            }
        }
        return false;
    }
}
