"""The agent-key directory answers like the contract's isAgentKeyValid, from a cache."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from parcelproof.core.errors import NetworkError, UnknownAgentKeyError
from parcelproof.service.keys import AgentKeyDirectory

A, B = b"\xaa" * 32, b"\xbb" * 32
AGENT = "0x00000000000000000000000000000000000000A1"


@dataclass
class Key:
    courier_id: bytes
    valid_from: int
    valid_until: int
    revoked_at: int | None


@dataclass
class CourierRec:
    removed_at: int | None


@dataclass
class Period:
    suspended_at: int
    reinstated_at: int | None


class Ledger:
    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.couriers = {A: CourierRec(None), B: CourierRec(None)}
        self.suspended: dict[bytes, list[Period]] = {}
        self.calls = 0
        self.down = False

    def agent_key(self, agent: str) -> Key:
        self.calls += 1
        if self.down:
            raise NetworkError("unreachable")
        try:
            return self.keys[agent.lower()]
        except KeyError:
            raise UnknownAgentKeyError("ParcelLedgerUnknownAgentKey") from None

    def courier(self, courier_id: bytes) -> CourierRec:
        return self.couriers[courier_id]

    def suspensions(self, courier_id: bytes) -> list[Period]:
        return self.suspended.get(courier_id, [])


@pytest.mark.parametrize(
    ("desc", "key", "removed_at", "courier", "at", "valid"),
    [
        ("inside the window", Key(A, 100, 200, None), None, A, 150, True),
        ("at validFrom", Key(A, 100, 200, None), None, A, 100, True),
        ("at validUntil (exclusive)", Key(A, 100, 200, None), None, A, 200, False),
        ("before the window", Key(A, 100, 200, None), None, A, 99, False),
        ("another courier's key", Key(B, 100, 200, None), None, A, 150, False),
        ("before revocation", Key(A, 100, 200, 160), None, A, 159, True),
        ("at revocation", Key(A, 100, 200, 160), None, A, 160, False),
        ("courier removed before", Key(A, 100, 200, None), 140, A, 150, False),
        ("courier removed after", Key(A, 100, 200, None), 170, A, 150, True),
    ],
)
def test_validity_rule_matches_the_contract(
    desc: str, key: Key, removed_at: int | None, courier: bytes, at: int, valid: bool
) -> None:
    ledger = Ledger()
    ledger.keys[AGENT.lower()] = key
    ledger.couriers[key.courier_id] = CourierRec(removed_at)
    assert AgentKeyDirectory(ledger).is_agent_key_valid(courier, AGENT, at) is valid


@pytest.mark.parametrize(
    ("desc", "at", "valid"),
    [
        ("before the first suspension", 119, True),
        ("at its start", 120, False),
        ("inside it", 125, False),
        ("at its reinstatement (exclusive end)", 130, True),
        ("between suspensions", 150, True),
        ("inside the ongoing one", 170, False),
        ("long after (never reinstated)", 199, False),
    ],
)
def test_suspension_periods_match_the_contract(desc: str, at: int, valid: bool) -> None:
    ledger = Ledger()
    ledger.keys[AGENT.lower()] = Key(A, 100, 200, None)
    ledger.suspended[A] = [Period(120, 130), Period(160, None)]
    assert AgentKeyDirectory(ledger).is_agent_key_valid(A, AGENT, at) is valid, desc


def test_unknown_key_is_invalid_and_cached_briefly() -> None:
    ledger, now = Ledger(), [0.0]
    keys = AgentKeyDirectory(ledger, negative_ttl=5, monotonic=lambda: now[0])
    assert not keys.is_agent_key_valid(A, AGENT, 150)
    ledger.keys[AGENT.lower()] = Key(A, 100, 200, None)
    assert not keys.is_agent_key_valid(A, AGENT, 150)  # still the negative entry
    now[0] = 6
    assert keys.is_agent_key_valid(A, AGENT, 150)


def test_registrations_are_cached_for_the_ttl() -> None:
    ledger, now = Ledger(), [0.0]
    ledger.keys[AGENT.lower()] = Key(A, 100, 200, None)
    keys = AgentKeyDirectory(ledger, ttl=60, monotonic=lambda: now[0])
    for _ in range(1000):
        keys.is_agent_key_valid(A, AGENT, 150)
    assert ledger.calls == 1
    ledger.keys[AGENT.lower()] = Key(A, 100, 200, 120)  # revoked on chain
    now[0] = 61
    assert not keys.is_agent_key_valid(A, AGENT, 150)
    assert ledger.calls == 2


def test_outage_uses_stale_entries_up_to_max_stale_then_fails() -> None:
    ledger, now = Ledger(), [0.0]
    ledger.keys[AGENT.lower()] = Key(A, 100, 200, None)
    keys = AgentKeyDirectory(ledger, ttl=60, max_stale=3600, monotonic=lambda: now[0])
    assert keys.is_agent_key_valid(A, AGENT, 150)
    ledger.down = True
    now[0] = 120
    assert keys.is_agent_key_valid(A, AGENT, 150)
    now[0] = 4000
    with pytest.raises(NetworkError):
        keys.is_agent_key_valid(A, AGENT, 150)


def test_outage_without_any_cache_fails() -> None:
    ledger = Ledger()
    ledger.down = True
    with pytest.raises(NetworkError):
        AgentKeyDirectory(ledger).is_agent_key_valid(A, AGENT, 150)
