"""anchorAuditHead / latestAuditHead: each courier's audit-log head, on eth-tester and anvil."""

from __future__ import annotations

import hashlib

import pytest
from eth_utils.crypto import keccak

from parcelproof.chain.ledger import LedgerClient, TxResult
from parcelproof.core.errors import (
    FormatError,
    InactiveCourierError,
    NonGrowingAuditHeadError,
    UnauthorizedError,
    UnknownCourierError,
)

from .conftest import COURIER_A, COURIER_B, Chain, ident


def head(label: str) -> bytes:
    return hashlib.sha256(f"audit head {label}".encode()).digest()


def block_time(chain: Chain, result: TxResult) -> int:
    return int(chain.w3.eth.get_block(result.block_number)["timestamp"])


@pytest.fixture
def members(ledger: LedgerClient, chain: Chain) -> LedgerClient:
    ledger.admit_courier(COURIER_A, chain.courier_a.address, sender=chain.admin)
    ledger.admit_courier(COURIER_B, chain.courier_b.address, sender=chain.admin)
    return ledger


def test_anchoring_stores_the_latest_head_and_emits_its_event(
    members: LedgerClient, chain: Chain
) -> None:
    assert members.latest_audit_head(COURIER_A) is None

    tx = members.anchor_audit_head_tx(5, head("5"), sender=chain.courier_a)
    [event] = tx.events
    assert event.name == "AuditHeadAnchored"
    assert event.args == {"courierId": COURIER_A, "size": 5, "head": head("5")}
    latest = members.latest_audit_head(COURIER_A)
    assert latest is not None
    assert (latest.size, latest.head, latest.anchored_at) == (5, head("5"), block_time(chain, tx))

    later = members.anchor_audit_head(12, head("12"), sender=chain.courier_a)
    assert (later.courier_id, later.size, later.head) == (COURIER_A, 12, head("12"))
    assert later.block_number is not None and later.tx_hash is not None
    latest = members.latest_audit_head(COURIER_A)
    assert latest is not None and (latest.size, latest.head) == (12, head("12"))
    assert latest.anchored_at == later.anchored_at


def test_the_event_topic_is_the_documented_signature(members: LedgerClient, chain: Chain) -> None:
    tx = members.anchor_audit_head(1, head("1"), sender=chain.courier_a)
    assert tx.tx_hash is not None
    receipt = chain.w3.eth.get_transaction_receipt(tx.tx_hash)  # type: ignore[arg-type]
    [log] = receipt["logs"]
    assert bytes(log["topics"][0]) == keccak(text="AuditHeadAnchored(bytes32,uint64,bytes32)")
    assert bytes(log["topics"][1]) == COURIER_A  # courierId is indexed


def test_history_comes_from_the_event_logs_per_courier(members: LedgerClient, chain: Chain) -> None:
    members.anchor_audit_head(2, head("a2"), sender=chain.courier_a)
    members.anchor_audit_head(3, head("b3"), sender=chain.courier_b)
    members.anchor_audit_head(7, head("a7"), sender=chain.courier_a)

    history = members.audit_heads(COURIER_A)
    assert [(h.size, h.head) for h in history] == [(2, head("a2")), (7, head("a7"))]
    assert all(h.block_number is not None and h.anchored_at for h in history)
    assert history[0].block_number < history[1].block_number  # type: ignore[operator]
    assert [(h.size, h.head) for h in members.audit_heads(COURIER_B)] == [(3, head("b3"))]
    latest_b = members.latest_audit_head(COURIER_B)
    assert latest_b is not None and latest_b.size == 3  # couriers do not share a head


def test_size_must_strictly_grow(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(NonGrowingAuditHeadError, match="ParcelLedgerAuditSizeNotIncreasing") as e:
        members.anchor_audit_head(0, head("0"), sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, 0, 0)
    members.anchor_audit_head(4, head("4"), sender=chain.courier_a)
    with pytest.raises(NonGrowingAuditHeadError, match="ParcelLedgerAuditSizeNotIncreasing") as e:
        members.anchor_audit_head(4, head("4 again"), sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, 4, 4)
    with pytest.raises(NonGrowingAuditHeadError, match="ParcelLedgerAuditSizeNotIncreasing") as e:
        members.anchor_audit_head(3, head("3"), sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, 4, 3)
    latest = members.latest_audit_head(COURIER_A)
    assert latest is not None and (latest.size, latest.head) == (4, head("4"))


def test_only_an_active_couriers_account_may_anchor(members: LedgerClient, chain: Chain) -> None:
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount") as e:
        members.anchor_audit_head(1, head("x"), sender=chain.outsider)
    assert e.value.args_ == (chain.outsider.address,)
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount"):
        members.anchor_audit_head(1, head("x"), sender=chain.admin)  # admin is no courier


def test_a_removed_courier_can_no_longer_anchor_but_its_head_stays_readable(
    members: LedgerClient, chain: Chain
) -> None:
    members.anchor_audit_head(3, head("3"), sender=chain.courier_a)
    removed = members.remove_courier(COURIER_A, sender=chain.admin)
    removed_at = block_time(chain, removed)
    with pytest.raises(InactiveCourierError, match="ParcelLedgerInactiveCourier") as e:
        members.anchor_audit_head(4, head("4"), sender=chain.courier_a)
    assert e.value.args_ == (COURIER_A, removed_at)
    latest = members.latest_audit_head(COURIER_A)
    assert latest is not None and (latest.size, latest.head) == (3, head("3"))


def test_a_rotated_away_account_can_no_longer_anchor(members: LedgerClient, chain: Chain) -> None:
    members.set_courier_account(COURIER_A, chain.spare.address, sender=chain.admin)
    with pytest.raises(UnauthorizedError, match="ParcelLedgerUnauthorizedAccount"):
        members.anchor_audit_head(1, head("1"), sender=chain.courier_a)
    anchored = members.anchor_audit_head(1, head("1"), sender=chain.spare)
    assert anchored.courier_id == COURIER_A


def test_reading_an_unknown_courier_reverts(members: LedgerClient) -> None:
    with pytest.raises(UnknownCourierError, match="ParcelLedgerUnknownCourier"):
        members.latest_audit_head(ident("nobody"))
    assert members.audit_heads(ident("nobody")) == []


def test_the_client_refuses_malformed_heads_before_sending(
    members: LedgerClient, chain: Chain
) -> None:
    with pytest.raises(FormatError, match="zero hash"):
        members.anchor_audit_head(1, bytes(32), sender=chain.courier_a)
    with pytest.raises(FormatError, match="32 bytes"):
        members.anchor_audit_head(1, b"short", sender=chain.courier_a)
    with pytest.raises(FormatError, match="unsigned 64-bit"):
        members.anchor_audit_head(2**64, head("big"), sender=chain.courier_a)
    assert members.latest_audit_head(COURIER_A) is None
