"""The anchoring worker on real chains and databases: schedule, confirmations, crash safety."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, update
from web3 import Web3

from parcelproof.core.errors import NetworkError, RootMismatchError
from parcelproof.service.anchoring import AnchorPolicy, AnchorWorker
from parcelproof.service.ports import Store
from parcelproof.store.models import CheckpointRow
from tests.conftest import Courier, make_courier

PARCEL, POSTCODE = "PP424242CH", "8001"


class Killed(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it)."""


def _world(chain: Web3, sql_stores: Callable[[bytes], Store]) -> Courier:
    c = make_courier(chain, sql_stores)
    c.node.create_shipment(PARCEL, {"recipient": "Lea Keller"}, POSTCODE)
    return c


def _record(c: Courier, n: int, start: int = 0) -> None:
    statuses = ["picked_up", "departed", "arrived", "departed", "arrived", "departed"]
    for i in range(start, start + n):
        c.driver.record(c.node, PARCEL, {"status": statuses[i], "place": f"hub {i}"},
                        c.now - 600 + i)  # fmt: skip


def _mine(w3: Web3, blocks: int) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_anchors_by_batch_size_and_by_interval(
    chain: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    c = _world(chain, sql_stores)
    clock = [0.0]
    worker = AnchorWorker(
        c.node, AnchorPolicy(interval_seconds=30, batch_leaves=3), monotonic=lambda: clock[0]
    )
    _record(c, 2)
    assert worker.step().anchored is None  # 2 < batch, interval not elapsed
    _record(c, 1, start=2)
    first = worker.step().anchored
    assert first is not None and first.size == 3
    _record(c, 1, start=3)
    assert worker.step().anchored is None
    clock[0] += 31
    second = worker.step().anchored
    assert second is not None and second.size == 4
    assert [cp.size for cp in c.ledger.checkpoints(c.node.courier_id)] == [3, 4]


def test_confirmations_wait_k_blocks(chain: Web3, sql_stores: Callable[[bytes], Store]) -> None:
    c = _world(chain, sql_stores)
    worker = AnchorWorker(c.node, AnchorPolicy(confirmations=3))
    _record(c, 1)
    result = worker.step(force=True)
    assert result.anchored is not None and result.confirmed == ()
    assert [cp.status for cp in c.node.store.checkpoints()] == ["anchored"]
    _mine(chain, 1)
    assert worker.step().confirmed == ()
    _mine(chain, 1)
    assert worker.step().confirmed == (1,)
    assert [cp.status for cp in c.node.store.checkpoints()] == ["confirmed"]


def test_killed_between_send_and_record_leaves_no_duplicate_and_loses_nothing(
    chain: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    c = _world(chain, sql_stores)
    _record(c, 2)

    def die() -> None:
        raise Killed

    crashing = AnchorWorker(c.node, after_send=die)
    with pytest.raises(Killed):
        crashing.step(force=True)
    # The transaction landed; the database never heard of it.
    assert c.ledger.latest_checkpoint(c.node.courier_id) is not None
    assert c.node.store.checkpoints() == []

    restarted = AnchorWorker(c.node)
    result = restarted.step(force=True)
    assert result.anchored is None  # nothing new to anchor: the crash's checkpoint counts
    [recorded] = c.node.store.checkpoints()
    assert recorded.size == 2 and recorded.block_number is not None
    assert len(c.ledger.checkpoints(c.node.courier_id)) == 1

    _record(c, 1, start=2)
    assert restarted.step(force=True).anchored is not None
    assert [cp.size for cp in c.ledger.checkpoints(c.node.courier_id)] == [2, 3]
    assert c.node.store.log_size() == 3


def test_a_tampered_local_log_is_detected_on_reconcile(
    chain: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    c = _world(chain, sql_stores)
    _record(c, 2)
    AnchorWorker(c.node).step(force=True)
    other = make_courier(chain, sql_stores)  # a node whose log differs, same chain account
    other.node.create_shipment(PARCEL, {}, POSTCODE)
    _record(other, 2)
    impostor = type(c.node)(
        courier_id=c.node.courier_id, ledger=c.ledger, account=c.account,
        keyring=other.node.keyring, shipment_key=b"\x01" * 32, store=other.node.store,
    )  # fmt: skip
    with pytest.raises(RootMismatchError, match="anchored root at size 2"):
        impostor.reconcile()


def test_an_altered_stored_checkpoint_root_is_detected_on_reconcile(
    chain: Web3, sql_engine: Engine, sql_stores: Callable[[bytes], Store]
) -> None:
    c = _world(chain, sql_stores)
    _record(c, 2)
    AnchorWorker(c.node).step(force=True)
    with sql_engine.begin() as connection:
        connection.execute(
            update(CheckpointRow).values(root=b"\x00" * 32).where(CheckpointRow.size == 2)
        )
    with pytest.raises(RootMismatchError, match="stored checkpoint 2"):
        c.node.reconcile()


class _Down:
    """A ledger whose endpoint went away: it still knows its chain id and address."""

    def __init__(self, ledger: object) -> None:
        self.chain_id = ledger.chain_id  # type: ignore[attr-defined]
        self.address = ledger.address  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> object:
            raise NetworkError("JSON-RPC endpoint is unreachable")

        return fail


def test_backs_off_while_the_chain_is_down_and_ingest_keeps_working(
    chain: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    from parcelproof.service.keys import AgentKeyDirectory

    c = _world(chain, sql_stores)
    keys = AgentKeyDirectory(c.ledger)
    c.node.agent_keys = keys
    _record(c, 1)  # warms the key cache while the chain is up
    ledger = c.node.ledger
    keys._ledger = _Down(ledger)  # type: ignore[assignment]
    c.node.ledger = _Down(ledger)  # type: ignore[assignment]
    _record(c, 1, start=1)  # ingestion still works from the cached registration
    worker = AnchorWorker(c.node, AnchorPolicy(max_backoff_seconds=8))
    for expected in (2.0, 4.0, 8.0, 8.0):
        with pytest.raises(NetworkError):
            worker.step(force=True)
        worker.failures += 1
        assert worker.backoff() == expected
    c.node.ledger = ledger
    worker.failures = 0
    assert worker.step(force=True).anchored is not None
    assert c.node.store.log_size() == 2


def test_run_loop_anchors_and_stops(chain: Web3, sql_stores: Callable[[bytes], Store]) -> None:
    c = _world(chain, sql_stores)
    _record(c, 1)
    stop = threading.Event()
    worker = AnchorWorker(c.node, AnchorPolicy(interval_seconds=0.01, batch_leaves=1))
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"tick": 0.01})
    thread.start()
    try:
        for _ in range(500):
            if c.node.store.checkpoints():
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert [cp.size for cp in c.node.store.checkpoints()] == [1]
