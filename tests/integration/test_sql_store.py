"""SqlStore on SQLite and PostgreSQL: the Store contract shared with MemoryStore, and beyond."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, select, text, update

from parcelproof.core import envelope, merkle
from parcelproof.core.commitment import event_commitment, open_fields, shipment_ref
from parcelproof.core.errors import (
    ConflictError,
    FormatError,
    IndexOutOfRangeError,
    NotFoundError,
    TruncationError,
)
from parcelproof.service.ports import AnchoredCheckpoint, EventRecord, ShipmentRecord, Store
from parcelproof.store.db import (
    StoreError,
    make_engine,
    migration_config,
    session_factory,
    upgrade,
)
from parcelproof.store.memory import MemoryStore
from parcelproof.store.models import Base, ShipmentRow
from parcelproof.store.sql import ApiClientRecord, CheckpointRecord, SqlStore, _event_row
from tests.conftest import SQL_BACKENDS, migrated_engine

LOG_A = hashlib.sha256(b"courier A").digest()
LOG_B = hashlib.sha256(b"courier B").digest()
ZERO = bytes(32)
AGENT = "0x" + "ab" * 20
NOW = 1_750_000_000


class FixedClock:
    def __init__(self, now: int = NOW) -> None:
        self.t = now

    def now(self) -> int:
        return self.t


@dataclass
class Backend:
    name: str
    store: Store
    engine: Engine | None

    def sql(self, log_id: bytes = LOG_A, clock: FixedClock | None = None) -> SqlStore:
        assert self.engine is not None
        return SqlStore(session_factory(self.engine), log_id, clock=clock)


@pytest.fixture(params=("memory", *SQL_BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every Store implementation, fresh and empty."""
    if request.param == "memory":
        return Backend("memory", MemoryStore(), None)
    engine = migrated_engine(request, request.param)
    return Backend(request.param, SqlStore(session_factory(engine), LOG_A), engine)


@pytest.fixture(params=SQL_BACKENDS)
def sql(request: pytest.FixtureRequest) -> Backend:
    """The SQL stores only (features MemoryStore does not have)."""
    engine = migrated_engine(request, request.param)
    return Backend(request.param, SqlStore(session_factory(engine), LOG_A), engine)


# --- record builders ----------------------------------------------------------------------------


def new_shipment(ref: bytes | None = None) -> ShipmentRecord:
    return ShipmentRecord(
        shipment_id=f"shp-{secrets.token_hex(8)}",
        ref=ref if ref is not None else secrets.token_bytes(32),
        wrapped_key=envelope.WrappedKey("k1", secrets.token_bytes(envelope.WRAPPED_KEY_SIZE)),
        sealed_details=secrets.token_bytes(60),
        sealed_factor=secrets.token_bytes(34),
        created_at=NOW,
    )


def new_event(shipment_id: str, sequence: int, previous: bytes) -> EventRecord:
    return EventRecord(
        event_id=f"evt-{secrets.token_hex(8)}",
        shipment_id=shipment_id,
        sequence=sequence,
        previous=previous,
        commitment=secrets.token_bytes(32),
        leaf_index=-1,
        event_time=NOW + sequence,
        agent=AGENT,
        signature=secrets.token_bytes(65),
        sealed_openings=secrets.token_bytes(80),
        recorded_at=NOW + sequence,
        request_digest=secrets.token_bytes(32),
    )


def append_next(store: Store, shipment_id: str) -> EventRecord:
    """Append the next event of a shipment, as the node does: read the chain, then append."""
    events = store.events(shipment_id)
    record = new_event(shipment_id, len(events), events[-1].commitment if events else ZERO)
    return store.append_event(record, merkle.leaf_hash(record.commitment))


# --- the Store contract (memory, sqlite, postgresql) --------------------------------------------


