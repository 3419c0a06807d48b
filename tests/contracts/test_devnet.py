"""Devnets and connections: eth-tester, the anvil process helper, JSON-RPC failures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.errors import ChainError, NetworkError

from .conftest import COURIER_A, Chain


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_embedded_chain_mines_every_transaction() -> None:
    w3 = devnet.connect(None)
    assert devnet.is_embedded(w3)
    before = w3.eth.block_number
    devnet.funded_accounts(w3, 2)
    assert w3.eth.block_number == before + 2


def test_funded_accounts_hold_the_funding(chain: Chain) -> None:
    accounts = devnet.funded_accounts(chain.w3, 2, value_wei=12345)
    assert len({a.address for a in accounts}) == 2
    assert all(chain.w3.eth.get_balance(a.address) == 12345 for a in accounts)


def test_connect_refuses_unreachable_endpoints() -> None:
    with pytest.raises(NetworkError, match="unreachable"):
        devnet.connect("http://127.0.0.1:9")
    with pytest.raises(NetworkError, match="unsupported JSON-RPC URL"):
        devnet.connect("ws://127.0.0.1:8546")


def test_connect_hides_credentials_in_errors() -> None:
    with pytest.raises(NetworkError) as info:
        devnet.connect("http://user:secret@127.0.0.1:9/v3/0123456789abcdef0123456789")
    assert "secret" not in str(info.value)
    assert "0123456789abcdef0123456789" not in str(info.value)


def test_funding_needs_unlocked_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    w3 = devnet.embedded_web3()
    monkeypatch.setattr(type(w3.eth), "accounts", property(lambda self: []))
    with pytest.raises(ChainError, match="no unlocked dev accounts"):
        devnet.funded_accounts(w3, 1)


def test_anvil_binary_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ChainError, match=r"anvil not found at .*npm ci"):
        devnet.anvil_binary(tmp_path)
    monkeypatch.setenv(devnet.ANVIL_ENV, str(tmp_path / "nope"))
    with pytest.raises(ChainError, match="does not exist"):
        devnet.anvil_binary()


@pytest.mark.anvil
def test_anvil_starts_answers_and_stops_cleanly() -> None:
    node = devnet.Anvil(chain_id=424242)
    with node:
        assert node.running and node.url.startswith("http://127.0.0.1:")
        port = node.port
        w3 = node.web3()
        assert w3.eth.chain_id == 424242
        assert len(w3.eth.accounts) == 10
        log_path = node.log_path
        assert log_path is not None and log_path.exists()
        proc = node._proc
    assert proc is not None and proc.poll() is not None  # reaped: no zombie
    assert not node.running and node.url == ""
    assert not _port_open(port)
    assert not log_path.exists()
    node.stop()  # idempotent


@pytest.mark.anvil
def test_anvil_that_dies_at_start_up_reports_its_output() -> None:
    node = devnet.Anvil(extra_args=("--no-such-flag",))
    with pytest.raises(ChainError, match="anvil exited during start-up"):
        node.start()
    assert not node.running


@pytest.mark.anvil
def test_anvil_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with devnet.Anvil(state=state) as node:
        w3 = node.web3()
        admin, courier = devnet.funded_accounts(w3, 2)
        ledger = LedgerClient.deploy(w3, admin)
        ledger.admit_courier(COURIER_A, courier.address, sender=admin)
        address = ledger.address
    assert state.exists() and state.stat().st_size > 0
    with devnet.Anvil(state=state) as node:
        restored = LedgerClient(node.web3(), address)
        assert restored.courier(COURIER_A).account == courier.address
    with devnet.Anvil() as node:  # without --state the chain starts empty
        assert node.web3().eth.get_code(Web3.to_checksum_address(address)) == b""


@pytest.mark.anvil
def test_a_vanished_node_raises_network_error() -> None:
    with devnet.Anvil() as node:
        w3 = node.web3()
        (admin,) = devnet.funded_accounts(w3, 1)
        ledger = LedgerClient.deploy(w3, admin)
    with pytest.raises(NetworkError, match="JSON-RPC transport failure"):
        ledger.courier(COURIER_A)
    with pytest.raises(NetworkError):
        ledger.admit_courier(COURIER_A, admin.address, sender=admin)


def test_client_on_a_dead_endpoint_raises_network_error() -> None:
    w3 = Web3(HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    ledger = LedgerClient(w3, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    with pytest.raises(NetworkError):
        ledger.latest_checkpoint(COURIER_A)


def test_a_ledger_address_without_code_is_a_clear_error(chain: Chain) -> None:
    ledger = LedgerClient(chain.w3, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    with pytest.raises(ChainError, match="lost its state"):
        ledger.courier(COURIER_A)
