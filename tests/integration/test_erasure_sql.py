"""Erasure on the real stores (SQLite, PostgreSQL) and a real chain: after crypto-shredding no
key anyone holds opens what stayed in the database, the old wrapped key is gone (on SQLite
from the files too), the receipt verifies against the ledger, and erasure serialises with
concurrent appends."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import Engine, MetaData, select
from web3 import Web3

from parcelproof.core import envelope, merkle
from parcelproof.core.bundle import verify_bundle
from parcelproof.core.errors import (
    ConflictError,
    DecryptionError,
    NotFoundError,
    SignatureError,
    TruncationError,
)
from parcelproof.service.lookup import ParcelErasedError, lookup
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import ErasureRecord, ShipmentErasedError, Store
from parcelproof.service.privacy import ErasureReceipt, verify_receipt
from parcelproof.store.db import session_factory
from parcelproof.store.memory import MemoryStore
from parcelproof.store.sql import SqlStore
from tests.conftest import SQL_BACKENDS, Courier, make_courier, migrated_engine
from tests.integration.test_sql_store import append_next, new_shipment

PARCEL, POSTCODE = "PP271828182FR", "75011"
DETAILS = {"recipient": "Hélène Dubois", "phone": "+33 6 98 76 54 32"}
DAY = 86400


@dataclass
class Node:
    """A courier on a real chain and a real database, with the keys it was built with."""

    courier: Courier
    node: CourierNode
    engine: Engine
    keyring: envelope.Keyring
    shipment_key: bytes


@pytest.fixture
def real(chain: Web3, sql_engine: Engine, sql_stores: Callable[[bytes], Store]) -> Node:
    c = make_courier(chain, sql_stores, "erasure")
    keyring = envelope.Keyring(
        [
            envelope.KeyEncryptionKey("old", secrets.token_bytes(32)),
            envelope.KeyEncryptionKey("k1", secrets.token_bytes(32)),
        ],
        "k1",
    )
    shipment_key = secrets.token_bytes(32)
    node = CourierNode(
        courier_id=c.node.courier_id,
        ledger=c.ledger,
        account=c.account,  # a LocalAccount: its key signs the erasure receipts
        keyring=keyring,
        shipment_key=shipment_key,
        store=c.node.store,
    )
    return Node(c, node, sql_engine, keyring, shipment_key)


def _journey(n: Node) -> None:
    n.node.create_shipment(PARCEL, DETAILS, POSTCODE)
    driver, now = n.courier.driver, n.courier.now
    driver.record(n.node, PARCEL, {"status": "picked_up", "place": "Paris 11e"}, now - 120)
    driver.record(n.node, PARCEL, {"status": "departed", "place": "Paris hub"}, now - 60)
    n.node.anchor()


def _rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, read with plain SQL (no store code involved)."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            t.name: [dict(r._mapping) for r in connection.execute(select(t))]
            for t in metadata.sorted_tables
        }


def _checkpoint(engine: Engine) -> None:
    raw = engine.raw_connection()
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def _files(sqlite_path: Path) -> bytes:
    """The bytes of the SQLite database file and its WAL and shared-memory files."""
    files = [p for p in sqlite_path.parent.iterdir() if p.name.startswith(sqlite_path.name)]
    return b"".join(p.read_bytes() for p in files)


def _keys_anyone_holds(n: Node) -> list[bytes]:
    """Every key of the node: its key-encryption keys, its shipment key, its account key."""
    keks = [n.keyring.get(kid).key for kid in n.keyring.kids]
    return [*keks, n.shipment_key, bytes(n.courier.account.key)]


def test_after_erasure_no_key_opens_the_stored_ciphertext(real: Node, sqlite_path: Path) -> None:
    _journey(real)
    before = _rows(real.engine)
    (shipment,) = before["shipments"]
    captured = shipment["wrapped_key_blob"]  # what a copy of the database taken now holds
    wrapped = envelope.WrappedKey(shipment["wrapped_key_kid"], captured)
    sid = shipment["shipment_id"]
    data_key = envelope.unwrap_data_key(real.keyring, wrapped, sid)  # the test can open it now
    assert (
        json.loads(
            envelope.open_sealed(
                data_key,
                shipment["sealed_details"],
                shipment_id=sid,
                event_id="",
                purpose="details",
            )
        )
        == DETAILS
    )

    if real.engine.dialect.name == "sqlite":
        _checkpoint(real.engine)  # the old key now sits in the main database file as well
        assert captured in _files(sqlite_path)

    receipt = real.node.erase(PARCEL, "request")

    after = _rows(real.engine)
    (erased,) = after["shipments"]
    assert erased["wrapped_key_blob"] is None
    # Crypto-shredding: the ciphertexts stay as they were, the key is what is gone.
    assert erased["sealed_details"] == shipment["sealed_details"]
    assert erased["sealed_factor"] == shipment["sealed_factor"]
    assert [e["sealed_openings"] for e in after["events"]] == [
        e["sealed_openings"] for e in before["events"]
    ]
    (row,) = after["erasures"]
    assert (row["shipment_id"], row["reason"]) == (sid, "request")
    assert row["receipt"] == receipt.canonical()
    # The old wrapped key is in no column of any table any more.
    for table, rows in after.items():
        for r in rows:
            for column, value in r.items():
                raw = value if isinstance(value, bytes) else str(value).encode()
                assert captured not in raw, (table, column)

    sealed = [
        (erased["sealed_details"], "", "details"),
        (erased["sealed_factor"], "", "factor"),
        *[(e["sealed_openings"], e["event_id"], "event") for e in after["events"]],
    ]
    for key in _keys_anyone_holds(real):
        for blob, event_id, purpose in sealed:
            with pytest.raises(DecryptionError):
                envelope.open_sealed(key, blob, shipment_id=sid, event_id=event_id, purpose=purpose)
    for kid in real.keyring.kids:
        stored = envelope.WrappedKey(kid, erased["wrapped_key_blob"] or b"")
        with pytest.raises(TruncationError):  # there is nothing left to unwrap
            envelope.unwrap_data_key(real.keyring, stored, sid)
    # Nor does the node itself read anything back.
    document = real.node.export(PARCEL)
    assert document["shipment"]["details"] is None
    assert [e["fields"] for e in document["events"]] == [None, None]

    if real.engine.dialect.name == "sqlite":
        content = _files(sqlite_path)  # while connections are open: WAL and database file
        assert shipment["sealed_details"] in content  # the scan does see stored blobs
        assert captured not in content, "the old wrapped key survives in the database files"


def test_the_receipt_verifies_against_the_ledger_and_the_proof_still_does(real: Node) -> None:
    _journey(real)
    receipt = real.node.erase(PARCEL, "request")
    assert receipt.signer == real.courier.account.address
    assert verify_receipt(receipt.to_json(), real.courier.ledger) == receipt
    forger = Account.create()
    forged = ErasureReceipt(
        receipt.domain,
        receipt.erasure,
        forger.address,
        __import__("parcelproof.core.eip712", fromlist=["sign_erasure"]).sign_erasure(
            bytes(forger.key), receipt.domain, receipt.erasure
        ),
    )
    with pytest.raises(SignatureError, match="anchoring account"):
        verify_receipt(forged, real.courier.ledger)

    with pytest.raises(ParcelErasedError) as caught:
        lookup([real.node], real.courier.ledger, PARCEL, "00000")
    bundle = caught.value.result.bundle
    assert bundle is not None
    report = verify_bundle(bundle, real.courier.ledger)
    assert report.ok
    assert [c.name for c in report.checks if c.skipped] == ["commitment", "commitment"]
    assert real.node.erase(PARCEL, "request") == receipt
    with pytest.raises(ShipmentErasedError):
        real.courier.driver.record(real.node, PARCEL, {"status": "arrived"}, real.courier.now)


def test_erasure_serialises_with_concurrent_appends(real: Node) -> None:
    """Events recorded while the parcel is erased either land before the erasure, and the
    receipt counts them, or are refused: the receipt always matches the stored chain."""
    node, driver, now = real.node, real.courier.driver, real.courier.now
    node.create_shipment(PARCEL, DETAILS, POSTCODE)
    driver.record(node, PARCEL, {"status": "picked_up"}, now - 60)
    stop = threading.Event()
    refused: list[Exception] = []

    def record() -> None:
        while not stop.is_set():
            try:
                driver.record(node, PARCEL, {"status": "departed"}, now - 30)
            except ConflictError as e:
                if isinstance(e, ShipmentErasedError):
                    refused.append(e)
                    return

    thread = threading.Thread(target=record)
    thread.start()
    time.sleep(0.3)
    receipt = node.erase(PARCEL, "request")
    thread.join(30)
    stop.set()
    events = node.store.events(node.shipment_id(PARCEL))
    assert receipt.erasure.event_count == len(events) >= 2
    assert receipt.erasure.last_commitment == events[-1].commitment
    assert refused


# --- the store contract (memory, sqlite, postgresql) --------------------------------------------


@pytest.fixture(params=("memory", *SQL_BACKENDS))
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    engine = migrated_engine(request, request.param)
    return SqlStore(session_factory(engine), hashlib.sha256(b"log A").digest())


def _erasure(shipment_id: str, at: int = 1) -> ErasureRecord:
    return ErasureRecord(shipment_id, at, "request", '{"receipt":true}')


def test_destroying_a_data_key_is_recorded_once(store: Store) -> None:
    s = new_shipment()
    store.add_shipment(s)
    e1 = append_next(store, s.shipment_id)
    e2 = append_next(store, s.shipment_id)
    with pytest.raises(ConflictError, match="another event"):
        store.destroy_data_key(
            _erasure(s.shipment_id), event_count=1, last_commitment=e1.commitment
        )
    assert store.erasure(s.shipment_id) is None
    first = store.destroy_data_key(
        _erasure(s.shipment_id), event_count=2, last_commitment=e2.commitment
    )
    assert store.erasure(s.shipment_id) == first
    again = store.destroy_data_key(
        _erasure(s.shipment_id, at=2), event_count=9, last_commitment=bytes(32)
    )
    assert again == first
    stored = store.shipment_by_ref(s.ref)
    assert stored is not None and stored.erased and stored.wrapped_key.blob == b""
    late = replace(e2, event_id="late", sequence=2, previous=e2.commitment)
    with pytest.raises(ShipmentErasedError):
        store.append_event(late, merkle.leaf_hash(late.commitment))
    assert len(store.events(s.shipment_id)) == 2
    with pytest.raises(NotFoundError):
        store.destroy_data_key(_erasure("unknown"), event_count=0, last_commitment=bytes(32))
    assert store.erasure("unknown") is None


def test_an_erased_key_is_not_rewrapped(store: Store) -> None:
    s = new_shipment()
    store.add_shipment(s)
    store.destroy_data_key(_erasure(s.shipment_id), event_count=0, last_commitment=bytes(32))
    store.set_wrapped_key(s.shipment_id, envelope.WrappedKey("k2", b"\x01" * 61))
    stored = store.shipment_by_ref(s.ref)
    assert stored is not None and stored.erased
    assert store.wrapped_keys("k2") == []


def test_idle_shipments_are_listed_oldest_first(store: Store) -> None:
    old, busy, fresh, erased = (replace(new_shipment(), created_at=t) for t in (10, 20, 30, 5))
    for s in (old, busy, fresh, erased):
        store.add_shipment(s)
    append_next(store, busy.shipment_id)  # recorded_at 1_750_000_000: active recently
    store.destroy_data_key(_erasure(erased.shipment_id), event_count=0, last_commitment=bytes(32))
    assert [s.shipment_id for s in store.idle_shipments(31, 10)] == [
        old.shipment_id,
        fresh.shipment_id,
    ]
    assert [s.shipment_id for s in store.idle_shipments(30, 10)] == [old.shipment_id]
    assert [s.shipment_id for s in store.idle_shipments(31, 1)] == [old.shipment_id]
    assert len(store.idle_shipments(2_000_000_000, 10)) == 3
    assert store.idle_shipments(2_000_000_000, 0) == []


def test_logs_do_not_see_each_others_erasures(sql_engine: Engine) -> None:
    sessions = session_factory(sql_engine)
    a = SqlStore(sessions, hashlib.sha256(b"log A").digest())
    b = SqlStore(sessions, hashlib.sha256(b"log B").digest())
    s = new_shipment()
    a.add_shipment(s)
    a.destroy_data_key(_erasure(s.shipment_id), event_count=0, last_commitment=bytes(32))
    assert a.erasure(s.shipment_id) is not None
    assert b.erasure(s.shipment_id) is None
    with pytest.raises(NotFoundError):
        b.destroy_data_key(_erasure(s.shipment_id), event_count=0, last_commitment=bytes(32))
    assert b.idle_shipments(2_000_000_000, 10) == []


def test_retention_on_sql(real: Node) -> None:
    node, now = real.node, real.courier.now
    node.create_shipment(PARCEL, DETAILS, POSTCODE)
    real.courier.driver.record(node, PARCEL, {"status": "picked_up"}, now - 60)
    node.create_shipment("PPIDLE0001", DETAILS, POSTCODE)
    assert node.erase_expired(now + 29 * DAY, 30 * DAY).erased == ()
    dry = node.erase_expired(now + 31 * DAY, 30 * DAY, dry_run=True)
    assert set(dry.erased) == {node.shipment_id(PARCEL), node.shipment_id("PPIDLE0001")}
    assert node.erasure_receipt(PARCEL) is None
    assert set(node.erase_expired(now + 31 * DAY, 30 * DAY).erased) == set(dry.erased)
    receipt = node.erasure_receipt(PARCEL)
    assert receipt is not None and receipt.erasure.reason == "retention"
    assert receipt.erasure.event_count == 1
    verify_receipt(receipt, real.courier.ledger)
