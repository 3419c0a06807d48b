"""Contract-suite fixtures: every test runs on the embedded eth-tester chain and on anvil."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.errors import ChainError

BACKENDS = [
    pytest.param("eth-tester", id="eth-tester"),
    pytest.param("anvil", id="anvil", marks=pytest.mark.anvil),
]


@dataclass(frozen=True)
class Chain:
    """A connected chain with funded, named actors (fresh keys, funded once per session)."""

    name: str
    w3: Web3
    admin: LocalAccount
    courier_a: LocalAccount
    courier_b: LocalAccount
    resolver: LocalAccount
    outsider: LocalAccount
    spare: LocalAccount


@pytest.fixture(scope="session", params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """One chain per backend for the whole session."""
    if request.param == "anvil":
        try:
            node: devnet.Anvil = request.getfixturevalue("anvil_node")
        except ChainError as e:  # binary missing on this platform
            pytest.skip(f"anvil unavailable: {e}")
        w3 = node.web3()
    else:
        w3 = devnet.embedded_web3()
    admin, a, b, resolver, outsider, spare = devnet.funded_accounts(w3, 6)
    yield Chain(request.param, w3, admin, a, b, resolver, outsider, spare)


@pytest.fixture
def ledger(chain: Chain) -> LedgerClient:
    """A freshly deployed ParcelLedger (independent state per test)."""
    return LedgerClient.deploy(chain.w3, chain.admin)


@pytest.fixture(scope="session")
def shared_ledger(chain: Chain) -> LedgerClient:
    """One ParcelLedger per backend, for the read-only verifier tests."""
    return LedgerClient.deploy(chain.w3, chain.admin)


def ident(label: str) -> bytes:
    """A deterministic 32-byte identifier for ``label``."""
    return hashlib.sha256(label.encode()).digest()


COURIER_A = ident("courier A")
COURIER_B = ident("courier B")
