"""ParcelLedger through LedgerClient: every function, every revert by name, every event's args."""

from __future__ import annotations

from functools import reduce

import pytest
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from parcelproof.chain.ledger import LedgerClient, TxResult
from parcelproof.core import merkle
from parcelproof.core.errors import (
    ContractRevertError,
    FormatError,
    InactiveCourierError,
    InconsistentCheckpointError,
    LedgerConflictError,
    NonGrowingCheckpointError,
    UnauthorizedError,
    UnknownAgentKeyError,
    UnknownCheckpointError,
    UnknownCourierError,
    UnknownDisputeError,
)

from .conftest import COURIER_A, COURIER_B, Chain, ident

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO32 = bytes(32)
ADMIN_ROLE = ZERO32
RESOLVER_ROLE = keccak(text="RESOLVER_ROLE")
AGENT = Web3.to_checksum_address("0x00000000000000000000000000000000000a9e01")
AGENT_2 = Web3.to_checksum_address("0x00000000000000000000000000000000000a9e02")
T0 = 1_700_000_000
T1 = 1_900_000_000


def block_time(chain: Chain, result: TxResult) -> int:
    return int(chain.w3.eth.get_block(result.block_number)["timestamp"])


def make_log(size: int, salt: bytes = b"") -> merkle.MemoryLog:
    log = merkle.MemoryLog()
    for i in range(size):
        log.append(salt + i.to_bytes(8, "big"))
    return log


@pytest.fixture
def members(ledger: LedgerClient, chain: Chain) -> LedgerClient:
    """Courier A and B admitted, a resolver appointed."""
    ledger.admit_courier(COURIER_A, chain.courier_a.address, sender=chain.admin)
    ledger.admit_courier(COURIER_B, chain.courier_b.address, sender=chain.admin)
    ledger.grant_resolver(chain.resolver.address, sender=chain.admin)
    return ledger


# --- deployment and roles -------------------------------------------------------------------


def test_deploy_makes_the_deployer_consortium_admin(chain: Chain) -> None:
    ledger, tx = LedgerClient.deploy_tx(chain.w3, chain.admin)
    assert ledger.is_admin(chain.admin.address)
    assert not ledger.is_admin(chain.outsider.address)
    granted = tx.event("RoleGranted").args
    assert granted == {
        "role": ADMIN_ROLE,
        "account": chain.admin.address,
        "sender": chain.admin.address,
    }
    assert ledger.chain_id == chain.w3.eth.chain_id
    assert ledger.resolver_role == RESOLVER_ROLE
    assert tx.gas_used > 0 and tx.block_number >= 1


def test_supports_the_ledger_and_access_control_interfaces(ledger: LedgerClient) -> None:
    from parcelproof.chain.compile import load_artifact

    selectors = [
        keccak(text=f"{e['name']}({','.join(_abi_type(i) for i in e['inputs'])})")[:4]
        for e in load_artifact("IParcelLedger").abi
        if e["type"] == "function"
    ]
    interface_id = reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)), selectors)
    supports = ledger.contract.functions.supportsInterface
    assert supports(interface_id).call()
    assert supports(bytes.fromhex("7965db0b")).call()  # IAccessControl
    assert not supports(bytes.fromhex("ffffffff")).call()


