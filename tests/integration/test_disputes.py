"""Disputes on the real stores (SQLite, PostgreSQL) and a real chain: opened by a customer with
their parcel's capability or by a courier principal, recorded on the ledger as the documented
hashes, assigned, commented and resolved with the outcome hash on chain; wrong-state steps are
refused, notes and summaries are sealed, and every step is in the audit log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import rfc8785
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, MetaData, select
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.core.errors import ConflictError, FormatError, LedgerConflictError, NotFoundError
from parcelproof.service.audit import AuditAction, AuditLog
from parcelproof.service.disputes import (
    CUSTOMER_ACTOR,
    DisputeDesk,
    DisputeRecord,
    outcome_hash,
)
from parcelproof.service.ports import Store
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import session_factory
from parcelproof.store.disputes_sql import SqlDisputeStore
from tests.conftest import Courier, make_courier

PARCEL, POSTCODE = "PP314159265NL", "1012 AB"
DETAILS = {"recipient": "Maartje van Dijk", "phone": "+31 6 12 34 56 78"}
NOTE = "The box arrived crushed; neighbour Jansen at no. 12 signed for it."
SUMMARY = "Photo evidence shows damage at the depot scan; refund agreed with Mrs van Dijk."
OPERATOR = "staff:operator-1"
RESOLVER = "staff:resolver-1"


@dataclass
class Desk:
    courier: Courier
    desk: DisputeDesk
    audit: AuditLog
    engine: Engine
    resolver: LocalAccount
    access_token: str

    @property
    def log_id(self) -> bytes:
        return self.courier.node.courier_id


@pytest.fixture
def d(chain: Web3, sql_engine: Engine, sql_stores: Callable[[bytes], Store]) -> Desk:
    c = make_courier(chain, sql_stores, "disputes")
    (resolver,) = devnet.funded_accounts(chain, 1)
    c.ledger.grant_resolver(resolver.address, sender=c.admin)
    sessions = session_factory(sql_engine)
    audit = AuditLog(SqlAuditStore(sessions, c.node.courier_id))
    new = c.node.create_shipment(PARCEL, DETAILS, POSTCODE)
    c.driver.record(c.node, PARCEL, {"status": "picked_up", "place": "Amsterdam"}, c.now - 120)
    c.driver.record(c.node, PARCEL, {"status": "departed", "place": "Utrecht"}, c.now - 60)
    c.node.anchor()
    d = DisputeDesk(
        c.node,
        c.ledger,
        SqlDisputeStore(sessions, c.node.courier_id),
        resolver=resolver,
        audit=audit,
    )
    return Desk(c, d, audit, sql_engine, resolver, new.access_token)


def _jcs_sha256(document: Any) -> bytes:
    return hashlib.sha256(rfc8785.dumps(document)).digest()


def _open(d: Desk, note: str | None = NOTE) -> DisputeRecord:
    return d.desk.open_as_customer(PARCEL, POSTCODE, None, [(d.log_id, 1)], "damaged", note)


def _actions(d: Desk) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.actor, e.action, e.detail) for e in d.audit.store.entries()]


def test_a_customer_opens_a_dispute_recorded_on_chain_as_the_documented_hashes(d: Desk) -> None:
    record = _open(d)
    on_chain = d.courier.ledger.dispute(record.dispute_id)
    assert on_chain.courier_id == d.log_id
    assert on_chain.opened_by == d.courier.account.address  # the courier's anchoring account
    assert not on_chain.resolved
    # subjectHash = SHA-256(JCS(claim)); the claim names the disputed events by commitment.
    events = d.courier.node.store.events(record.shipment_id)
    claim = {
        "disputeId": "0x" + record.dispute_id.hex(),
        "courierId": "0x" + d.log_id.hex(),
        "events": [
            {"logId": "0x" + d.log_id.hex(), "sequence": 1, "commitment": "0x" + e.commitment.hex()}
            for e in events
            if e.sequence == 1
        ],
        "reason": "damaged",
        "noteHash": "0x" + hashlib.sha256(NOTE.encode()).hexdigest(),
        "salt": "0x" + record.claim_salt.hex(),
    }
    assert record.claim() == claim
    assert on_chain.subject_hash == _jcs_sha256(claim) == record.subject_hash
    # evidenceHash = SHA-256(JCS(evidence at opening)), the full-disclosure bundle.
    view = d.desk.read(RESOLVER, record.dispute_id)
    assert on_chain.evidence_hash == _jcs_sha256(view.evidence) == record.evidence_hash
    assert view.evidence["bundle"] is not None
    assert any(t["fields"].get("place") == "Utrecht" for t in view.evidence["timeline"])
    assert view.current.report is not None and view.current.report.ok
    assert [text for _, text in view.notes] == [NOTE]
    assert record.state == "open" and record.opened_by == CUSTOMER_ACTOR
    assert (record.open_block, record.open_tx_hash) != (0, b"")


def test_an_access_token_opens_a_dispute_too(d: Desk) -> None:
    record = d.desk.open_as_customer(
        PARCEL, None, d.access_token, [(d.log_id, 0), (d.log_id, 1)], "late", None
    )
    assert [e.sequence for e in record.events] == [0, 1]
    assert record.note_hash is None and record.claim()["noteHash"] is None


def test_a_wrong_factor_or_tracking_number_opens_nothing(d: Desk) -> None:
    with pytest.raises(NotFoundError) as wrong_factor:
        d.desk.open_as_customer(PARCEL, "9999 ZZ", None, [(d.log_id, 0)], "late", None)
    with pytest.raises(NotFoundError) as wrong_number:
        d.desk.open_as_customer("PP000000000NL", POSTCODE, None, [(d.log_id, 0)], "late", None)
    assert str(wrong_factor.value) == str(wrong_number.value)
    assert d.desk.newest() == []
    assert _actions(d) == []


def test_an_operator_opens_a_dispute_with_the_tracking_number_only(d: Desk) -> None:
    record = d.desk.open_as_courier(OPERATOR, PARCEL, [(d.log_id, 0)], "not-delivered", None)
    assert record.opened_by == OPERATOR
    assert d.courier.ledger.dispute(record.dispute_id).subject_hash == record.subject_hash
    (entry,) = _actions(d)
    assert entry[:2] == (OPERATOR, AuditAction.DISPUTE_OPEN)
    assert entry[2]["dispute_id"] == "0x" + record.dispute_id.hex()


def test_events_that_are_not_the_parcels_and_unknown_reasons_are_refused(d: Desk) -> None:
    with pytest.raises(FormatError, match="is not an event of this parcel"):
        d.desk.open_as_courier(OPERATOR, PARCEL, [(d.log_id, 7)], "late", None)
    with pytest.raises(FormatError, match="is not an event of this parcel"):
        d.desk.open_as_courier(OPERATOR, PARCEL, [(bytes(32), 0)], "late", None)
    with pytest.raises(FormatError, match="unknown reason"):
        d.desk.open_as_courier(OPERATOR, PARCEL, [(d.log_id, 0)], "bored", None)
    assert d.desk.newest() == []


def test_assign_comment_resolve_puts_the_documented_outcome_hash_on_chain(d: Desk) -> None:
    record = _open(d)
    assigned = d.desk.assign(RESOLVER, record.dispute_id, "resolver-1")
    assert (assigned.state, assigned.assignee) == ("assigned", "resolver-1")
    d.desk.comment(RESOLVER, record.dispute_id, "Called Mrs van Dijk on +31 6 12 34 56 78.")
    resolved = d.desk.resolve(RESOLVER, record.dispute_id, "upheld", SUMMARY)
    expected = _jcs_sha256(
        {
            "disputeId": "0x" + record.dispute_id.hex(),
            "outcome": "upheld",
            "summaryHash": "0x" + hashlib.sha256(SUMMARY.encode()).hexdigest(),
        }
    )
    assert outcome_hash(record.dispute_id, "upheld", SUMMARY) == expected
    on_chain = d.courier.ledger.dispute(record.dispute_id)
    assert on_chain.outcome_hash == expected == resolved.outcome_hash
    assert on_chain.resolved_by == d.resolver.address
    assert resolved.state == "resolved" and resolved.outcome == "upheld"
    assert resolved.resolved_by == RESOLVER and resolved.resolve_block is not None
    view = d.desk.read(RESOLVER, record.dispute_id)
    assert view.summary == SUMMARY
    assert [n.kind for n, _ in view.notes] == ["claim", "comment"]
    actions = [(actor, action) for actor, action, _ in _actions(d)]
    assert actions == [
        (CUSTOMER_ACTOR, "dispute.open"),
        (RESOLVER, "dispute.assign"),
        (RESOLVER, "dispute.comment"),
        (RESOLVER, "dispute.resolve"),
        (RESOLVER, "evidence.read"),
    ]
    assert _actions(d)[3][2]["outcome_hash"] == "0x" + expected.hex()


def test_steps_in_the_wrong_state_are_refused(d: Desk) -> None:
    record = _open(d)
    with pytest.raises(ConflictError, match="only once assigned"):
        d.desk.resolve(RESOLVER, record.dispute_id, "rejected", SUMMARY)
    d.desk.assign(RESOLVER, record.dispute_id, "resolver-1")
    d.desk.resolve(RESOLVER, record.dispute_id, "rejected", SUMMARY)
    with pytest.raises(ConflictError, match="already resolved"):
        d.desk.resolve(RESOLVER, record.dispute_id, "upheld", SUMMARY)
    with pytest.raises(ConflictError, match="already resolved"):
        d.desk.comment(RESOLVER, record.dispute_id, "too late")
    with pytest.raises(ConflictError, match="already resolved"):
        d.desk.assign(RESOLVER, record.dispute_id, "resolver-2")
    with pytest.raises(NotFoundError, match="no dispute"):
        d.desk.assign(RESOLVER, bytes(32), "resolver-1")
    on_chain = d.courier.ledger.dispute(record.dispute_id)
    assert on_chain.outcome_hash == outcome_hash(record.dispute_id, "rejected", SUMMARY)
    assert [a for _, a, _ in _actions(d)].count("dispute.resolve") == 1


def test_without_a_resolver_account_resolve_is_refused_and_nothing_changes(d: Desk) -> None:
    record = _open(d)
    desk = replace(d.desk, resolver=None)
    desk.assign(RESOLVER, record.dispute_id, "resolver-1")
    with pytest.raises(ConflictError, match="PARCELPROOF_RESOLVER_KEY"):
        desk.resolve(RESOLVER, record.dispute_id, "settled", SUMMARY)
    assert desk.get(record.dispute_id).state == "assigned"
    assert not d.courier.ledger.dispute(record.dispute_id).resolved


def _raw(engine: Engine) -> bytes:
    """Every value of every dispute row, read with plain SQL (no store code involved)."""
    metadata = MetaData()
    metadata.reflect(engine, only=["disputes", "dispute_notes"])
    out = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    out.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\x00".join(out)


def test_notes_summaries_and_the_tracking_number_are_sealed(d: Desk) -> None:
    record = _open(d)
    d.desk.assign(RESOLVER, record.dispute_id, "resolver-1")
    d.desk.comment(RESOLVER, record.dispute_id, "Called Mrs van Dijk on +31 6 12 34 56 78.")
    d.desk.resolve(RESOLVER, record.dispute_id, "settled", SUMMARY)
    raw = _raw(d.engine)
    assert record.dispute_id in raw  # the scan sees the rows
    for secret in (NOTE, SUMMARY, PARCEL, POSTCODE, "van Dijk", "Jansen", "+31 6", "Utrecht"):
        assert secret.encode() not in raw, secret
    entries = json.dumps([e.detail for e in d.audit.store.entries()])
    assert PARCEL not in entries and "van Dijk" not in entries


def test_a_dispute_opened_twice_with_the_same_id_is_refused_on_chain(d: Desk) -> None:
    fixed = replace(d.desk, rng=lambda n: b"\x11" * n)
    fixed.open_as_courier(OPERATOR, PARCEL, [(d.log_id, 0)], "other", None)
    with pytest.raises(LedgerConflictError, match="ParcelLedgerDisputeExists"):
        fixed.open_as_courier(OPERATOR, PARCEL, [(d.log_id, 0)], "other", None)
    assert len(d.desk.newest()) == 1
