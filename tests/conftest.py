"""Shared fixtures: throw-away anvil, migrated SQLite and PostgreSQL engines."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from web3 import Web3

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import envelope
from parcelproof.service.agent import Agent
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import Store
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore

PG_URL = os.environ.get(
    "PARCELPROOF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SQL_BACKENDS = ("sqlite", "postgresql")


#: Directories whose tests run for tens of seconds each (processes, chaos, outages): they are
#: handed out first, so that with `-n auto` the short tests fill in around them instead of the
#: long ones trailing at the end on one worker.
LONG_RUNNING = ("tests/faults/", "tests/e2e/")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long-running tests first (the fault suite, then end-to-end), otherwise the collection
    order."""
    root = Path(__file__).resolve().parent.parent

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).resolve()
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else ""
        return next(
            (n for n, prefix in enumerate(LONG_RUNNING) if relative.startswith(prefix)),
            len(LONG_RUNNING),
        )

    items.sort(key=rank)  # stable: the collection order within each group


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[Anvil]:
    """A real anvil from node_modules on a free loopback port, stopped at session end."""
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL; skips the test when the server does not answer."""
    url = make_url(PG_URL).update_query_dict({"connect_timeout": "3"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as e:
        reason = f"PostgreSQL at {url.host}:{url.port} is unreachable ({type(e.orig).__name__})"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI always has the server: never pass by skipping
        pytest.skip(reason)
    finally:
        engine.dispose()
    return PG_URL


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections resolve unqualified names in ``schema`` first."""
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def pg_schema(pg_url: str, prefix: str = "pp_test") -> Iterator[str]:
    """A throw-away schema on the test server: its URL (for engines and node processes),
    dropped with everything in it on exit."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(pg_url, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on a throw-away schema of its own, dropped after the test."""
    with pg_schema(pg_url) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "parcelproof.sqlite"


@pytest.fixture
def sqlite_engine(sqlite_path: Path) -> Iterator[Engine]:
    engine = make_engine(sqlite_url(sqlite_path.parent))
    try:
        yield engine
    finally:
        engine.dispose()


def migrated_engine(request: pytest.FixtureRequest, backend: str) -> Engine:
    """A fresh engine on ``backend`` ("sqlite" or "postgresql"), migrated to head."""
    engine: Engine = request.getfixturevalue(
        "pg_engine" if backend == "postgresql" else "sqlite_engine"
    )
    upgrade(engine)
    return engine


@pytest.fixture(params=SQL_BACKENDS)
def sql_engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated engine on each SQL backend."""
    return migrated_engine(request, request.param)


@pytest.fixture(params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Web3:
    """A real chain: the embedded eth-tester one, or a connection to the session's anvil."""
    if request.param == "anvil":
        return devnet.connect(request.getfixturevalue("anvil_node").url)
    return devnet.connect(None)


@dataclass
class Courier:
    """One courier on a fresh ledger: its node, chain account and a registered driver."""

    ledger: LedgerClient
    node: CourierNode
    account: LocalAccount
    admin: LocalAccount
    driver: Agent
    now: int


def make_courier(
    w3: Web3,
    store_for: Callable[[bytes], Store],
    name: str = "courier",
    *,
    cached_keys: bool = False,
) -> Courier:
    """Deploy a ledger, admit a courier, register a driver key valid ±1 day, build the node."""
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    cid = hashlib.sha256(f"{name}-{secrets.token_hex(4)}".encode()).digest()
    ledger.admit_courier(cid, account.address, sender=admin)
    now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
    driver = Agent(secrets.token_bytes(32))
    ledger.register_agent_key(driver.address, now - 86400, now + 86400, sender=account)
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    node = CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=account,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=store_for(cid),
        agent_keys=AgentKeyDirectory(ledger) if cached_keys else None,
    )
    return Courier(ledger, node, account, admin, driver, now)


@pytest.fixture
def sql_stores(sql_engine: Engine) -> Callable[[bytes], Store]:
    """Makes a SqlStore for a log id, on each SQL backend."""
    sessions = session_factory(sql_engine)
    return lambda log_id: SqlStore(sessions, log_id)
