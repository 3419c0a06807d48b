// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title IParcelLedger
 * @notice Consortium ledger of ParcelProof: courier membership (admission, reversible suspension,
 * permanent removal), agent signing keys with validity windows, RFC 9162 checkpoints of each
 * courier's append-only Merkle log (consistency enforced on chain), the head of each courier
 * node's hash-chained audit log, and dispute records.
 * @dev Nothing personal is ever stored or logged: only identifiers, addresses, tree sizes, Merkle
 * roots and hashes. A courier's `courierId` is also the identifier of its Merkle log. All times
 * are block timestamps in seconds.
 */
interface IParcelLedger {
    /**
     * @notice Public view of a courier member.
     * @param account The account that anchors checkpoints and manages agent keys for the courier.
     * @param admittedAt Block timestamp of admission (never zero for a known courier).
     * @param removedAt Block timestamp of removal, zero while the courier is a member.
     * @param active True while the courier is admitted and not removed (also while suspended:
     * see {isCourierSuspended}).
     * @param checkpointCount Number of checkpoints the courier has anchored.
     * @param latestSize Tree size of the latest checkpoint, zero before the first one.
     * @param latestAnchoredAt Block timestamp of the latest checkpoint, zero before the first one.
     */
    struct Courier {
        address account;
        uint64 admittedAt;
        uint64 removedAt;
        bool active;
        uint64 checkpointCount;
        uint64 latestSize;
        uint64 latestAnchoredAt;
    }

    /**
     * @notice An agent signing key registered by a courier.
     * @param courierId The courier the agent belongs to, forever.
     * @param validFrom First second (inclusive) at which signatures by the key are valid.
     * @param validUntil First second at which they are no longer valid (exclusive bound).
     * @param revokedAt Block timestamp of revocation, zero if the key was never revoked.
     */
    struct AgentKey {
        bytes32 courierId;
        uint64 validFrom;
        uint64 validUntil;
        uint64 revokedAt;
    }

    /**
     * @notice A period during which a courier was suspended: its account could not anchor or
     * register agent keys, and none of its agent keys was valid for an instant inside it.
     * @param suspendedAt Block timestamp of the suspension (first instant of the period).
     * @param reinstatedAt Block timestamp of the reinstatement (first instant after the period),
     * zero while the suspension lasts.
     */
    struct Suspension {
        uint64 suspendedAt;
        uint64 reinstatedAt;
    }

    /**
     * @notice A dispute record; only hashes of the off-chain material are kept.
     * @param courierId The courier whose records are disputed.
     * @param subjectHash Hash identifying what is disputed (e.g. a commitment or bundle digest).
     * @param evidenceHash Hash of the evidence disclosed to the resolver off chain.
     * @param outcomeHash Hash of the resolver's outcome document, zero while unresolved.
     * @param openedBy Account that opened the dispute.
     * @param openedAt Block timestamp of opening (never zero for a known dispute).
     * @param resolvedBy Resolver that recorded the outcome, zero while unresolved.
     * @param resolvedAt Block timestamp of resolution, zero while unresolved.
     */
    struct Dispute {
        bytes32 courierId;
        bytes32 subjectHash;
        bytes32 evidenceHash;
        bytes32 outcomeHash;
        address openedBy;
        uint64 openedAt;
        address resolvedBy;
        uint64 resolvedAt;
    }

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Emitted when the consortium admin admits a courier.
     * @param courierId The new courier (and log) identifier.
     * @param account The courier's anchoring account.
     */
    event CourierAdmitted(bytes32 indexed courierId, address indexed account);

    /**
     * @notice Emitted when the consortium admin removes a courier. Its history stays readable.
     * @param courierId The removed courier.
     * @param removedAt Block timestamp of the removal.
     */
    event CourierRemoved(bytes32 indexed courierId, uint64 removedAt);

    /**
     * @notice Emitted when the consortium admin suspends a courier.
     * @param courierId The suspended courier.
     * @param suspendedAt Block timestamp of the suspension: its agent keys are not valid from
     * this instant until the reinstatement.
     */
    event CourierSuspended(bytes32 indexed courierId, uint64 suspendedAt);

    /**
     * @notice Emitted when the consortium admin lifts a courier's suspension.
     * @param courierId The reinstated courier.
     * @param reinstatedAt Block timestamp of the reinstatement: its agent keys are valid again
     * from this instant (within their own windows).
     */
    event CourierReinstated(bytes32 indexed courierId, uint64 reinstatedAt);

