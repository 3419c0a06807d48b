"""A courier node on the real ParcelLedger (eth-tester, anvil) and databases: ingest rules."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from web3 import Web3

from parcelproof.core.errors import (
    AgentKeyNotValidError,
    ConflictError,
    FormatError,
    NotFoundError,
    SignatureError,
    TransitionError,
)
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import lookup
from parcelproof.service.ports import Store
from tests.conftest import Courier, make_courier

PARCEL, POSTCODE = "PP777888999DE", "10115"
DAY = 86400


@pytest.fixture
def setup(chain: Web3, sql_stores: Callable[[bytes], Store]) -> Courier:
    """A courier node on a real chain and a real database (SQLite, PostgreSQL)."""
    c = make_courier(chain, sql_stores)
    c.node.create_shipment(PARCEL, {"recipient": "Grete Weber"}, POSTCODE)
    return c


def test_ingest_anchor_lookup_verify(setup: Courier) -> None:
    s = setup
    s.driver.record(s.node, PARCEL, {"status": "picked_up", "place": "Berlin"}, s.now - 300)
    first = s.node.anchor()
    assert first is not None and first.size == 1
    s.driver.record(s.node, PARCEL, {"status": "departed", "place": "Berlin hub"}, s.now - 200)
    second = s.node.anchor()
    assert second is not None and second.size == 2
    assert s.node.anchor() is None  # nothing new: no transaction
    latest = s.ledger.latest_checkpoint(s.node.courier_id)
    assert latest is not None and (latest.size, latest.root) == (2, second.root)
    result = lookup([s.node], s.ledger, PARCEL, POSTCODE)
    assert result.report is not None and result.report.ok, result.report.failures
    assert [t.fields["status"] for t in result.timeline] == ["picked_up", "departed"]


def test_key_of_another_courier_is_refused(setup: Courier) -> None:
    stranger = Agent(secrets.token_bytes(32))
    with pytest.raises(AgentKeyNotValidError, match="not registered to this courier"):
        stranger.record(setup.node, PARCEL, {"status": "picked_up"}, setup.now - 10)
    assert setup.node.store.log_size() == 0


def test_key_before_its_window_is_refused(setup: Courier) -> None:
    with pytest.raises(AgentKeyNotValidError, match="validity window"):
        setup.driver.record(setup.node, PARCEL, {"status": "picked_up"}, setup.now - 2 * DAY)


def test_revoked_key_is_refused_after_revocation(setup: Courier) -> None:
    s = setup
    s.driver.record(s.node, PARCEL, {"status": "picked_up"}, s.now - 100)
    s.ledger.revoke_agent_key(s.driver.address, sender=s.account)
    revoked_at = s.ledger.agent_key(s.driver.address).revoked_at
    with pytest.raises(AgentKeyNotValidError):
        s.driver.record(s.node, PARCEL, {"status": "departed"}, max(revoked_at, s.now) + 1)
    assert s.node.store.log_size() == 1


def test_signature_over_other_content_is_refused(setup: Courier) -> None:
    s = setup
    ctx = s.node.event_context(PARCEL)
    openings, signature = s.driver.sign(ctx, {"status": "picked_up"}, s.now - 10)
    tampered = [o if o.name != "time" else type(o)("time", s.now - 11, o.salt) for o in openings]
    with pytest.raises(FormatError, match="committed time differs"):
        s.node.record_event(
            PARCEL, tampered, event_time=s.now - 10, agent=s.driver.address, signature=signature
        )
    with pytest.raises(SignatureError):
        s.node.record_event(
            PARCEL, tampered, event_time=s.now - 11, agent=s.driver.address, signature=signature
        )


def test_illegal_transition_says_why(setup: Courier) -> None:
    with pytest.raises(TransitionError, match="delivered may not follow nothing"):
        setup.driver.record(setup.node, PARCEL, {"status": "delivered"}, setup.now - 10)


def test_event_in_the_future_or_out_of_order_is_refused(setup: Courier) -> None:
    s = setup
    with pytest.raises(FormatError, match="future"):
        s.driver.record(s.node, PARCEL, {"status": "picked_up"}, s.now + 3600)
    s.driver.record(s.node, PARCEL, {"status": "picked_up"}, s.now - 100)
    with pytest.raises(FormatError, match="precedes"):
        s.driver.record(s.node, PARCEL, {"status": "departed"}, s.now - 200)


def test_unknown_shipment_and_duplicate_shipment(setup: Courier) -> None:
    with pytest.raises(NotFoundError):
        setup.driver.record(setup.node, "PP000DE", {"status": "picked_up"}, setup.now)
    with pytest.raises(ConflictError, match="already exists"):
        setup.node.create_shipment(PARCEL, {}, POSTCODE)
    with pytest.raises(FormatError):
        setup.node.create_shipment("  --  ", {}, POSTCODE)


def test_wrong_postcode_and_unknown_number_look_the_same(setup: Courier) -> None:
    with pytest.raises(NotFoundError) as wrong_factor:
        lookup([setup.node], setup.ledger, PARCEL, "99999")
    with pytest.raises(NotFoundError) as wrong_number:
        lookup([setup.node], setup.ledger, "PP123DE", POSTCODE)
    assert str(wrong_factor.value) == str(wrong_number.value)