def test_append_assigns_leaf_indices_in_order(backend: Backend) -> None:
    store = backend.store
    a, b = new_shipment(), new_shipment()
    store.add_shipment(a)
    store.add_shipment(b)
    assert store.log_size() == 0
    stored = [append_next(store, s.shipment_id) for s in (a, b, a, a, b)]
    assert [e.leaf_index for e in stored] == [0, 1, 2, 3, 4]
    assert store.log_size() == 5
    assert store.events(a.shipment_id) == [stored[0], stored[2], stored[3]]
    assert [e.sequence for e in store.events(b.shipment_id)] == [0, 1]
    assert store.events(b.shipment_id)[1].previous == stored[1].commitment
    assert store.event_by_id(stored[3].event_id) == stored[3]
    assert store.event_by_id("evt-unknown") is None
    assert store.events("shp-unknown") == []
    for e in stored:
        assert store.node(0, e.leaf_index) == merkle.leaf_hash(e.commitment)


def test_leaf_index_on_input_is_ignored(backend: Backend) -> None:
    s = new_shipment()
    backend.store.add_shipment(s)
    record = replace(new_event(s.shipment_id, 0, ZERO), leaf_index=41)
    assert backend.store.append_event(record, merkle.leaf_hash(record.commitment)).leaf_index == 0


def test_shipment_roundtrip(backend: Backend) -> None:
    s = new_shipment()
    backend.store.add_shipment(s)
    assert backend.store.shipment_by_ref(s.ref) == s
    assert backend.store.shipment_by_ref(secrets.token_bytes(32)) is None


def test_duplicate_tracking_number_conflicts(backend: Backend) -> None:
    s = new_shipment()
    backend.store.add_shipment(s)
    with pytest.raises(ConflictError, match="tracking number already exists"):
        backend.store.add_shipment(new_shipment(ref=s.ref))
    assert backend.store.shipment_by_ref(s.ref) == s


@pytest.mark.parametrize(
    ("desc", "sequence", "previous"),
    [
        ("replayed sequence", 0, "zero"),
        ("skipped sequence", 2, "last"),
        ("right sequence, stale previous", 1, "zero"),
        ("right sequence, forged previous", 1, "random"),
    ],
)
def test_out_of_chain_append_conflicts(
    backend: Backend, desc: str, sequence: int, previous: str
) -> None:
    store = backend.store
    s = new_shipment()
    store.add_shipment(s)
    first = append_next(store, s.shipment_id)
    prev = {"zero": ZERO, "last": first.commitment, "random": secrets.token_bytes(32)}[previous]
    record = new_event(s.shipment_id, sequence, prev)
    with pytest.raises(ConflictError, match=f"sequence {sequence} of this shipment"):
        store.append_event(record, merkle.leaf_hash(record.commitment))
    # Nothing of the refused append remains; the next good one takes the next leaf.
    assert store.log_size() == 1
    assert store.event_by_id(record.event_id) is None
    with pytest.raises(IndexOutOfRangeError):
        store.node(0, 1)
    assert append_next(store, s.shipment_id).leaf_index == 1


def test_duplicate_event_id_conflicts(backend: Backend) -> None:
    store = backend.store
    a, b = new_shipment(), new_shipment()
    store.add_shipment(a)
    store.add_shipment(b)
    first = append_next(store, a.shipment_id)
    twin = replace(new_event(b.shipment_id, 0, ZERO), event_id=first.event_id)
    with pytest.raises(ConflictError, match=f"event {first.event_id} already exists"):
        store.append_event(twin, merkle.leaf_hash(twin.commitment))
    assert store.log_size() == 1
    assert store.events(b.shipment_id) == []


