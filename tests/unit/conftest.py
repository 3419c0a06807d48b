"""Unit-test fixtures: an in-memory ledger double and a two-courier world built on it."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from parcelproof.core import envelope, merkle
from parcelproof.core.errors import NonGrowingCheckpointError, UnknownCheckpointError
from parcelproof.service.agent import Agent
from parcelproof.service.node import CourierNode
from parcelproof.store.memory import MemoryStore

NOW = 1_790_000_000


class FakeLedger:
    """A ledger double for unit tests only: checkpoints and agent windows, no chain."""

    chain_id = 31337
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

    def __init__(self) -> None:
        self.roots: dict[tuple[bytes, int], bytes] = {}
        self.latest: dict[bytes, tuple[int, bytes]] = {}
        self.agents: dict[str, tuple[bytes, int, int]] = {}
        self.accounts: dict[str, bytes] = {}
        self.block = 0

    def register(self, courier: bytes, agent: str, valid_from: int, valid_until: int) -> None:
        self.agents[agent] = (courier, valid_from, valid_until)

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        try:
            return self.roots[(courier_id, size)]
        except KeyError:
            raise UnknownCheckpointError(
                "ParcelLedgerUnknownCheckpoint", (courier_id, size)
            ) from None

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        entry = self.agents.get(agent)
        return entry is not None and entry[0] == courier_id and entry[1] <= at < entry[2]

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: str
    ) -> FakeCheckpoint:
        courier = self.accounts[sender]
        previous = self.latest.get(courier)
        if previous is not None:
            if size <= previous[0]:
                raise NonGrowingCheckpointError("ParcelLedgerNonGrowingCheckpoint", ())
            merkle.verify_consistency(previous[0], size, previous[1], root, proof)
        self.latest[courier] = (size, root)
        self.roots[(courier, size)] = root
        self.block += 1
        return FakeCheckpoint(size, root, self.block, None)

    def latest_checkpoint(self, courier_id: bytes) -> FakeCheckpoint | None:
        latest = self.latest.get(courier_id)
        return None if latest is None else FakeCheckpoint(latest[0], latest[1], None, None)

    def checkpoints(self, courier_id: bytes, from_block: int = 0) -> list[FakeCheckpoint]:
        return []

    def block_number(self) -> int:
        return self.block


@dataclass(frozen=True)
class FakeCheckpoint:
    size: int
    root: bytes
    block_number: int | None
    tx_hash: bytes | None


class FixedClock:
    def __init__(self, now: int = NOW) -> None:
        self.t = now

    def now(self) -> int:
        return self.t


@dataclass
class World:
    ledger: FakeLedger
    a: CourierNode
    b: CourierNode
    driver_a: Agent
    driver_b: Agent
    clock: FixedClock


def _node(ledger: FakeLedger, name: str, clock: FixedClock) -> CourierNode:
    cid = hashlib.sha256(name.encode()).digest()
    account = f"account-{name}"
    ledger.accounts[account] = cid
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    return CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=account,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=MemoryStore(),
        clock=clock,
    )


@pytest.fixture
def world() -> World:
    ledger, clock = FakeLedger(), FixedClock()
    a, b = _node(ledger, "A", clock), _node(ledger, "B", clock)
    driver_a, driver_b = Agent(secrets.token_bytes(32)), Agent(secrets.token_bytes(32))
    ledger.register(a.courier_id, driver_a.address, NOW - 86400, NOW + 86400)
    ledger.register(b.courier_id, driver_b.address, NOW - 86400, NOW + 86400)
    return World(ledger, a, b, driver_a, driver_b, clock)
