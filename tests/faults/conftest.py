"""Fault-suite fixtures: a PostgreSQL schema URL for node processes, the system factory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from parcelproof.chain.devnet import Anvil
from parcelproof.store.db import make_engine
from tests.conftest import with_search_path
from tests.faults.harness import System


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """The URL of a throw-away schema (separate processes connect with it), dropped after."""
    schema = f"pp_fault_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(pg_url, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def make_system(
    request: pytest.FixtureRequest, anvil_node: Anvil, tmp_path: Path
) -> Callable[[], System]:
    """Build a fresh node (new ledger, new database) on the session's anvil."""
    counter = iter(range(1000))

    def factory() -> System:
        n = next(counter)
        workdir = tmp_path / f"system-{n}"
        if request.param == "postgresql":
            url = request.getfixturevalue("pg_schema_url") if n == 0 else _fresh_schema(request)
        else:
            url = f"sqlite:///{workdir / 'parcelproof.sqlite'}"
        return System(workdir, anvil_node.url, url)

    return factory


def _fresh_schema(request: pytest.FixtureRequest) -> str:
    raise RuntimeError("one PostgreSQL system per test: use one factory call")
