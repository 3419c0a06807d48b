"""Reversible suspension of a courier: admin only, events and errors by name, anchoring and key
registration refused while it lasts, agent keys invalid inside every suspension period and valid
before and after, and verifiers (the node at ingest, ``verify_bundle``) judging by event time."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

import pytest
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient, Suspension, TxResult
from parcelproof.core import merkle
from parcelproof.core.bundle import verify_bundle
from parcelproof.core.errors import (
    AgentKeyNotValidError,
    InactiveCourierError,
    LedgerConflictError,
    SuspendedCourierError,
    UnauthorizedError,
    UnknownCourierError,
)
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.lookup import lookup
from parcelproof.store.memory import MemoryStore
from tests.conftest import Courier, make_courier

from .conftest import COURIER_A, COURIER_B, Chain, ident

ADMIN_ROLE = bytes(32)
AGENT = Web3.to_checksum_address("0x00000000000000000000000000000000000a9e51")
AGENT_2 = Web3.to_checksum_address("0x00000000000000000000000000000000000a9e52")
AGENT_3 = Web3.to_checksum_address("0x00000000000000000000000000000000000a9e53")
T0 = 1_000_000_000  # long before any block of the test chains
FOREVER = 2**63
MAX_SUSPENSIONS = 32
PARCEL, POSTCODE = "PP555444333DE", "10115"


def block_time(chain: Chain, result: TxResult) -> int:
    return int(chain.w3.eth.get_block(result.block_number)["timestamp"])


def next_second(w3: Web3) -> None:
    """Make the next block later than the latest one. eth-tester dates each block a second
    after the previous one; anvil dates every block of a wall-clock second alike, so wait for
    the next second (or, should anvil's clock run ahead of ours, move it on by one)."""
    if devnet.is_embedded(w3):
        return
    latest = int(w3.eth.get_block("latest")["timestamp"])
    wait = latest + 1 - time.time()
    if wait > 2:
        cast(Any, w3.provider).make_request("evm_increaseTime", [1])
        return
    while time.time() < latest + 1:
        time.sleep(0.05)


@pytest.fixture
def members(ledger: LedgerClient, chain: Chain) -> LedgerClient:
    """Courier A and B admitted, each with an agent key valid from T0 on."""
    ledger.admit_courier(COURIER_A, chain.courier_a.address, sender=chain.admin)
    ledger.admit_courier(COURIER_B, chain.courier_b.address, sender=chain.admin)
    ledger.register_agent_key(AGENT, T0, FOREVER, sender=chain.courier_a)
    ledger.register_agent_key(AGENT_2, T0, FOREVER, sender=chain.courier_b)
    return ledger


def suspend(ledger: LedgerClient, chain: Chain, courier_id: bytes = COURIER_A) -> int:
    """Suspend in a block later than the latest; its time."""
    next_second(chain.w3)
    return block_time(chain, ledger.suspend_courier(courier_id, sender=chain.admin))


def reinstate(ledger: LedgerClient, chain: Chain, courier_id: bytes = COURIER_A) -> int:
    """Reinstate in a block later than the latest; its time."""
    next_second(chain.w3)
    return block_time(chain, ledger.reinstate_courier(courier_id, sender=chain.admin))


# --- governance -----------------------------------------------------------------------------


def test_suspend_and_reinstate_record_and_emit(members: LedgerClient, chain: Chain) -> None:
    assert members.suspensions(COURIER_A) == [] and not members.is_suspended(COURIER_A)
    assert members.max_suspensions == MAX_SUSPENSIONS
    tx = members.suspend_courier(COURIER_A, sender=chain.admin)
    suspended_at = block_time(chain, tx)
    assert tx.event("CourierSuspended").args == {
        "courierId": COURIER_A,
        "suspendedAt": suspended_at,
    }
    assert members.is_suspended(COURIER_A) and not members.is_suspended(COURIER_B)
    assert members.suspensions(COURIER_A) == [Suspension(suspended_at, None)]
    assert members.suspensions(COURIER_A)[0].ongoing
    record = members.courier(COURIER_A)
    assert record.active and record.removed_at is None  # suspended, still a member

    next_second(chain.w3)
    tx = members.reinstate_courier(COURIER_A, sender=chain.admin)
    reinstated_at = block_time(chain, tx)
    assert tx.event("CourierReinstated").args == {
        "courierId": COURIER_A,
        "reinstatedAt": reinstated_at,
    }
    assert not members.is_suspended(COURIER_A)
    assert members.suspensions(COURIER_A) == [Suspension(suspended_at, reinstated_at)]
    assert suspended_at < reinstated_at


@pytest.mark.parametrize("who", ["courier_a", "courier_b", "resolver", "outsider"])
def test_suspend_and_reinstate_are_admin_only(
    members: LedgerClient, chain: Chain, who: str
) -> None:
    sender = getattr(chain, who)
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount") as info:
        members.suspend_courier(COURIER_A, sender=sender)
    assert info.value.args_ == (sender.address, ADMIN_ROLE)
    members.suspend_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(UnauthorizedError, match="AccessControlUnauthorizedAccount") as info:
        members.reinstate_courier(COURIER_A, sender=sender)
    assert info.value.args_ == (sender.address, ADMIN_ROLE)
    assert members.is_suspended(COURIER_A)


def test_suspension_errors_by_name(members: LedgerClient, chain: Chain) -> None:
    nobody = ident("nobody")
    for call in (members.suspend_courier, members.reinstate_courier):
        with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier") as unknown:
            call(nobody, sender=chain.admin)
        assert unknown.value.args_ == (nobody,)
    for view in (members.suspensions, members.is_suspended):
        with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
            view(nobody)

    with pytest.raises(LedgerConflictError, match="ParcelLedgerCourierNotSuspended") as idle:
        members.reinstate_courier(COURIER_A, sender=chain.admin)
    assert idle.value.args_ == (COURIER_A,)
    suspended_at = block_time(chain, members.suspend_courier(COURIER_A, sender=chain.admin))
    with pytest.raises(SuspendedCourierError, match="ParcelLedgerCourierSuspended") as again:
        members.suspend_courier(COURIER_A, sender=chain.admin)
    assert again.value.args_ == (COURIER_A, suspended_at)

    removed_at = block_time(chain, members.remove_courier(COURIER_B, sender=chain.admin))
    for call in (members.suspend_courier, members.reinstate_courier):
        with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier") as gone:
            call(COURIER_B, sender=chain.admin)
        assert gone.value.args_ == (COURIER_B, removed_at)


def test_suspensions_are_capped(members: LedgerClient, chain: Chain) -> None:
    for _ in range(MAX_SUSPENSIONS):
        members.suspend_courier(COURIER_A, sender=chain.admin)
        members.reinstate_courier(COURIER_A, sender=chain.admin)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerTooManySuspensions") as info:
        members.suspend_courier(COURIER_A, sender=chain.admin)
    assert info.value.args_ == (COURIER_A, MAX_SUSPENSIONS)
    periods = members.suspensions(COURIER_A)
    assert len(periods) == MAX_SUSPENSIONS and not any(p.ongoing for p in periods)
    # The longest scan still answers: an instant before every period, and one after them all.
    assert members.is_agent_key_valid(COURIER_A, AGENT, periods[0].suspended_at - 1)
    assert members.is_agent_key_valid(COURIER_A, AGENT, (periods[-1].reinstated_at or 0) + 1)
    # The courier can still be removed.
    members.remove_courier(COURIER_A, sender=chain.admin)


# --- what a suspended courier may do --------------------------------------------------------


def test_a_suspended_courier_can_neither_anchor_nor_register_keys(
    members: LedgerClient, chain: Chain
) -> None:
    log = merkle.MemoryLog()
    for i in range(5):
        log.append(i.to_bytes(8, "big"))
    members.anchor_checkpoint(2, log.root(2), [], sender=chain.courier_a)
    suspended_at = suspend(members, chain)
    refused = {
        "checkpoint": lambda: members.anchor_checkpoint(
            3, log.root(3), log.consistency_proof(2, 3), sender=chain.courier_a
        ),
        "audit head": lambda: members.anchor_audit_head(1, ident("head"), sender=chain.courier_a),
        "agent key": lambda: members.register_agent_key(
            AGENT_3, T0, FOREVER, sender=chain.courier_a
        ),
    }
    for desc, act in refused.items():
        with pytest.raises(SuspendedCourierError, match="ParcelLedgerCourierSuspended") as info:
            act()
        assert info.value.args_ == (COURIER_A, suspended_at), desc
    # Another courier is unaffected.
    members.anchor_checkpoint(1, log.root(1), [], sender=chain.courier_b)

    reinstate(members, chain)
    for act in refused.values():
        act()
    record = members.courier(COURIER_A)
    assert (record.latest_size, record.checkpoint_count) == (3, 2)


def test_a_suspended_courier_may_still_revoke_its_keys(members: LedgerClient, chain: Chain) -> None:
    """A key reported stolen during a suspension is revoked at once, not after reinstatement:
    otherwise the thief's events dated between reinstatement and revocation would verify."""
    suspend(members, chain)
    revoked_at = block_time(chain, members.revoke_agent_key(AGENT, sender=chain.courier_a))
    assert members.agent_key(AGENT).revoked_at == revoked_at
    reinstated_at = reinstate(members, chain)
    assert not members.is_agent_key_valid(COURIER_A, AGENT, reinstated_at)


def test_a_rotated_account_of_a_suspended_courier_is_suspended_too(
    members: LedgerClient, chain: Chain
) -> None:
    suspended_at = suspend(members, chain)
    members.set_courier_account(COURIER_A, chain.spare.address, sender=chain.admin)
    with pytest.raises(SuspendedCourierError, match="ParcelLedgerCourierSuspended") as info:
        members.anchor_checkpoint(1, ident("root"), [], sender=chain.spare)
    assert info.value.args_ == (COURIER_A, suspended_at)
    reinstate(members, chain)
    members.anchor_checkpoint(1, ident("root"), [], sender=chain.spare)


def test_removing_a_suspended_courier(members: LedgerClient, chain: Chain) -> None:
    suspended_at = suspend(members, chain)
    next_second(chain.w3)
    tx = members.remove_courier(COURIER_A, sender=chain.admin)
    removed_at = block_time(chain, tx)
    assert tx.event("CourierRemoved").args == {"courierId": COURIER_A, "removedAt": removed_at}
    record = members.courier(COURIER_A)
    assert not record.active and record.removed_at == removed_at
    # The suspension never ends: the keys stay invalid from its start on.
    assert members.suspensions(COURIER_A) == [Suspension(suspended_at, None)]
    assert members.is_suspended(COURIER_A)
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier"):
        members.reinstate_courier(COURIER_A, sender=chain.admin)
    assert members.is_agent_key_valid(COURIER_A, AGENT, suspended_at - 1)
    for at in (suspended_at, removed_at - 1, removed_at, removed_at + 10**6):
        assert not members.is_agent_key_valid(COURIER_A, AGENT, at), at
    # Removal errors come first: anchoring names the removal, not the suspension.
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier"):
        members.anchor_checkpoint(1, ident("root"), [], sender=chain.courier_a)


# --- validity windows -----------------------------------------------------------------------


def test_agent_keys_are_invalid_during_a_suspension_and_valid_before_and_after(
    members: LedgerClient, chain: Chain
) -> None:
    suspended_at = suspend(members, chain)
    cases = {
        "just before": (suspended_at - 1, True),
        "at the suspension": (suspended_at, False),
        "during, open-ended": (suspended_at + 10**6, False),
    }
    for desc, (at, valid) in cases.items():
        assert members.is_agent_key_valid(COURIER_A, AGENT, at) is valid, desc
    reinstated_at = reinstate(members, chain)
    cases = {
        "just before": (suspended_at - 1, True),
        "at the suspension": (suspended_at, False),
        "last instant of it": (reinstated_at - 1, False),
        "at the reinstatement": (reinstated_at, True),
        "long after": (reinstated_at + 10**6, True),
        "before the key's own window": (T0 - 1, False),
    }
    for desc, (at, valid) in cases.items():
        assert members.is_agent_key_valid(COURIER_A, AGENT, at) is valid, desc
    # Courier B's key never was suspended.
    assert members.is_agent_key_valid(COURIER_B, AGENT_2, suspended_at)


def test_two_suspensions(members: LedgerClient, chain: Chain) -> None:
    s1 = suspend(members, chain)
    r1 = reinstate(members, chain)
    next_second(chain.w3)
    s2 = suspend(members, chain)
    r2 = reinstate(members, chain)
    s3 = suspend(members, chain)  # ongoing
    periods = members.suspensions(COURIER_A)
    assert periods == [Suspension(s1, r1), Suspension(s2, r2), Suspension(s3, None)]
    assert s1 < r1 < s2 < r2 < s3
    instants = {
        "before the first": (s1 - 1, True),
        "inside the first": (s1, False),
        "end of the first": (r1 - 1, False),
        "between them": (r1, True),
        "just before the second": (s2 - 1, True),
        "inside the second": (s2, False),
        "after the second": (r2, True),
        "inside the third (ongoing)": (s3 + 10**6, False),
    }
    for desc, (at, valid) in instants.items():
        assert members.is_agent_key_valid(COURIER_A, AGENT, at) is valid, desc
        # The client's reading of the periods agrees with the contract.
        assert any(p.covers(at) for p in periods) is not valid, desc


# --- verifiers: the node at ingest and verify_bundle ----------------------------------------


class ChainClock:
    """The node's clock on chain time, so event times and suspension times compare."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


class AnyKey:
    """A node's key check that lets every key through: a node that skips the rule."""

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        return True


def courier_on(chain: Chain) -> Courier:
    c = make_courier(chain.w3, lambda _: MemoryStore(), f"suspended-{secrets.token_hex(2)}")
    c.node.clock = ChainClock(chain.w3)
    c.node.create_shipment(PARCEL, {"recipient": "Grete Weber"}, POSTCODE)
    return c


def suspend_node(c: Courier, w3: Web3) -> int:
    next_second(w3)
    result = c.ledger.suspend_courier(c.node.courier_id, sender=c.admin)
    return int(w3.eth.get_block(result.block_number)["timestamp"])


def reinstate_node(c: Courier, w3: Web3) -> int:
    next_second(w3)
    result = c.ledger.reinstate_courier(c.node.courier_id, sender=c.admin)
    return int(w3.eth.get_block(result.block_number)["timestamp"])


@pytest.mark.parametrize("keys", ["on-chain check", "agent-key directory"])
def test_the_node_refuses_events_dated_inside_a_suspension(chain: Chain, keys: str) -> None:
    c = courier_on(chain)
    if keys == "agent-key directory":  # what `serve` uses (no cache here: ttl=0)
        c.node.agent_keys = AgentKeyDirectory(c.ledger, ttl=0, negative_ttl=0)
    suspended_at = suspend_node(c, chain.w3)
    with pytest.raises(AgentKeyNotValidError, match="validity window"):
        c.driver.record(c.node, PARCEL, {"status": "picked_up"}, suspended_at)
    # Backdating below the suspension does not get an event in while it lasts.
    with pytest.raises(AgentKeyNotValidError, match="no longer valid"):
        c.driver.record(c.node, PARCEL, {"status": "picked_up"}, suspended_at - 10)
    assert c.node.store.log_size() == 0

    reinstated_at = reinstate_node(c, chain.w3)
    # An event dated before the suspension (a scanner that was offline) is taken now,
    c.driver.record(c.node, PARCEL, {"status": "picked_up"}, suspended_at - 10)
    # one dated inside it never is,
    with pytest.raises(AgentKeyNotValidError, match="validity window"):
        c.driver.record(c.node, PARCEL, {"status": "departed"}, reinstated_at - 1)
    # and one dated after the reinstatement is.
    c.driver.record(c.node, PARCEL, {"status": "departed"}, reinstated_at)
    assert c.node.store.log_size() == 2


def test_verify_bundle_rejects_an_event_signed_during_a_suspension_and_accepts_earlier_ones(
    chain: Chain,
) -> None:
    c = courier_on(chain)
    before = c.node.clock.now() - 60
    c.driver.record(c.node, PARCEL, {"status": "picked_up"}, before)
    assert c.node.anchor() is not None
    suspended_at = suspend_node(c, chain.w3)
    # A node that skips the key rule records an event dated inside the suspension ...
    c.node.agent_keys = AnyKey()
    c.driver.record(c.node, PARCEL, {"status": "departed"}, suspended_at)
    # ... but cannot anchor it while the suspension lasts.
    with pytest.raises(SuspendedCourierError, match="ParcelLedgerCourierSuspended"):
        c.node.anchor()
    reinstated_at = reinstate_node(c, chain.w3)
    c.node.agent_keys = c.ledger
    c.driver.record(c.node, PARCEL, {"status": "arrived"}, reinstated_at)
    anchored = c.node.anchor()
    assert anchored is not None and anchored.size == 3

    bundle = lookup([c.node], c.ledger, PARCEL, POSTCODE).bundle
    assert bundle is not None
    report = verify_bundle(bundle, c.ledger)
    key_checks = [check for check in report.checks if check.name == "agent-key"]
    assert [check.ok for check in key_checks] == [True, False, True]
    assert key_checks[1].subject.endswith("event #1")
    assert "was not a valid key of this courier then" in key_checks[1].detail
    assert [(f.name, f.subject) for f in report.failures] == [("agent-key", key_checks[1].subject)]


def test_an_event_recorded_before_a_suspension_but_dated_inside_it_does_not_verify(
    chain: Chain,
) -> None:
    """Validity is judged at the event's own time, not when the node took it."""
    c = courier_on(chain)
    now = c.node.clock.now()
    c.driver.record(c.node, PARCEL, {"status": "picked_up"}, now - 60)
    c.driver.record(c.node, PARCEL, {"status": "departed"}, now + 200)  # within the clock skew
    assert c.node.anchor() is not None
    suspended_at = suspend_node(c, chain.w3)
    assert suspended_at <= now + 200
    report = verify_bundle(lookup([c.node], c.ledger, PARCEL, POSTCODE).bundle or {}, c.ledger)
    assert [check.ok for check in report.checks if check.name == "agent-key"] == [True, False]


# --- the consortium monitor -----------------------------------------------------------------


def test_the_monitor_reports_suspensions_and_does_not_call_a_suspended_courier_stalled(
    members: LedgerClient, chain: Chain
) -> None:
    from parcelproof.service.monitor import FindingKind, LedgerReader, MonitorPolicy, analyse

    policy = MonitorPolicy(stall_after=3600, late_after=900, revocation_window=3600)
    # Scan from the ledger's deployment (the `members` fixture sent 5 transactions: deploy,
    # two admissions, two keys), not from genesis: eth-tester's log filter walks every block
    # of the session's chain, which made this test take two minutes.
    reader = LedgerReader(members, from_block=max(0, chain.w3.eth.block_number - 4))
    suspended_at = suspend(members, chain)
    report = analyse(reader.read(), policy, now=suspended_at + 2 * 3600)
    states = {c.courier_id: c.state for c in report.couriers}
    assert states == {COURIER_A: "suspended", COURIER_B: "stalled"}
    notices = [(f.kind, f.courier_id, f.at) for f in report.notices]
    assert notices == [(FindingKind.COURIER_SUSPENDED, COURIER_A, suspended_at)]

    reinstated_at = reinstate(members, chain)
    report = analyse(reader.read(), policy, now=reinstated_at + 600)
    assert {c.courier_id: c.state for c in report.couriers}[COURIER_A] == "ok"
    reinstated = [f for f in report.notices if f.kind is FindingKind.COURIER_REINSTATED]
    assert [(f.courier_id, f.at) for f in reinstated] == [(COURIER_A, reinstated_at)]
    assert reinstated[0].details == {"suspended_at": suspended_at, "reinstated_at": reinstated_at}
    # Once the reinstatement is older than the threshold, a courier that does not anchor stalls.
    late = analyse(reader.read(), policy, now=reinstated_at + 2 * 3600)
    assert {c.courier_id: c.state for c in late.couriers}[COURIER_A] == "stalled"
