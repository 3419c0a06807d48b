"""API fixtures: a courier node on a real chain, served by the real app through httpx."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import envelope
from parcelproof.demo import courier_id
from parcelproof.service import credentials
from parcelproof.service.agent import Agent
from parcelproof.service.node import CourierNode
from parcelproof.store.memory import MemoryStore

DAY = 86400


@dataclass
class Api:
    client: TestClient
    node: CourierNode
    ledger: LedgerClient
    account: LocalAccount
    driver: Agent
    token: str
    now: int

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture(params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "anvil":
        w3 = devnet.connect(request.getfixturevalue("anvil_node").url)
    else:
        w3 = devnet.connect(None)
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    cid = courier_id(f"api-courier-{secrets.token_hex(4)}")
    ledger.admit_courier(cid, account.address, sender=admin)
    now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
    driver = Agent(secrets.token_bytes(32))
    ledger.register_agent_key(driver.address, now - DAY, now + DAY, sender=account)
    store = MemoryStore()
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    node = CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=account,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=store,
    )
    token = credentials.issue(store, "test", credentials.SCOPES)
    app = create_app(NodeServices(node=node, ledger=ledger, clients=store), max_body=256 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, node, ledger, account, driver, token, now)