    /**
     * @notice Emitted when the consortium admin rotates a courier's anchoring account.
     * @param courierId The courier.
     * @param previousAccount The account that can no longer act for the courier.
     * @param newAccount The account that acts for the courier from now on.
     */
    event CourierAccountChanged(
        bytes32 indexed courierId,
        address indexed previousAccount,
        address indexed newAccount
    );

    /**
     * @notice Emitted when a courier registers an agent signing key.
     * @param courierId The courier the agent belongs to.
     * @param agent The agent's signing address.
     * @param validFrom First valid second (inclusive).
     * @param validUntil End of validity (exclusive).
     */
    event AgentKeyRegistered(
        bytes32 indexed courierId,
        address indexed agent,
        uint64 validFrom,
        uint64 validUntil
    );

    /**
     * @notice Emitted when a courier revokes one of its agent keys.
     * @param courierId The courier the agent belongs to.
     * @param agent The revoked agent address.
     * @param revokedAt Block timestamp of the revocation.
     */
    event AgentKeyRevoked(bytes32 indexed courierId, address indexed agent, uint64 revokedAt);

    /**
     * @notice Emitted when a courier anchors a checkpoint of its log.
     * @param courierId The courier (log) identifier.
     * @param size The new tree size.
     * @param root The RFC 9162 root of the tree of `size` leaves.
     * @param previousSize The size of the previous checkpoint, zero for the first one.
     */
    event CheckpointAnchored(
        bytes32 indexed courierId,
        uint64 indexed size,
        bytes32 root,
        uint64 previousSize
    );

    /**
     * @notice Emitted when a courier anchors the head of its node's audit log.
     * @param courierId The courier.
     * @param size The number of audit entries the head covers.
     * @param head The hash of the audit entry at index `size - 1`, which chains all before it.
     */
    event AuditHeadAnchored(bytes32 indexed courierId, uint64 size, bytes32 head);

    /**
     * @notice Emitted when a dispute is opened.
     * @param disputeId The dispute identifier.
     * @param courierId The courier whose records are disputed.
     * @param openedBy The account that opened it.
     * @param subjectHash Hash of the disputed subject.
     * @param evidenceHash Hash of the evidence.
     */
    event DisputeOpened(
        bytes32 indexed disputeId,
        bytes32 indexed courierId,
        address indexed openedBy,
        bytes32 subjectHash,
        bytes32 evidenceHash
    );

    /**
     * @notice Emitted when a resolver records the outcome of a dispute.
     * @param disputeId The dispute identifier.
     * @param resolvedBy The resolver.
     * @param outcomeHash Hash of the outcome document.
     */
    event DisputeResolved(bytes32 indexed disputeId, address indexed resolvedBy, bytes32 outcomeHash);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The zero courier identifier is reserved (it means "no courier").
    error ParcelLedgerInvalidCourierId();

    /**
     * @notice The zero address cannot be a courier account or an agent.
     * @param account The rejected address.
     */
    error ParcelLedgerInvalidAccount(address account);

    /**
     * @notice A courier with this identifier was already admitted (identifiers are never reused).
     * @param courierId The existing courier.
     */
    error ParcelLedgerCourierExists(bytes32 courierId);

    /**
     * @notice The account already acts, or acted, for a courier.
     * @param account The account in use.
     * @param courierId The courier it belongs to.
     */
    error ParcelLedgerAccountInUse(address account, bytes32 courierId);

    /**
     * @notice No courier with this identifier was ever admitted.
     * @param courierId The unknown identifier.
     */
    error ParcelLedgerUnknownCourier(bytes32 courierId);

    /**
     * @notice The courier was removed and may no longer act.
     * @param courierId The removed courier.
     * @param removedAt Block timestamp of its removal.
     */
    error ParcelLedgerInactiveCourier(bytes32 courierId, uint64 removedAt);

    /**
     * @notice The courier is suspended: until its reinstatement it may not anchor or register
     * agent keys, and it cannot be suspended again.
     * @param courierId The suspended courier.
     * @param suspendedAt Block timestamp of its current suspension.
     */
    error ParcelLedgerCourierSuspended(bytes32 courierId, uint64 suspendedAt);

