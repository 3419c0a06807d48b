"""API fixtures: a courier node on a real chain, served by the real app through httpx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from web3 import Web3

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.chain.ledger import LedgerClient
from parcelproof.service import credentials
from parcelproof.service.agent import Agent
from parcelproof.service.audit import AuditLog
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import Store
from parcelproof.service.staff import StaffService, WebAuthnConfig
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import session_factory
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.conftest import make_courier
from tests.support.hashing import FAST_HASHER

STAFF_RP_ID = "ops.parcelproof.test"
STAFF_ORIGIN = "https://ops.parcelproof.test"


@dataclass
class Api:
    client: TestClient
    node: CourierNode
    ledger: LedgerClient
    account: LocalAccount
    driver: Agent
    token: str
    now: int
    staff: StaffService
    audit: AuditLog

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
def api(chain: Web3, sql_stores: Callable[[bytes], Store], sql_engine: Engine) -> Iterator[Api]:
    """The real app over a courier node on a real chain (eth-tester, anvil) and a real
    database (SQLite, PostgreSQL)."""
    c = make_courier(chain, sql_stores, "api-courier", cached_keys=True)  # as `serve` runs
    store = c.node.store
    assert isinstance(store, SqlStore)
    token = credentials.issue(store, "test", credentials.SCOPES)
    audit = AuditLog(SqlAuditStore(session_factory(sql_engine), store.log_id))
    staff = StaffService(
        SqlStaffStore(session_factory(sql_engine), store.log_id),
        c.node.keyring,
        webauthn=WebAuthnConfig(rp_id=STAFF_RP_ID, origins=(STAFF_ORIGIN,)),
        hasher=FAST_HASHER,
        audit=audit,
    )
    services = NodeServices(node=c.node, ledger=c.ledger, clients=store, staff=staff, audit=audit)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield Api(client, c.node, c.ledger, c.account, c.driver, token, c.now, staff, audit)
