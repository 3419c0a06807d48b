"""A courier on an in-process chain whose node can be opened on any database (ops tests)."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.service.agent import Agent
from parcelproof.service.wiring import NodeRuntime, embedded_chain, open_node
from parcelproof.settings import Settings, load_settings

DAY = 86400


@dataclass
class Courier:
    """Everything a node needs besides its database; both incarnations share it."""

    w3: Web3
    ledger: LedgerClient
    courier_id: bytes
    account_key: str
    keyring: str
    shipment_key: str
    driver: Agent
    now: int

    def settings(self, database_url: str) -> Settings:
        return load_settings(
            read_env_file=False,
            environment="development",
            database_url=SecretStr(database_url),
            ledger_address=self.ledger.address,
            courier_id="0x" + self.courier_id.hex(),
            account_key=SecretStr(self.account_key),
            keyring=SecretStr(self.keyring),
            active_kid="k1",
            shipment_key=SecretStr(self.shipment_key),
            retention_days=0,
        )

    def node(self, database_url: str) -> NodeRuntime:
        return open_node(self.settings(database_url), web3=self.w3)


def make_courier() -> Courier:
    """A ledger on a fresh in-process chain, an admitted courier and a registered driver."""
    w3 = embedded_chain()
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    courier_id = secrets.token_bytes(32)
    ledger.admit_courier(courier_id, account.address, sender=admin)
    now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
    driver = Agent(secrets.token_bytes(32))
    ledger.register_agent_key(driver.address, now - DAY, now + DAY, sender=account)
    return Courier(
        w3=w3,
        ledger=ledger,
        courier_id=courier_id,
        account_key="0x" + bytes(account.key).hex(),
        keyring="k1=" + base64.b64encode(secrets.token_bytes(32)).decode(),
        shipment_key="0x" + secrets.token_hex(32),
        driver=driver,
        now=now,
    )