    /**
     * @notice Only a suspended courier can be reinstated.
     * @param courierId The courier, not suspended.
     */
    error ParcelLedgerCourierNotSuspended(bytes32 courierId);

    /**
     * @notice The courier used up its suspensions: every {isAgentKeyValid} call scans them, so
     * their number is capped. Remove the courier instead.
     * @param courierId The courier.
     * @param maxSuspensions The cap.
     */
    error ParcelLedgerTooManySuspensions(bytes32 courierId, uint256 maxSuspensions);

    /**
     * @notice The caller is not allowed to perform the operation (not the courier account, not a
     * resolver, or not an active courier).
     * @param account The caller.
     */
    error ParcelLedgerUnauthorizedAccount(address account);

    /**
     * @notice An agent key validity window must not be empty.
     * @param validFrom The requested start (inclusive).
     * @param validUntil The requested end (exclusive), not after `validFrom`.
     */
    error ParcelLedgerInvalidValidityWindow(uint64 validFrom, uint64 validUntil);

    /**
     * @notice The agent address is already registered; an agent belongs to one courier forever.
     * @param agent The agent address.
     * @param courierId The courier it belongs to.
     */
    error ParcelLedgerAgentKeyExists(address agent, bytes32 courierId);

    /**
     * @notice No agent key is registered for this address.
     * @param agent The unknown agent address.
     */
    error ParcelLedgerUnknownAgentKey(address agent);

    /**
     * @notice The agent key was already revoked.
     * @param agent The agent address.
     * @param revokedAt Block timestamp of the earlier revocation.
     */
    error ParcelLedgerAgentKeyAlreadyRevoked(address agent, uint64 revokedAt);

    /**
     * @notice A checkpoint must strictly grow the courier's log.
     * @param courierId The courier.
     * @param previousSize The size of the latest anchored checkpoint.
     * @param size The rejected size.
     */
    error ParcelLedgerNonGrowingCheckpoint(bytes32 courierId, uint64 previousSize, uint64 size);

    /**
     * @notice The consistency proof does not show the previous checkpoint to be a prefix of the
     * new one (or a proof was given for the first checkpoint).
     * @param courierId The courier.
     * @param previousSize The size of the latest anchored checkpoint.
     * @param size The rejected size.
     */
    error ParcelLedgerInconsistentCheckpoint(bytes32 courierId, uint64 previousSize, uint64 size);

    /**
     * @notice The zero root is not a valid Merkle tree hash.
     * @param courierId The courier.
     * @param size The size the zero root was offered for.
     */
    error ParcelLedgerInvalidRoot(bytes32 courierId, uint64 size);

    /**
     * @notice The courier never anchored a checkpoint of this size.
     * @param courierId The courier.
     * @param size The unknown size.
     */
    error ParcelLedgerUnknownCheckpoint(bytes32 courierId, uint64 size);

    /**
     * @notice An audit head must cover strictly more entries than the courier's previous one.
     * @param courierId The courier.
     * @param previousSize The size of the latest anchored audit head.
     * @param size The rejected size.
     */
    error ParcelLedgerAuditSizeNotIncreasing(bytes32 courierId, uint64 previousSize, uint64 size);

    /**
     * @notice A dispute with this identifier already exists.
     * @param disputeId The existing dispute.
     */
    error ParcelLedgerDisputeExists(bytes32 disputeId);

    /**
     * @notice No dispute with this identifier exists.
     * @param disputeId The unknown dispute.
     */
    error ParcelLedgerUnknownDispute(bytes32 disputeId);

    /**
     * @notice The dispute already has an outcome.
     * @param disputeId The dispute.
     * @param resolvedAt Block timestamp of the earlier resolution.
     */
    error ParcelLedgerDisputeAlreadyResolved(bytes32 disputeId, uint64 resolvedAt);

    // ------------------------------------------------------------------------------------------
    // Membership
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Role of dispute resolvers (`keccak256("RESOLVER_ROLE")`).
     * @return The role identifier, to be used with AccessControl's `grantRole`/`revokeRole`.
     */
    function RESOLVER_ROLE() external view returns (bytes32);

    /**
     * @notice How many times a courier can be suspended in its lifetime (32).
     * @dev {isAgentKeyValid} scans a courier's suspension periods, so their number is capped to
     * bound its gas; see docs/gas.md.
     * @return The cap.
     */
    function MAX_SUSPENSIONS() external view returns (uint256);

