"""The lookups' cached ledger view: the contract's answers, each at most ``ttl`` seconds old."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from parcelproof.core.errors import NetworkError, UnknownAgentKeyError, UnknownCheckpointError
from parcelproof.service.chainview import CachedLedgerView

COURIER = b"\x01" * 32
AGENT = "0x" + "aa" * 20


@dataclass
class _Courier:
    removed_at: int | None = None


@dataclass
class _Key:
    courier_id: bytes
    valid_from: int
    valid_until: int
    revoked_at: int | None


@dataclass
class _Checkpoint:
    size: int


class CountingLedger:
    """Answers like the contract and counts each read."""

    chain_id = 31337
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()
        self.roots = {4: b"\x04" * 32}
        self.revoked_at: int | None = None
        self.down = False

    def _read(self, what: str) -> None:
        if self.down:
            raise NetworkError("chain unreachable")
        self.reads[what] += 1

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        self._read("root")
        if size not in self.roots:
            raise UnknownCheckpointError(f"no checkpoint of size {size}")
        return self.roots[size]

    def latest_checkpoint(self, courier_id: bytes) -> _Checkpoint | None:
        self._read("latest")
        return _Checkpoint(max(self.roots)) if self.roots else None

    def agent_key(self, agent: str) -> _Key:
        self._read("key")
        if agent.lower() != AGENT:
            raise UnknownAgentKeyError(agent)
        return _Key(COURIER, 100, 1000, self.revoked_at)

    def courier(self, courier_id: bytes) -> _Courier:
        self._read("courier")
        return _Courier()

    def suspensions(self, courier_id: bytes) -> list[object]:
        self._read("suspensions")
        return []


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_answers_are_remembered_for_ttl_seconds() -> None:
    ledger, clock = CountingLedger(), Clock()
    view = CachedLedgerView(ledger, 2.0, monotonic=clock)
    for _ in range(50):
        assert view.checkpoint_root(COURIER, 4) == b"\x04" * 32
        assert view.latest_checkpoint(COURIER).size == 4  # type: ignore[union-attr]
        assert view.is_agent_key_valid(COURIER, AGENT, 500)
    assert ledger.reads == Counter(root=1, latest=1, key=1, courier=1, suspensions=1)
    assert (view.chain_id, view.address) == (ledger.chain_id, ledger.address)
    # A revocation and a new checkpoint show once the answers are ttl seconds old.
    ledger.revoked_at, ledger.roots[9] = 300, b"\x09" * 32
    clock.t = 1.9
    assert view.is_agent_key_valid(COURIER, AGENT, 500)
    assert view.latest_checkpoint(COURIER).size == 4  # type: ignore[union-attr]
    clock.t = 2.0
    assert not view.is_agent_key_valid(COURIER, AGENT, 500)
    assert view.is_agent_key_valid(COURIER, AGENT, 200)  # before the revocation
    assert view.latest_checkpoint(COURIER).size == 9  # type: ignore[union-attr]


def test_the_contract_rules_hold() -> None:
    view = CachedLedgerView(CountingLedger(), 5.0, monotonic=Clock())
    assert not view.is_agent_key_valid(COURIER, AGENT, 99)  # before the window
    assert not view.is_agent_key_valid(COURIER, AGENT, 1000)  # the window's end is open
    assert not view.is_agent_key_valid(b"\x02" * 32, AGENT, 500)  # another courier's
    assert not view.is_agent_key_valid(COURIER, "0x" + "bb" * 20, 500)  # unknown key


def test_errors_are_not_remembered() -> None:
    ledger, clock = CountingLedger(), Clock()
    view = CachedLedgerView(ledger, 2.0, monotonic=clock)
    for _ in range(2):
        with pytest.raises(UnknownCheckpointError):
            view.checkpoint_root(COURIER, 7)
    assert ledger.reads["root"] == 2
    ledger.down = True
    with pytest.raises(NetworkError):
        view.latest_checkpoint(COURIER)
    with pytest.raises(NetworkError):  # no stale registration is used for lookups
        view.is_agent_key_valid(COURIER, AGENT, 500)
    ledger.down = False
    assert view.latest_checkpoint(COURIER).size == 4  # type: ignore[union-attr]


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CachedLedgerView(CountingLedger(), 0)
