"""Bulk ingest (CourierNode.record_events): the same rules as single events, batched storage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from parcelproof.core.commitment import event_commitment
from parcelproof.core.errors import (
    ConflictError,
    DatabaseUnavailableError,
    Error,
    FormatError,
    NotFoundError,
    SignatureError,
)
from parcelproof.service.agent import Agent
from parcelproof.service.node import CourierNode, EventContext, EventSubmission, Recorded
from tests.unit.conftest import NOW, World

STEPS = ["picked_up", "departed", "arrived", "out_for_delivery"]


def _signed_chain(
    node: CourierNode, agent: Agent, parcel: str, statuses: list[str], start: int = NOW - 100
) -> list[EventSubmission]:
    """Events an agent signs ahead of upload, each chained to the one before."""
    ctx = node.event_context(parcel)
    out = []
    for i, status in enumerate(statuses):
        openings, signature = agent.sign(ctx, {"status": status}, start + i)
        out.append(
            EventSubmission(parcel, openings, start + i, agent.address, signature, f"{parcel}-{i}")
        )
        commitment = event_commitment(
            ctx.log_id, ctx.shipment, ctx.sequence, ctx.previous, [o.digest() for o in openings]
        )
        ctx = EventContext(ctx.domain, ctx.log_id, ctx.shipment, ctx.sequence + 1, commitment)
    return out


def _interleave(*chains: list[EventSubmission]) -> list[EventSubmission]:
    out: list[EventSubmission] = []
    for i in range(max(len(c) for c in chains)):
        out += [c[i] for c in chains if i < len(c)]
    return out


def test_a_batch_records_every_event_in_order(world: World) -> None:
    for p in ("PB1", "PB2", "PB3"):
        world.a.create_shipment(p, {}, "1000")
    chains = [_signed_chain(world.a, world.driver_a, p, STEPS) for p in ("PB1", "PB2", "PB3")]
    outcomes = world.a.record_events(_interleave(*chains))
    assert all(isinstance(o, Recorded) and not o.replayed for o in outcomes)
    records = [o.record for o in outcomes if isinstance(o, Recorded)]
    assert [r.leaf_index for r in records] == list(range(12))
    assert world.a.store.log_size() == 12
    assert [e.sequence for e in world.a.store.events(records[0].shipment_id)] == [0, 1, 2, 3]
    # The batch path and the single path store the same thing: the next event is accepted.
    world.driver_a.record(world.a, "PB1", {"status": "delivered"}, NOW)


def test_each_event_gets_its_own_outcome(world: World) -> None:
    world.a.create_shipment("PB1", {}, "1000")
    chain = _signed_chain(world.a, world.driver_a, "PB1", STEPS)
    forged = replace(chain[2], signature=chain[1].signature, event_id="forged")
    unknown = replace(chain[0], tracking_number="PB-NOT-HERE", event_id="unknown")
    outcomes = world.a.record_events([chain[0], chain[1], forged, unknown, chain[2], chain[3]])
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Recorded", "Recorded", "SignatureError", "NotFoundError"] + ["Recorded"] * 2
    assert isinstance(outcomes[2], SignatureError) and isinstance(outcomes[3], NotFoundError)
    assert world.a.store.log_size() == 4


def test_an_illegal_transition_in_a_batch_sees_the_events_before_it(world: World) -> None:
    world.a.create_shipment("PB1", {}, "1000")
    chain = _signed_chain(world.a, world.driver_a, "PB1", ["picked_up", "picked_up"])
    outcomes = world.a.record_events(chain)
    assert isinstance(outcomes[0], Recorded)
    assert isinstance(outcomes[1], Error)  # picked_up may not follow picked_up (or the chain)


def test_replays_are_acknowledged_and_reused_ids_refused(world: World) -> None:
    world.a.create_shipment("PB1", {}, "1000")
    chain = _signed_chain(world.a, world.driver_a, "PB1", STEPS)
    first = world.a.record_events(chain[:2])
    # A client that did not hear the answer sends the batch again, and more.
    again = world.a.record_events(chain)
    assert [o.replayed for o in again if isinstance(o, Recorded)] == [True, True, False, False]
    assert [o.record for o in again[:2] if isinstance(o, Recorded)] == [
        o.record for o in first if isinstance(o, Recorded)
    ]
    # The same id twice in one batch: the second is a replay of the first.
    world.a.create_shipment("PB2", {}, "1000")
    twice = _signed_chain(world.a, world.driver_a, "PB2", ["picked_up"])
    outcomes = world.a.record_events([twice[0], twice[0]])
    assert [isinstance(o, Recorded) and o.replayed for o in outcomes] == [False, True]
    assert outcomes[0].record == outcomes[1].record  # type: ignore[union-attr]
    # An id reused for another event is refused, in the batch and against the store.
    other = _signed_chain(world.a, world.driver_a, "PB2", ["departed"], start=NOW - 5)[0]
    clash = world.a.record_events([replace(other, event_id=chain[0].event_id)])
    assert isinstance(clash[0], ConflictError)
    assert world.a.store.log_size() == 5


def test_bad_fields_are_refused_like_single_events(world: World) -> None:
    world.a.create_shipment("PB1", {}, "1000")
    ok = _signed_chain(world.a, world.driver_a, "PB1", ["picked_up"])[0]
    future = replace(ok, event_time=NOW + 3600, event_id="future")
    outcomes = world.a.record_events([future])
    assert isinstance(outcomes[0], FormatError)
    assert world.a.store.log_size() == 0


def test_a_concurrent_writer_makes_the_batch_go_one_by_one(world: World) -> None:
    """Another request appended to the same shipment between the batch's reads and its
    write: the batch falls back to single appends, which refuse the now-stale events
    instead of storing a forked chain."""
    world.a.create_shipment("PB1", {}, "1000")
    world.a.create_shipment("PB2", {}, "1000")
    stale = _signed_chain(world.a, world.driver_a, "PB1", ["picked_up"])[0]
    fresh = _signed_chain(world.a, world.driver_a, "PB2", ["picked_up"])[0]
    store = world.a.store
    real_append = store.append_events

    def racing(items):  # type: ignore[no-untyped-def]
        world.driver_a.record(world.a, "PB1", {"status": "picked_up"}, NOW - 200)
        return real_append(items)

    store.append_events = racing  # type: ignore[method-assign]
    outcomes = world.a.record_events([stale, fresh])
    assert isinstance(outcomes[0], Error) and isinstance(outcomes[1], Recorded)
    assert store.log_size() == 2


def test_a_database_failure_stores_nothing_and_fails_the_request(world: World) -> None:
    world.a.create_shipment("PB1", {}, "1000")
    chain = _signed_chain(world.a, world.driver_a, "PB1", STEPS)
    store = world.a.store

    def down(items):  # type: ignore[no-untyped-def]
        raise DatabaseUnavailableError("the database is not answering")

    store.append_events = down  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailableError):
        world.a.record_events(chain)
    assert store.log_size() == 0