    /**
     * @notice Admits a courier with its anchoring account. Admin only.
     * @dev Reverts with {ParcelLedgerInvalidCourierId} for the zero id, {ParcelLedgerInvalidAccount}
     * for the zero address, {ParcelLedgerCourierExists} if the id was ever admitted and
     * {ParcelLedgerAccountInUse} if the account ever acted for a courier. Emits {CourierAdmitted}.
     * @param courierId The courier (and log) identifier.
     * @param account The account that will anchor checkpoints and manage agent keys.
     */
    function admitCourier(bytes32 courierId, address account) external;

    /**
     * @notice Removes a courier. Admin only. Its checkpoints, keys and disputes stay readable,
     * its agent keys stop being valid from the removal time on, and it can no longer anchor
     * checkpoints or register keys. A suspended courier may be removed; its suspension then
     * never ends.
     * @dev Reverts with {ParcelLedgerUnknownCourier} or {ParcelLedgerInactiveCourier}. Emits
     * {CourierRemoved}.
     * @param courierId The courier to remove.
     */
    function removeCourier(bytes32 courierId) external;

    /**
     * @notice Suspends a courier until {reinstateCourier}. Admin only. While suspended its account
     * can no longer anchor checkpoints or audit heads nor register agent keys (it may still
     * revoke them), and its agent keys are not valid for any instant from now until the
     * reinstatement; events signed before stay valid. The period is kept for good.
     * @dev Reverts with {ParcelLedgerUnknownCourier}, {ParcelLedgerInactiveCourier},
     * {ParcelLedgerCourierSuspended} if already suspended and {ParcelLedgerTooManySuspensions}
     * once the courier was suspended `MAX_SUSPENSIONS` times. Emits {CourierSuspended}.
     * @param courierId The courier to suspend.
     */
    function suspendCourier(bytes32 courierId) external;

    /**
     * @notice Ends a courier's suspension. Admin only. Its agent keys are valid again from now
     * on (within their windows); instants inside the suspension stay invalid.
     * @dev Reverts with {ParcelLedgerUnknownCourier}, {ParcelLedgerInactiveCourier} or
     * {ParcelLedgerCourierNotSuspended}. Emits {CourierReinstated}.
     * @param courierId The suspended courier.
     */
    function reinstateCourier(bytes32 courierId) external;

    /**
     * @notice Rotates the anchoring account of an active courier. Admin only.
     * @dev The previous account is retired: it can never act for any courier again. Reverts with
     * {ParcelLedgerUnknownCourier}, {ParcelLedgerInactiveCourier}, {ParcelLedgerInvalidAccount} or
     * {ParcelLedgerAccountInUse}. Emits {CourierAccountChanged}.
     * @param courierId The courier.
     * @param newAccount The new anchoring account.
     */
    function setCourierAccount(bytes32 courierId, address newAccount) external;

    /**
     * @notice Returns a courier's membership and checkpoint summary.
     * @dev Reverts with {ParcelLedgerUnknownCourier} for an id that was never admitted.
     * @param courierId The courier.
     * @return The courier record.
     */
    function courier(bytes32 courierId) external view returns (Courier memory);

    /**
     * @notice Returns every suspension period of a courier, oldest first (at most
     * `MAX_SUSPENSIONS`); the last one has `reinstatedAt == 0` while the suspension lasts.
     * @dev Reverts with {ParcelLedgerUnknownCourier} for an id that was never admitted.
     * @param courierId The courier.
     * @return The suspension periods, chronological and disjoint.
     */
    function suspensions(bytes32 courierId) external view returns (Suspension[] memory);

    /**
     * @notice Tells whether a courier is suspended now. A courier removed while suspended stays
     * suspended (its last period never ends).
     * @dev Reverts with {ParcelLedgerUnknownCourier} for an id that was never admitted.
     * @param courierId The courier.
     * @return True from its suspension until its reinstatement.
     */
    function isCourierSuspended(bytes32 courierId) external view returns (bool);

    /**
     * @notice Returns the courier an account currently acts for (also after the courier's
     * removal, so that its history stays attributable).
     * @param account The account.
     * @return The courier identifier, zero for an unknown or rotated-away (retired) account.
     */
    function courierOf(address account) external view returns (bytes32);

