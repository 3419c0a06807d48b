"""A reorganisation drops the block that held a checkpoint (anvil evm_snapshot/evm_revert): the
worker notices and anchors again, and no lookup cites the dropped block meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from web3 import Web3

from parcelproof.chain.devnet import Anvil
from parcelproof.core.bundle import verify_bundle
from parcelproof.service.anchoring import AnchorPolicy, AnchorWorker
from parcelproof.service.lookup import lookup
from parcelproof.service.ports import Store
from tests.conftest import Courier, make_courier

pytestmark = pytest.mark.anvil

PARCEL, POSTCODE = "PP7777777NL", "1012 AB"
STATUSES = ["picked_up", "departed", "arrived", "departed", "arrived", "out_for_delivery"]


@pytest.fixture
def own_anvil() -> Iterator[Web3]:
    """An anvil of this test's own: reverting it cannot undo another test's blocks."""
    with Anvil() as node:
        yield node.web3()


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in reply, reply
    return reply["result"]


def _record(c: Courier, start: int, n: int) -> None:
    for i in range(start, start + n):
        c.driver.record(c.node, PARCEL, {"status": STATUSES[i]}, c.now - 600 + i)


def test_a_reorg_of_the_checkpoint_block_is_noticed_and_anchored_again(
    own_anvil: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    w3 = own_anvil
    c = make_courier(w3, sql_stores)
    c.node.create_shipment(PARCEL, {"recipient": "Noor Bakker"}, POSTCODE)
    worker = AnchorWorker(c.node, AnchorPolicy(confirmations=1))
    _record(c, 0, 2)
    first = worker.step(force=True).anchored
    assert first is not None and first.size == 2
    snapshot = _rpc(w3, "evm_snapshot")

    _record(c, 2, 2)
    second = worker.step(force=True)
    assert second.anchored is not None and second.anchored.size == 4
    assert 4 in second.confirmed
    dropped_block = second.anchored.block_number
    dropped_hash = w3.eth.get_block(dropped_block)["hash"]
    before = lookup([c.node], c.ledger, PARCEL, POSTCODE)
    assert [t.block_number for t in before.timeline][2:] == [dropped_block] * 2

    # The reorganisation: the chain forgets the block, then grows past it with other blocks.
    assert _rpc(w3, "evm_revert", snapshot) is True
    for _ in range(3):
        _rpc(w3, "evm_mine")
    assert w3.eth.get_block(dropped_block)["hash"] != dropped_hash
    assert [cp.size for cp in c.ledger.checkpoints(c.node.courier_id)] == [2]

    # Before the worker notices, a lookup no longer cites the dropped block, and verifies.
    meantime = lookup([c.node], c.ledger, PARCEL, POSTCODE)
    assert [t.anchoring for t in meantime.timeline] == ["confirmed"] * 2 + ["pending"] * 2
    assert dropped_block not in {t.block_number for t in meantime.timeline[2:]}
    assert meantime.report is not None and meantime.report.ok, meantime.report.failures

    # The worker notices on its next cycle and anchors the same root again.
    again = worker.step()
    assert again.anchored is not None and again.anchored.size == 4
    assert again.anchored.root == second.anchored.root
    assert again.anchored.block_number != dropped_block or (
        w3.eth.get_block(again.anchored.block_number)["hash"] != dropped_hash
    )
    on_chain = c.ledger.checkpoints(c.node.courier_id)
    assert [cp.size for cp in on_chain] == [2, 4]  # none skipped, none doubled
    worker.step()  # confirms it
    after = lookup([c.node], c.ledger, PARCEL, POSTCODE)
    assert [t.anchoring for t in after.timeline] == ["confirmed"] * 4
    assert {t.block_number for t in after.timeline[2:]} == {on_chain[1].block_number}
    assert after.bundle is not None
    assert verify_bundle(after.bundle, c.ledger).ok
    local = [(cp.size, cp.status) for cp in c.node.store.checkpoints()]
    assert local == [(2, "confirmed"), (4, "confirmed")]


def test_a_reorg_back_to_before_any_checkpoint(
    own_anvil: Web3, sql_stores: Callable[[bytes], Store]
) -> None:
    w3 = own_anvil
    c = make_courier(w3, sql_stores)
    c.node.create_shipment(PARCEL, {}, POSTCODE)
    worker = AnchorWorker(c.node, AnchorPolicy(confirmations=1))
    _record(c, 0, 3)
    snapshot = _rpc(w3, "evm_snapshot")
    assert (worker.step(force=True).anchored or pytest.fail("nothing anchored")).size == 3
    _rpc(w3, "evm_revert", snapshot)
    assert c.ledger.latest_checkpoint(c.node.courier_id) is None
    meantime = lookup([c.node], c.ledger, PARCEL, POSTCODE)
    assert [t.anchoring for t in meantime.timeline] == ["pending"] * 3
    assert worker.step().anchored is not None  # interval not due: the reorg forces it
    assert [cp.size for cp in c.ledger.checkpoints(c.node.courier_id)] == [3]