def _abi_type(param: dict[str, object]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        comps = param["components"]
        assert isinstance(comps, list)
        return "(" + ",".join(_abi_type(c) for c in comps) + ")" + kind[5:]
    return kind


def test_grant_and_revoke_resolver(ledger: LedgerClient, chain: Chain) -> None:
    tx = ledger.grant_resolver(chain.resolver.address, sender=chain.admin)
    assert tx.event("RoleGranted").args == {
        "role": RESOLVER_ROLE,
        "account": chain.resolver.address,
        "sender": chain.admin.address,
    }
    assert ledger.is_resolver(chain.resolver.address)
    tx = ledger.revoke_resolver(chain.resolver.address, sender=chain.admin)
    assert tx.event("RoleRevoked").args["account"] == chain.resolver.address
    assert not ledger.is_resolver(chain.resolver.address)


def test_only_the_admin_grants_resolvers(ledger: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount") as info:
        ledger.grant_resolver(chain.outsider.address, sender=chain.outsider)
    assert info.value.args_ == (chain.outsider.address, ADMIN_ROLE)


# --- membership -----------------------------------------------------------------------------


def test_admit_courier_records_and_emits(ledger: LedgerClient, chain: Chain) -> None:
    tx = ledger.admit_courier(COURIER_A, chain.courier_a.address, sender=chain.admin)
    assert tx.event("CourierAdmitted").args == {
        "courierId": COURIER_A,
        "account": chain.courier_a.address,
    }
    record = ledger.courier(COURIER_A)
    assert record.account == chain.courier_a.address
    assert record.admitted_at == block_time(chain, tx)
    assert record.active and record.removed_at is None
    assert (record.checkpoint_count, record.latest_size, record.latest_anchored_at) == (0, 0, None)
    assert ledger.courier_of(chain.courier_a.address) == COURIER_A
    assert ledger.courier_of(chain.outsider.address) is None


def test_admit_courier_is_admin_only(ledger: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount") as info:
        ledger.admit_courier(COURIER_A, chain.courier_a.address, sender=chain.courier_a)
    assert info.value.name == "AccessControlUnauthorizedAccount"
    assert info.value.args_ == (chain.courier_a.address, ADMIN_ROLE)


def test_admit_rejects_the_zero_courier_id(ledger: LedgerClient, chain: Chain) -> None:
    with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidCourierId"):
        ledger.admit_courier(ZERO32, chain.courier_a.address, sender=chain.admin)


def test_admit_rejects_the_zero_address(ledger: LedgerClient, chain: Chain) -> None:
    with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidAccount") as info:
        ledger.admit_courier(COURIER_A, ZERO_ADDRESS, sender=chain.admin)
    assert info.value.args_ == (ZERO_ADDRESS,)


def test_admit_rejects_an_existing_courier_id(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(LedgerConflictError, match="ParcelLedgerCourierExists") as info:
        members.admit_courier(COURIER_A, chain.spare.address, sender=chain.admin)
    assert info.value.args_ == (COURIER_A,)


def test_admit_rejects_an_account_already_in_use(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAccountInUse") as info:
        members.admit_courier(ident("C"), chain.courier_a.address, sender=chain.admin)
    assert info.value.args_ == (chain.courier_a.address, COURIER_A)


def test_a_removed_courier_id_is_never_readmitted(members: LedgerClient, chain: Chain) -> None:
    members.remove_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerCourierExists"):
        members.admit_courier(COURIER_A, chain.spare.address, sender=chain.admin)


def test_unknown_courier_reverts_by_name(ledger: LedgerClient) -> None:
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier") as info:
        ledger.courier(COURIER_A)
    assert info.value.args_ == (COURIER_A,)
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
        ledger.latest_checkpoint(COURIER_A)


def test_remove_courier_keeps_history(members: LedgerClient, chain: Chain) -> None:
    log = make_log(3)
    members.anchor_checkpoint(3, log.root(), [], sender=chain.courier_a)
    tx = members.remove_courier(COURIER_A, sender=chain.admin)
    removed_at = block_time(chain, tx)
    assert tx.event("CourierRemoved").args == {"courierId": COURIER_A, "removedAt": removed_at}
    record = members.courier(COURIER_A)
    assert not record.active and record.removed_at == removed_at
    assert record.latest_size == 3 and record.checkpoint_count == 1
    # History stays readable and verifiable.
    assert members.checkpoint_root(COURIER_A, 3) == log.root()
    assert members.verify_inclusion(COURIER_A, 3, 1, log.node(0, 1), log.inclusion_proof(1))
    assert members.courier_of(chain.courier_a.address) == COURIER_A


def test_a_removed_courier_can_no_longer_anchor_or_register_keys(
    members: LedgerClient, chain: Chain
) -> None:
    members.remove_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier") as info:
        members.anchor_checkpoint(1, make_log(1).root(), [], sender=chain.courier_a)
    assert info.value.args_[0] == COURIER_A
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier"):
        members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)


def test_remove_courier_errors(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount"):
        members.remove_courier(COURIER_A, sender=chain.courier_b)
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
        members.remove_courier(ident("nobody"), sender=chain.admin)
    members.remove_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier"):
        members.remove_courier(COURIER_A, sender=chain.admin)


def test_set_courier_account_rotates_the_anchoring_key(members: LedgerClient, chain: Chain) -> None:
    tx = members.set_courier_account(COURIER_A, chain.spare.address, sender=chain.admin)
    assert tx.event("CourierAccountChanged").args == {
        "courierId": COURIER_A,
        "previousAccount": chain.courier_a.address,
        "newAccount": chain.spare.address,
    }
    assert members.courier(COURIER_A).account == chain.spare.address
    assert members.courier_of(chain.spare.address) == COURIER_A
    assert members.courier_of(chain.courier_a.address) is None
    log = make_log(2)
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount") as info:
        members.anchor_checkpoint(2, log.root(), [], sender=chain.courier_a)
    assert info.value.args_ == (chain.courier_a.address,)
    checkpoint = members.anchor_checkpoint(2, log.root(), [], sender=chain.spare)
    assert checkpoint.courier_id == COURIER_A
    # The retired account can never serve another courier.
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAccountInUse") as conflict:
        members.admit_courier(ident("C"), chain.courier_a.address, sender=chain.admin)
    assert conflict.value.args_ == (chain.courier_a.address, COURIER_A)


def test_set_courier_account_errors(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount"):
        members.set_courier_account(COURIER_A, chain.spare.address, sender=chain.courier_a)
    with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidAccount"):
        members.set_courier_account(COURIER_A, ZERO_ADDRESS, sender=chain.admin)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAccountInUse"):
        members.set_courier_account(COURIER_A, chain.courier_b.address, sender=chain.admin)
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
        members.set_courier_account(ident("nobody"), chain.spare.address, sender=chain.admin)
    members.remove_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier"):
        members.set_courier_account(COURIER_A, chain.spare.address, sender=chain.admin)


# --- agent keys -----------------------------------------------------------------------------


def test_register_agent_key_records_and_emits(members: LedgerClient, chain: Chain) -> None:
    tx = members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)
    assert tx.event("AgentKeyRegistered").args == {
        "courierId": COURIER_A,
        "agent": AGENT,
        "validFrom": T0,
        "validUntil": T1,
    }
    key = members.agent_key(AGENT)
    assert (key.agent, key.courier_id, key.valid_from, key.valid_until, key.revoked_at) == (
        AGENT,
        COURIER_A,
        T0,
        T1,
        None,
    )


@pytest.mark.parametrize(
    ("at", "valid"),
    [(T0 - 1, False), (T0, True), (T0 + 1, True), (T1 - 1, True), (T1, False), (T1 + 1, False)],
)
def test_agent_key_validity_window_is_half_open(
    members: LedgerClient, chain: Chain, at: int, valid: bool
) -> None:
    members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)
    assert members.is_agent_key_valid(COURIER_A, AGENT, at) is valid


def test_agent_key_is_valid_only_for_its_courier(members: LedgerClient, chain: Chain) -> None:
    members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)
    assert not members.is_agent_key_valid(COURIER_B, AGENT, T0)
    assert not members.is_agent_key_valid(ZERO32, AGENT, T0)
    assert not members.is_agent_key_valid(COURIER_A, AGENT_2, T0)  # never registered


def test_register_agent_key_errors(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount") as info:
        members.register_agent_key(AGENT, T0, T1, sender=chain.outsider)
    assert info.value.args_ == (chain.outsider.address,)
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount"):
        members.register_agent_key(AGENT, T0, T1, sender=chain.admin)  # admin is no courier
    for start, end in [(T0, T0), (T1, T0)]:
        with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidValidityWindow") as bad:
            members.register_agent_key(AGENT, start, end, sender=chain.courier_a)
        assert bad.value.args_ == (start, end)
    with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidAccount"):
        members.register_agent_key(ZERO_ADDRESS, T0, T1, sender=chain.courier_a)


def test_an_agent_belongs_to_one_courier_forever(members: LedgerClient, chain: Chain) -> None:
    members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAgentKeyExists") as info:
        members.register_agent_key(AGENT, T0, T1, sender=chain.courier_b)
    assert info.value.args_ == (AGENT, COURIER_A)
    members.revoke_agent_key(AGENT, sender=chain.courier_a)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAgentKeyExists"):
        members.register_agent_key(AGENT, T0, T1 + 1, sender=chain.courier_a)


def test_unknown_agent_key_reverts_by_name(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnknownAgentKeyError, match="ParcelLedgerUnknownAgentKey") as info:
        members.agent_key(AGENT)
    assert info.value.args_ == (AGENT,)
    with pytest.raises(UnknownAgentKeyError, match="ParcelLedgerUnknownAgentKey"):
        members.revoke_agent_key(AGENT, sender=chain.courier_a)


def test_revoke_agent_key_ends_validity_at_the_revocation_time(
    members: LedgerClient, chain: Chain
) -> None:
    members.register_agent_key(AGENT, T0, 2**63, sender=chain.courier_a)
    tx = members.revoke_agent_key(AGENT, sender=chain.courier_a)
    revoked_at = block_time(chain, tx)
    assert tx.event("AgentKeyRevoked").args == {
        "courierId": COURIER_A,
        "agent": AGENT,
        "revokedAt": revoked_at,
    }
    assert members.agent_key(AGENT).revoked_at == revoked_at
    assert members.is_agent_key_valid(COURIER_A, AGENT, revoked_at - 1)
    assert not members.is_agent_key_valid(COURIER_A, AGENT, revoked_at)
    assert not members.is_agent_key_valid(COURIER_A, AGENT, revoked_at + 1)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerAgentKeyAlreadyRevoked") as info:
        members.revoke_agent_key(AGENT, sender=chain.courier_a)
    assert info.value.args_ == (AGENT, revoked_at)


def test_only_the_owning_courier_revokes(members: LedgerClient, chain: Chain) -> None:
    members.register_agent_key(AGENT, T0, T1, sender=chain.courier_a)
    for intruder in (chain.courier_b, chain.outsider, chain.admin):
        with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount"):
            members.revoke_agent_key(AGENT, sender=intruder)


def test_courier_removal_invalidates_its_keys_from_then_on(
    members: LedgerClient, chain: Chain
) -> None:
    members.register_agent_key(AGENT, T0, 2**63, sender=chain.courier_a)
    removed_at = block_time(chain, members.remove_courier(COURIER_A, sender=chain.admin))
    assert members.is_agent_key_valid(COURIER_A, AGENT, removed_at - 1)
    assert not members.is_agent_key_valid(COURIER_A, AGENT, removed_at)
    # A removed courier may still revoke (e.g. a key reported stolen afterwards).
    members.revoke_agent_key(AGENT, sender=chain.courier_a)


# --- checkpoints ----------------------------------------------------------------------------


def test_first_checkpoint(members: LedgerClient, chain: Chain) -> None:
    assert members.latest_checkpoint(COURIER_A) is None
    log = make_log(5)
    result = members.anchor_checkpoint_tx(5, log.root(), [], sender=chain.courier_a)
    assert result.event("CheckpointAnchored").args == {
        "courierId": COURIER_A,
        "size": 5,
        "root": log.root(),
        "previousSize": 0,
    }
    latest = members.latest_checkpoint(COURIER_A)
    assert latest is not None
    assert (latest.size, latest.root, latest.anchored_at) == (
        5,
        log.root(),
        block_time(chain, result),
    )
    assert members.checkpoint_root(COURIER_A, 5) == log.root()
    record = members.courier(COURIER_A)
    assert (record.checkpoint_count, record.latest_size) == (1, 5)
    assert record.latest_anchored_at == latest.anchored_at


def test_anchor_returns_the_checkpoint_with_its_transaction(
    members: LedgerClient, chain: Chain
) -> None:
    log = make_log(2)
    checkpoint = members.anchor_checkpoint(2, log.root(), [], sender=chain.courier_a)
    assert (checkpoint.courier_id, checkpoint.size, checkpoint.root) == (COURIER_A, 2, log.root())
    assert checkpoint.block_number is not None and checkpoint.tx_hash is not None
    receipt = chain.w3.eth.get_transaction_receipt(HexBytes(checkpoint.tx_hash))
    assert receipt["blockNumber"] == checkpoint.block_number
    block = chain.w3.eth.get_block(checkpoint.block_number)
    assert checkpoint.anchored_at == block["timestamp"]


def test_growing_history_with_onchain_consistency(members: LedgerClient, chain: Chain) -> None:
    sizes = [1, 2, 3, 4, 5, 8, 9, 16, 17, 100, 1000]
    log = make_log(sizes[-1])
    previous = 0
    for size in sizes:
        proof = log.consistency_proof(previous, size) if previous else []
        result = members.anchor_checkpoint_tx(size, log.root(size), proof, sender=chain.courier_a)
        assert result.event("CheckpointAnchored").args["previousSize"] == previous
        previous = size
    listed = members.checkpoints(COURIER_A)
    assert [(c.size, c.root) for c in listed] == [(s, log.root(s)) for s in sizes]
    assert all(c.block_number is not None and c.tx_hash is not None for c in listed)
    assert [c.anchored_at for c in listed] == sorted(c.anchored_at for c in listed)
    for size in sizes:
        assert members.checkpoint_root(COURIER_A, size) == log.root(size)
        for index in {0, size // 2, size - 1}:
            proof = log.inclusion_proof(index, size)
            assert members.verify_inclusion(COURIER_A, size, index, log.node(0, index), proof)
    assert members.courier(COURIER_A).checkpoint_count == len(sizes)
    assert members.checkpoints(COURIER_B) == []


def test_first_checkpoint_takes_no_proof(members: LedgerClient, chain: Chain) -> None:
    log = make_log(4)
    with pytest.raises(
        InconsistentCheckpointError, match="ParcelLedgerInconsistentCheckpoint"
    ) as e:
        members.anchor_checkpoint(4, log.root(), [log.root(2)], sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, 0, 4)


def test_empty_checkpoint_does_not_grow(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(NonGrowingCheckpointError, match="ParcelLedgerNonGrowingCheckpoint") as e:
        members.anchor_checkpoint(0, merkle.EMPTY_ROOT, [], sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, 0, 0)


def test_zero_root_is_refused(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(ContractRevertError, match="ParcelLedgerInvalidRoot") as info:
        members.anchor_checkpoint(1, ZERO32, [], sender=chain.courier_a)
    assert info.value.args_ == (COURIER_A, 1)


@pytest.mark.parametrize("size", [10, 9])
def test_rewinding_or_repeating_a_size_is_refused(
    members: LedgerClient, chain: Chain, size: int
) -> None:
    log = make_log(10)
    members.anchor_checkpoint(10, log.root(), [], sender=chain.courier_a)
    with pytest.raises(NonGrowingCheckpointError, match="ParcelLedgerNonGrowingCheckpoint") as e:
        members.anchor_checkpoint(size, log.root(size), [], sender=chain.courier_a)
    assert e.value.name == "ParcelLedgerNonGrowingCheckpoint"
    assert e.value.args_ == (COURIER_A, 10, size)


def test_a_forked_history_is_refused(members: LedgerClient, chain: Chain) -> None:
    honest = make_log(8)
    members.anchor_checkpoint(8, honest.root(), [], sender=chain.courier_a)
    forked = make_log(12, salt=b"rewritten")
    with pytest.raises(
        InconsistentCheckpointError, match="ParcelLedgerInconsistentCheckpoint"
    ) as e:
        members.anchor_checkpoint(
            12, forked.root(), forked.consistency_proof(8, 12), sender=chain.courier_a
        )
    assert e.value.args_ == (COURIER_A, 8, 12)
    assert members.courier(COURIER_A).latest_size == 8


def test_a_rewritten_suffix_of_the_new_tree_is_refused(members: LedgerClient, chain: Chain) -> None:
    log = make_log(6)
    members.anchor_checkpoint(6, log.root(), [], sender=chain.courier_a)
    grown = make_log(6)
    for i in range(5):
        grown.append(b"new" + bytes([i]))
    proof = grown.consistency_proof(6, 11)
    tampered = [*proof[:-1], bytes(b ^ 1 for b in proof[-1])]
    cases = {
        "flipped node": (tampered, grown.root()),
        "truncated": (proof[:-1], grown.root()),
        "trailing garbage": ([*proof, proof[0]], grown.root()),
        "wrong root": (proof, log.root()),
    }
    for desc, (bad_proof, root) in cases.items():
        with pytest.raises(InconsistentCheckpointError, match="ParcelLedgerInconsistent"):
            members.anchor_checkpoint(11, root, bad_proof, sender=chain.courier_a)
        assert members.courier(COURIER_A).latest_size == 6, desc
    members.anchor_checkpoint(11, grown.root(), proof, sender=chain.courier_a)


def test_outsiders_cannot_anchor(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount") as info:
        members.anchor_checkpoint(1, make_log(1).root(), [], sender=chain.outsider)
    assert info.value.args_ == (chain.outsider.address,)


def test_courier_logs_are_independent(members: LedgerClient, chain: Chain) -> None:
    log_a, log_b = make_log(3, b"a"), make_log(7, b"b")
    members.anchor_checkpoint(3, log_a.root(), [], sender=chain.courier_a)
    members.anchor_checkpoint(7, log_b.root(), [], sender=chain.courier_b)
    assert members.checkpoint_root(COURIER_A, 3) == log_a.root()
    assert members.checkpoint_root(COURIER_B, 7) == log_b.root()
    with pytest.raises(UnknownCheckpointError, match="ParcelLedgerUnknownCheckpoint"):
        members.checkpoint_root(COURIER_A, 7)


def test_unknown_checkpoint_reverts_by_name(members: LedgerClient, chain: Chain) -> None:
    log = make_log(4)
    members.anchor_checkpoint(4, log.root(), [], sender=chain.courier_a)
    with pytest.raises(UnknownCheckpointError, match="ParcelLedgerUnknownCheckpoint") as info:
        members.checkpoint_root(COURIER_A, 3)
    assert info.value.args_ == (COURIER_A, 3)
    with pytest.raises(UnknownCheckpointError, match="ParcelLedgerUnknownCheckpoint"):
        members.verify_inclusion(COURIER_A, 3, 0, log.node(0, 0), log.inclusion_proof(0, 3))
    with pytest.raises(UnknownCheckpointError, match="ParcelLedgerUnknownCheckpoint"):
        members.verify_inclusion(ident("nobody"), 4, 0, log.node(0, 0), log.inclusion_proof(0))


def test_verify_inclusion_is_false_for_bad_proofs(members: LedgerClient, chain: Chain) -> None:
    log = make_log(13)
    members.anchor_checkpoint(13, log.root(), [], sender=chain.courier_a)
    proof = log.inclusion_proof(6)
    leaf = log.node(0, 6)
    assert members.verify_inclusion(COURIER_A, 13, 6, leaf, proof)
    assert not members.verify_inclusion(COURIER_A, 13, 7, leaf, proof)
    assert not members.verify_inclusion(COURIER_A, 13, 6, log.node(0, 5), proof)
    assert not members.verify_inclusion(COURIER_A, 13, 6, leaf, proof[:-1])
    assert not members.verify_inclusion(COURIER_A, 13, 6, leaf, [*proof, proof[0]])
    assert not members.verify_inclusion(COURIER_A, 13, 13, leaf, proof)
    assert not members.verify_inclusion(COURIER_A, 13, 2**255, leaf, proof)


# --- disputes -------------------------------------------------------------------------------


SUBJECT, EVIDENCE, OUTCOME = ident("subject"), ident("evidence"), ident("outcome")


def test_resolver_opens_and_resolves_a_dispute(members: LedgerClient, chain: Chain) -> None:
    dispute_id = ident("dispute 1")
    tx = members.open_dispute(dispute_id, COURIER_A, SUBJECT, EVIDENCE, sender=chain.resolver)
    assert tx.event("DisputeOpened").args == {
        "disputeId": dispute_id,
        "courierId": COURIER_A,
        "openedBy": chain.resolver.address,
        "subjectHash": SUBJECT,
        "evidenceHash": EVIDENCE,
    }
    record = members.dispute(dispute_id)
    assert (record.courier_id, record.subject_hash, record.evidence_hash) == (
        COURIER_A,
        SUBJECT,
        EVIDENCE,
    )
    assert record.opened_by == chain.resolver.address
    assert record.opened_at == block_time(chain, tx)
    assert not record.resolved and record.outcome_hash is None and record.resolved_by is None

    tx = members.resolve_dispute(dispute_id, OUTCOME, sender=chain.resolver)
    assert tx.event("DisputeResolved").args == {
        "disputeId": dispute_id,
        "resolvedBy": chain.resolver.address,
        "outcomeHash": OUTCOME,
    }
    record = members.dispute(dispute_id)
    assert record.resolved and record.outcome_hash == OUTCOME
    assert (record.resolved_by, record.resolved_at) == (
        chain.resolver.address,
        block_time(chain, tx),
    )


def test_an_active_courier_may_open_a_dispute(members: LedgerClient, chain: Chain) -> None:
    dispute_id = ident("dispute by B")
    tx = members.open_dispute(dispute_id, COURIER_A, SUBJECT, EVIDENCE, sender=chain.courier_b)
    assert tx.event("DisputeOpened").args["openedBy"] == chain.courier_b.address


def test_open_dispute_errors(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount") as info:
        members.open_dispute(ident("d"), COURIER_A, SUBJECT, EVIDENCE, sender=chain.outsider)
    assert info.value.args_ == (chain.outsider.address,)
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
        members.open_dispute(ident("d"), ident("nobody"), SUBJECT, EVIDENCE, sender=chain.resolver)
    members.open_dispute(ident("d"), COURIER_A, SUBJECT, EVIDENCE, sender=chain.resolver)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerDisputeExists") as dup:
        members.open_dispute(ident("d"), COURIER_B, SUBJECT, EVIDENCE, sender=chain.courier_a)
    assert dup.value.args_ == (ident("d"),)
    members.remove_courier(COURIER_B, sender=chain.admin)
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount"):
        members.open_dispute(ident("e"), COURIER_A, SUBJECT, EVIDENCE, sender=chain.courier_b)
    # Disputes about a removed courier's records remain possible.
    members.open_dispute(ident("f"), COURIER_B, SUBJECT, EVIDENCE, sender=chain.resolver)


def test_resolve_dispute_errors(members: LedgerClient, chain: Chain) -> None:
    dispute_id = ident("d")
    with pytest.raises(UnknownDisputeError, match="ParcelLedgerUnknownDispute") as info:
        members.resolve_dispute(dispute_id, OUTCOME, sender=chain.resolver)
    assert info.value.args_ == (dispute_id,)
    with pytest.raises(UnknownDisputeError, match="ParcelLedgerUnknownDispute"):
        members.dispute(dispute_id)
    members.open_dispute(dispute_id, COURIER_A, SUBJECT, EVIDENCE, sender=chain.courier_b)
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount") as denied:
        members.resolve_dispute(dispute_id, OUTCOME, sender=chain.courier_b)
    assert denied.value.args_ == (chain.courier_b.address, RESOLVER_ROLE)
    tx = members.resolve_dispute(dispute_id, OUTCOME, sender=chain.resolver)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerDisputeAlreadyResolved") as again:
        members.resolve_dispute(dispute_id, OUTCOME, sender=chain.resolver)
    assert again.value.args_ == (dispute_id, block_time(chain, tx))


def test_a_revoked_resolver_can_no_longer_resolve(members: LedgerClient, chain: Chain) -> None:
    members.open_dispute(ident("d"), COURIER_A, SUBJECT, EVIDENCE, sender=chain.resolver)
    members.revoke_resolver(chain.resolver.address, sender=chain.admin)
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount"):
        members.resolve_dispute(ident("d"), OUTCOME, sender=chain.resolver)


# --- client-side checks ---------------------------------------------------------------------


def test_client_refuses_malformed_arguments_before_the_chain(
    ledger: LedgerClient, chain: Chain
) -> None:
    with pytest.raises(FormatError, match="courier id must be 32 bytes"):
        ledger.admit_courier(b"short", chain.courier_a.address, sender=chain.admin)
    with pytest.raises(FormatError, match="not an Ethereum address"):
        ledger.admit_courier(COURIER_A, "0x1234", sender=chain.admin)
    with pytest.raises(FormatError, match=r"proof\[1\] must be 32 bytes"):
        ledger.verify_consistency_proof(1, 2, ZERO32, ZERO32, [ZERO32, b"\x00"])
    with pytest.raises(FormatError, match="unsigned 64-bit"):
        ledger.anchor_checkpoint(-1, ZERO32, [], sender=chain.courier_a)


def test_abi_carries_nothing_personal() -> None:
    """Only ids, addresses, sizes, times, roots and hashes cross the chain boundary."""
    from parcelproof.chain.compile import load_artifact

    allowed = {"bytes32", "bytes32[]", "address", "uint64", "uint256", "bool", "bytes4"}
    allowed |= {"tuple", "tuple[]"}  # structs of the above (suspensions() returns a list)
    for entry in load_artifact().abi:
        for param in [*entry.get("inputs", []), *entry.get("outputs", [])]:
            kinds = [param["type"], *(c["type"] for c in param.get("components", []))]
            assert set(kinds) <= allowed, (entry.get("name"), param)


def test_a_revert_after_estimation_is_still_named(
    members: LedgerClient, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If state moves between estimation and mining, the mined revert is replayed and named."""
    from web3.contract.contract import ContractFunction

    log = make_log(4)
    members.anchor_checkpoint(4, log.root(), [], sender=chain.courier_a)
    monkeypatch.setattr(ContractFunction, "estimate_gas", lambda self, *a, **k: 300_000)
    with pytest.raises(NonGrowingCheckpointError, match="ParcelLedgerNonGrowingCheckpoint"):
        members.anchor_checkpoint(3, log.root(3), [], sender=chain.courier_a)
    assert members.courier(COURIER_A).latest_size == 4