    // ------------------------------------------------------------------------------------------
    // Agent keys
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Registers an agent signing key for the caller's courier.
     * @dev The courier is derived from `msg.sender`, which must be the account of an active,
     * not suspended courier ({ParcelLedgerUnauthorizedAccount} / {ParcelLedgerInactiveCourier} /
     * {ParcelLedgerCourierSuspended}). Reverts with
     * {ParcelLedgerInvalidAccount} for the zero agent, {ParcelLedgerInvalidValidityWindow} unless
     * `validFrom < validUntil`, and {ParcelLedgerAgentKeyExists} if the agent was ever registered.
     * Emits {AgentKeyRegistered}.
     * @param agent The agent's signing address.
     * @param validFrom First valid second (inclusive).
     * @param validUntil End of validity (exclusive).
     */
    function registerAgentKey(address agent, uint64 validFrom, uint64 validUntil) external;

    /**
     * @notice Revokes an agent key of the caller's courier from now on.
     * @dev Callable by the current account of the agent's courier, also while it is suspended
     * or after it was removed (a key reported stolen must be revocable at once). Reverts with
     * {ParcelLedgerUnknownAgentKey}, {ParcelLedgerUnauthorizedAccount} or
     * {ParcelLedgerAgentKeyAlreadyRevoked}. Emits {AgentKeyRevoked}.
     * @param agent The agent address to revoke.
     */
    function revokeAgentKey(address agent) external;

    /**
     * @notice Returns an agent key registration.
     * @dev Reverts with {ParcelLedgerUnknownAgentKey} for an address never registered.
     * @param agent The agent address.
     * @return The agent key record.
     */
    function agentKey(address agent) external view returns (AgentKey memory);

    /**
     * @notice Tells whether `agent` could sign for `courierId` at time `at`.
     * @dev True iff the agent belongs to the courier, `validFrom <= at < validUntil`, the key was
     * not revoked at or before `at`, the courier was not removed at or before `at` and `at` lies
     * in none of the courier's suspension periods `[suspendedAt, reinstatedAt)` (an unended one
     * extends forever). Never reverts; scans at most `MAX_SUSPENSIONS` periods, newest first.
     * @param courierId The courier the signature claims to be for.
     * @param agent The signing address.
     * @param at The time of the signed event (seconds).
     * @return True if the key was valid for the courier at `at`.
     */
    function isAgentKeyValid(bytes32 courierId, address agent, uint64 at) external view returns (bool);

    // ------------------------------------------------------------------------------------------
    // Checkpoints
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Anchors a checkpoint (tree size, root) of the caller's courier log.
     * @dev The courier is derived from `msg.sender` ({ParcelLedgerUnauthorizedAccount},
     * {ParcelLedgerInactiveCourier}, {ParcelLedgerCourierSuspended}). The size must strictly grow
     * ({ParcelLedgerNonGrowingCheckpoint}) and the root must not be zero
     * ({ParcelLedgerInvalidRoot}). The first checkpoint takes an empty proof; every later one the
     * RFC 9162 section 2.1.4 consistency proof from the previous checkpoint, verified here with the
     * SHA-256 precompile ({ParcelLedgerInconsistentCheckpoint}). Emits {CheckpointAnchored}.
     * @param size The new tree size.
     * @param root The RFC 9162 root of the first `size` leaves.
     * @param consistencyProof The consistency proof from the previous checkpoint to this one.
     */
    function anchorCheckpoint(uint64 size, bytes32 root, bytes32[] calldata consistencyProof) external;

    /**
     * @notice Returns the latest checkpoint of a courier.
     * @dev Reverts with {ParcelLedgerUnknownCourier}. All values are zero before the first one.
     * @param courierId The courier.
     * @return size The latest tree size.
     * @return root The latest root.
     * @return anchoredAt Block timestamp of the latest checkpoint.
     */
    function latestCheckpoint(bytes32 courierId)
        external
        view
        returns (uint64 size, bytes32 root, uint64 anchoredAt);

    /**
     * @notice Returns the root a courier anchored for a tree size.
     * @dev Reverts with {ParcelLedgerUnknownCheckpoint} if no checkpoint of that size exists.
     * @param courierId The courier.
     * @param size The tree size.
     * @return The anchored root.
     */
    function checkpointRoot(bytes32 courierId, uint64 size) external view returns (bytes32);