def test_roots_and_proofs_match_memory_log(backend: Backend) -> None:
    store, reference = backend.store, merkle.MemoryLog()
    shipments = [new_shipment() for _ in range(7)]
    for s in shipments:
        store.add_shipment(s)
    last = {s.shipment_id: (0, ZERO) for s in shipments}
    n = 300
    for i in range(n):
        sid = shipments[i % len(shipments)].shipment_id
        seq, prev = last[sid]
        record = new_event(sid, seq, prev)
        lh = merkle.leaf_hash(record.commitment)
        assert store.append_event(record, lh).leaf_index == reference.append_leaf_hash(lh) == i
        last[sid] = (seq + 1, record.commitment)
    assert store.log_size() == n
    for size in range(1, n + 1):
        assert merkle.tree_root(store.node, size) == reference.root(size), size
    rng = secrets.SystemRandom()
    sizes = [1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 128, 129, 255, 256, 257, 299, 300]
    pairs = [(i, size) for size in sizes for i in {0, size // 2, size - 1}]
    pairs += [(rng.randrange(size), size) for size in (rng.randrange(1, n + 1) for _ in range(60))]
    for i, size in pairs:
        proof = merkle.inclusion_proof(store.node, i, size)
        assert proof == reference.inclusion_proof(i, size), (i, size)
        merkle.verify_inclusion(i, size, reference.node(0, i), proof, reference.root(size))
    for size2 in sizes:
        for size1 in {1, size2 // 3 or 1, size2 - 1 or 1, size2, rng.randrange(1, size2 + 1)}:
            proof = merkle.consistency_proof(store.node, size1, size2)
            assert proof == reference.consistency_proof(size1, size2), (size1, size2)


def test_proof_reads_are_logarithmic(backend: Backend) -> None:
    store = backend.store
    s = new_shipment()
    store.add_shipment(s)
    for _ in range(129):
        append_next(store, s.shipment_id)
    reads = 0
    statements = 0

    def counting(level: int, index: int) -> bytes:
        nonlocal reads
        reads += 1
        return store.node(level, index)

    def count_statement(*args: Any) -> None:
        nonlocal statements
        if "log_nodes" in args[2]:
            statements += 1

    if backend.engine is not None:
        event.listen(backend.engine, "before_cursor_execute", count_statement)
    for size in (100, 128, 129):
        bound = 2 * size.bit_length()
        for i in {*range(0, size, 7), size - 1}:
            reads = statements = 0
            merkle.inclusion_proof(counting, i, size)
            assert reads <= bound, (i, size, reads)
            if backend.engine is not None:
                assert statements == reads  # one query per read, no hidden scans
        for size1 in {*range(1, size, 9), size - 1}:
            reads = 0
            merkle.consistency_proof(counting, size1, size)
            assert reads <= bound, (size1, size, reads)
        reads = 0
        merkle.tree_root(counting, size)
        assert reads <= size.bit_length()


def test_latest_checkpoint_is_the_last_anchored(backend: Backend) -> None:
    store = backend.store
    assert store.latest_checkpoint() is None
    first = AnchoredCheckpoint(size=2, root=secrets.token_bytes(32), block_number=7, tx_hash=None)
    second = AnchoredCheckpoint(
        size=5, root=secrets.token_bytes(32), block_number=9, tx_hash=secrets.token_bytes(32)
    )
    store.add_checkpoint(first)
    assert store.latest_checkpoint() == first
    store.add_checkpoint(second)
    assert store.latest_checkpoint() == second


# --- SQL only: the log's storage ----------------------------------------------------------------


def test_nodes_reads_many_in_one_query(sql: Backend) -> None:
    store = sql.sql()
    s = new_shipment()
    store.add_shipment(s)
    for _ in range(11):
        append_next(store, s.shipment_id)
    reference = merkle.MemoryLog()
    for e in store.events(s.shipment_id):
        reference.append(e.commitment)
    coords = [(3, 0), (0, 10), (1, 4), (0, 0), (2, 1), (0, 10)]
    statements: list[str] = []
    assert sql.engine is not None
    event.listen(
        sql.engine,
        "before_cursor_execute",
        lambda *a: statements.append(a[2]) if "log_nodes" in a[2] else None,
    )
    assert store.nodes(coords) == [reference.node(*c) for c in coords]
    assert len(statements) == 1
    assert store.nodes([]) == []
    with pytest.raises(IndexOutOfRangeError, match="no subtree at level 1 index 5"):
        store.nodes([(0, 1), (1, 5)])  # (1, 5) needs leaves 10 and 11: not complete yet
    with pytest.raises(IndexOutOfRangeError, match="no subtree at level 0 index 11"):
        store.node(0, 11)
    with pytest.raises(IndexOutOfRangeError, match="level 0 index -1"):
        store.node(0, -1)


def test_unknown_shipment_is_not_found(sql: Backend) -> None:
    store = sql.sql()
    record = new_event("shp-nowhere", 0, ZERO)
    with pytest.raises(NotFoundError, match="no shipment shp-nowhere on this log"):
        store.append_event(record, merkle.leaf_hash(record.commitment))
    with pytest.raises(FormatError, match="leaf hash must be 32 bytes"):
        store.append_event(record, b"short")
    assert store.log_size() == 0


def test_logs_share_a_database_without_seeing_each_other(sql: Backend) -> None:
    a, b = sql.sql(LOG_A), sql.sql(LOG_B)
    sa, sb = new_shipment(), new_shipment()
    sb = replace(sb, ref=sa.ref)  # the same tracking number at two couriers is fine
    a.add_shipment(sa)
    b.add_shipment(sb)
    ea = [append_next(a, sa.shipment_id) for _ in range(3)]
    eb = append_next(b, sb.shipment_id)
    assert (a.log_size(), b.log_size(), eb.leaf_index) == (3, 1, 0)
    assert a.shipment_by_ref(sa.ref) == sa
    assert b.shipment_by_ref(sa.ref) == sb
    assert b.event_by_id(ea[0].event_id) is None
    assert b.events(sa.shipment_id) == []
    assert b.node(0, 0) == merkle.leaf_hash(eb.commitment) != a.node(0, 0)
    with pytest.raises(NotFoundError):
        b.append_event(new_event(sa.shipment_id, 3, ea[-1].commitment), secrets.token_bytes(32))
    a.add_checkpoint(AnchoredCheckpoint(3, merkle.tree_root(a.node, 3), 1, None))
    assert b.latest_checkpoint() is None
    with pytest.raises(FormatError, match="log id must be 32 bytes"):
        sql.sql(b"short")


def test_erased_data_key_reads_back_empty(sql: Backend) -> None:
    store = sql.sql()
    s = new_shipment()
    store.add_shipment(s)
    assert sql.engine is not None
    with session_factory(sql.engine).begin() as session:
        session.execute(update(ShipmentRow).values(wrapped_key_blob=None))
    erased = store.shipment_by_ref(s.ref)
    assert erased is not None
    assert erased.wrapped_key == envelope.WrappedKey("k1", b"")
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", bytes(32))], "k1")
    with pytest.raises(TruncationError):
        envelope.unwrap_data_key(keyring, erased.wrapped_key, s.shipment_id)


def test_driver_failures_become_store_errors(sql: Backend) -> None:
    store = sql.sql()
    assert sql.engine is not None
    with sql.engine.begin() as connection:
        connection.execute(text("DROP TABLE log_state"))
    with pytest.raises(StoreError, match="database operation failed") as caught:
        store.log_size()
    assert caught.value.__cause__ is not None


def test_constraint_violations_map_to_our_errors(sql: Backend) -> None:
    """What the pre-checks cannot see (a concurrent writer) the schema still refuses."""
    store = sql.sql()
    s = new_shipment()
    store.add_shipment(s)
    twin = ShipmentRow(
        shipment_id="shp-twin",
        log_id=LOG_A,
        ref=s.ref,
        wrapped_key_kid="k1",
        wrapped_key_blob=None,
        sealed_details=b"x",
        sealed_factor=b"x",
        created_at=NOW,
    )
    with pytest.raises(ConflictError, match="tracking number already exists"):
        with store._transaction(write=True) as session:
            session.add(twin)
    orphan = _event_row(replace(new_event("shp-ghost", 0, ZERO), leaf_index=0), LOG_A)
    with pytest.raises(NotFoundError, match="refers to something not stored"):  # foreign keys on
        with store._transaction(write=True) as session:
            session.add(orphan)
    bad_ref = replace(new_shipment(), ref=b"short")
    with pytest.raises(FormatError, match="violates a constraint"):
        store.add_shipment(bad_ref)


# --- SQL only: checkpoints and API clients ------------------------------------------------------


def test_checkpoint_status_flow(sql: Backend) -> None:
    clock = FixedClock()
    store = sql.sql(clock=clock)
    root4, root6 = secrets.token_bytes(32), secrets.token_bytes(32)
    tx1, tx2, tx3 = (secrets.token_bytes(32) for _ in range(3))

    store.record_sent_checkpoint(4, root4, tx1, nonce=7)
    assert store.latest_checkpoint() is None
    assert store.checkpoints("sent") == [CheckpointRecord(4, root4, "sent", tx1, None, 7, NOW, NOW)]
    clock.t += 10  # replaced with a higher fee: same nonce, new transaction
    store.record_sent_checkpoint(4, root4, tx2, nonce=7)
    store.mark_checkpoint(4, "anchored", block_number=100)
    assert store.latest_checkpoint() == AnchoredCheckpoint(4, root4, 100, tx2)
    with pytest.raises(ConflictError, match="checkpoint of size 4 is already anchored"):
        store.record_sent_checkpoint(4, root4, tx3, nonce=8)
    with pytest.raises(ConflictError, match="recorded with root"):
        store.add_checkpoint(AnchoredCheckpoint(4, root6, 100, tx2))

    store.record_sent_checkpoint(6, root6, tx3, nonce=8)
    assert store.latest_checkpoint() == AnchoredCheckpoint(4, root4, 100, tx2)
    store.mark_checkpoint(4, "confirmed")  # keeps its block number
    store.add_checkpoint(AnchoredCheckpoint(6, root6, 120, tx3))
    assert store.latest_checkpoint() == AnchoredCheckpoint(6, root6, 120, tx3)
    assert [(c.size, c.status) for c in store.checkpoints()] == [(4, "confirmed"), (6, "anchored")]
    assert store.checkpoints("confirmed")[0] == CheckpointRecord(
        4, root4, "confirmed", tx2, 100, 7, NOW, NOW + 10
    )

    store.mark_checkpoint(6, "sent")  # a reorg dropped the block
    assert store.checkpoints("sent")[0].block_number is None
    assert store.latest_checkpoint() == AnchoredCheckpoint(4, root4, 100, tx2)

    with pytest.raises(NotFoundError, match="no checkpoint of size 5"):
        store.mark_checkpoint(5, "anchored", 1)
    with pytest.raises(FormatError, match="checkpoint status 'mined' is not one of"):
        store.mark_checkpoint(4, "mined")
    with pytest.raises(FormatError, match="checkpoint root must be 32 bytes"):
        store.record_sent_checkpoint(8, b"\x00", tx1, nonce=9)


def test_api_clients(sql: Backend) -> None:
    clock = FixedClock()
    store, other = sql.sql(clock=clock), sql.sql(LOG_B)
    secret_hash = hashlib.sha256(b"a long random secret").digest()
    added = store.add_api_client("scanner-1", "Depot scanner", secret_hash, ["events:write", "a"])
    assert added == ApiClientRecord(
        "scanner-1", "Depot scanner", secret_hash, ("a", "events:write"), NOW, None
    )
    assert store.api_client("scanner-1") == added
    assert added.active
    assert store.api_client("nobody") is None
    assert other.api_client("scanner-1") is None
    with pytest.raises(ConflictError, match="API client scanner-1 already exists"):
        store.add_api_client("scanner-1", "again", secret_hash, [])
    with pytest.raises(FormatError, match="without commas"):
        store.add_api_client("scanner-2", "bad", secret_hash, ["a,b"])
    with pytest.raises(NotFoundError):
        other.revoke_api_client("scanner-1")

    clock.t += 5
    store.revoke_api_client("scanner-1")
    clock.t += 5
    store.revoke_api_client("scanner-1")  # idempotent: the first revocation time stays
    revoked = store.api_client("scanner-1")
    assert revoked is not None
    assert (revoked.revoked_at, revoked.active) == (NOW + 5, False)
    with pytest.raises(NotFoundError, match="no API client ghost"):
        store.revoke_api_client("ghost")


# --- SQL only: locking and concurrency ----------------------------------------------------------


def test_advisory_lock(sql: Backend) -> None:
    one, two = sql.sql(), sql.sql(LOG_B)
    with one.advisory_lock(42) as got:
        assert got
        with two.advisory_lock(42) as second:
            # PostgreSQL: exclusive across connections. SQLite: one process, always acquired.
            assert second is (sql.name == "sqlite")
        with two.advisory_lock(43) as other_key:
            assert other_key
    with two.advisory_lock(42) as again:
        assert again
    with pytest.raises(FormatError, match="signed 64-bit"):
        with one.advisory_lock(1 << 63):
            pass


def test_advisory_lock_is_released_when_the_block_raises(pg_engine: Engine) -> None:
    store = SqlStore(session_factory(pg_engine), LOG_A)
    with pytest.raises(RuntimeError), store.advisory_lock(7) as got:
        assert got
        raise RuntimeError("worker crashed")
    with pg_engine.connect() as connection:
        held = connection.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7")
        )
        assert held == 0


@pytest.mark.parametrize("shared", [True, False], ids=["shared-shipments", "own-shipment"])
@pytest.mark.parametrize("backend_name", SQL_BACKENDS)
def test_concurrent_appends_neither_duplicate_nor_lose_leaves(
    request: pytest.FixtureRequest, backend_name: str, shared: bool
) -> None:
    engine = migrated_engine(request, backend_name)
    sessions = session_factory(engine)
    setup = SqlStore(sessions, LOG_A)
    threads, per_thread = 4, 12
    shipments = [new_shipment() for _ in range(3 if shared else threads)]
    for s in shipments:
        setup.add_shipment(s)
    barrier = threading.Barrier(threads)
    appended: list[EventRecord] = []
    conflicts: list[int] = []
    unexpected: list[BaseException] = []

    def worker(t: int) -> None:
        store = SqlStore(sessions, LOG_A)  # each worker its own store, as separate API nodes
        barrier.wait()
        done = attempts = 0
        while done < per_thread and attempts < 50 * per_thread:
            attempts += 1
            try:
                target = shipments[(t + done) % 3] if shared else shipments[t]
                appended.append(append_next(store, target.shipment_id))
                done += 1
            except ConflictError:
                conflicts.append(t)
            except BaseException as e:
                unexpected.append(e)
                return

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert unexpected == []
    if not shared:
        assert conflicts == []  # appends to different shipments only wait for the log lock
    total = threads * per_thread
    assert len(appended) == total
    assert sorted(e.leaf_index for e in appended) == list(range(total))
    assert setup.log_size() == total
    reference = merkle.MemoryLog()
    for e in sorted(appended, key=lambda e: e.leaf_index):
        assert setup.event_by_id(e.event_id) == e
        reference.append(e.commitment)
    assert merkle.tree_root(setup.node, total) == reference.root()
    for s in shipments:
        chain = setup.events(s.shipment_id)
        assert [e.sequence for e in chain] == list(range(len(chain)))
        assert [e.previous for e in chain] == [ZERO] + [e.commitment for e in chain[:-1]]


# --- migrations ---------------------------------------------------------------------------------


def test_migrations_produce_the_models_schema(sql: Backend) -> None:
    assert sql.engine is not None
    with sql.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0004"
        tables = set(inspect(connection).get_table_names())
    assert tables == {*Base.metadata.tables, "alembic_version"}


def test_migrations_go_down_and_up_again(sql: Backend) -> None:
    assert sql.engine is not None
    config = migration_config()
    with sql.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    with sql.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    upgrade(sql.engine)
    upgrade(sql.engine)  # idempotent
    s = new_shipment()
    sql.sql().add_shipment(s)


def test_make_engine() -> None:
    assert make_engine("postgresql://u@localhost/db").dialect.driver == "psycopg"
    with pytest.raises(FormatError, match="psycopg"):
        make_engine("postgresql+pg8000://u@localhost/db")
    with pytest.raises(FormatError, match="not supported"):
        make_engine("mysql://u@localhost/db")
    with pytest.raises(FormatError, match="not a database URL"):
        make_engine("::: nope")


def test_sqlite_connections_are_configured(sqlite_engine: Engine, sqlite_path: Path) -> None:
    assert sqlite_path.parent.is_dir()  # created by make_engine
    with sqlite_engine.connect() as connection:

        def pragma(name: str) -> object:
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert (pragma("foreign_keys"), pragma("journal_mode"), pragma("busy_timeout")) == (
            1,
            "wal",
            5000,
        )


# --- nothing personal in clear ------------------------------------------------------------------

TRACKING = "PP123456789FR"
PERSONAL = ("Camille Martin", "69002", "12 rue Mercière", "+33 6 12 34 56 78", TRACKING)


def test_nothing_personal_is_stored_in_clear(sql: Backend, sqlite_path: Path) -> None:
    assert sql.engine is not None
    store = sql.sql(clock=FixedClock())
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    shipment_key = secrets.token_bytes(32)
    ref = shipment_ref(shipment_key, TRACKING)
    shipment_id = "shp-plain-1"
    data_key = envelope.new_data_key()
    details = {"recipient": "Camille Martin", "address": "12 rue Mercière", "phone": PERSONAL[3]}
    store.add_shipment(
        ShipmentRecord(
            shipment_id=shipment_id,
            ref=ref,
            wrapped_key=envelope.wrap_data_key(keyring, data_key, shipment_id),
            sealed_details=envelope.seal(
                data_key,
                json.dumps({**details, "tracking": TRACKING}).encode(),
                shipment_id=shipment_id,
                event_id="",
                purpose="details",
            ),
            sealed_factor=envelope.seal(
                data_key, b"69002", shipment_id=shipment_id, event_id="", purpose="factor"
            ),
            created_at=NOW,
        )
    )
    previous = ZERO
    for sequence, fields in enumerate(
        [
            {"status": "picked_up", "time": NOW, "place": "69002 Lyon"},
            {"status": "delivered", "time": NOW + 60, "signed_by": "Camille Martin"},
        ]
    ):
        openings = open_fields(fields)
        event_id = f"evt-plain-{sequence}"
        commitment = event_commitment(
            LOG_A, ref, sequence, previous, [o.digest() for o in openings]
        )
        store.append_event(
            EventRecord(
                event_id=event_id,
                shipment_id=shipment_id,
                sequence=sequence,
                previous=previous,
                commitment=commitment,
                leaf_index=-1,
                event_time=NOW + 60 * sequence,
                agent=AGENT,
                signature=secrets.token_bytes(65),
                sealed_openings=envelope.seal(
                    data_key,
                    json.dumps([o.to_json() for o in openings]).encode(),
                    shipment_id=shipment_id,
                    event_id=event_id,
                    purpose="event",
                ),
                recorded_at=NOW,
            ),
            merkle.leaf_hash(commitment),
        )
        previous = commitment
    store.add_checkpoint(AnchoredCheckpoint(2, merkle.tree_root(store.node, 2), 5, None))
    store.add_api_client("client-1", "Depot Lyon", hashlib.sha256(b"s3cret").digest(), ["read"])

    plain_hash = hashlib.sha256(TRACKING.encode()).digest()  # a plain hash is a dictionary key
    needles = [p.encode() for p in PERSONAL] + [p.lower().encode() for p in PERSONAL]
    needles += [plain_hash, plain_hash.hex().encode()]
    seen = 0
    with sql.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert not any(n in raw for n in needles), (table.name, value)
                    seen += 1
    assert seen > 50
    if sql.name == "sqlite":
        sql.engine.dispose()  # close connections: the WAL is checkpointed into the file
        files = [p for p in sqlite_path.parent.iterdir() if p.name.startswith(sqlite_path.name)]
        content = b"".join(p.read_bytes() for p in files)
        assert ref in content  # the scan does look at the data
        assert not any(n in content for n in needles)
