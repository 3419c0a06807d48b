"""The Store's batch operations (bulk ingest, lookups) on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from parcelproof.core import merkle
from parcelproof.core.errors import ConflictError, NotFoundError
from parcelproof.service.ports import (
    AnchoredCheckpoint,
    ErasureRecord,
    EventRecord,
    ShipmentErasedError,
    Store,
)
from parcelproof.store.db import make_engine, session_factory, upgrade
from parcelproof.store.memory import MemoryStore
from parcelproof.store.sql import SqlStore
from tests.conftest import SQL_BACKENDS, migrated_engine
from tests.integration.test_sql_store import LOG_A, NOW, ZERO, new_event, new_shipment


@pytest.fixture(params=("memory", *SQL_BACKENDS))
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(session_factory(migrated_engine(request, request.param)), LOG_A)


def _chain(
    shipment_id: str, count: int, start: int = 0, previous: bytes = ZERO
) -> list[EventRecord]:
    events = []
    for seq in range(start, start + count):
        e = new_event(shipment_id, seq, previous)
        events.append(e)
        previous = e.commitment
    return events


def test_append_events_matches_one_by_one_appends(store: Store) -> None:
    """Leaves, indices and every subtree hash equal those of single appends (a MemoryLog),
    across batches that start and end at every kind of size."""
    rng = random.Random(7)
    shipments = [new_shipment() for _ in range(5)]
    for s in shipments:
        store.add_shipment(s)
    tips = {s.shipment_id: (0, ZERO) for s in shipments}
    reference = merkle.MemoryLog()
    total = 0
    for batch in (1, 2, 3, 5, 8, 13, 64, 1, 100, 37):
        items = []
        for _ in range(batch):
            sid = rng.choice(shipments).shipment_id
            seq, prev = tips[sid]
            e = new_event(sid, seq, prev)
            tips[sid] = (seq + 1, e.commitment)
            items.append((e, merkle.leaf_hash(e.commitment)))
        stored = store.append_events(items)
        assert [e.leaf_index for e in stored] == list(range(total, total + batch))
        for _, h in items:
            reference.append_leaf_hash(h)
        total += batch
        assert store.log_size() == total
        assert merkle.tree_root(store.node, total) == reference.root()
    for size in (1, 2, 7, 64, 100, 200, total):
        for i in {0, size // 2, size - 1}:
            assert merkle.inclusion_proof(store.node, i, size) == reference.inclusion_proof(i, size)


def test_append_events_is_all_or_nothing(store: Store) -> None:
    a, b = new_shipment(), new_shipment()
    store.add_shipment(a)
    store.add_shipment(b)
    good = _chain(a.shipment_id, 3)
    out_of_order = new_event(b.shipment_id, 1, ZERO)  # sequence 1 before 0
    with pytest.raises(ConflictError):
        store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in [*good, out_of_order]])
    assert store.log_size() == 0
    assert store.events(a.shipment_id) == []
    assert store.events_by_ids([e.event_id for e in good]) == {}
    # The same batch without the bad event lands whole.
    stored = store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in good])
    assert [e.sequence for e in store.events(a.shipment_id)] == [0, 1, 2]
    assert stored[-1].leaf_index == 2


def test_append_events_refuses_taken_ids_gaps_and_unknown_shipments(store: Store) -> None:
    a = new_shipment()
    store.add_shipment(a)
    first = _chain(a.shipment_id, 2)
    store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in first])
    again = new_event(a.shipment_id, 2, first[-1].commitment)
    taken = EventRecord(**{**again.__dict__, "event_id": first[0].event_id})
    with pytest.raises(ConflictError):
        store.append_events([(taken, merkle.leaf_hash(taken.commitment))])
    twice = _chain(a.shipment_id, 2, start=2, previous=first[-1].commitment)
    twice[1] = EventRecord(**{**twice[1].__dict__, "event_id": twice[0].event_id})
    with pytest.raises(ConflictError):
        store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in twice])
    stale = new_event(a.shipment_id, 1, first[0].commitment)  # sequence 1 is taken
    with pytest.raises(ConflictError):
        store.append_events([(stale, merkle.leaf_hash(stale.commitment))])
    ghost = new_event("shp-unknown", 0, ZERO)
    with pytest.raises(NotFoundError):
        store.append_events([(ghost, merkle.leaf_hash(ghost.commitment))])
    assert store.log_size() == 2
    assert store.append_events([]) == []


def test_append_events_refuses_an_erased_shipment(store: Store) -> None:
    a = new_shipment()
    store.add_shipment(a)
    e = new_event(a.shipment_id, 0, ZERO)
    store.destroy_data_key(
        ErasureRecord(a.shipment_id, NOW, "request", "{}"), event_count=0, last_commitment=ZERO
    )
    with pytest.raises(ShipmentErasedError):
        store.append_events([(e, merkle.leaf_hash(e.commitment))])


def test_batch_reads(store: Store) -> None:
    shipments = [new_shipment() for _ in range(4)]
    for s in shipments:
        store.add_shipment(s)
    chains = {
        s.shipment_id: _chain(s.shipment_id, n)
        for s, n in zip(shipments, (3, 1, 0, 2), strict=True)
    }
    store.append_events(
        [(e, merkle.leaf_hash(e.commitment)) for chain in chains.values() for e in chain]
    )
    refs = [s.ref for s in shipments] + [secrets.token_bytes(32)]
    found = store.shipments_by_refs(refs + refs[:2])
    assert set(found) == {s.ref for s in shipments}
    assert found[shipments[1].ref].shipment_id == shipments[1].shipment_id
    last = store.last_events([s.shipment_id for s in shipments] + ["shp-unknown"])
    assert {sid: e.sequence for sid, e in last.items()} == {
        shipments[0].shipment_id: 2,
        shipments[1].shipment_id: 0,
        shipments[3].shipment_id: 1,
    }
    assert last[shipments[0].shipment_id] == store.last_event(shipments[0].shipment_id)
    ids = [e.event_id for chain in chains.values() for e in chain]
    by_id = store.events_by_ids([*ids, "evt-unknown"])
    assert set(by_id) == set(ids)
    assert all(by_id[i] == store.event_by_id(i) for i in ids)
    assert store.shipments_by_refs([]) == {} and store.events_by_ids([]) == {}


def test_landed_checkpoints_cite_what_a_view_needs(store: Store) -> None:
    a = new_shipment()
    store.add_shipment(a)
    store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in _chain(a.shipment_id, 40)])
    roots = {}
    for size in (4, 10, 17, 25, 33, 40):
        roots[size] = secrets.token_bytes(32)
        store.add_checkpoint(AnchoredCheckpoint(size, roots[size], size, secrets.token_bytes(32)))
    for size in (4, 10, 17):
        store.mark_checkpoint(size, "confirmed", size)
    store.mark_checkpoint(40, "sent")  # broadcast, not landed
    cited = store.landed_checkpoints([2, 3, 12, 30])
    # latest landed (33), latest confirmed (17), firsts: 4 (leaves 2, 3), 17 (12), 33 (30)
    assert [c.size for c in cited] == [4, 17, 33]
    assert all(c.root == roots[c.size] for c in cited)
    assert [c.status for c in cited] == ["confirmed", "confirmed", "anchored"]
    # The chain holds only up to 20 (a reorganisation dropped 25 and 33).
    assert [c.size for c in store.landed_checkpoints([2, 12, 30], at_most=20)] == [4, 17]
    assert store.landed_checkpoints([35]) == store.landed_checkpoints([])  # no first for 35
    assert [c.size for c in store.landed_checkpoints([])] == [17, 33]
    assert store.landed_checkpoints([1], at_most=3) == []


def test_node_reads_use_the_primary_key_on_sqlite(tmp_path: Path) -> None:
    """A row-value IN made SQLite scan the whole log for every proof and every append."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    upgrade(engine)
    store = SqlStore(session_factory(engine), LOG_A)
    a = new_shipment()
    store.add_shipment(a)
    store.append_events([(e, merkle.leaf_hash(e.commitment)) for e in _chain(a.shipment_id, 9)])
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if "log_nodes" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    store.nodes([(0, 3), (1, 0), (2, 1), (3, 0)])
    event.remove(engine, "before_cursor_execute", capture)
    assert statements
    with engine.connect() as c:
        for statement, params in statements:
            rows = c.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            plan = " | ".join(str(r[-1]) for r in rows)
            # Each coordinate is one primary-key lookup, not a walk over the log's nodes.
            assert "(log_id=? AND level=? AND index=?)" in plan, plan
            assert "USING INDEX sqlite_autoindex_log_nodes_1 (log_id=?)" not in plan, plan
    engine.dispose()