    /**
     * @notice Verifies an RFC 9162 inclusion proof against an anchored checkpoint.
     * @dev Reverts with {ParcelLedgerUnknownCheckpoint} if the checkpoint does not exist; returns
     * false for any malformed or wrong proof.
     * @param courierId The courier.
     * @param size The size of an anchored checkpoint.
     * @param leafIndex The zero-based index of the leaf.
     * @param leafHash The leaf hash, `SHA-256(0x00 || leaf)`.
     * @param proof The audit path, leaf to root.
     * @return True if the proof shows the leaf in the checkpoint.
     */
    function verifyInclusion(
        bytes32 courierId,
        uint64 size,
        uint256 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool);

    /**
     * @notice Verifies an RFC 9162 inclusion proof against a given root (no stored state).
     * @param leafIndex The zero-based index of the leaf.
     * @param treeSize The tree size.
     * @param leafHash The leaf hash.
     * @param proof The audit path, leaf to root.
     * @param root The expected root.
     * @return True if the proof is well formed and leads to `root`.
     */
    function verifyInclusionProof(
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) external view returns (bool);

    /**
     * @notice Verifies an RFC 9162 consistency proof between two roots (no stored state).
     * @dev False when `size1` is zero or greater than `size2`, and for any malformed proof.
     * @param size1 The older tree size.
     * @param size2 The newer tree size.
     * @param root1 The older root.
     * @param root2 The newer root.
     * @param proof The consistency proof.
     * @return True if the tree `root1` is a prefix of the tree `root2`.
     */
    function verifyConsistencyProof(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) external view returns (bool);

    // ------------------------------------------------------------------------------------------
    // Audit log
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Anchors the head of the caller's courier node's hash-chained audit log, so that a
     * later edit, deletion or reordering of its first `size` entries is detectable.
     * @dev The courier is derived from `msg.sender`, with the same checks as {anchorCheckpoint}
     * ({ParcelLedgerUnauthorizedAccount}, {ParcelLedgerInactiveCourier},
     * {ParcelLedgerCourierSuspended}). The size must strictly
     * grow ({ParcelLedgerAuditSizeNotIncreasing}), so the first head has a size of at least one.
     * Only the latest head is stored; every head stays in the {AuditHeadAnchored} logs.
     * Emits {AuditHeadAnchored}.
     * @param size The number of entries the head covers.
     * @param head The hash of the entry at index `size - 1`.
     */
    function anchorAuditHead(uint64 size, bytes32 head) external;

    /**
     * @notice Returns the latest audit-log head a courier anchored.
     * @dev Reverts with {ParcelLedgerUnknownCourier}. All values are zero before the first one.
     * @param courierId The courier.
     * @return size The number of entries the head covers.
     * @return head The hash of the entry at index `size - 1`.
     * @return anchoredAt Block timestamp of the anchoring.
     */
    function latestAuditHead(bytes32 courierId)
        external
        view
        returns (uint64 size, bytes32 head, uint64 anchoredAt);

    // ------------------------------------------------------------------------------------------
    // Disputes
    // ------------------------------------------------------------------------------------------

    /**
     * @notice Opens a dispute about a courier's records. Callable by a resolver or by the
     * account of any active courier.
     * @dev Reverts with {ParcelLedgerUnauthorizedAccount}, {ParcelLedgerUnknownCourier} or
     * {ParcelLedgerDisputeExists}. Emits {DisputeOpened}.
     * @param disputeId A fresh dispute identifier.
     * @param courierId The courier whose records are disputed.
     * @param subjectHash Hash of the disputed subject.
     * @param evidenceHash Hash of the evidence.
     */
    function openDispute(
        bytes32 disputeId,
        bytes32 courierId,
        bytes32 subjectHash,
        bytes32 evidenceHash
    ) external;

    /**
     * @notice Records the outcome of a dispute. Resolvers only.
     * @dev Reverts with AccessControl's `AccessControlUnauthorizedAccount`,
     * {ParcelLedgerUnknownDispute} or {ParcelLedgerDisputeAlreadyResolved}. Emits
     * {DisputeResolved}.
     * @param disputeId The dispute.
     * @param outcomeHash Hash of the outcome document.
     */
    function resolveDispute(bytes32 disputeId, bytes32 outcomeHash) external;

    /**
     * @notice Returns a dispute record.
     * @dev Reverts with {ParcelLedgerUnknownDispute}.
     * @param disputeId The dispute.
     * @return The dispute record.
     */
    function dispute(bytes32 disputeId) external view returns (Dispute memory);
}
