"""Integration fixtures: migrated engines on SQLite files and on fresh PostgreSQL schemas."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from parcelproof.store.db import make_engine, sqlite_url, upgrade

PG_URL = os.environ.get(
    "PARCELPROOF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SQL_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL; skips the test when the server does not answer."""
    url = make_url(PG_URL).update_query_dict({"connect_timeout": "3"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as e:
        pytest.skip(f"PostgreSQL at {url.host}:{url.port} is unreachable ({type(e.orig).__name__})")
    finally:
        engine.dispose()
    return PG_URL


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections resolve unqualified names in ``schema`` first."""
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on a throw-away schema of its own, dropped after the test."""
    schema = f"pp_test_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(with_search_path(pg_url, schema))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
